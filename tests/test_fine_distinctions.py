"""Close alternatives that the other tests' regular fixtures cannot tell apart (equally spaced
seeds, where a median is the mean; monotone curves, where the best epoch is the last; cells all
trained or all untrained): a mean against a median, the last epoch against the best, one
untrained seed among trained ones, each header over its own numbers. Every expected value is
worked out by hand in the test; each of these once passed a wrong variant of the code."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy import stats

from nasheur.results import load_records
from nasheur.results.render import to_markdown
from nasheur.results.tables import at_threshold, build_table, sparse_width
from tests.test_results import _with, record, write


# ----------------------------------------------------------------- ground truth
def test_nb201_gt_is_the_mean_over_seeds_not_the_median(tmp_path):
    from nasheur.groundtruth.nb201 import read_nats_pbz2
    from tests.test_groundtruth_loaders import ARCHS, nb201_dict, write_pbz2

    obj = nb201_dict()
    runs = obj["arch2infos"][0]["full"]["all_results"]
    for seed, v in zip((777, 888, 999), (90.0, 91.0, 95.0), strict=True):
        runs[("cifar10", seed)]["eval_acc1es"]["ori-test@199"] = v
    gt = read_nats_pbz2(write_pbz2(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", obj)).gt
    assert gt[ARCHS[0]] == pytest.approx(0.92, abs=1e-12)  # (90+91+95)/3 %, median would be 0.91


def test_nb201_without_dataset_seed_reads_that_datasets_runs_only(tmp_path):
    from nasheur.groundtruth.nb201 import read_nats_pbz2
    from tests.test_groundtruth_loaders import ARCHS, _acc, nb201_dict, write_pbz2

    obj = nb201_dict()
    for infos in obj["arch2infos"].values():
        del infos["full"]["dataset_seed"]
    res = read_nats_pbz2(write_pbz2(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", obj))
    want = np.mean([_acc(0, "cifar10", s, "ori-test", 200) for s in (777, 888, 999)]) / 100
    assert res.gt[ARCHS[0]] == pytest.approx(want, abs=1e-12)
    assert res.seeds[0] == 3  # the cifar10 runs only, not cifar10-valid's or cifar100's


def test_nds_gt_is_the_last_epochs_error_not_the_best(tmp_path):
    from nasheur.groundtruth.nds import read_nds
    from nasheur.spaces.darts_genotype import from_nds
    from tests.test_groundtruth_loaders import G1, G2, job

    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps([job(G1, [80.0, 6.0, 7.5]), job(G2, [70.0, 30.0, 9.0])]))
    gt = read_nds(path).gt
    assert gt[from_nds(G1).key()] == pytest.approx(0.925, abs=1e-12)  # 100 - 7.5, not 100 - 6


def test_a_touched_but_identical_gt_file_is_unchanged(tmp_path):
    from nasheur.groundtruth.convert import source_changed, source_fingerprint

    path = tmp_path / "gt.csv"
    path.write_text("# unit: fraction\nkey,accuracy\na,0.5\nb,0.6\n")
    fp = source_fingerprint(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))  # touch: same bytes
    assert source_changed(fp) is False
    path.write_text("# unit: fraction\nkey,accuracy\na,0.5\nb,0.7\n")  # same size, new bytes
    assert source_changed(fp) is True


def test_a_touched_gt_file_is_read_once_for_all_the_records_checked(tmp_path, monkeypatch):
    # a sweep checks each completed record against its ground truth: after a touch (or a
    # copy) the stamps differ, and a benchmark of gigabytes must not be hashed per record
    from nasheur.groundtruth import convert

    path = tmp_path / "gt.csv"
    path.write_text("# unit: fraction\nkey,accuracy\na,0.5\nb,0.6\n")
    records = [convert.source_fingerprint(path) for _ in range(3)]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))
    reads = []
    sha = convert.source_sha256
    monkeypatch.setattr(convert, "source_sha256", lambda p: reads.append(p) or sha(p))
    assert [convert.source_changed(fp) for fp in records] == [False] * 3
    assert len(reads) == 1
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 20_000_000_000))  # touched again
    assert convert.source_changed(records[0]) is False and len(reads) == 2


def test_user_cache_names_differ_for_two_sources_of_one_name(tmp_path, monkeypatch):
    from nasheur.groundtruth import convert

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a, b = tmp_path / "a" / "DARTS.json", tmp_path / "b" / "DARTS.json"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text("[]")
        os.utime(p, ns=(0, 0))
    # beside-the-source folders not writable -> the user cache, which all sources share
    monkeypatch.setattr(
        convert, "_writable_dir", lambda f: str(f).startswith(str(tmp_path / "cache"))
    )
    assert convert.cache_path(a) != convert.cache_path(b)


# ----------------------------------------------------------------- tables
def test_a_cell_with_one_untrained_seed_is_marked(tmp_path):
    recs = [record("nb201", 0, 0.025, acc=0.2)] + [record("nb201", s, 0.025) for s in (1, 2)]
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    cell = table.blocks[0].cells[((0.025,), "nb201")]
    assert cell.untrained == 1
    row = next(line for line in to_markdown(table).splitlines() if line.startswith("| lr=0.025"))
    assert "†" in row


def _subspace_runs(finals_by_seed, *, untrained=None, tau=None):
    recs = []
    for seed, finals in finals_by_seed.items():
        for sub, final in zip((1, 2, 3, 4), finals, strict=True):
            acc = 0.2 if untrained == (seed, sub) else 0.7
            rec = _with(
                record("nb101", seed, 0.025, acc=acc),
                supernet__dynamic_channels="disabled",
                supernet__subspace=sub,
                experiment__name="dynamic_channels_ablation",
                experiment__factors=["supernet.dynamic_channels", "supernet.subspace"],
            )
            rec["metrics"]["final_performance"] = final
            if tau and (seed, sub) in tau:
                rec["metrics"]["sparse_kendall_tau"] = tau[(seed, sub)]
            recs.append(rec)
    return recs


def test_the_sub_space_mean_is_a_mean_not_a_median(tmp_path):
    recs = _subspace_runs({0: (0.90, 0.90, 0.90, 0.98), 1: (0.90, 0.90, 0.90, 0.98)})
    table = build_table(load_records([write(tmp_path / "s", recs)]), "5", bootstrap=0)
    mean = table.blocks[0].cells[(("disabled", "mean"), "nb101")]
    assert mean.mean["final_performance"] == pytest.approx(0.92)  # (3*0.90+0.98)/4


def test_a_seed_with_an_untrained_sub_space_marks_the_mean(tmp_path):
    recs = _subspace_runs({0: (0.9,) * 4, 1: (0.9,) * 4}, untrained=(0, 3))
    table = build_table(load_records([write(tmp_path / "s", recs)]), "5", bootstrap=0)
    mean = table.blocks[0].cells[(("disabled", "mean"), "nb101")]
    assert mean.untrained == 1


def test_a_seed_with_an_undefined_sub_space_metric_is_left_out_of_that_mean(tmp_path):
    # seed 0: sub-space 4's tau undefined (null); seed 1: 0.5 everywhere (record() default)
    recs = _subspace_runs({0: (0.9,) * 4, 1: (0.9,) * 4}, tau={(0, 4): None, (0, 1): 0.1})
    table = build_table(load_records([write(tmp_path / "s", recs)]), "5", bootstrap=0)
    mean = table.blocks[0].cells[(("disabled", "mean"), "nb101")]
    assert mean.counts["sparse_kendall_tau"] == 1  # only seed 1 has all four
    assert mean.mean["sparse_kendall_tau"] == pytest.approx(0.5)


def test_table_6s_second_pool_is_marked_by_its_own_accuracy(tmp_path):
    factors = ["supernet.dynamic_channels", "supernet.subspace", "supernet.random_subspace"]
    recs = []
    for seed in (0, 1, 2):
        for sub in (1, 2, 3, 4):
            r = _with(
                record("nb101", seed, 0.025),  # main pool trained (0.7)
                supernet__dynamic_channels="interpolate",
                supernet__subspace=sub,
                supernet__random_subspace=True,
                experiment__name="dynamic_channels_ablation",
                experiment__factors=factors,
            )
            second = dict(r["metrics"], supernet_acc_mean=0.3)  # collapses without dyn. channels
            r["extra_pools"] = {"subspace": {"metrics": second, "untrained": False}}  # stale flag
            recs.append(r)
    t6 = build_table(load_records([write(tmp_path / "s", recs)]), "6", bootstrap=0)
    (b6,) = t6.blocks
    yy, yn = (b6.cells[(row, "nb101")] for row in b6.rows[:2])
    assert yy.untrained == 0 and yn.untrained == 3


def test_a_recomputed_run_reports_its_new_bin_width(tmp_path):
    rec = load_records([write(tmp_path / "s", [record("nb201", 0, 0.025)])])[0]
    assert sparse_width(at_threshold(rec, 0.01)) == 0.01


def _two_bin_run(seed: int) -> dict:
    # g: 10 archs in [0.800, 0.809] and 10 in [0.900, 0.909]; s decreasing within each group,
    # every upper-group s above every lower-group s. At t = 0.05 the GT has two bins and no
    # pair is discordant (tau-b 100/sqrt(190*100) = 0.7255); at t = 0.001 the 90 within-group
    # pairs are discordant (tau-b about 0.05).
    g = np.r_[0.800 + 0.001 * np.arange(10), 0.900 + 0.001 * np.arange(10)]
    s = np.r_[0.50 - 0.01 * np.arange(10), 0.70 - 0.01 * np.arange(10)]
    rec = _with(record("nb201", seed, 0.025), metrics__skdt_threshold=0.05)
    rec["archs"] = [
        {"key": str(i), "supernet_acc": float(a), "gt_acc": float(b)}
        for i, (a, b) in enumerate(zip(s, g, strict=True))
    ]
    tau = stats.kendalltau(s, np.floor(g / 0.05 + 1e-9)).statistic
    rec["metrics"]["sparse_kendall_tau"] = float(tau)
    return rec


def test_the_interval_is_at_each_runs_own_bin_width(tmp_path):
    recs = [_two_bin_run(s) for s in range(3)]
    assert recs[0]["metrics"]["sparse_kendall_tau"] == pytest.approx(100 / np.sqrt(190 * 100))
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=200)
    lo, hi = table.blocks[0].cells[((0.025,), "nb201")].ci["sparse_kendall_tau"]
    # no resample has a discordant pair at t=0.05: every draw is positive and the interval
    # holds the point estimate; at t=0.001 it would sit around 0.05
    assert lo > 0.3 and lo <= 0.7255 <= hi


# ----------------------------------------------------------------- settings
def test_the_seed_in_a_records_config_is_no_setting(tmp_path):
    recs = [_with(record("nb201", s, 0.025), seed=s) for s in range(3)]  # as job.py writes it
    table = build_table(load_records([write(tmp_path / "s", recs)]), "11", bootstrap=0)
    assert len(table.blocks) == 1
    assert table.blocks[0].cells[((0.025,), "nb201")].runs == 3


def test_the_main_setting_has_the_most_completed_runs(tmp_path):
    main = [_with(record("nb201", s, 0.025), protocol__epochs=400) for s in range(3)]
    debug = [
        _with(record("nb201", s, 0.025, status="failed"), protocol__epochs=1) for s in range(4)
    ]
    table = build_table(load_records([write(tmp_path / "s", main + debug)]), "11", bootstrap=0)
    first = table.blocks[0]
    assert first.title == "Learning rate" and first.cells[((0.025,), "nb201")].runs == 3


def test_a_completed_copy_is_kept_over_a_failed_one(tmp_path):
    failed = dict(record("nb201", 0, 0.025, status="failed"), config_hash="h0")
    done = dict(record("nb201", 0, 0.025), config_hash="h0")
    table = build_table(load_records([write(tmp_path / "s", [failed, done])]), "11", bootstrap=0)
    cell = table.blocks[0].cells[((0.025,), "nb201")]
    assert cell.runs == 1 and cell.failed == 0


# ----------------------------------------------------------------- training
def test_a_misnumbered_history_is_refused(tmp_path):
    from torch import nn

    from nasheur.training import UnreadableCheckpoint, build_optimizer, restore

    model = nn.Linear(2, 2)
    opt = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=0.0)
    hist = [{"epoch": e, "images": 1, "seconds": 1.0} for e in (1, 1, 3)]
    state = {
        "epoch": 3,
        "history": hist,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
    }
    with pytest.raises(UnreadableCheckpoint, match=r"epochs 1\.\.3 \(entry 2\)"):
        restore(state, model=model, optimizer=opt, epochs=5, path=tmp_path / "c.pt")


@pytest.mark.parametrize(
    ("optimizer_state", "said"),
    [
        ([], r"its tensors do not fit this super-net \('list' object"),  # no dict: torch's
        ({0: 5}, r"the optimizer state of weight is 5, no buffers"),
        ({"x": {"momentum_buffer": 1.0}}, r"its optimizer holds a state for 'x', no parameter"),
    ],
    ids=["a list", "not a dict of buffers", "no parameter's"],
)
def test_a_malformed_optimizer_state_is_refused_with_the_advice(tmp_path, optimizer_state, said):
    # a checkpoint of this config whose optimizer state is damaged: refused like the other
    # damage (the job's one-line input error), not a raw AttributeError out of torch's loader
    from torch import nn

    from nasheur.training import UnreadableCheckpoint, build_optimizer, restore

    model = nn.Linear(2, 2)
    opt = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=0.0)
    state = {
        "epoch": 1,
        "history": [{"epoch": 1, "images": 1, "seconds": 1.0}],
        "model": model.state_dict(),
        "optimizer": {**opt.state_dict(), "state": optimizer_state},
    }
    with pytest.raises(UnreadableCheckpoint, match=rf"c\.pt: {said}.*delete it to restart"):
        restore(state, model=model, optimizer=opt, epochs=5, path=tmp_path / "c.pt")


def test_resumed_threads_are_capped_at_the_usable_cpus(monkeypatch):
    import torch

    from nasheur import training

    monkeypatch.setattr(training, "usable_cpus", lambda: 2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert training.resume_threads({"threads": 64}, torch.device("cpu")) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------- figures
def test_fig_17_error_bar_is_the_root_sum_of_squares():
    from nasheur.results import figures
    from tests.test_figures import _record

    # baseline lr=0.025 finals 0.90, 0.92 (std 0.01); lr=0.1 finals 0.93, 0.95 (std 0.01)
    recs = []
    for seed, (base, other) in enumerate(((0.90, 0.93), (0.92, 0.95))):
        for lr, final in ((0.025, base), (0.1, other)):
            r = _record("nb201", seed, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
            r["metrics"]["final_performance"] = final
            recs.append(r)
    ((_, _, mean, spread),) = figures.influence_bars(recs)["nb201"]
    assert mean == pytest.approx(3.0) and spread == pytest.approx(np.sqrt(2.0))  # hypot(1, 1) pp


def test_fig_17_defaults_are_not_learnt_from_a_key_an_experiments_blocks_set():
    from nasheur.results import figures
    from tests.test_figures import _record

    def run(seed, exp, factors, final, **supernet):
        r = _record("darts_nds", seed, exp, factors)
        r["config"]["supernet"] = supernet
        r["metrics"]["final_performance"] = final
        return r

    # ops_on_ablation holds wsbn=false (its block), while DARTS-NDS's default is wsbn=true
    recs = [
        run(s, "ops_on_ablation", ["supernet.ops_on"], 0.9, ops_on=o, wsbn=False)
        for s in range(3)
        for o in ("edge", "node")
    ]
    recs += [
        run(s, "lr_ablation", ["protocol.lr"], 0.9, ops_on="edge", wsbn=True) for s in range(2)
    ]
    recs += [
        run(
            s,
            "wsbn_ablation",
            ["supernet.wsbn", "supernet.ops_on"],
            0.93 if w else 0.90,
            ops_on="node",
            wsbn=w,
        )
        for s in range(2)
        for w in (False, True)
    ]
    bars = figures.influence_bars(recs, baselines={"protocol.lr": 0.025})["darts_nds"]
    wsbn = [(label, mean) for exp, label, mean, _ in bars if exp == "wsbn_ablation"]
    assert wsbn == [("wsbn=false", pytest.approx(-3.0))]  # against the default wsbn=true


def test_fig_12_band_is_the_population_std_over_seeds(monkeypatch):
    from nasheur.results import figures
    from tests.test_figures import _record

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.setdefault("fig", fig) and [])
    recs = []
    for epochs, finals in ((100, (0.90, 0.92, 0.94)), (200, (0.93, 0.93, 0.93))):
        for seed, f in enumerate(finals):
            r = _record(
                "nb201", seed, "epochs_ablation", ["protocol.epochs"], {"protocol.epochs": epochs}
            )
            r["metrics"]["final_performance"] = f
            recs.append(r)
    figures.metric_vs_epochs(recs, "unused")
    ax = drawn["fig"].axes[2]  # final performance column
    verts = ax.collections[0].get_paths()[0].vertices
    at100 = verts[np.isclose(verts[:, 0], 100)][:, 1]
    half = (at100.max() - at100.min()) / 2
    assert half == pytest.approx(100 * np.std([0.90, 0.92, 0.94]))  # 1.633 pp (ddof=0), not 2.0


def test_fig_17_baseline_is_the_mean_over_seeds():
    from nasheur.results import figures
    from tests.test_figures import _record

    recs = []
    for seed, base in enumerate((0.90, 0.90, 0.96)):  # mean 0.92, median 0.90
        for lr, final in ((0.025, base), (0.1, 0.93)):
            r = _record("nb201", seed, "lr_ablation", ["protocol.lr"], {"protocol.lr": lr})
            r["metrics"]["final_performance"] = final
            recs.append(r)
    ((_, _, mean, _),) = figures.influence_bars(recs)["nb201"]
    assert mean == pytest.approx(1.0)  # 93 - 92 pp


def test_fig_6_counts_a_baseline_job_shared_by_two_sweeps_once(monkeypatch):
    from nasheur.results import figures
    from tests.test_figures import _record

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, stem: drawn.setdefault("fig", fig) and [])
    recs = []
    for s in range(3):
        base = _record("nb201", s, "lr_ablation", ["protocol.lr"])
        base["config_hash"] = f"base{s}"
        copy_ = json.loads(json.dumps(base))
        copy_["config"]["experiment"] = {
            "name": "epochs_ablation",
            "table": "11",
            "factors": ["protocol.epochs"],
        }
        lr = _record("nb201", s, "lr_ablation", ["protocol.lr"], {"protocol.lr": 0.1})
        lr["config_hash"] = f"lr{s}"
        ep = _record("nb201", s, "epochs_ablation", ["protocol.epochs"], {"protocol.epochs": 200})
        ep["config_hash"] = f"ep{s}"
        recs += [base, copy_, lr, ep]
    figures.metric_pairs(recs, "unused")
    title = drawn["fig"].axes[2].get_title()  # S-KdT vs final performance: every run
    assert "(runs=9)" in title  # 3 seeds x (baseline, lr=0.1, epochs=200), the baseline once


# ----------------------------------------------------------------- table layout, summary
def test_blocks_follow_the_papers_order(tmp_path):
    def of(exp, factor, value, table):
        rec = record("nb201", 0, 0.025)
        rec["config"]["experiment"] = {"name": exp, "table": table, "factors": [factor]}
        head, _, tail = factor.partition(".")
        rec["config"].setdefault(head, {})[tail] = value
        return rec

    recs = [
        of("epochs_ablation", "protocol.epochs", 100, "11"),
        of("lr_ablation", "protocol.lr", 0.1, "11"),
    ]
    t11 = build_table(load_records([write(tmp_path / "a", recs)]), "11", bootstrap=0)
    assert [b.title for b in t11.blocks] == ["Learning rate", "Epochs"]  # paper Table 11
    recs = [
        of("batch_size_ablation", "fidelity.batch_size", 64, "12"),
        of("portion_ablation", "fidelity.train_portion", 0.5, "12"),
    ]
    t12 = build_table(load_records([write(tmp_path / "b", recs)]), "12", bootstrap=0)
    assert [b.title for b in t12.blocks] == ["Train portion", "Batch size"]  # paper Table 12


def test_each_header_names_the_metric_under_it(tmp_path):
    rec = record("nb201", 0, 0.025)  # s-KdT 0.5, P>R 0.9, final 0.93
    table = build_table(load_records([write(tmp_path / "s", [rec])]), "11", bootstrap=0)
    lines = to_markdown(table).splitlines()
    head = [c.strip() for c in lines[2].strip("|").split("|")]
    row = [
        c.strip()
        for c in next(line for line in lines if line.startswith("| lr=")).strip("|").split("|")
    ]
    cell = dict(zip(head, row, strict=True))
    assert cell["NAS-Bench-201 S-KdT"].startswith("0.500")
    assert cell["NAS-Bench-201 P>R"].startswith("0.900")
    assert cell["NAS-Bench-201 Final perf. (%)"].startswith("93.00")


def test_the_summary_names_each_number_right(tmp_path):
    from nasheur.results.summary import summary_table

    rec = record("nb201", 0, 0.025)
    rec["metrics"].update(kendall_tau=0.111, sparse_kendall_tau=0.222, final_performance=0.9213)
    lines = dict(
        (k.strip(), v.strip())
        for k, v in (
            line.strip().split("  ", 1) for line in summary_table(rec, tmp_path).splitlines()
        )
    )
    assert lines["sparse Kendall tau"] == "0.2220" and lines["Kendall tau"] == "0.1110"
    assert lines["final performance"] == "92.13%"
