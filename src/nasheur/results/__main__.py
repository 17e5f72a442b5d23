"""``python -m nasheur.results``: merge the metrics.json of finished or partial sweeps.

    python -m nasheur.results table runs/sweeps/bn_ablation --table 11 [--out tables/]
    python -m nasheur.results show runs/sweeps/bn_ablation
    python -m nasheur.results figures runs/sweeps --out figures/

`table` prints the paper table as Markdown (and with --out also writes table-<id>.md, .csv and
.tex); `show` lists every job with its status and metrics; `figures` draws the paper's figures
(matplotlib: `pip install -e ".[figures]"`). All read files only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nasheur.io import atomic_write_text
from nasheur.results.collect import load_records
from nasheur.results.tables import (
    TABLES,
    build_table,
    correlation_markdown,
    correlation_table,
    select,
    to_csv,
    to_latex,
    to_markdown,
)


def _table(args: argparse.Namespace) -> int:
    records = load_records(args.folders)
    if args.table == "3":
        text = correlation_markdown(correlation_table(records))
        outputs = {"md": text}
    else:
        table = build_table(records, args.table, bootstrap=args.bootstrap, seed=args.seed)
        text = to_markdown(table)
        outputs = {"md": text, "csv": to_csv(table), "tex": to_latex(table)}
    print(text, end="")
    if args.out:
        for ext, content in outputs.items():
            path = Path(args.out) / f"table-{args.table}.{ext}"
            atomic_write_text(path, content)
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    records = load_records(args.folders)
    if not records:
        print("no metrics.json found", file=sys.stderr)
        return 1
    one = records[0]
    if len(records) == 1 and one.get("status") == "completed" and "timing" in one:
        from nasheur.results.summary import summary_table  # one job: its end-of-job summary

        print(summary_table(one, Path(one["path"])))
        return 0
    head = f"{'status':<10} {'space':<10} {'seed':>4} {'acc':>7} {'s-KdT':>7} {'P>R':>6} {'final':>7}  job"
    print(head)
    for r in records:
        m = r.get("metrics") or {}
        num = lambda key, scale=1.0, width=7, m=m: (  # noqa: E731
            f"{'-':>{width}}" if m.get(key) is None else f"{scale * m[key]:>{width}.3f}"
        )
        print(
            f"{r.get('status', '?'):<10} {select(r, 'config.search_space.name') or '?':<10} {r.get('seed', '?'):>4} "
            f"{num('supernet_acc_mean')} {num('sparse_kendall_tau')} {num('p_beat_random', width=6)} "
            f"{num('final_performance', 100)}  {Path(r['path']).parent}"
        )
        if r.get("status") == "failed":
            print(f"{'':<10} error: {r.get('error', '')[:200]}")
    counts: dict[str, int] = {}
    for r in records:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


MULTI_RUN_FIGURES = ("bn_histograms", "metric_vs_epochs", "metric_pairs", "factor_influence")
JOB_FIGURES = ("rank_disorder", "accuracy_scatter")


def _figures(args: argparse.Namespace) -> int:
    from nasheur.results import figures  # matplotlib only here: `table` and `show` work without it

    records = load_records(args.folders)
    done = [r for r in records if r.get("status") == "completed"]
    out, written = Path(args.out), []
    for name in MULTI_RUN_FIGURES:
        if args.only and name not in args.only:
            continue
        try:
            written += getattr(figures, name)(records, out / name)
        except ValueError as err:
            print(f"skipped {name}: {err}", file=sys.stderr)
    # the job figures: the given records, else the best run (sparse Kendall tau) of each space
    jobs = (
        [r for r in done if r["path"] in {str(Path(p).resolve()) for p in args.record}]
        if args.record
        else []
    )
    if not args.record:
        best: dict[str, dict] = {}
        for r in done:
            space, tau = (
                select(r, "config.search_space.name"),
                select(r, "metrics.sparse_kendall_tau"),
            )
            if tau is not None and (
                space not in best or tau > best[space]["metrics"]["sparse_kendall_tau"]
            ):
                best[space] = r
        jobs = list(best.values())
    for r in jobs:
        for name in JOB_FIGURES:
            if not args.only or name in args.only:
                written += getattr(figures, name)(
                    r, out / f"{name}-{select(r, 'config.search_space.name')}"
                )
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0 if written else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nasheur.results", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="merge sweep folders into a paper table")
    t.add_argument("folders", nargs="+", help="job or sweep folders (searched for metrics.json)")
    t.add_argument("--table", required=True, choices=[*TABLES, "3"])
    t.add_argument("--out", help="folder for table-<id>.md/.csv/.tex")
    t.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (0: none)")
    t.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    t.set_defaults(run=_table)
    s = sub.add_parser("show", help="list the jobs of folders with their status and metrics")
    s.add_argument("folders", nargs="+")
    s.set_defaults(run=_show)
    f = sub.add_parser("figures", help="the paper's figures from jobs and sweeps (PNG and PDF)")
    f.add_argument("folders", nargs="+")
    f.add_argument("--out", default="figures")
    f.add_argument("--only", nargs="*", default=[], choices=[*MULTI_RUN_FIGURES, *JOB_FIGURES])
    f.add_argument(
        "--record",
        nargs="*",
        default=[],
        help="metrics.json of jobs to draw Fig. 4 and the scatter for",
    )
    f.set_defaults(run=_figures)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, KeyError) as err:
        print(f"nasheur.results: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
