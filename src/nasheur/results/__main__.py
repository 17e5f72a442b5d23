"""``python -m nasheur.results``: merge the metrics.json of finished or partial sweeps.

    python -m nasheur.results table runs/sweeps/bn_ablation --table 11 [--out tables/]
    python -m nasheur.results show runs/sweeps/bn_ablation
    python -m nasheur.results figures runs/sweeps --out figures/

`table` prints the paper table as Markdown (and with --out also writes table-<id>.md, .csv and
.tex); `show` counts the jobs in each state and lists those that did not complete (with --all
every job, the completed ones with their metrics); `figures` draws the paper's figures
(matplotlib: `pip install -e ".[figures]"`). All read files only.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from nasheur.cli_args import at_least, bin_width, bootstrap_count, folder_path
from nasheur.io import atomic_write_text, run_piped
from nasheur.jobguard import LOCK, PROGRESS, describe_holder, describe_progress, recorded_details
from nasheur.results.collect import (
    METRICS,
    NO_RECORD,
    NOT_STARTED,
    RUNNING,
    Job,
    find_jobs,
    load_records,
)
from nasheur.results.render import (
    correlation_csv,
    correlation_latex,
    correlation_markdown,
    to_csv,
    to_latex,
    to_markdown,
)
from nasheur.results.settings import distinct_jobs, experiment_name, main_settings
from nasheur.results.tables import (
    TABLES,
    at_threshold,
    build_table,
    correlation_notes,
    correlation_table,
    left_out_notes,
    pool_accuracies,
    select,
)
from nasheur.reuse import LEFT, SUBMITTED
from nasheur.spaces import space_names
from nasheur.sweep.manifest import experiment_of


def _folders(args: argparse.Namespace) -> str:
    """The folders as a shell takes them back (a path with a space quoted)."""
    return " ".join(shlex.quote(str(f)) for f in args.folders)


def _load(paths: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The records under `paths`, their sparse correlations at ``--skdt-threshold`` if given."""
    records = load_records(paths)
    width = getattr(args, "skdt_threshold", None)
    return records if width is None else [at_threshold(r, width) for r in records]


def _width_note(args: argparse.Namespace, records: list[dict[str, Any]]) -> list[str]:
    width = getattr(args, "skdt_threshold", None)
    if width is None:
        return []
    notes = [
        f"S-KdT and sparse Spearman at GT bins {width:g} wide (--skdt-threshold), computed "
        "again from each run's pool"
    ]
    # a pool recorded without its architectures' accuracies (no `archs`) has nothing to
    # compute them from: `at_threshold` leaves them undefined, which is not a collapsed run
    lacking = sum(
        len(pool_accuracies(pool)[0]) < 2
        for r in records
        if r.get("status") == "completed"
        for pool in [r, *(r.get("extra_pools") or {}).values()]
    )
    if lacking:
        notes.append(
            f"{lacking} pool(s) in the folders record fewer than two architectures' "
            f"accuracies (`archs`): their sparse correlations cannot be computed at {width:g} "
            "and are left out"
        )
    return notes


def _pending_note(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    experiments: list[str] | None,
    where: str = "the table",
) -> list[str]:
    """A note on the jobs of the table's sweeps that have no record yet (a partial or stopped
    sweep), whose runs the table cannot show, and on a sweep.json that cannot be read (its
    jobs cannot be counted); `records`: the folders' records, read once; `experiments`: the
    sweeps' names (None: all)."""
    jobs, unread = find_jobs(args.folders, records)
    notes = [f"{n}: the jobs it lists that never started are not counted" for n in unread]
    ours = [j for j in jobs if experiments is None or _of_experiments(j, experiments)]
    # a job that runs again (resumed, or rerun after a failure) still has its earlier record,
    # which the notes on failed and interrupted runs count: it is said apart, not counted twice
    states = [
        j.state
        for j in ours
        if j.state in (NOT_STARTED, NO_RECORD) or (j.state == RUNNING and j.record is None)
    ]
    if states:
        counted = ", ".join(f"{states.count(s)} {STATES[s][0]}" for s in STATES if s in states)
        notes.append(
            f"{len(states)} job(s) of these sweeps have no metrics.json yet ({counted}): their "
            f"runs are not in {where} (`python -m nasheur.results show {_folders(args)}` lists "
            "them)"
        )
    again = sum(j.state == RUNNING and j.record is not None for j in ours)
    if again:
        notes.append(
            f"{again} job(s) of these sweeps with a failed or interrupted record run again now: "
            f"their runs are not in {where} until they complete"
        )
    return notes


def _of_experiments(job: Job, experiments: list[str]) -> bool:
    """Whether a job without a record is of one of `experiments`: by its ``+experiment=``
    override where sweep.json lists it (the sweep folder may have any name), else by a folder
    it lies in (``<sweeps>/<experiment>/<space>/<job>``)."""
    named = experiment_of(job.overrides)
    if named is not None:
        return named in experiments
    return any(p.name in experiments for p in job.folder.parents)


def _table(args: argparse.Namespace) -> int:
    records = _load(args.folders, args)
    show = f"`python -m nasheur.results show {_folders(args)}` lists the jobs"
    if not records:
        print(f"no metrics.json under {_folders(args)}: no job there has ended", file=sys.stderr)
        return _nothing_to_merge(args, show)
    if args.table == "3":
        done = [r for r in records if r.get("status") == "completed"]
        if not done:
            print(_none_completed("the", distinct_jobs(records)[0]), file=sys.stderr)
            for note in _pending_note(args, records, None):  # and those yet to end
                print(note, file=sys.stderr)
            return _nothing_to_merge(args, f"{show} and their errors")
        table3 = correlation_table(records)
        notes = (
            _width_note(args, records)
            + correlation_notes(records)
            + _pending_note(args, records, None)
        )
        text = correlation_markdown(table3) + "".join(f"- {n}\n" for n in notes)
        outputs = {
            "md": text,
            "csv": correlation_csv(table3),
            "tex": correlation_latex(table3, notes),
        }
    else:
        table = build_table(records, args.table, bootstrap=args.bootstrap, seed=args.seed)
        if not table.completed:
            names = [name for name, _ in TABLES[args.table]]
            experiments = ", ".join(names)
            if not table.unfinished:
                print(
                    f"none of the {len(records)} record(s) under {_folders(args)} is of "
                    f"Table {args.table}'s experiments ({experiments})"
                    + (f"; {table.broken} could not be read" if table.broken else ""),
                    file=sys.stderr,
                )
            else:
                ours = [r for r in records if experiment_name(r) in names]
                print(
                    _none_completed(f"Table {args.table}'s", distinct_jobs(ours)[0]),
                    file=sys.stderr,
                )
            for note in _pending_note(args, records, names):  # and the jobs yet to end
                print(note, file=sys.stderr)
            return _nothing_to_merge(args, f"{show} and their errors")
        ours = [n for n, _ in TABLES[args.table]]
        table.notes += _width_note(args, records) + _pending_note(args, records, ours)
        text = to_markdown(table)
        outputs = {"md": text, "csv": to_csv(table), "tex": to_latex(table)}
    print(text, end="")
    if args.out:
        _write_table(args, outputs)
    return 0


TABLE_FORMATS = ("md", "csv", "tex")


def _write_table(args: argparse.Namespace, outputs: dict[str, str]) -> None:
    """The table's files in `--out`, each atomically. Where one cannot be written (a full
    disk, a quota), none of the table's files is left there: those written already beside an
    earlier call's would pass for one table."""
    for ext, content in outputs.items():
        path = _table_file(args, ext)
        try:
            atomic_write_text(path, content)
        except OSError:
            with contextlib.suppress(OSError):  # a read-only folder: nothing was written
                names = _remove_stale([_table_file(args, e) for e in TABLE_FORMATS])
                if names:
                    print(f"removed {names}: a table is written whole or not", file=sys.stderr)
            raise
        print(f"wrote {path}", file=sys.stderr)


def _nothing_to_merge(args: argparse.Namespace, show: str) -> int:
    """A table with no run to merge: exit status 1, and no files of an earlier call left in
    `--out` (`make table-<id>` writes to one folder), which would pass for this data's."""
    gone = ""
    if args.out:
        gone = _earlier(_remove_stale([_table_file(args, ext) for ext in TABLE_FORMATS]))
    print(f"nothing to merge ({show}){gone}", file=sys.stderr)
    return 1


def _table_file(args: argparse.Namespace, ext: str) -> Path:
    return Path(args.out) / f"table-{args.table}.{ext}"


def _remove_stale(paths: list[Path]) -> str:
    """Remove those of `paths` that are files; their names (``a, b``), or ""."""
    stale = [p for p in paths if p.is_file()]
    for path in stale:
        path.unlink()
    return ", ".join(p.name for p in stale)


def _earlier(names: str) -> str:
    return f" (removed the earlier {names})" if names else ""


def _none_completed(whose: str, records: list[dict]) -> str:
    """``no completed run: Table 11's 4 run(s) are 3 failed, 1 interrupted``."""
    counts: dict[str, int] = {}
    for r in records:
        status = str(r.get("status") or "unknown")
        if status != "completed":
            counts[status] = counts.get(status, 0) + 1
    return f"no completed run: {whose} {len(records)} run(s) are " + ", ".join(
        f"{n} {s}" for s, n in sorted(counts.items())
    )


# the states in the order `show` counts and lists them: their names, what they mean
STATES = {
    "completed": ("completed", ""),
    "failed": ("failed", "the same command runs them again, once what their error says is fixed"),
    "interrupted": (
        "interrupted",
        "stopped from outside; relaunching resumes them, as a requeued SLURM task does its own",
    ),
    "broken": ("unreadable", "metrics.json could not be read"),
    RUNNING: ("running", "a running job holds the folder (job.lock): relaunching leaves it be"),
    NO_RECORD: (
        "without a record",
        "a checkpoint, pool or log but no metrics.json, and no job holds the folder: stopped "
        "without a record (killed, out of time); relaunching resumes them (on a file system "
        "without locks a running job looks the same)",
    ),
    NOT_STARTED: (
        "not started",
        "composed (listed in sweep.json, or Hydra's .hydra/ alone) but no job file yet",
    ),
}
LISTED = 20  # jobs listed per state without --all


def _where(folder: Path, roots: list[Path]) -> str:
    """The folder relative to the given folder it is in (``nb201/lr=0.1,seed=0-1a2b``)."""
    for root in roots:
        try:
            rel = folder.relative_to(root)
        except ValueError:
            continue
        return str(rel) if rel.parts else str(folder)
    return str(folder)


def _ago(stamp: float | None) -> str:
    if stamp is None:
        return ""
    s = max(time.time() - stamp, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return f"{s:.0f} s ago"


def _trained(record: dict) -> str:
    """How far a failed or interrupted record's job got, and where a resume starts
    (``epoch 12/200 done (checkpoint: epoch 10)``); "" for a completed one or where the
    record does not say (one written before 2026-12-06)."""
    history, epochs = record.get("history"), record.get("epochs")
    if record.get("status") == "completed" or not isinstance(history, list):
        return ""
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        return ""
    done = len(history)
    last = history[-1] if history else None
    # a diverged epoch is on record (its NaN loss written as null) but neither done nor saved
    diverged = isinstance(last, dict) and "train_loss" in last and last["train_loss"] is None
    done -= diverged
    progress: dict[str, Any] = {"epoch": done, "epochs": epochs}
    saved = record.get("checkpoint_epoch")
    if isinstance(saved, int) and not isinstance(saved, bool) and saved != done:
        progress["checkpoint"] = saved
    said = describe_progress(progress, left=False) if done or not diverged else ""
    if diverged:
        said += ("; " if said else "") + f"diverged in epoch {done + 1}/{epochs}"
    return said


def _detail(job: Job) -> str:
    """What a listed job's line says after its folder."""
    if job.state == NOT_STARTED:
        if not job.folder.is_dir():
            found = "folder missing"
        else:
            found = "Hydra's .hydra/ only" if (job.folder / ".hydra").is_dir() else "no job files"
        # the sweep's own word: stopped (Ctrl-C, sbatch refusing the submission) before it ran
        if job.after == LEFT:  # the sweep waits for another's launch to copy it
            return found + "; the last launch left it to another sweep's, to copy it from there"
        if job.queued is not None:  # a launch in progress claims it
            pid, host = job.queued.get("pid"), job.queued.get("host")
            by = "the launch in progress"
            if pid is not None:
                by += f" (pid {pid}" + (f" on {host})" if host else ")")
            submitted = job.queued.get(SUBMITTED)
            if submitted:
                return found + f"; queued: SLURM job {submitted}, submitted by {by}"
            return found + f"; waiting for its turn in {by}"
        return found + ("; the last launch did not run it" if job.after == "not run" else "")
    if job.state == RUNNING:
        return describe_holder(job.holder or {})
    if job.state == NO_RECORD:
        written = _ago(job.modified)
        said = ", ".join(job.files) + (f"; checkpoint/pool written {written}" if written else "")
        # how far it got, as its lock file last said (the process that wrote it is gone)
        last = describe_progress(recorded_details(job.folder / LOCK).get(PROGRESS), left=False)
        return said + (f"; last heard of: {last}" if last else "")
    parts = [job.error] if job.error else []
    trained = _trained(job.record or {})
    if trained:
        parts.append(trained)
    if job.resumed:
        parts.append(f"run again since this record (checkpoint/pool written {_ago(job.modified)})")
    return "; ".join(parts)


def _metrics_line(r: dict) -> str:
    m = r.get("metrics") or {}

    def num(key: str, scale: float = 1.0, width: int = 7, digits: int = 3) -> str:
        v = m.get(key)
        return f"{'-':>{width}}" if v is None else f"{scale * v:>{width}.{digits}f}"

    seed = "?" if r.get("seed") is None else r["seed"]
    # as the tables print them: fractions to 3 places, the final performance in % to 2
    return (
        f"{select(r, 'config.search_space.name') or '?':<10} {seed:>4} "
        f"{num('supernet_acc_mean')} {num('sparse_kendall_tau')} {num('p_beat_random', width=6)} "
        f"{num('final_performance', 100, digits=2)}"
    )


def _show(args: argparse.Namespace) -> int:
    jobs, notes = find_jobs(args.folders)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not jobs:
        print(
            f"no jobs under {_folders(args)}: no metrics.json, checkpoint.pt, pool.json or "
            "nasheur.log, and no job listed in a sweep.json",
            file=sys.stderr,
        )
        return 1
    if len(jobs) == 1 and jobs[0].state == "completed" and "timing" in (jobs[0].record or {}):
        from nasheur.results.summary import summary_table  # one job: its end-of-job summary

        one = jobs[0].record
        print(summary_table(one, Path(one["path"])))  # type: ignore[index]
        return 0
    roots = [Path(f).resolve() for f in args.folders]
    by_state: dict[str, list[Job]] = {}
    for job in jobs:
        by_state.setdefault(job.state, []).append(job)
    order = [*STATES, *sorted(set(by_state) - set(STATES))]
    states = [s for s in order if s in by_state]
    copies = sum("reused_from" in (j.record or {}) for j in by_state.get("completed", []))
    copied = f" ({copies} of them copied from other sweeps, where they completed)"
    print(
        f"{len(jobs)} job(s): "
        + ", ".join(
            f"{len(by_state[s])} {STATES.get(s, (s,))[0]}"
            + (copied if s == "completed" and copies else "")
            for s in states
        )
    )
    if "completed" not in by_state:
        records = sum(j.record is not None for j in jobs)
        print(
            "no job completed: "
            + (
                "no job has a metrics.json yet"
                if not records
                else f"the {records} metrics.json record(s) are of jobs that did not complete"
            )
        )
    for state in states:
        listed = by_state[state]
        if state == "completed":
            if not args.all:
                continue
            print(f"\ncompleted ({len(listed)}):")
            print(
                f"  {'space':<10} {'seed':>4} {'acc':>7} {'s-KdT':>7} {'P>R':>6} {'final':>7}  job"
            )
            for job in listed:
                print(f"  {_metrics_line(job.record or {})}  {_where(job.folder, roots)}")
            continue
        name, meaning = STATES.get(state, (f"status {state!r}", ""))
        print(f"\n{name} ({len(listed)})" + (f": {meaning}" if meaning else ""))
        shown = listed if args.all else listed[:LISTED]
        for job in shown:
            detail = _detail(job)
            print(f"  {_where(job.folder, roots)}" + (f"  {detail}" if detail else ""))
        if len(shown) < len(listed):
            print(f"  ... and {len(listed) - len(shown)} more (--all lists them)")
    return 0


MULTI_RUN_FIGURES = ("bn_histograms", "metric_vs_epochs", "metric_pairs", "factor_influence")
JOB_FIGURES = ("rank_disorder", "accuracy_scatter")


def _draw(name: str, draw: Any, *args: Any) -> list[Path]:
    """One figure: its files, or none with the reason printed; what it left out as notes. A
    figure skipped leaves no files of an earlier run at its place (`make figures` writes to
    one folder), which would pass for this data's."""
    from nasheur.results.figures import figure_files

    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", UserWarning)
            written = draw(*args)
    except ValueError as err:
        gone = _earlier(_remove_stale(figure_files(args[-1])))
        why = str(err).removeprefix(f"{name}: ")  # a figure's own error names it already
        print(f"skipped {name}: {why}{gone}", file=sys.stderr)
        written = []
    for w in said:  # what a figure left out, as a note rather than Python's warning format
        print(f"note: {w.message}", file=sys.stderr)
    return written


def _remove_unbested(args: argparse.Namespace, out: Path, drawn: set[Any]) -> None:
    """Remove the best-run figures of the spaces that have no best run in these folders
    (`make figures` writes to one folder): an earlier call's would pass for this data's."""
    from nasheur.results.figures import figure_files

    unbested = [space for space in space_names() if space not in drawn]
    for name, space in itertools.product(_job_figures(args), unbested):
        gone = _remove_stale(figure_files(out / f"{name}-{space}"))
        if gone:
            print(f"removed {gone}: no best run of {space} in these folders", file=sys.stderr)


def _job_figures(args: argparse.Namespace) -> list[str]:
    """The per-job figures to draw (``--only``'s, else all)."""
    return [name for name in JOB_FIGURES if not args.only or name in args.only]


def _best_runs(done: list[dict]) -> list[dict]:
    """The run of each space with the highest sparse Kendall tau (an undefined one never),
    among the experiments' main settings (not a short try beside a sweep, whose small pool
    gives noisy taus)."""
    best: dict[str, dict] = {}
    for r in main_settings(distinct_jobs(done)[0])[0]:
        space, tau = select(r, "config.search_space.name"), select(r, "metrics.sparse_kendall_tau")
        if tau is None or not math.isfinite(tau):
            continue
        if space not in best or tau > best[space]["metrics"]["sparse_kendall_tau"]:
            best[space] = r
    return list(best.values())


def _said(record: dict[str, Any]) -> str:
    """A record's state as a note says it: ``failed (RuntimeError: boom)``, ``unreadable
    (...)``."""
    status = str(record.get("status"))
    error = Job(Path(record["path"]).parent, status, record=record).error
    state = STATES.get(status, (status, ""))[0]
    return f"{state} ({error})" if error else state


def _figures(args: argparse.Namespace) -> int:
    from nasheur.results import figures  # matplotlib only here: `table` and `show` work without it

    records = _load(args.folders, args) if args.folders else []
    done = [r for r in records if r.get("status") == "completed"]
    out, written = Path(args.out), []
    for name in MULTI_RUN_FIGURES if args.folders else ():  # --record alone: its jobs only
        if not args.only or name in args.only:
            written += _draw(name, getattr(figures, name), records, out / name)
    if args.folders:  # what no figure can show, as `table` says it
        for note in left_out_notes(records) + _pending_note(args, records, None, "the figures"):
            print(f"note: {note}", file=sys.stderr)
    # the job figures: the given jobs (each its own files), else the best run (sparse Kendall
    # tau) of each space
    jobs: list[tuple[dict, str]] = []
    for given in args.record:  # a metrics.json or a job folder, inside the folders or not
        loaded = _load([given], args)
        found = [r for r in loaded if r.get("status") == "completed"]
        if not found:
            why = "".join(f"; {r['path']}: {_said(r)}" for r in loaded)
            print(
                f"note: --record {given}: no completed job's metrics.json there{why}",
                file=sys.stderr,
            )
        jobs += [(r, f"-{Path(r['path']).parent.name}") for r in found]
    if not args.record:
        jobs = [(r, "") for r in _best_runs(done)]
        _remove_unbested(args, out, {select(r, "config.search_space.name") for r, _ in jobs})
    for r, suffix in jobs:
        space = select(r, "config.search_space.name")
        for name in _job_figures(args):
            written += _draw(
                f"{name} of {r['path']}", getattr(figures, name), r, out / f"{name}-{space}{suffix}"
            )
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0 if written else 1


class BadArgument(Exception):
    """A path or value the command cannot use: said, like a missing folder, with status 2."""


def _check(args: argparse.Namespace) -> None:
    """Refuse a path given as a job that cannot be one (a file other than a metrics.json)
    before reading or merging anything (argparse checks --out)."""
    if not args.folders and not getattr(args, "record", None):
        raise BadArgument("figures: give job or sweep folders, or jobs with --record")
    for folder in args.folders:
        _job_path(folder, "")
    for given in getattr(args, "record", []):
        _job_path(given, "--record ")


def _job_path(given: str, option: str) -> None:
    """A job or sweep folder, or a metrics.json (the record of one job); `option` names the
    option that gave it ("--record "), empty for the folders."""
    path = Path(given)
    if not given.strip():
        raise BadArgument(f"{option}an empty path is neither a folder nor a {METRICS}")
    if not path.exists():
        missing = (
            f"{option}{given}: no such folder or file" if option else f"no such folder: {given}"
        )
        raise FileNotFoundError(missing + _moved_runs(path))
    if not path.is_dir() and path.name != METRICS:
        raise BadArgument(f"{option}{given} is neither a folder nor a {METRICS}")


def _moved_runs(path: Path) -> str:
    """Where a missing ``runs/...`` path lies when ``$NASHEUR_RUNS`` moves ``runs/`` (as the
    README's commands spell it): a hint for the refusal, empty where none applies."""
    from nasheur.config import runs_root

    try:
        root = runs_root()
    except ValueError:  # a root nasheur refuses: no runs went there
        return ""
    if path.is_absolute() or not path.parts or path.parts[0] != "runs":
        return ""
    try:  # ./runs itself, named by its full path or through a link: no hint
        if root.resolve() == Path("runs").resolve():
            return ""
    except (OSError, RuntimeError):  # a link loop: not ./runs
        pass
    moved = Path(root, *path.parts[1:])
    where = f"; did you mean {moved}?" if moved.exists() else ""
    return f" ($NASHEUR_RUNS={root} puts the runs there, not under runs/{where})"


def _given(text: str) -> str:
    """A job or sweep folder or a metrics.json to read; a leading ``~`` is the home folder, as
    for ``--out`` (:func:`nasheur.cli_args.folder_path`): where no shell expanded it (quoted,
    ``--record=~/x``, a make variable)."""
    return os.path.expanduser(text)


TABLE_IDS = sorted([*TABLES, "3"], key=int)


def _table_id(text: str) -> str:
    """A table this command merges; the paper's caption numbering names one of them 8."""
    if text == "8":
        raise argparse.ArgumentTypeError(
            "Table 8 by the paper's captions is the ops on nodes or edges comparison, which its "
            "text and nasheur call Table 9: use --table 9"
        )
    if text not in TABLE_IDS:
        raise argparse.ArgumentTypeError(f"no table {text!r}; choose from {', '.join(TABLE_IDS)}")
    return text


SKDT_THRESHOLD: dict[str, Any] = {
    "type": bin_width,
    "metavar": "T",
    "help": "compute sparse Kendall tau and sparse Spearman again from each run's pool with GT "
    "bins T wide (e.g. 0.01, the authors' scripts' width) instead of the run's "
    "metrics.skdt_threshold; no training again",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nasheur.results",
        description="Merge the metrics.json files of finished or partial sweeps into the "
        "paper's tables and figures (reads files only). README: 'Sweeps and the paper's tables'.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="merge sweep folders into a paper table")
    t.add_argument(
        "folders", nargs="+", type=_given, help="job or sweep folders (searched for metrics.json)"
    )
    fed_by = "; ".join(
        f"{t}: {', '.join(name for name, _ in experiments)}" for t, experiments in TABLES.items()
    )
    t.add_argument(
        "--table",
        required=True,
        type=_table_id,
        metavar="{" + ",".join(TABLE_IDS) + "}",
        help=f"the paper table, from the runs of its experiments ({fed_by}; 3: all runs)",
    )
    t.add_argument(
        "--out",
        type=folder_path,
        help="folder for table-<id>.md/.csv/.tex (default: none, only the markdown on stdout)",
    )
    t.add_argument(
        "--bootstrap",
        type=bootstrap_count,
        default=200,
        help="bootstrap resamples for the 95%% intervals (0: none; else at least 40)",
    )
    t.add_argument("--seed", type=at_least(0), default=0, help="seed of the bootstrap")
    t.add_argument("--skdt-threshold", **SKDT_THRESHOLD)
    t.set_defaults(run=_table)
    s = sub.add_parser(
        "show",
        help="count the jobs of folders by state and list those that did not complete",
    )
    s.add_argument("folders", nargs="+", type=_given, help="job or sweep folders")
    s.add_argument(
        "--all",
        action="store_true",
        help=f"list every job (the completed ones with their metrics), not only the first {LISTED} per state",
    )
    s.set_defaults(run=_show)
    f = sub.add_parser("figures", help="the paper's figures from jobs and sweeps (PNG and PDF)")
    f.add_argument(
        "folders",
        nargs="*",
        type=_given,
        help="job or sweep folders (none: only the jobs of --record)",
    )
    f.add_argument("--out", type=folder_path, default="figures", help="folder (default: figures)")
    f.add_argument("--only", nargs="*", default=[], choices=[*MULTI_RUN_FIGURES, *JOB_FIGURES])
    f.add_argument(
        "--record",
        nargs="*",
        type=_given,
        default=[],
        help="metrics.json of jobs to draw Fig. 4 and the scatter for",
    )
    f.add_argument("--skdt-threshold", **SKDT_THRESHOLD)
    f.set_defaults(run=_figures)
    args = parser.parse_args(argv)
    try:
        _check(args)
        return args.run(args)
    except (FileNotFoundError, KeyError, BadArgument) as err:
        print(f"nasheur.results: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader went away: run_piped's
    except OSError as err:  # --out read-only, a full disk, a quota; a folder it cannot read
        # status 2, as for a bad --out given: 1 says there was nothing to merge, which
        # `make tables` skips
        out, where = getattr(args, "out", None), err.filename
        if out is not None and where is not None and Path(where).parent == Path(out):
            where = f"cannot write into {out}"  # the file or its temporary: the folder is news
        said = err.strerror or str(err)
        print(f"nasheur.results: {f'{where}: ' if where else ''}{said}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run_piped(main))
