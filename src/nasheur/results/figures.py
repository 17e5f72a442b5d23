"""The paper's figures from merged metrics.json records (numpy/scipy/matplotlib, no torch).

Every function takes the records that `collect.load_records` returns (or one record) and an
output path stem, writes `<stem>.png` and `<stem>.pdf` atomically and returns both paths:

- `rank_disorder(record, stem)`: Fig. 4, GT rank (left) against super-net rank (right) of
  each pool architecture, one line per architecture coloured by its GT rank.
- `accuracy_scatter(record, stem)`: super-net accuracy against GT accuracy of the pool,
  Kendall tau and sparse Kendall tau in the title.
- `bn_histograms(records, stem)`: Fig. 9, per space, histograms of per-architecture
  super-net accuracy for each (`protocol.bn_track`, `protocol.bn_affine`) setting, pooled
  over seeds.
- `metric_vs_epochs(records, stem)`: Fig. 12, per space, mean ± std over seeds of super-net
  accuracy, sparse Kendall tau and final performance against `protocol.epochs`.
- `metric_pairs(records, stem)`: Fig. 6, per space, pairwise scatter plots across runs of
  super-net accuracy (untrained runs, mean accuracy < 0.4, left out), final performance and
  sparse Kendall tau, plus their Spearman correlation matrix.
- `factor_influence(records, stem)`: Fig. 17, per space, the difference in final performance
  (percent points) between each experiment's rows and that experiment's baseline row.

Only completed runs are used, each job once. Fig. 9 and Fig. 12 take the runs of their own
experiment (`bn_ablation`, `epochs_ablation`) where the records hold any, else every run. Runs
whose settings differ beyond what a figure varies and the seed (a debug try beside the real
sweep) are drawn apart, labelled with what differs (:mod:`nasheur.results.settings`). When
the data a figure needs is absent, a ValueError names what is missing. matplotlib is imported inside the functions (Agg backend), so importing
this module needs only numpy and scipy.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasheur import metrics
from nasheur.io import atomic_path
from nasheur.results.defaults import experiment_defaults, held_values
from nasheur.results.settings import (
    distinct_jobs,
    experiment_factors,
    experiment_name,
    factor_name,
    factor_value,
    main_settings,
    setting_labels,
    space_of,
)
from nasheur.results.tables import SPACE_TITLES, SPACES, pool_accuracies, select, sparse_width

FORMATS = ("png", "pdf")
DPI = 150

PAIR_METRICS = ("supernet_acc_mean", "final_performance", "sparse_kendall_tau")
LABELS = {
    "supernet_acc_mean": "Super-net accuracy",
    "sparse_kendall_tau": "Sparse Kendall tau",
    "final_performance": "Final performance (%)",
}


# ---------------------------------------------------------------------------------------------
# helpers


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def figure_files(stem: str | Path) -> list[Path]:
    """The files of the figure `stem`: ``<stem>.png``, ``<stem>.pdf``."""
    stem = Path(stem)
    return [stem.with_name(f"{stem.name}.{fmt}") for fmt in FORMATS]


def _save(fig, stem: str | Path) -> list[Path]:
    """Write `<stem>.png` and `<stem>.pdf` atomically, close the figure, return the paths."""
    plt = _plt()
    written = []
    try:
        for fmt, path in zip(FORMATS, figure_files(stem), strict=True):
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")
            written.append(path)
    except BaseException:
        # a figure is written whole or not: a .png beside an earlier call's .pdf (a full disk)
        # would pass for one figure
        for path in figure_files(stem):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return written


def _completed(
    records: Iterable[dict[str, Any]], *, per_experiment: bool = True
) -> list[dict[str, Any]]:
    """The completed runs, each job once (per experiment: each keeps its baseline runs)."""
    kept = distinct_jobs(list(records), per_experiment=per_experiment)[0]
    return [r for r in kept if r.get("status") == "completed"]


def _of_experiment(records: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The completed runs of experiment `name` if there are any, else all completed runs."""
    done = _completed(records)
    own = [r for r in done if experiment_name(r) == name]
    return own or done


def _with_setting(label: str, name: str) -> str:
    return f"{name} [{label}]" if label else name


def _title(space: str | None) -> str:
    return SPACE_TITLES.get(space or "", str(space))


def _metric(record: dict[str, Any], name: str) -> float:
    v = select(record, f"metrics.{name}")
    return float("nan") if v is None else float(v)


def _spaces_in(records: Sequence[dict[str, Any]]) -> list[str]:
    return _in_order({space_of(r) for r in records})


def _in_order(present: Iterable[Any]) -> list[str]:
    """The spaces in the paper's order, others after them by name."""
    present = set(present)
    known = [s for s in SPACES if s in present]
    return known + sorted(str(s) for s in present - set(known) if s is not None)


def _ranks(x: np.ndarray) -> np.ndarray:
    """1 = best (highest); tied values share the best rank of their group (1 + how many are
    higher), so that no line crosses another where the order says nothing."""
    x = np.asarray(x, dtype=float)
    return 1 + (x[None, :] > x[:, None]).sum(axis=1)


def _single(record: dict[str, Any], what: str, min_archs: int = 2):
    if not isinstance(record, dict):
        raise TypeError(f"{what}: expected one record (a dict), got {type(record).__name__}")
    if record.get("status") != "completed":
        raise ValueError(f"{what}: the record is not completed (status={record.get('status')!r})")
    s, g = pool_accuracies(record)
    if len(s) < min_archs:
        raise ValueError(
            f"{what}: the record has {len(s)} architecture(s) with super-net and GT accuracy "
            f"in `archs`; at least {min_archs} are needed"
        )
    return s, g


def _fmt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _sort_key(v: Any) -> tuple:
    """Numbers by value (also as `_fmt` wrote them: 200 before 1000), then the rest by text."""
    if isinstance(v, str):
        with contextlib.suppress(ValueError):
            v = float(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, _fmt(v))


# ---------------------------------------------------------------------------------------------
# single-run figures


def rank_disorder(record: dict[str, Any], stem: str | Path) -> list[Path]:
    """Fig. 4: each architecture's GT rank (left) joined to its super-net rank (right)."""
    s, g = _single(record, "rank_disorder")
    plt = _plt()
    gt_rank, sn_rank = _ranks(g), _ranks(s)
    n = len(s)
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(3.6, 5.0))
    for i in np.argsort(-gt_rank):  # best drawn last, on top
        colour = cmap((gt_rank[i] - 1) / max(n - 1, 1))
        ax.plot([0, 1], [gt_rank[i], sn_rank[i]], color=colour, lw=0.8, alpha=0.8)
    ax.scatter(np.zeros(n), gt_rank, s=6, color="k", zorder=3)
    ax.scatter(np.ones(n), sn_rank, s=6, color="k", zorder=3)
    ax.set_xlim(-0.15, 1.15)
    ax.set_ylim(n + 0.5, 0.5)  # rank 1 at the top
    ax.set_xticks([0, 1], ["GT rank", "Super-net rank"])
    ax.set_ylabel("rank (1 = best)")
    ax.yaxis.set_major_locator(_integer_ticks())
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    tau = metrics.kendall_tau(s, g)
    ax.set_title(
        f"{_title(space_of(record))}: {n} architectures\nKendall tau {tau:.3f}", fontsize=9
    )
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, max(n, 2)))
    bar = fig.colorbar(sm, ax=ax, fraction=0.06, pad=0.02)
    bar.set_label("GT rank")
    bar.locator = _integer_ticks()
    bar.update_ticks()
    return _save(fig, stem)


def accuracy_scatter(record: dict[str, Any], stem: str | Path) -> list[Path]:
    """Super-net accuracy against GT accuracy of the pool; KdT and sparse KdT in the title."""
    s, g = _single(record, "accuracy_scatter")
    plt = _plt()
    threshold = sparse_width(record)
    tau = metrics.kendall_tau(s, g)
    stau = metrics.sparse_kendall_tau(s, g, threshold)
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    ax.scatter(100 * g, 100 * s, s=12, alpha=0.7, edgecolors="none")
    ax.set_xlabel("GT accuracy (%)")
    ax.set_ylabel("Super-net accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{_title(space_of(record))}: KdT {tau:.3f}, sparse KdT {stau:.3f} (n={len(s)})", fontsize=9
    )
    return _save(fig, stem)


# ---------------------------------------------------------------------------------------------
# figures over many runs


def _grid(plt, n: int, width: float = 4.0, height: float = 3.2, ncols: int | None = None):
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes


def bn_histograms(records: Sequence[dict[str, Any]], stem: str | Path) -> list[Path]:
    """Fig. 9: per space, one histogram of per-architecture super-net accuracy per BN setting
    (`protocol.bn_track`, `protocol.bn_affine`), architectures of all seeds pooled."""
    pools: dict[str, dict[tuple[Any, Any, str], list[np.ndarray]]] = defaultdict(
        lambda: defaultdict(list)
    )
    done = _of_experiment(records, "bn_ablation")
    labels = setting_labels(done, ("protocol.bn_track", "protocol.bn_affine"))
    for r, setting in zip(done, labels, strict=True):
        track = select(r, "config.protocol.bn_track")
        affine = select(r, "config.protocol.bn_affine")
        s, _ = pool_accuracies(r)
        if track is None or affine is None or not len(s) or space_of(r) is None:
            continue
        pools[space_of(r)][(track, affine, setting)].append(s)
    for space in list(pools):  # a comparison of BN settings needs two of them
        if len({k[:2] for k in pools[space]}) < 2:
            warnings.warn(
                f"bn_histograms: {_title(space)} has runs of one BN setting only; left out "
                "(+experiment=bn_ablation runs all four)",
                stacklevel=2,
            )
            del pools[space]
    if not pools:
        raise ValueError(
            "bn_histograms: no search space has completed runs of two or more BN settings "
            "(config.protocol.bn_track, config.protocol.bn_affine) with a non-empty `archs` pool"
        )
    plt = _plt()
    spaces = [s for s in _spaces_in(done) if s in pools]
    # as the paper lays it out: tracking statistics (left) and not (right), affine true and
    # false compared within each panel; one row per space, bins shared along the row
    tracks = sorted({k[0] for sp in spaces for k in pools[sp]}, key=_sort_key, reverse=True)
    fig, axes = _grid(plt, len(spaces) * len(tracks), ncols=len(tracks))
    for row, space in enumerate(spaces):
        values = {k: 100 * np.concatenate(v) for k, v in pools[space].items()}
        lo = min(v.min() for v in values.values())
        hi = max(v.max() for v in values.values())
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
        for ax, track in zip(axes[row], tracks, strict=True):
            settings = sorted(
                (k for k in values if k[0] == track), key=lambda k: (k[2], _sort_key(k[1]))
            )
            for k in settings:
                label = _with_setting(k[2], f"affine={_fmt(k[1])} (runs={len(pools[space][k])})")
                ax.hist(values[k], bins=bins, alpha=0.5, label=label)
            ax.set_title(f"{_title(space)}\ntrack={_fmt(track)}", fontsize=10)
            ax.set_xlabel("Super-net accuracy (%)")
            ax.set_ylabel("architectures")
            if settings:
                # a fixed corner: "best" tests every bar of the histograms against each spot
                # (matplotlib warns of it on a slow machine); the accuracies' mass is on the
                # right, a super-net's weak architectures a tail to the left
                ax.legend(fontsize=7, loc="upper left")
            else:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _save(fig, stem)


def metric_vs_epochs(records: Sequence[dict[str, Any]], stem: str | Path) -> list[Path]:
    """Fig. 12: per space (rows), mean ± std over seeds of super-net accuracy, sparse Kendall
    tau and final performance (columns) against `protocol.epochs`."""
    names = ("supernet_acc_mean", "sparse_kendall_tau", "final_performance")
    # space -> setting -> epochs -> runs
    data: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    done = _of_experiment(records, "epochs_ablation")
    for r, setting in zip(done, setting_labels(done, ("protocol.epochs",)), strict=True):
        epochs = select(r, "config.protocol.epochs")
        if epochs is None or space_of(r) is None:
            continue
        data[space_of(r)][setting][int(epochs)].append(r)
    # a curve needs two epoch counts at least (the runs of another experiment, all at one
    # count, would draw a dot per space)
    data = {
        space: by_setting
        for space, by_setting in data.items()
        if len({e for runs in by_setting.values() for e in runs}) > 1
    }
    if not data:
        raise ValueError(
            "metric_vs_epochs: no completed runs at two or more values of protocol.epochs "
            "(+experiment=epochs_ablation)"
        )
    plt = _plt()
    spaces = [s for s in _spaces_in(done) if s in data]
    fig, axes = plt.subplots(
        len(spaces), len(names), figsize=(3.6 * len(names), 2.8 * len(spaces)), squeeze=False
    )
    for row, space in enumerate(spaces):
        for col, name in enumerate(names):
            ax = axes[row, col]
            scale = 100.0 if name == "final_performance" else 1.0
            for setting in sorted(data[space]):  # the main setting ("") first
                runs = data[space][setting]
                xs = sorted(runs)
                mean, std = [], []
                for x in xs:
                    v = np.array([_metric(r, name) for r in runs[x]], dtype=float)
                    if not np.isfinite(v).any():
                        warnings.warn(
                            f"metric_vs_epochs: {_title(space)}, {LABELS[name]} at {x} epochs "
                            f"is undefined in all {len(v)} run(s); no point drawn",
                            stacklevel=2,
                        )
                    v = v[np.isfinite(v)] * scale
                    mean.append(v.mean() if len(v) else np.nan)
                    std.append(v.std() if len(v) else np.nan)
                mean_a, std_a = np.array(mean), np.array(std)
                ax.plot(xs, mean_a, marker="o", ms=3, label=_with_setting(setting, "runs"))
                ax.fill_between(xs, mean_a - std_a, mean_a + std_a, alpha=0.25)
            if len(data[space]) > 1:
                ax.legend(fontsize=6)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(_integer_ticks())  # epochs: no 1.2, 1.4 ticks
            if row == len(spaces) - 1:
                ax.set_xlabel("epochs")
            if row == 0:
                ax.set_title(LABELS[name])
            if col == 0:
                ax.set_ylabel(_title(space))
    fig.tight_layout()
    return _save(fig, stem)


def runs_compared(v: np.ndarray, i: int, j: int) -> np.ndarray:
    """The rows (runs) of `v` (columns: PAIR_METRICS) that Fig. 6 compares metrics i and j
    over: all, except untrained runs where super-net accuracy (column 0) is one of the two."""
    return v[~np.array([metrics.is_untrained(a) for a in v[:, 0]])] if 0 in (i, j) else v


def pair_correlations(v: np.ndarray) -> np.ndarray:
    """Fig. 6's Spearman matrix of PAIR_METRICS over the runs `v` (rows), each pair over
    :func:`runs_compared`; nan where fewer than 3 runs (or a constant metric) leave it undefined."""
    k = v.shape[1]
    corr = np.ones((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            w = runs_compared(v, i, j)
            rho = metrics.spearman(w[:, i], w[:, j]) if len(w) >= 3 else float("nan")
            corr[i, j] = corr[j, i] = rho
    return corr


def metric_pairs(records: Sequence[dict[str, Any]], stem: str | Path) -> list[Path]:
    """Fig. 6: per space (rows), across runs, the three pairwise scatter plots of super-net
    accuracy, final performance and sparse Kendall tau, and the Spearman correlation matrix
    of the three. As in the paper, untrained runs (mean super-net accuracy < 0.4) are left out
    "for super-net accuracy": of the pairs that compare it, not of final performance against
    sparse Kendall tau. Runs of another setting than their experiment's main sweep
    (`main_settings`) are left out."""
    by_space: dict[str, np.ndarray] = {}
    done = _completed(records, per_experiment=False)  # across runs: a job once
    done, other = main_settings(done)  # not a debug try beside a sweep
    if other:
        warnings.warn(
            f"metric_pairs: {other} run(s) of another setting than their experiment's main "
            "sweep left out",
            stacklevel=2,
        )
    for space in _spaces_in(done):
        rows = []
        for r in done:
            if space_of(r) != space:
                continue
            v = [_metric(r, m) for m in PAIR_METRICS]
            if np.isfinite(v).all():
                rows.append(v)
        if len(rows) >= 3:
            by_space[space] = np.array(rows)
        else:
            warnings.warn(
                f"metric_pairs: {_title(space)} has {len(rows)} completed run(s) with all three "
                "metrics, fewer than 3; its row is left out",
                stacklevel=2,
            )
    if not by_space:
        raise ValueError(
            "metric_pairs: no search space has 3 or more completed runs with "
            "supernet_acc_mean, final_performance and sparse_kendall_tau"
        )
    plt = _plt()
    pairs = [(0, 1), (0, 2), (2, 1)]  # (x, y) indices into PAIR_METRICS
    scale = np.array([1.0, 100.0, 1.0])
    fig, axes = plt.subplots(len(by_space), 4, figsize=(14, 3.2 * len(by_space)), squeeze=False)
    for row, (space, v) in enumerate(by_space.items()):
        corr, k = pair_correlations(v), len(PAIR_METRICS)
        for col, (i, j) in enumerate(pairs):
            ax = axes[row, col]
            shown = runs_compared(v, i, j) * scale
            ax.scatter(shown[:, i], shown[:, j], s=14, alpha=0.7, edgecolors="none")
            ax.set_xlabel(LABELS[PAIR_METRICS[i]])
            ax.set_ylabel(LABELS[PAIR_METRICS[j]])
            said = (
                "no trained run (super-net accuracy < 40%)"
                if not len(shown)
                else f"Spearman {corr[i, j]:.2f} (runs={len(shown)})"
                if np.isfinite(corr[i, j])
                else f"Spearman undefined (runs={len(shown)})"
            )
            ax.set_title(f"{_title(space)}\n{said}", fontsize=9)  # two lines: four panels a row
            ax.grid(alpha=0.3)
        ax = axes[row, 3]
        im = ax.imshow(corr, vmin=-1, vmax=1, cmap="RdBu_r")
        short = ["Acc.", "Final perf.", "S-KdT"]
        ax.set_xticks(range(k), short)
        ax.set_yticks(range(k), short)
        for i in range(k):
            for j in range(k):
                text = "—" if not np.isfinite(corr[i, j]) else f"{corr[i, j]:.2f}"
                dark = np.isfinite(corr[i, j]) and abs(corr[i, j]) > 0.6
                ax.text(
                    j, i, text, ha="center", va="center", fontsize=9, color="w" if dark else "k"
                )
        ax.set_title(f"{_title(space)}\nSpearman correlation", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, stem)


# ---------------------------------------------------------------------------------------------
# Fig. 17: influence of each factor


def _defaults(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """The default value of each (space, factor), learnt from runs of one-factor experiments
    that neither vary the factor nor set it in their blocks: their most common value (they
    run at the space's default). Experiments without factors (``best``, which sets the best
    settings) and runs of no experiment say nothing about defaults."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    by_experiment: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_experiment[experiment_name(r)].append(r)
    varied = {name: set(experiment_factors(runs)) for name, runs in by_experiment.items()}
    factors = set().union(*varied.values()) if varied else set()
    for r in records:
        name = experiment_name(r)
        if not name or not varied[name]:
            continue
        composed = experiment_defaults(name, str(space_of(r)))
        its_own = set(composed[1]) if composed is not None else set()  # keys its blocks set
        for f in factors - varied[name] - its_own:
            v = factor_value(r.get("config", {}), f)
            if v is not None:
                counts[(space_of(r), f)][_fmt(v)] += 1
    return {k: c.most_common(1)[0][0] for k, c in counts.items()}


def _baseline_value(
    record: dict[str, Any],
    factor: str,
    learnt: Mapping[tuple[str, str], Any],
    given: Mapping[str, Any],
) -> Any:
    space = space_of(record)
    if factor in given:
        v = given[factor]
        return _fmt(v[space] if isinstance(v, Mapping) else v)
    if factor.startswith("fidelity."):
        v = select(record, f"config.fidelity.baseline.{factor.partition('.')[2]}")
        if v is not None:
            return _fmt(v)
    learnt_value = learnt.get((space, factor))
    return learnt_value if learnt_value is not None else _space_default(space, factor)


def _space_default(space: Any, factor: str) -> Any:
    """The value of `factor` in the space's composed default config (its Table 14 setting),
    for a sweep found alone, with no other experiment's runs to learn the default from; None
    where it cannot be composed (an unknown space, a key of no config)."""
    from omegaconf import OmegaConf

    cfg = _space_config(space)
    missing = object()
    value = missing if cfg is None else OmegaConf.select(cfg, factor, default=missing)
    # a default of null is a value (no sub-space): "None", as a run's row spells it
    return None if value is missing else _fmt(getattr(value, "value", value))


@functools.cache
def _space_config(space: Any) -> Any:
    """The space's composed default config, once per space; None if it cannot be composed."""
    try:
        from hydra import compose, initialize_config_module

        from nasheur.config import register_configs, register_resolvers

        register_configs()
        register_resolvers()
        with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
            return compose("config", overrides=[f"search_space={space}"])
    except Exception:  # a figure does without a default it cannot learn
        return None


def _held_fixed(
    base: tuple | None, rows: Iterable[tuple], factors: Sequence[str], experiment: str, space: str
) -> tuple | None:
    """`base` with each factor that the experiment holds at one value set to that value: a
    condition of the experiment, not a factor it varies (WSBN is measured with ops on nodes,
    so its baseline is WSBN off with ops on nodes, not the space's default). The experiment's
    blocks say which (so a partial sweep, whose rows so far share a value of a factor it
    varies, keeps that factor's default); for an experiment this version cannot compose, the
    factors that take one value in all its rows."""
    if base is None:
        return base
    held = held_values(experiment, space)
    if held is not None:
        return tuple(_fmt(held[f]) if f in held else b for f, b in zip(factors, base, strict=True))
    values = [set(v) for v in zip(*rows, strict=True)]
    if all(len(v) == 1 for v in values):  # one row: nothing varied
        return base
    return tuple(next(iter(v)) if len(v) == 1 else b for b, v in zip(base, values, strict=True))


def factor_influence(
    records: Sequence[dict[str, Any]],
    stem: str | Path,
    *,
    baselines: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Fig. 17: per space, one bar per non-baseline row of each experiment: its mean final
    performance minus the baseline row's (percent points), means over seeds; the error bar
    combines both rows' stds over seeds (sqrt(std_row^2 + std_base^2)); where either row has
    one run there is none (NaN in the bar, "(one run)" in its label).

    The baseline row is the row whose every factor equals the space's default:
    1. `baselines[factor]` when given (a value, or a mapping space -> value);
    2. for a `fidelity.<name>` factor, the record's `config.fidelity.baseline.<name>`;
    3. otherwise the most common value of the factor among the given runs of experiments
       that do not vary it (those run at the default).
    A factor that an experiment holds at one value (WSBN's ops on nodes) takes that value in
    the baseline row. An experiment with no such row (or whose default cannot be told) is
    left out with a warning.
    """
    bars = influence_bars(records, baselines=baselines)
    if not bars:
        raise ValueError(
            "factor_influence: no experiment has both a baseline row and another row with "
            "completed runs (config.experiment.{name,factors} and metrics.final_performance)"
        )
    plt = _plt()
    spaces = _in_order(bars)
    height = max(len(b) for b in bars.values())
    fig, axes = plt.subplots(
        1, len(spaces), figsize=(5.0 * len(spaces), 1.5 + 0.28 * height), squeeze=False
    )
    exps = sorted({b[0] for bs in bars.values() for b in bs})
    colour = {e: plt.get_cmap("tab20")(i % 20) for i, e in enumerate(exps)}
    for ax, space in zip(axes[0], spaces, strict=True):
        items = sorted(bars[space], key=lambda b: b[0])
        y = np.arange(len(items))
        ax.barh(
            y,
            [b[2] for b in items],
            xerr=[0.0 if math.isnan(b[3]) else b[3] for b in items],
            color=[colour[b[0]] for b in items],
            error_kw={"lw": 0.8},
        )
        labels = [b[1] + (" (one run)" if math.isnan(b[3]) else "") for b in items]
        ax.set_yticks(y, labels, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("Δ final performance vs. the factor's default (pp)")
        ax.set_title(_title(space))
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[e]) for e in exps]
    fig.legend(handles, exps, loc="lower center", ncol=min(len(exps), 4), fontsize=7)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(exps) / 4), 1, 1))
    return _save(fig, stem)


Bar = tuple[str, str, float, float]  # experiment (setting), row label, mean, std (pp)
# experiments without a bar, and why: each of their rows differs from the defaults in more
# than the factor it names
NOT_IN_FIG_17 = {
    # every block but the batch size's runs at twice the baseline batch
    "low_fidelity_budget": "Table 4's budget-matched rows are not one factor away from a "
    "baseline; Table 12's sweeps measure its factors",
    # Random-NAS and FairNAS at the best settings of Table 14, not at the defaults
    "final_search": "Table 10's runs use the best settings, not the defaults; "
    "sampler_ablation measures the sampler",
}


def influence_bars(
    records: Sequence[dict[str, Any]], *, baselines: Mapping[str, Any] | None = None
) -> dict[str, list[Bar]]:
    """The bars of Fig. 17 (:func:`factor_influence`) per space."""
    given = dict(baselines or {})
    done = [r for r in _completed(records) if experiment_name(r) and space_of(r)]
    outside = sorted({experiment_name(r) for r in done} & set(NOT_IN_FIG_17))
    for name in outside:
        warnings.warn(f"factor_influence: {name} left out ({NOT_IN_FIG_17[name]})", stacklevel=2)
    if outside:
        done = [r for r in done if experiment_name(r) not in NOT_IN_FIG_17]
    learnt = _defaults(done)
    setting_of: dict[int, str] = {}
    factors_of: dict[str, list[str]] = {}
    for exp in {experiment_name(r) for r in done}:
        runs = [r for r in done if experiment_name(r) == exp]
        factors_of[exp] = experiment_factors(runs)
        for r, label in zip(runs, setting_labels(runs, factors_of[exp]), strict=True):
            setting_of[id(r)] = label
    groups: dict[tuple[str, str], dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    base_rows: dict[tuple[str, str], tuple | None] = {}
    name_of: dict[str, str] = {}
    for r in done:
        name, space = experiment_name(r), space_of(r)
        factors = factors_of[name]
        if not factors:
            continue
        exp = _with_setting(setting_of[id(r)], name)  # another setting: bars of their own
        factors_of[exp], name_of[exp] = factors, name
        row = tuple(_fmt(factor_value(r.get("config", {}), f)) for f in factors)
        v = _metric(r, "final_performance")
        if np.isfinite(v):
            groups[(space, exp)][row].append(v)
        base = tuple(_baseline_value(r, f, learnt, given) for f in factors)
        if None not in base:
            base_rows.setdefault((space, exp), base)
    bars: dict[str, list[Bar]] = defaultdict(list)
    for (space, exp), rows in groups.items():
        base = _held_fixed(base_rows.get((space, exp)), rows, factors_of[exp], name_of[exp], space)
        if base is None or base not in rows:
            at = base and ", ".join(
                f"{factor_name(f)}={x}" for f, x in zip(factors_of[exp], base, strict=True)
            )
            warnings.warn(
                f"factor_influence: {exp} on {space}: no baseline row "
                f"({'default unknown' if base is None else 'no run at ' + at}); left out",
                stacklevel=2,
            )
            continue
        ref = float(np.mean(rows[base]))
        for row in sorted(rows, key=lambda t: tuple(_sort_key(x) for x in t)):
            if row == base:
                continue
            label = ", ".join(
                f"{factor_name(f)}={x}"
                for f, x, b in zip(factors_of[exp], row, base, strict=True)
                if x != b
            )
            diffs = 100 * (np.array(rows[row]) - ref)
            # the spread of a difference of two means over independent runs: both rows' stds;
            # none where a row has one run (a std of 0 would read as no spread), as a table's
            # cell of one run has no std
            one = min(len(rows[row]), len(rows[base])) < 2
            spread = math.nan if one else 100 * math.hypot(np.std(rows[row]), np.std(rows[base]))
            bars[space].append((exp, label, float(diffs.mean()), float(spread)))
    return dict(bars)
