"""``python -m nasheur.groundtruth convert|build|show``: make and inspect ground-truth tables.

python -m nasheur.groundtruth convert <file or folder> [--out table.csv]
    [--dataset cifar10|cifar10-valid] [--metric test|valid] [--column NAME]
    [--unit auto|percent|fraction]
python -m nasheur.groundtruth build --out table.csv [--space embedded --archs 300 ...]
    (stand-alone training for a space without a benchmark; ``build --help`` lists the options)
python -m nasheur.groundtruth show <table.csv>
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from nasheur.cli_args import file_path
from nasheur.groundtruth.table import GroundTruthError, read_table
from nasheur.io import run_piped


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nasheur.groundtruth",
        description="Convert official benchmark files into ground-truth tables, or show one.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser(
        "convert",
        help="read a benchmark file and write its key,accuracy table",
        description=(
            "Formats: NAS-Bench-101 .tfrecord, NAS-Bench-201 .pth, NATS-Bench topology "
            ".pickle.pbz2 or -simple folder, NDS DARTS .json, or a .csv table (re-written)."
        ),
    )
    conv.add_argument("source", help="the benchmark file (or NATS -simple folder)")
    conv.add_argument(
        "--out",
        type=file_path,
        help=(
            "output table (default: <source>.<tag>.gt.csv beside it; the tag is the dataset "
            "or metric, for a CSV the --column or --metric given, else 'table')"
        ),
    )
    conv.add_argument(
        "--dataset",
        choices=("cifar10", "cifar10-valid"),
        help="NAS-Bench-201/NATS: cifar10 (default; test accuracy) or cifar10-valid (x-valid)",
    )
    conv.add_argument(
        "--metric",
        choices=("test", "valid"),
        help="test or valid accuracy (default: test, and valid for cifar10-valid)",
    )
    conv.add_argument("--column", help="CSV input only: the accuracy column to read")
    conv.add_argument(
        "--unit",
        default="auto",
        choices=("auto", "percent", "fraction"),
        help="CSV input only: the unit of the accuracy column",
    )
    # the builder parses its own options (nasheur.groundtruth.builder)
    build = sub.add_parser(
        "build",
        add_help=False,
        help="train stand-alone networks of a sample of a space and write their GT table",
    )
    build.add_argument("options", nargs="*", help="see `build --help`")
    show = sub.add_parser("show", help="print a table's header and row count")
    show.add_argument("table")
    show.add_argument("--column", help="the accuracy column (default: the layout's own)")
    show.add_argument("--unit", default="auto", choices=("auto", "percent", "fraction"))
    return parser


def _convert(args: argparse.Namespace) -> int:
    from nasheur.groundtruth.convert import convert_file

    out, gt = convert_file(
        args.source,
        args.out,
        dataset=args.dataset,
        metric=args.metric,
        column=args.column,
        unit=args.unit,
    )
    protocol = ", ".join(
        f"{k}={gt.meta[k]}" for k in ("benchmark", "dataset", "metric", "epochs") if k in gt.meta
    )
    print(f"wrote {len(gt)} rows to {out}" + (f" ({protocol})" if protocol else ""))
    return 0


def _show(args: argparse.Namespace) -> int:
    gt = read_table(args.table, column=args.column, unit=args.unit)
    for name, value in gt.meta.items():
        print(f"# {name}: {value}")
    acc = np.asarray(gt.acc)
    print(f"rows: {len(gt)}")
    print(f"accuracy: min {acc.min():.6f}, mean {acc.mean():.6f}, max {acc.max():.6f} (fraction)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["build"]:  # the builder parses its own options, --help included
        from nasheur.groundtruth.builder import build_main

        return build_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return _convert(args) if args.command == "convert" else _show(args)
    except (GroundTruthError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run_piped(main))
