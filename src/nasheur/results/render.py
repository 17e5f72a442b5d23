"""The paper's tables as text: Markdown, CSV and LaTeX of a :class:`~nasheur.results.tables.Table`
(mean ± std per cell, bootstrap intervals, the marks for untrained, missing and undefined
cells), and Table 3's rank correlations in the same three forms."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from nasheur.results.tables import (
    COLUMNS,
    METRICS,
    RANKING,
    SPACE_TITLES,
    TITLES,
    Block,
    Cell,
    Table,
)


def _fmt_row(block: Block, row: tuple[Any, ...]) -> str:
    return block.labels[row]


PAPER_RUNS = 3  # "3 different runs": a cell over another number says so


def _fmt_cell(cell: Cell | None, metric: str) -> str:
    if cell is None or not cell.runs:
        return "—"
    mark = ("†" if cell.untrained else "") + ("‡" if cell.overlapping else "")
    if cell.mean.get(metric) is None:  # runs, none with the metric defined: the paper's N/A
        return "N/A" + mark + (f" (n=0 of {cell.runs})" if cell.runs > 1 else "")
    mean, std = cell.mean[metric], cell.std.get(metric)
    if metric == "final_performance":  # ± the std over seeds: none for a single run
        text = f"{100 * mean:.2f}" + ("" if std is None else f"±{100 * std:.2f}")
    elif metric == "supernet_acc_mean":  # ± the pool's std, as the paper prints it
        pool = cell.mean.get("supernet_acc_std")  # defined for a single run too
        text = f"{mean:.3f}" + ("" if pool is None else f"±{pool:.2f}")
    elif metric in RANKING:  # ± the std over seeds (the paper's Table 4), then the interval
        text = f"{mean:.3f}" + ("" if std is None else f"±{std:.2f}")
        if cell.ci.get(metric):
            lo, hi = cell.ci[metric]  # type: ignore[misc]
            text += f" [{lo:.2f}, {hi:.2f}]"
    else:  # P>R, printed plain in the paper
        text = f"{mean:.3f}"
    n = cell.counts.get(metric, cell.runs)  # runs where the metric is defined
    if n < cell.runs:  # an undefined correlation (a collapsed super-net) is not averaged
        return text + mark + f" (n={n} of {cell.runs})"
    return text + mark + ("" if n == PAPER_RUNS else f" (n={n})")


def to_markdown(t: Table) -> str:
    if t.table == "3":
        raise ValueError("use correlation_markdown for table 3")
    head = ["Factor and setting"] + [
        f"{SPACE_TITLES[s]} {TITLES[m]}" for s in t.spaces for m in COLUMNS
    ]
    lines = [f"## Table {t.table}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in t.blocks:
        lines.append(f"| **{b.title}** |" + " |" * (len(head) - 1))
        for row in b.rows:
            cells = [_fmt_cell(b.cells.get((row, s)), m) for s in t.spaces for m in COLUMNS]
            lines.append("| " + " | ".join([_fmt_row(b, row), *cells]) + " |")
    lines += ["", _legend(t), *(f"- {n}" for n in t.notes)]
    return "\n".join(lines) + "\n"


def _legend(t: Table) -> str:
    """What a table's marks mean (its intervals only where it has any: not with
    ``--bootstrap 0``)."""
    intervals = any(
        c.ci.get(m) is not None for b in t.blocks for c in b.cells.values() for m in RANKING
    )
    return (
        "super-net accuracy: mean ± std over the pool's architectures; final performance: "
        "mean ± std over seeds (no ± for a single run); "
        + ("[95% bootstrap interval over architectures and seeds]; " if intervals else "")
        + "± over seeds: population std (ddof=0); "
        "† untrained run(s) (super-net accuracy < 0.4); ‡ validated partly on training images "
        "(train portion + validation portion > 1); — no completed run; N/A undefined in every run of "
        "the cell (a constant input: all super-net accuracies equal, or all GT in one bin); (n=k) k runs, not 3 as the paper's; "
        "(n=k of m) the metric is undefined in m-k of the cell's runs, which its mean leaves "
        "out"
    )


def _blank(v: float | None) -> float | str:
    return "" if v is None else v


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    stats_cols = [f"{m}_{k}" for m in METRICS for k in ("mean", "std")]
    ci_cols = [f"{m}_ci_{k}" for m in RANKING for k in ("low", "high")]
    n_cols = [f"{m}_runs" for m in METRICS]  # runs with the metric defined (the mean's n)
    w.writerow(
        [
            "table",
            "block",
            "row",
            "space",
            "runs",
            "failed",
            "untrained",
            "val_overlaps_train",
            *stats_cols,
            *ci_cols,
            # after the columns of earlier versions: a block's settings apart from the main
            # sweep's ("" for it) and its printed title, which tell its rows from the main's
            "settings",
            "title",
            *n_cols,
            "interrupted",  # before 2026-12-03 `failed` counted these too
        ]
    )
    for b in t.blocks:
        for row in b.rows:
            for s in t.spaces:
                head = [t.table, b.experiment, _fmt_row(b, row), s]
                tail = [b.settings, b.title]
                c = b.cells.get((row, s))
                if c is None:
                    blank = [""] * (len(stats_cols) + len(ci_cols))
                    w.writerow([*head, 0, 0, 0, 0, *blank, *tail, *[0] * len(n_cols), 0])
                    continue
                vals = [_blank(getattr(c, k)[m]) for m in METRICS for k in ("mean", "std")]
                cis = [
                    _blank(None if c.ci.get(m) is None else c.ci[m][i])
                    for m in RANKING
                    for i in (0, 1)
                ]  # type: ignore[index]
                counts = [c.counts.get(m, 0) for m in METRICS]
                marks = [c.runs, c.failed, c.untrained, c.overlapping]
                w.writerow([*head, *marks, *vals, *cis, *tail, *counts, c.interrupted])
    return buf.getvalue()


# each character LaTeX reads as markup, and the table's symbols, in one pass (so that the
# markup a symbol becomes is not escaped again): a setting label may hold any of them
_TEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "†": r"$^\dagger$",
    "‡": r"$^\ddagger$",
    "—": "--",
    ">": r"$>$",
    "<": r"$<$",
}
_TEX_CHARS = re.compile("|".join(map(re.escape, _TEX)))


def _tex(text: str) -> str:
    return _TEX_CHARS.sub(lambda m: _TEX[m.group()], text)


def to_latex(t: Table) -> str:
    cols = len(t.spaces) * len(COLUMNS)
    lines = [r"\begin{tabular}{l" + "c" * cols + "}", r"\toprule"]
    lines.append(
        " & "
        + " & ".join(rf"\multicolumn{{{len(COLUMNS)}}}{{c}}{{{SPACE_TITLES[s]}}}" for s in t.spaces)
        + r" \\"
    )
    lines.append(
        "Factor & " + " & ".join(_tex(TITLES[m]) for _ in t.spaces for m in COLUMNS) + r" \\"
    )
    lines.append(r"\midrule")
    for b in t.blocks:
        lines.append(rf"\multicolumn{{{cols + 1}}}{{l}}{{\textit{{{_tex(b.title)}}}}} \\")
        for row in b.rows:
            cells = [_tex(_fmt_cell(b.cells.get((row, s)), m)) for s in t.spaces for m in COLUMNS]
            lines.append(_tex(_fmt_row(b, row)) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    # the legend and the notes, for the caption a paper writes: comments, which LaTeX skips
    lines += [f"% {line}" for line in (_legend(t), *t.notes)]
    return "\n".join(lines) + "\n"


CORRELATION_HEAD = [
    "Corr. of Perf.",
    "KdT",
    "S-KdT",
    "SpR",
    "S-SpR",
    "runs",
    "untrained",
    "other settings",
]
_COUNTS = ("runs", "untrained", "other_settings")  # Table 3's counts of runs, in its order


def correlation_csv(table3: dict[str, dict[str, float | None]]) -> str:
    """Table 3 as CSV: one row per space, the correlations unrounded (empty: undefined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["space", *RANKING, *_COUNTS])
    for space, row in table3.items():
        values = ("" if row[m] is None else row[m] for m in RANKING)
        w.writerow([space, *values, *(row[c] for c in _COUNTS)])
    return buf.getvalue()


def correlation_latex(table3: dict[str, dict[str, float | None]], notes: Sequence[str] = ()) -> str:
    """Table 3 as a LaTeX tabular (the Markdown's rounding), its notes as comments."""
    lines = [
        "\\begin{tabular}{l" + "c" * (len(CORRELATION_HEAD) - 1) + "}",
        "\\toprule",
        " & ".join(map(_tex, CORRELATION_HEAD)) + " \\\\",
        "\\midrule",
    ]
    for space, row in table3.items():
        vals = ["--" if row[m] is None else f"{row[m]:.2f}" for m in RANKING]
        counts = [str(row[c]) for c in _COUNTS]
        lines.append(" & ".join([_tex(SPACE_TITLES[space]), *vals, *counts]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", *(f"% {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def correlation_markdown(table3: dict[str, dict[str, float | None]]) -> str:
    head = CORRELATION_HEAD
    lines = ["## Table 3", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for space, row in table3.items():
        vals = ["—" if row[m] is None else f"{row[m]:.2f}" for m in RANKING]
        counts = [str(row[c]) for c in _COUNTS]
        lines.append("| " + " | ".join([SPACE_TITLES[space], *vals, *counts]) + " |")
    lines += [
        "",
        "Spearman correlation across the completed runs of a space between each metric and the "
        "final performance. Untrained runs (super-net accuracy < 0.4) count: Fig. 6 leaves them "
        "out only where super-net accuracy is compared, which Table 3 does not; `untrained` says "
        "how many of the runs are. Runs of another setting than their experiment's main sweep (a "
        "debug try) are left out.",
    ]
    if not table3:
        lines.append("- no search space has 3 completed runs: nothing to correlate")
    return "\n".join(lines) + "\n"
