"""Figures render from small synthetic records into PNG and PDF; missing data is refused."""

from __future__ import annotations

import copy
import math
import sys
import warnings
import zlib

import numpy as np
import pytest
from scipy import stats

pytest.importorskip("matplotlib")

from nasheur.results import figures
from nasheur.results.tables import select

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPACES = ("nb201", "darts_nds")


def _record(space, seed, experiment, factors, config=None, n=20, quality=0.7, acc=0.6):
    rng = np.random.default_rng(zlib.crc32(repr((space, seed, experiment, config)).encode()))
    gt = np.round(rng.uniform(0.85, 0.94, n), 4)
    sn = np.clip(acc + quality * (gt - gt.mean()) + rng.normal(0, 0.01, n), 0, 1)
    cfg = {
        "search_space": {"name": space},
        "protocol": {"epochs": 100, "bn_track": False, "bn_affine": True, "lr": 0.025},
        "fidelity": {"train_portion": 0.9, "baseline": {"train_portion": 0.9}},
        "experiment": {"name": experiment, "table": "11", "factors": factors},
    }
    for dotted, value in (config or {}).items():
        head, _, tail = dotted.partition(".")
        cfg[head][tail] = value
    top = np.argsort(-sn)[:3]
    return {
        "status": "completed",
        "seed": seed,
        "config": cfg,
        "metrics": {
            "supernet_acc_mean": float(sn.mean()),
            "sparse_kendall_tau": float(quality * 0.8 + rng.normal(0, 0.05)),
            "final_performance": float(gt[top].mean()),
        },
        "archs": [
            {"key": f"a{i}", "supernet_acc": float(s), "gt_acc": float(g)}
            for i, (s, g) in enumerate(zip(sn, gt, strict=True))
        ],
        "history": [{"epoch": 0, "train_loss": 2.0, "train_acc": 0.3}],
    }


@pytest.fixture(scope="module")
def records():
    out = []
    for space in SPACES:
        for seed in range(3):
            for track in (False, True):
                for affine in (False, True):
                    out.append(
                        _record(
                            space,
                            seed,
                            "bn_ablation",
                            ["protocol.bn_track", "protocol.bn_affine"],
                            {"protocol.bn_track": track, "protocol.bn_affine": affine},
                            acc=0.3 if (track and not affine) else 0.6,
                        )
                    )
            for epochs in (50, 100, 200):
                out.append(
                    _record(
                        space,
                        seed,
                        "epochs_ablation",
                        ["protocol.epochs"],
                        {"protocol.epochs": epochs},
                        quality=epochs / 200,
                    )
                )
            for lr in (0.01, 0.025, 0.1):
                out.append(
                    _record(space, seed, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
                )
            for portion in (0.5, 0.9):
                out.append(
                    _record(
                        space,
                        seed,
                        "portion_ablation",
                        ["fidelity.train_portion"],
                        {"fidelity.train_portion": portion},
                    )
                )
    out.append({"status": "failed", "error": "boom"})
    return out


def _check(paths, tmp_path, stem):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.pdf"]
    png, pdf = paths
    for p in paths:
        assert p.parent == tmp_path and p.stat().st_size > 0
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert pdf.read_bytes()[:5] == b"%PDF-"
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert 200 <= img.shape[0] <= 6000 and 200 <= img.shape[1] <= 6000
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_single_run_figures(records, tmp_path):
    rec = records[0]
    _check(figures.rank_disorder(rec, tmp_path / "rank"), tmp_path, "rank")
    _check(figures.accuracy_scatter(rec, tmp_path / "scatter"), tmp_path, "scatter")


@pytest.mark.parametrize(
    "name", ["bn_histograms", "metric_vs_epochs", "metric_pairs", "factor_influence"]
)
def test_multi_run_figures(records, tmp_path, name):
    paths = getattr(figures, name)(records, tmp_path / name)
    _check(paths, tmp_path, name)


def test_factor_influence_baseline_rule():
    records = [
        _record("nb201", 0, "lr_ablation", ["protocol.lr"], {"protocol.lr": 0.1}),
        _record("nb201", 0, "lr_ablation", ["protocol.lr"], {"protocol.lr": 0.025}),
    ]
    # from one experiment alone the default comes from the space's config (NB201: 0.025)
    ((exp, label, _, _),) = figures.influence_bars(records)["nb201"]
    assert (exp, label) == ("lr_ablation", "lr=0.1")
    # a space without a config: the default cannot be told; left out, then nothing left
    unknown = copy.deepcopy(records)
    for r in unknown:
        r["config"]["search_space"]["name"] = "nosuch"
    said = r"lr_ablation on nosuch: no baseline row \(default unknown\)"
    with pytest.warns(UserWarning, match=said), pytest.raises(ValueError):
        figures.factor_influence(unknown, "/nonexistent/x")
    learnt = figures._defaults([*records, _record("nb201", 0, "other", ["protocol.epochs"])])
    assert learnt[("nb201", "protocol.lr")] == "0.025"


def test_factor_influence_of_a_sweep_whose_factors_grew():
    # Table 5 runs written before supernet.random_subspace existed (two factors, no key),
    # beside Table 7 runs of the same experiment written after (three factors): one set of
    # rows, the old runs at the key's default, NB101's default (interpolate) the baseline
    old = ["supernet.dynamic_channels", "supernet.subspace"]
    new = [*old, "supernet.random_subspace"]
    records = []
    for seed in range(2):
        for dyn in ("fixed", "interpolate"):
            cfg = {"supernet": {"dynamic_channels": dyn, "subspace": None}}
            records.append(_record("nb101", seed, "dynamic_channels_ablation", old))
            records[-1]["config"].update(cfg)
        r = _record("nb101", seed, "dynamic_channels_ablation", new)
        r["config"]["supernet"] = {
            "dynamic_channels": "interpolate",
            "subspace": 2,
            "random_subspace": True,
        }
        records.append(r)
    bars = figures.influence_bars(records)["nb101"]
    assert sorted(label for _, label, _, _ in bars) == [
        "dynamic_channels=fixed",
        "subspace=2, random_subspace=true",
    ]


def test_factor_influence_given_baselines(tmp_path):
    records = [
        _record("nb201", s, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
        for s in range(2)
        for lr in (0.025, 0.1)
    ]
    paths = figures.factor_influence(records, tmp_path / "f", baselines={"protocol.lr": 0.025})
    _check(paths, tmp_path, "f")


def _with(record, final, **supernet):
    record["config"]["supernet"] = dict(supernet)
    record["metrics"]["final_performance"] = final
    return record


def test_a_factor_held_at_one_value_is_part_of_the_baseline():
    wsbn = ["supernet.wsbn", "supernet.ops_on"]
    records = [  # WSBN measured with ops on nodes; the space's default is ops on edges
        _with(_record("nb201", s, "wsbn_ablation", wsbn), f, wsbn=on, ops_on="node")
        for s in range(2)
        for on, f in ((False, 0.90 + s / 100), (True, 0.93 + s / 100))
    ] + [
        _with(_record("nb201", s, "lr_ablation", ["protocol.lr"]), 0.9, wsbn=False, ops_on="edge")
        for s in range(2)
    ]
    bars = figures.influence_bars(records, baselines={"protocol.lr": 0.025})
    ((exp, label, mean, _),) = bars["nb201"]
    assert (exp, label) == ("wsbn_ablation", "wsbn=true") and mean == pytest.approx(3.0)
    # an experiment of one row varies nothing: left out, said, as before
    with pytest.warns(UserWarning, match="wsbn_ablation on nb201: no baseline row"):
        assert not figures.influence_bars([r for r in records[:4] if r["seed"] == 0][1:2])


def test_a_partial_sweep_keeps_its_factors_defaults_in_the_baseline():
    # bn_ablation with only its bn_track=true rows done: bn_track is a factor it varies, not
    # one it holds, so the baseline stays (track=false, affine=true), which has no run yet
    bn = ["protocol.bn_track", "protocol.bn_affine"]
    records = [
        _record("nb201", s, "bn_ablation", bn, {bn[0]: True, bn[1]: a})
        for s in range(2)
        for a in (False, True)
    ]
    said = r"bn_ablation on nb201: no baseline row \(no run at bn_track=false, bn_affine=true\)"
    with pytest.warns(UserWarning, match=said):
        assert not figures.influence_bars(records)
    # once the baseline row has run, the bars are measured against it
    records += [_record("nb201", s, "bn_ablation", bn, {bn[0]: False, bn[1]: True}) for s in (0, 1)]
    labels = sorted(label for _, label, _, _ in figures.influence_bars(records)["nb201"])
    assert labels == ["bn_track=true", "bn_track=true, bn_affine=false"]


def test_defaults_are_not_learnt_from_experiments_that_set_them():
    # best sets the sampler (FairNAS) and has no factors: its runs do not make FairNAS the
    # default that sampler_ablation's bars are measured against (Random-NAS, the config's)
    def run(seed, experiment, factors, sampler):
        r = _record("nb201", seed, experiment, factors)
        r["config"]["sampler"] = {"name": sampler}
        return r

    records = [
        run(s, "sampler_ablation", ["sampler.name"], name)
        for s in range(2)
        for name in ("random_nas", "random_a", "fairnas")
    ]
    best = [run(s, "best", [], "fairnas") for s in range(6)]
    assert ("nb201", "sampler.name") not in figures._defaults(records + best)
    bars = figures.influence_bars(records + best)["nb201"]
    assert sorted(label for _, label, _, _ in bars) == ["sampler=fairnas", "sampler=random_a"]


def test_a_sweep_alone_takes_its_factors_default_from_the_space_s_config():
    # one experiment's runs only: nothing to learn the default from, so the space's composed
    # config says it (embedded: BN tracks no statistics, affine on)
    bn = ["protocol.bn_track", "protocol.bn_affine"]
    records = [
        _record("embedded", s, "bn_ablation", bn, {bn[0]: t, bn[1]: a})
        for s in range(2)
        for t in (False, True)
        for a in (False, True)
    ]
    bars = figures.influence_bars(records)
    assert sorted(label for _, label, _, _ in bars["embedded"]) == [
        "bn_affine=false",
        "bn_track=true",
        "bn_track=true, bn_affine=false",
    ]


def test_missing_data_raises(records, tmp_path):
    empty_pool = {**records[0], "archs": []}
    with pytest.raises(ValueError, match="architecture"):
        figures.rank_disorder(empty_pool, tmp_path / "x")
    with pytest.raises(ValueError, match="not completed"):
        figures.accuracy_scatter(records[-1], tmp_path / "x")
    no_bn = [{**r, "config": {**r["config"], "protocol": {"epochs": 1}}} for r in records[:-1]]
    with pytest.raises(ValueError, match="bn_track"):
        figures.bn_histograms(no_bn, tmp_path / "x")
    with pytest.raises(ValueError, match="epochs"):
        figures.metric_vs_epochs([records[-1]], tmp_path / "x")
    one_count = [r for r in records if select(r, "config.experiment.name") == "bn_ablation"]
    with pytest.raises(ValueError, match=r"two or more values of protocol\.epochs"):
        figures.metric_vs_epochs(one_count, tmp_path / "x")  # a dot per space: no figure
    two = records[:2]  # two runs of one space: nothing to correlate
    with (
        pytest.raises(ValueError, match="3 or more completed runs"),
        pytest.warns(UserWarning, match="left out"),
    ):
        figures.metric_pairs(two, tmp_path / "x")
    with pytest.raises(ValueError, match="baseline"):
        figures.factor_influence([], tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_fig_6_leaves_untrained_runs_out_only_where_supernet_accuracy_is_compared():
    # the caption: "for super-net accuracy, we filter the super-net accuracy below 40%"
    rng = np.random.default_rng(0)
    trained = np.column_stack([rng.uniform(0.5, 0.9, 8), rng.uniform(0.9, 0.94, 8), rng.random(8)])
    untrained = np.array([[0.1, 0.80, 0.9], [0.2, 0.81, 0.8], [0.3, 0.82, 0.7]])
    v = np.vstack([trained, untrained])
    corr = figures.pair_correlations(v)
    for i, j, rows in [(0, 1, trained), (0, 2, trained), (1, 2, v)]:
        want = stats.spearmanr(rows[:, i], rows[:, j]).statistic
        assert corr[i, j] == pytest.approx(want) and corr[j, i] == corr[i, j]
    assert np.isnan(figures.pair_correlations(np.vstack([trained[:2], untrained]))[0, 1])


def test_module_imports_without_matplotlib_or_torch():
    import subprocess

    code = (
        "import sys; sys.modules['matplotlib'] = None; import nasheur.results.figures; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fig_12_draws_its_own_experiments_runs_and_other_settings_apart(records, monkeypatch):
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.setdefault("fig", fig) and [])
    # a one-epoch-per-job try of epochs_ablation at another learning rate, beside the sweep
    tries = [
        _record("nb201", s, "epochs_ablation", ["protocol.epochs"], {"protocol.lr": 0.2})
        for s in range(2)
    ]
    figures.metric_vs_epochs([*records, *tries], "unused")
    ax = drawn["fig"].axes[1]  # NB201's row, the sparse Kendall tau column
    (x_main, y_main), (x_try, y_try) = (line.get_data() for line in ax.lines)
    # the other experiments' runs also ran 100 epochs; the point is the mean of this one's
    own = [
        r["metrics"]["sparse_kendall_tau"]
        for r in records
        if r.get("config", {}).get("experiment", {}).get("name") == "epochs_ablation"
        and r["config"]["search_space"]["name"] == "nb201"
        and r["config"]["protocol"]["epochs"] == 100
    ]
    assert list(x_main) == [50, 100, 200] and y_main[1] == pytest.approx(np.mean(own))
    assert list(x_try) == [100]
    assert y_try[0] == pytest.approx(np.mean([r["metrics"]["sparse_kendall_tau"] for r in tries]))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "runs",
        "runs [protocol.lr=0.2]",
    ]


def test_fig_9_needs_two_bn_settings_in_a_space(records, tmp_path):
    lr_only = [_record("nb201", s, "lr_ablation", ["protocol.lr"]) for s in range(3)]
    with pytest.warns(UserWarning, match="one BN setting"), pytest.raises(ValueError, match="two"):
        figures.bn_histograms(lr_only, tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_fig_17_error_bars_combine_both_rows_spreads():
    # baseline lr=0.025: finals 0.90, 0.92 (std 0.01); lr=0.1: 0.93, 0.93 (std 0)
    recs = []
    for seed, (base, other) in enumerate(((0.90, 0.93), (0.92, 0.93))):
        for lr, final in ((0.025, base), (0.1, other)):
            r = _record("nb201", seed, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
            r["metrics"]["final_performance"] = final
            recs.append(r)
    ((_, _, mean, spread),) = figures.influence_bars(recs)["nb201"]
    assert mean == pytest.approx(2.0) and spread == pytest.approx(1.0)  # pp: not 0
    # one run of a row: no spread to show, not a spread of 0
    ((_, _, mean, spread),) = figures.influence_bars(recs[:3])["nb201"]
    assert mean == pytest.approx(2.0) and math.isnan(spread)


def test_fig_17_labels_a_bar_of_one_run(monkeypatch):
    recs = []
    for lr, final in ((0.025, 0.90), (0.1, 0.93)):
        r = _record("nb201", 0, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
        r["metrics"]["final_performance"] = final
        recs.append(r)
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.setdefault("fig", fig) and [])
    figures.factor_influence(recs, "unused")
    ax = drawn["fig"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["lr=0.1 (one run)"]


def test_the_figures_command_skips_what_it_cannot_draw_and_picks_a_defined_best_run(
    records, tmp_path
):
    import json
    import subprocess

    from tests.conftest import PYTHON, REPO

    best = copy.deepcopy(records[0])
    best["metrics"]["sparse_kendall_tau"] = 0.99
    best["archs"] = []  # a record without its pool: the per-run figures cannot be drawn
    undefined = copy.deepcopy(records[1])
    undefined["metrics"]["sparse_kendall_tau"] = float("nan")
    args = [PYTHON, "-m", "nasheur.results", "figures", str(tmp_path / "s")]
    args += ["--out", str(tmp_path), "--only", "rank_disorder"]
    for i, r in enumerate([best, undefined, records[2]]):
        (tmp_path / "s" / f"job{i}").mkdir(parents=True)
        (tmp_path / "s" / f"job{i}" / "metrics.json").write_text(json.dumps(r))
    # an earlier run's figure in its place would pass for this data's: removed, and said
    (tmp_path / "rank_disorder-nb201.png").write_text("an earlier figure")
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "skipped rank_disorder" in proc.stderr and "0 architecture" in proc.stderr
    assert "(removed the earlier rank_disorder-nb201.png)" in proc.stderr
    assert not (tmp_path / "rank_disorder-nb201.png").exists()
    assert proc.returncode == 1  # nothing drawn: the best defined run has no pool
    # without that run the best defined one is job2, not job1 (whose tau is NaN)
    (tmp_path / "s" / "job0" / "metrics.json").unlink()
    # a space with no run in these folders keeps no best-run figure of an earlier call; a
    # figure not asked for (--only) is left alone
    for earlier in ("rank_disorder-darts_nds.png", "rank_disorder-darts_nds.pdf"):
        (tmp_path / earlier).write_text("an earlier figure")
    (tmp_path / "accuracy_scatter-darts_nds.png").write_text("not asked for")
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rank_disorder-nb201.png").exists()
    said = "removed rank_disorder-darts_nds.png, rank_disorder-darts_nds.pdf: no best run of "
    assert said + "darts_nds in these folders" in proc.stderr
    assert not (tmp_path / "rank_disorder-darts_nds.png").exists()
    assert (tmp_path / "accuracy_scatter-darts_nds.png").exists()


def test_fig_6_leaves_out_a_debug_try_beside_a_sweep(records, tmp_path):
    bn = [r for r in records if select(r, "config.experiment.name") == "bn_ablation"]
    try_ = copy.deepcopy(bn[0])
    try_["seed"], try_["config"]["protocol"]["epochs"] = 99, 1
    with pytest.warns(UserWarning, match="1 run.* of another setting"):
        assert figures.metric_pairs([*bn, try_], tmp_path / "x")


def test_fig_4_gives_tied_accuracies_one_rank():
    assert figures._ranks(np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [2, 1, 2, 4]


def test_fig_17_orders_numeric_rows_by_value_and_leaves_table_4_out():
    recs = []
    for seed in range(2):
        for epochs in (1000, 1200, 200, 100):
            recs.append(
                _record(
                    "nb201",
                    seed,
                    "epochs_ablation",
                    ["protocol.epochs"],
                    {"protocol.epochs": epochs},
                )
            )
        budget = _record("nb201", seed, "low_fidelity_budget", ["fidelity.train_portion"])
        recs.append(budget)
        # Table 10's search at the best settings: no bar either, whatever its rows
        for sampler in ("random_nas", "fairnas"):
            search = _record("nb201", seed, "final_search", ["sampler.name"])
            search["config"]["sampler"] = {"name": sampler}
            recs.append(search)
    with pytest.warns(UserWarning, match="left out") as said:
        bars = figures.influence_bars(recs)["nb201"]
    told = [str(w.message) for w in said]
    assert any("low_fidelity_budget left out (Table 4's" in t for t in told)
    assert any("final_search left out (Table 10's runs use the best" in t for t in told)
    # NB201's default, 1000, is the baseline: the others by value, not as text (1000 < 200)
    assert [b[1] for b in bars] == ["epochs=100", "epochs=200", "epochs=1200"]


def test_the_figures_command_draws_each_given_job_and_picks_the_best_of_the_main_sweep(
    records, tmp_path
):
    import json
    import subprocess

    from tests.conftest import PYTHON, REPO

    sweep = [r for r in records if select(r, "config.search_space.name") == "nb201"][:4]
    try_ = copy.deepcopy(sweep[0])  # a short try beside the sweep, with a lucky tau
    try_["seed"], try_["config"]["protocol"]["epochs"] = 99, 1
    try_["metrics"]["sparse_kendall_tau"] = 0.999
    try_["archs"] = try_["archs"][:5]
    for i, r in enumerate([*sweep, try_]):
        (tmp_path / "s" / f"job{i}").mkdir(parents=True)
        (tmp_path / "s" / f"job{i}" / "metrics.json").write_text(json.dumps(r))
    base = [PYTHON, "-m", "nasheur.results", "figures", str(tmp_path / "s"), "--only"]

    def run(*args):
        return subprocess.run(
            [*base, "rank_disorder", *args], cwd=REPO, capture_output=True, text=True, timeout=300
        )

    from nasheur.results import load_records
    from nasheur.results.__main__ import _best_runs

    (best,) = _best_runs(load_records([tmp_path / "s"]))
    assert best["seed"] != 99 and len(best["archs"]) == len(sweep[0]["archs"])
    assert run("--out", str(tmp_path / "best")).returncode == 0
    given = tmp_path / "given"
    (tmp_path / "empty").mkdir()  # a folder without a job: said, the others drawn
    proc = run(
        "--out",
        str(given),
        "--record",
        str(tmp_path / "s" / "job0"),
        str(tmp_path / "s" / "job1" / "metrics.json"),
        str(tmp_path / "empty"),
    )
    assert sorted(p.name for p in given.glob("*.png")) == [
        "rank_disorder-nb201-job0.png",
        "rank_disorder-nb201-job1.png",
    ]
    assert f"--record {tmp_path / 'empty'}: no completed job's metrics.json" in proc.stderr


def test_fig_6_says_when_no_trained_run_is_left_to_compare(monkeypatch):
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.setdefault("fig", fig) and [])
    runs = [_record("nb201", s, "bn_ablation", ["protocol.bn_track"], acc=0.2) for s in range(4)]
    figures.metric_pairs(runs, "unused")
    titles = [ax.get_title() for ax in drawn["fig"].axes if ax.get_title()]
    # the two pairs with super-net accuracy: none compared; final performance vs S-KdT: 4
    assert sum("no trained run (super-net accuracy < 40%)" in t for t in titles) == 2
    assert sum("(runs=4)" in t for t in titles) == 1 and not any("nan" in t for t in titles)
    assert all(t.startswith("NAS-Bench-201\n") for t in titles)  # the space on a line its own


def test_a_learnt_default_is_the_most_common_value_among_the_other_experiments():
    # lr is varied by lr_ablation; its default is learnt from the runs of experiments that
    # do not vary it: three at 0.025, one try at 0.1 beside them. The most common, 0.025, is
    # the baseline row, so the bar is lr=0.1 (README, Fig. 17)
    def other(seed, experiment, lr):
        return _record("nb201", seed, experiment, ["protocol.epochs"], {"protocol.lr": lr})

    lr = [
        _record("nb201", s, "lr_ablation", ["protocol.lr"], {"protocol.lr": v})
        for s in range(2)
        for v in (0.025, 0.1)
    ]
    others = [other(s, "other", 0.025) for s in range(3)] + [other(9, "try", 0.1)]
    assert figures._defaults(lr + others)[("nb201", "protocol.lr")] == "0.025"
    bars = figures.influence_bars(lr + others)["nb201"]
    assert [(exp, label) for exp, label, _, _ in bars] == [("lr_ablation", "lr=0.1")]


@pytest.mark.parametrize("given", [0.1, {"nb201": 0.1}])
def test_a_given_baseline_wins_over_the_learnt_default(given):
    # baselines={"protocol.lr": 0.1} (or per space): the 0.1 row is the reference, so the bar
    # is lr=0.025 at mean(final at 0.025) - mean(final at 0.1), in percent points
    records = [
        _record("nb201", s, "lr_ablation", ["protocol.lr"], {"protocol.lr": v})
        for s in range(2)
        for v in (0.025, 0.1)
    ]
    final = {
        v: np.mean(
            [
                r["metrics"]["final_performance"]
                for r in records
                if select(r, "config.protocol.lr") == v
            ]
        )
        for v in (0.025, 0.1)
    }
    ((exp, label, mean, _),) = figures.influence_bars(records, baselines={"protocol.lr": given})[
        "nb201"
    ]
    assert (exp, label) == ("lr_ablation", "lr=0.025")
    assert mean == pytest.approx(100 * (final[0.025] - final[0.1]))


def test_a_low_fidelity_factor_is_measured_against_the_runs_fidelity_baseline():
    # the embedded space's default super-net has 1 cell per stage, its fidelity.baseline 3
    # (README, Fig. 17: "for the low-fidelity factors, the space's fidelity.baseline"): the
    # reference row is layers=3, not the config's default of 1
    records = []
    for s in range(2):
        for layers in (1, 2, 3):
            r = _record("embedded", s, "layers_ablation", ["fidelity.layers"])
            r["config"]["fidelity"].update(layers=layers, baseline={"layers": 3})
            records.append(r)
    bars = figures.influence_bars(records)["embedded"]
    assert sorted(label for _, label, _, _ in bars) == ["layers=1", "layers=2"]


def test_fig_12_leaves_a_run_with_an_undefined_metric_out_of_its_point(monkeypatch):
    # a collapsed super-net's S-KdT is undefined (null): the point at 100 epochs is the mean
    # of the other two runs, (0.2 + 0.4) / 2, not (0.2 + 0.4 + 0) / 3
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.setdefault("fig", fig) and [])
    recs = []
    for epochs, taus in ((100, (0.2, 0.4, None)), (200, (0.5, 0.5, 0.5))):
        for seed, tau in enumerate(taus):
            r = _record(
                "nb201", seed, "epochs_ablation", ["protocol.epochs"], {"protocol.epochs": epochs}
            )
            r["metrics"]["sparse_kendall_tau"] = tau
            recs.append(r)
    figures.metric_vs_epochs(recs, "unused")
    ((xs, ys),) = (line.get_data() for line in drawn["fig"].axes[1].lines)
    assert list(xs) == [100, 200] and list(ys) == pytest.approx([0.3, 0.5])


# ------------------------------------------ what each figure reads, groups, orders, refuses
def _drawn(monkeypatch):
    """Capture the figure a function would save instead of writing files."""
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.setdefault("fig", fig) and [])
    return drawn


def test_fig_17_uses_completed_runs_only():
    # a failed job's record keeps its config (and here stale metrics): its final performance
    # must not enter the lr=0.1 row's mean (README: only completed runs are used)
    recs = []
    for seed in range(2):
        for lr, final in ((0.025, 0.90), (0.1, 0.93)):
            r = _record("nb201", seed, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
            r["metrics"]["final_performance"] = final
            recs.append(r)
    failed = _record("nb201", 2, "lr_ablation", ["protocol.lr"], {"protocol.lr": 0.1})
    failed["status"], failed["metrics"]["final_performance"] = "failed", 0.50
    ((_, label, mean, _),) = figures.influence_bars([*recs, failed])["nb201"]
    assert label == "lr=0.1" and mean == pytest.approx(3.0)


@pytest.mark.parametrize("n, accepted", [(1, False), (2, True)])
def test_single_run_figures_need_two_architectures(records, monkeypatch, n, accepted):
    # a ranking needs two architectures at least: one is refused, two are enough
    _drawn(monkeypatch)
    rec = {**records[0], "archs": records[0]["archs"][:n]}
    for draw in (figures.rank_disorder, figures.accuracy_scatter):
        if accepted:
            draw(rec, "unused")
        else:
            with pytest.raises(ValueError, match=f"{n} architecture"):
                draw(rec, "unused")


def test_single_run_figures_refuse_a_list_of_records(records):
    # `records` (what load_records returns) passed where one record belongs: said plainly
    with pytest.raises(TypeError, match="expected one record"):
        figures.rank_disorder(records[:2], "/nonexistent/x")


def test_fig_9_lays_out_tracking_left_and_spaces_in_the_papers_order(monkeypatch):
    # README: "a row per space, tracking statistics left and not right"; rows in the paper's
    # order (NB201 before DARTS-NDS, not by name), a space it does not know after them
    drawn = _drawn(monkeypatch)
    bn = ["protocol.bn_track", "protocol.bn_affine"]
    recs = [
        _record(space, 0, "bn_ablation", bn, {bn[0]: t, bn[1]: a}, n=6)
        for space in ("custom", "darts_nds", "nb201")
        for t in (False, True)
        for a in (False, True)
    ]
    figures.bn_histograms(recs, "unused")
    titles = [ax.get_title() for ax in drawn["fig"].axes]
    assert titles == [
        f"{space}\ntrack={track}"
        for space in ("NAS-Bench-201", "DARTS-NDS", "custom")
        for track in ("true", "false")
    ]


@pytest.mark.parametrize(
    "extra, pool",
    [
        ({"protocol.epochs": 1}, True),  # a debug try beside the sweep: same BN setting
        ({"protocol.bn_affine": None}, True),  # a run that does not say its affine setting
        ({"protocol.bn_track": True}, False),  # another BN setting, but no `archs` to plot
    ],
)
def test_fig_9_leaves_out_a_space_of_one_bn_setting_whatever_else_its_runs_differ_in(
    tmp_path, extra, pool
):
    # no extra run makes a second BN setting to draw: the space has one, nothing to compare
    bn = ["protocol.bn_track", "protocol.bn_affine"]
    recs = [_record("nb201", s, "bn_ablation", bn) for s in range(3)]
    recs.append(_record("nb201", 9, "bn_ablation", bn, extra))
    if not pool:
        recs[-1]["archs"] = []
    with pytest.warns(UserWarning, match="one BN setting"), pytest.raises(ValueError, match="two"):
        figures.bn_histograms(recs, tmp_path / "x")


def test_fig_9_labels_a_try_beside_the_sweep_with_what_differs(records, monkeypatch):
    drawn = _drawn(monkeypatch)
    bn = [r for r in records if select(r, "config.experiment.name") == "bn_ablation"]
    try_ = copy.deepcopy(bn[0])  # nb201, seed 0, track=false, affine=false
    try_["seed"], try_["config"]["protocol"]["epochs"] = 99, 1
    figures.bn_histograms([*bn, try_], "unused")
    legend = [t.get_text() for t in drawn["fig"].axes[1].get_legend().get_texts()]
    assert "affine=false (runs=3)" in legend  # the sweep's three seeds, the try apart
    assert "affine=false (runs=1) [protocol.epochs=1]" in legend


def test_fig_9_draws_a_collapsed_pool_of_equal_accuracies(monkeypatch):
    # an untrained super-net scores every architecture alike: the bins must still have a
    # width, so each histogram is one visible bar holding every architecture
    drawn = _drawn(monkeypatch)
    bn = ["protocol.bn_track", "protocol.bn_affine"]
    recs = []
    for t in (False, True):
        r = _record("nb201", 0, "bn_ablation", bn, {bn[0]: t}, n=5)
        for a in r["archs"]:
            a["supernet_acc"] = 0.1
        recs.append(r)
    figures.bn_histograms(recs, "unused")
    for ax in drawn["fig"].axes:
        bars = [p for p in ax.patches if p.get_height() > 0]
        assert len(bars) == 1 and bars[0].get_height() == 5 and bars[0].get_width() > 0


def test_fig_12_takes_every_run_where_none_is_of_epochs_ablation(monkeypatch):
    # "else every run": a sweep of epochs under another experiment's name still draws
    drawn = _drawn(monkeypatch)
    recs = [
        _record("nb201", s, "my_epochs", ["protocol.epochs"], {"protocol.epochs": e})
        for s in range(2)
        for e in (50, 100)
    ]
    figures.metric_vs_epochs(recs, "unused")
    ((xs, _),) = (line.get_data() for line in drawn["fig"].axes[0].lines)
    assert list(xs) == [50, 100]


def test_fig_12_orders_the_epochs_by_value_whatever_order_the_runs_come_in(monkeypatch):
    drawn = _drawn(monkeypatch)
    recs = [
        _record("nb201", s, "epochs_ablation", ["protocol.epochs"], {"protocol.epochs": e})
        for e in (200, 50, 100)
        for s in range(2)
    ]
    figures.metric_vs_epochs(recs, "unused")
    ((xs, _),) = (line.get_data() for line in drawn["fig"].axes[0].lines)
    assert list(xs) == [50, 100, 200]


def test_fig_6_compares_over_trained_runs_whichever_side_supernet_accuracy_is_on():
    v = np.array([[0.1, 0.8, 0.9], [0.6, 0.9, 0.5], [0.7, 0.91, 0.6]])
    for i, j in ((0, 1), (1, 0), (2, 0), (0, 2)):
        assert figures.runs_compared(v, i, j).tolist() == v[1:].tolist()
    assert figures.runs_compared(v, 1, 2).tolist() == v.tolist()  # no accuracy: all runs


def test_fig_6_correlates_three_trained_runs():
    # 3 runs are enough for a Spearman correlation (fewer leave it undefined)
    v = np.array([[0.5, 0.90, 0.1], [0.6, 0.92, 0.3], [0.7, 0.91, 0.2], [0.2, 0.99, 0.9]])
    corr = figures.pair_correlations(v)
    assert corr[0, 1] == pytest.approx(stats.spearmanr([0.5, 0.6, 0.7], [0.90, 0.92, 0.91])[0])
    assert corr[0, 2] == pytest.approx(0.5)
    assert np.diag(corr).tolist() == [1.0, 1.0, 1.0]


def test_fig_6_draws_a_space_of_exactly_three_runs_each_with_all_three_metrics(monkeypatch):
    # a run whose sparse Kendall tau is undefined has not all three metrics: left out, and
    # the three others are enough for the row
    drawn = _drawn(monkeypatch)
    recs = [_record("nb201", s, "lr_ablation", ["protocol.lr"]) for s in range(4)]
    recs[3]["metrics"]["sparse_kendall_tau"] = None
    figures.metric_pairs(recs, "unused")
    titles = [ax.get_title() for ax in drawn["fig"].axes[:3]]
    assert all("(runs=3)" in t for t in titles), titles


def test_fig_17_draws_another_setting_of_an_experiment_apart():
    # a 1-epoch try of lr_ablation beside the real sweep: its rows are not averaged into the
    # sweep's, it gets bars of its own, labelled with what differs
    recs = [
        _record("nb201", s, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
        for s in range(2)
        for lr in (0.025, 0.1)
    ]
    recs += [
        _record(
            "nb201", 9, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr, "protocol.epochs": 1}
        )
        for lr in (0.025, 0.1)
    ]
    bars = figures.influence_bars(recs)["nb201"]
    assert sorted((exp, label) for exp, label, _, _ in bars) == [
        ("lr_ablation", "lr=0.1"),
        ("lr_ablation [protocol.epochs=1]", "lr=0.1"),
    ]


def test_fig_17_a_factor_of_no_config_has_an_unknown_default():
    # a sweep alone over a key that no config has: no default to measure against, said as
    # such (not as a missing run at "None")
    recs = [
        _record("nb201", s, "odd_ablation", ["protocol.nosuch"], {"protocol.nosuch": v})
        for s in range(2)
        for v in (1, 2)
    ]
    with pytest.warns(
        UserWarning, match=r"odd_ablation on nb201: no baseline row \(default unknown\)"
    ):
        assert not figures.influence_bars(recs)


def test_fig_6_makes_no_row_of_a_run_that_names_no_space(monkeypatch):
    # a completed record without config.search_space.name belongs to no row: no "None"
    # space, and no warning about one
    _drawn(monkeypatch)
    recs = [_record("nb201", s, "lr_ablation", ["protocol.lr"]) for s in range(3)]
    nameless = _record("nb201", 7, "lr_ablation", ["protocol.lr"])
    del nameless["config"]["search_space"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures.metric_pairs([*recs, nameless], "unused")


def test_values_sort_numbers_by_value_then_the_rest_as_text():
    # rows and panels order numbers by value, also as text ("200" before 1000), and put
    # the rest (null, names, booleans as `true`) after them by their text
    values = ["None", 1000, True, "200", "abc", 0.5]
    assert sorted(values, key=figures._sort_key) == [0.5, "200", 1000, "None", "abc", True]


def test_fig_12_refuses_runs_that_name_no_space(tmp_path):
    # epochs vary, but no run says its search space: no row to draw, said as missing data
    recs = [
        _record("nb201", 0, "epochs_ablation", ["protocol.epochs"], {"protocol.epochs": e})
        for e in (50, 100)
    ]
    for r in recs:
        del r["config"]["search_space"]
    with pytest.raises(ValueError, match=r"two or more values of protocol\.epochs"):
        figures.metric_vs_epochs(recs, tmp_path / "x")


def _lr_sweep(finals):
    """lr_ablation on NB201: {lr: final performance per seed}."""
    recs = []
    for lr, per_seed in finals.items():
        for seed, final in enumerate(per_seed):
            r = _record("nb201", seed, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
            r["metrics"]["final_performance"] = final
            recs.append(r)
    return recs


def test_fig_17_leaves_a_run_without_final_performance_out_of_its_row():
    # the lr=0.1 row is the mean of its defined runs, (0.93 + 0.93) / 2, not NaN
    recs = _lr_sweep({0.025: (0.90, 0.90), 0.1: (0.93, 0.93, None)})
    ((_, label, mean, spread),) = figures.influence_bars(recs)["nb201"]
    assert label == "lr=0.1" and mean == pytest.approx(3.0) and spread == pytest.approx(0.0)


def test_a_learnt_default_wins_over_the_space_s_config():
    # the other experiments all ran at lr=0.1 (NB201's config says 0.025): the runs show
    # the default, so 0.1 is the baseline row and the bar is lr=0.025 (README, Fig. 17)
    recs = _lr_sweep({0.025: (0.90, 0.90), 0.1: (0.93, 0.93)})
    recs += [
        _record("nb201", s, "other", ["protocol.epochs"], {"protocol.lr": 0.1}) for s in range(2)
    ]
    bars = figures.influence_bars(recs)["nb201"]
    assert [
        (label, pytest.approx(mean)) for exp, label, mean, _ in bars if exp == "lr_ablation"
    ] == [("lr=0.025", -3.0)]


def test_fig_17_leaves_out_runs_that_name_no_space():
    recs = _lr_sweep({0.025: (0.90, 0.90), 0.1: (0.93, 0.93)})
    for r in recs:
        del r["config"]["search_space"]
    assert figures.influence_bars(recs, baselines={"protocol.lr": 0.025}) == {}


def test_an_experiment_this_version_cannot_compose_holds_what_all_its_rows_share():
    # "my_wsbn" is no experiment of conf/: the factor every row sets alike (ops on nodes) is
    # a condition, not the default's edge; one row alone varies nothing and gets no bar
    wsbn = ["supernet.wsbn", "supernet.ops_on"]
    given = {"supernet.wsbn": False, "supernet.ops_on": "edge"}
    recs = [
        _with(_record("nb201", s, "my_wsbn", wsbn), f, wsbn=on, ops_on="node")
        for s in range(2)
        for on, f in ((False, 0.90), (True, 0.93))
    ]
    ((exp, label, mean, _),) = figures.influence_bars(recs, baselines=given)["nb201"]
    assert (exp, label) == ("my_wsbn", "wsbn=true") and mean == pytest.approx(3.0)
    with pytest.warns(UserWarning, match="my_wsbn on nb201: no baseline row"):
        assert not figures.influence_bars(recs[1:2], baselines=given)


def test_a_run_without_the_factor_s_key_says_nothing_about_its_default():
    # two other runs lack protocol.lr (written by hand, or by a version without it): they
    # do not vote "None"; the one run that has it, at 0.1, shows the default
    recs = _lr_sweep({0.025: (0.90, 0.90), 0.1: (0.93, 0.93)})
    others = [_record("nb201", s, "other", ["protocol.epochs"]) for s in range(3)]
    for r in others[:2]:
        del r["config"]["protocol"]["lr"]
    others[2]["config"]["protocol"]["lr"] = 0.1
    assert figures._defaults(recs + others)[("nb201", "protocol.lr")] == "0.1"


def _pool(record, gt, sn):
    """`record` with the pool replaced by architectures of the given accuracies."""
    archs = [
        {"key": f"a{i}", "supernet_acc": s, "gt_acc": g}
        for i, (g, s) in enumerate(zip(gt, sn, strict=True))
    ]
    return {**record, "archs": archs}


def test_fig_4_joins_each_gt_rank_on_the_left_to_its_supernet_rank_on_the_right(
    records, monkeypatch
):
    # GT 0.9 > 0.8 > 0.7 ranks 1, 2, 3; the super-net's 0.5, 0.7, 0.6 ranks them 3, 1, 2
    drawn = _drawn(monkeypatch)
    figures.rank_disorder(_pool(records[0], [0.9, 0.8, 0.7], [0.5, 0.7, 0.6]), "unused")
    ax = drawn["fig"].axes[0]
    joined = {tuple(line.get_ydata()) for line in ax.lines}
    assert all(list(line.get_xdata()) == [0, 1] for line in ax.lines)
    assert joined == {(1, 3), (2, 1), (3, 2)}


def test_accuracy_scatter_puts_gt_accuracy_on_x_in_percent(records, monkeypatch):
    drawn = _drawn(monkeypatch)
    figures.accuracy_scatter(_pool(records[0], [0.9, 0.8, 0.7], [0.5, 0.7, 0.6]), "unused")
    points = drawn["fig"].axes[0].collections[0].get_offsets()
    got = sorted(map(tuple, np.round(np.asarray(points), 6)))
    assert got == [(70, 60), (80, 70), (90, 50)]  # (GT %, super-net %) of each architecture


def test_fig_12_says_an_epoch_count_where_a_metric_is_undefined_in_every_run(monkeypatch):
    # both runs at 200 epochs have no sparse Kendall tau: no point there (NaN, not 0)
    drawn = _drawn(monkeypatch)
    recs = []
    for epochs in (100, 200):
        for seed in range(2):
            r = _record(
                "nb201", seed, "epochs_ablation", ["protocol.epochs"], {"protocol.epochs": epochs}
            )
            r["metrics"]["sparse_kendall_tau"] = 0.5 if epochs == 100 else None
            recs.append(r)
    said = "Sparse Kendall tau at 200 epochs is undefined in all 2 run"
    with pytest.warns(UserWarning, match=said):
        figures.metric_vs_epochs(recs, "unused")
    ((xs, ys),) = (line.get_data() for line in drawn["fig"].axes[1].lines)
    assert list(xs) == [100, 200] and ys[0] == pytest.approx(0.5) and np.isnan(ys[1])


def test_a_low_fidelity_factor_without_a_recorded_baseline_takes_the_learnt_default():
    # a record without config.fidelity.baseline (an older version's): the default is learnt
    # from the other experiments' runs (0.9), as for any factor, not taken as "None"
    recs = []
    for s in range(2):
        for portion in (0.5, 0.9):
            r = _record(
                "nb201",
                s,
                "portion_ablation",
                ["fidelity.train_portion"],
                {"fidelity.train_portion": portion},
            )
            del r["config"]["fidelity"]["baseline"]
            recs.append(r)
        recs.append(_record("nb201", s, "lr_ablation", ["protocol.lr"]))
    bars = figures.influence_bars(recs, baselines={"protocol.lr": 0.025})["nb201"]
    assert [(exp, label) for exp, label, _, _ in bars] == [
        ("portion_ablation", "train_portion=0.5")
    ]


def _shared_baseline(first, second):
    """Two one-factor sweeps on NB201 that each keep a copy of one baseline job (one config
    hash per seed), `first`'s copy read first; each sweep's other row at lr=0.1 or 200 epochs."""
    other = {"lr_ablation": {"protocol.lr": 0.1}, "epochs_ablation": {"protocol.epochs": 200}}
    factors = {"lr_ablation": ["protocol.lr"], "epochs_ablation": ["protocol.epochs"]}
    recs = []
    for s in range(2):
        for exp in (first, second):
            base = _record("nb201", s, exp, factors[exp])
            base["config_hash"] = f"base{s}"
            recs.append(base)
        for exp in (first, second):
            r = _record("nb201", s, exp, factors[exp], other[exp])
            r["config_hash"] = f"{exp}{s}"
            recs.append(r)
    return recs


def test_fig_17_gives_each_sweep_its_copy_of_a_shared_baseline_job():
    # the baseline job is the same in both sweeps (the experiment's name is outside a job's
    # identity); each sweep's bar is measured against its own copy, none is lost
    recs = _shared_baseline("epochs_ablation", "lr_ablation")
    bars = figures.influence_bars(recs, baselines={"protocol.lr": 0.025, "protocol.epochs": 100})
    assert sorted((exp, label) for exp, label, _, _ in bars["nb201"]) == [
        ("epochs_ablation", "epochs=200"),
        ("lr_ablation", "lr=0.1"),
    ]


def test_fig_9_keeps_bn_ablation_s_copy_of_a_baseline_job_another_sweep_shares(monkeypatch):
    # lr_ablation's copy of the (track=false, affine=true) job is read first: bn_ablation's
    # own copy still counts for Fig. 9, three seeds in that histogram
    drawn = _drawn(monkeypatch)
    bn = ["protocol.bn_track", "protocol.bn_affine"]
    recs = []
    for s in range(3):
        shared = _record("nb201", s, "lr_ablation", ["protocol.lr"])  # track=false, affine=true
        shared["config_hash"] = f"base{s}"
        recs.append(shared)
        for t in (False, True):
            for a in (False, True):
                r = _record("nb201", s, "bn_ablation", bn, {bn[0]: t, bn[1]: a})
                r["config_hash"] = f"base{s}" if (t, a) == (False, True) else f"bn{t}{a}{s}"
                recs.append(r)
    figures.bn_histograms(recs, "unused")
    legend = [t.get_text() for t in drawn["fig"].axes[1].get_legend().get_texts()]
    assert legend == ["affine=false (runs=3)", "affine=true (runs=3)"]


def test_a_figure_is_written_whole_or_not(tmp_path, monkeypatch):
    # the .pdf fails (a full disk) after the .png was written: neither is left, nor an earlier
    # call's .pdf, which beside this call's .png would pass for one figure
    import errno

    plt = figures._plt()
    fig = plt.figure()
    stem = tmp_path / "fig"
    (tmp_path / "fig.pdf").write_text("an earlier figure")
    savefig = fig.savefig

    def full_disk(where, format, **kw):
        if format == "pdf":
            raise OSError(errno.ENOSPC, "No space left on device")
        savefig(where, format=format, **kw)

    monkeypatch.setattr(fig, "savefig", full_disk)
    with pytest.raises(OSError, match="No space left"):
        figures._save(fig, stem)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
