"""NB101 jobs end to end on synthetic data, once per dynamic-channel strategy, with a GT table
of random valid specs made by the test (no benchmark file, no enumeration needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasheur.config import validate
from nasheur.job import run_job
from tests.conftest import TINY_JOB, completed_job, compose_job

# on top of TINY_JOB: the NB101 space at 8 stem channels (every vertex keeps >= 1 channel)
NB101_TINY = ["search_space=nb101", "fidelity.baseline.channels=8"]


def write_nb101_gt(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A GT table (``# unit: fraction``, ``key,accuracy``) of the hashes of `n` distinct random
    valid NB101 specs (Random-NAS draws), with random accuracies."""
    import numpy as np

    from nasheur.spaces import get_space

    space = get_space("nb101")
    rng = np.random.default_rng(seed)
    keys: dict[str, None] = {}
    while len(keys) < n:
        keys[space.key(space.sample(rng))] = None
    rows = [f"{k},{rng.uniform(0.1, 0.95):.6f}" for k in keys]
    path.write_text("# unit: fraction\nkey,accuracy\n" + "\n".join(rows) + "\n")
    return path


def gt_table(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (r.split(",") for r in path.read_text().splitlines()[2:])}


def p_beat_random_by_hand(archs: list[dict], searched: list[float], top_n: int = 3) -> float:
    """P>R from the pool's record and the GT of the space searched: (1 - r/N)^n, r the rank of
    the best GT among the super-net's top n (spec 5)."""
    import numpy as np

    s = np.array([a["supernet_acc"] for a in archs])
    g = np.array([a["gt_acc"] for a in archs])
    best = g[np.argsort(-s, kind="stable")[:top_n]].max()
    rank = 1 + sum(v > best for v in searched)
    return (1 - rank / len(searched)) ** top_n


CASES = {
    "fixed": ["supernet.dynamic_channels=fixed"],
    "shuffle": ["supernet.dynamic_channels=shuffle"],
    "interpolate": ["supernet.dynamic_channels=interpolate"],
    "disabled": ["supernet.dynamic_channels=disabled", "supernet.subspace=2"],
    # the other factors and samplers on top of a strategy
    "fixed-fairnas-all-factors": [
        "supernet.dynamic_channels=fixed",
        "sampler=fairnas",
        "supernet.ofa_kernel=true",
        "supernet.wsbn=true",
        "supernet.path_dropout=0.1",
        "supernet.global_dropout=0.1",
        "protocol.bn_track=true",
    ],
    "disabled-random-a": [
        "supernet.dynamic_channels=disabled",
        "supernet.subspace=1",
        "sampler=random_a",
    ],
}


@pytest.mark.parametrize("channels", list(CASES.values()), ids=list(CASES))
def test_an_nb101_job_completes(channels, tmp_path):
    gt = write_nb101_gt(tmp_path / "gt.csv")
    rec = completed_job(
        [*TINY_JOB, *NB101_TINY, "protocol.epochs=1", f"ground_truth.path={gt}", *channels],
        tmp_path / "job",
    )
    assert rec["config"]["search_space"]["name"] == "nb101"
    assert rec["config"]["supernet"]["dynamic_channels"] == channels[0].split("=")[1]
    assert len(rec["archs"]) == 12
    sub = rec["config"]["supernet"]["subspace"]
    searched = "nb101" if sub is None else f"NB101SubSpace(subspace={sub})"
    assert rec["eval"]["searched"]["space"] == searched and "extra_pools" not in rec
    if sub is not None:
        from nasheur.spaces import get_space

        space = get_space("nb101")
        # the pool and P>R's N are inside the sub-space
        assert all(space.parse(a["key"]).output_inputs() == sub for a in rec["archs"])
        table = gt_table(gt)
        in_sub = [k for k in table if space.parse(k).output_inputs() == sub]
        assert rec["ground_truth"]["architectures"] == len(table) > len(in_sub) >= 12
        assert rec["eval"]["searched"]["architectures"] == len(in_sub)
        assert rec["metrics"]["p_beat_random"] == pytest.approx(
            p_beat_random_by_hand(rec["archs"], [table[k] for k in in_sub])
        )


def test_a_shuffle_job_stopped_in_evaluation_resumes_to_the_same_accuracies(tmp_path, monkeypatch):
    # `shuffle` draws channel subsets in evaluation too: from the job's own evaluation stream,
    # so a job resumed after its last epoch (no epoch runs, no epoch seeds torch) measures
    # what the uninterrupted job measured; and one batch per forward without graphs, whatever
    # run.eval_pack says (not part of the job's identity)
    import nasheur.evaluation

    gt = write_nb101_gt(tmp_path / "gt.csv")
    cfg = compose_job(
        [
            *TINY_JOB,
            *NB101_TINY,
            "protocol.epochs=1",
            f"ground_truth.path={gt}",
            "supernet.dynamic_channels=shuffle",
            "run.eval_pack=4",
        ]
    )
    validate(cfg)
    whole = run_job(cfg, output_dir=tmp_path / "whole")
    evaluate = nasheur.evaluation.evaluate_archs
    seen = {}

    def stop(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt("stopped in evaluation")

    monkeypatch.setattr(nasheur.evaluation, "evaluate_archs", stop)
    with pytest.raises(KeyboardInterrupt):
        run_job(cfg, output_dir=tmp_path / "resumed")
    assert seen["pack"] == 1 and seen["cuda_graphs"] is False
    monkeypatch.setattr(nasheur.evaluation, "evaluate_archs", evaluate)
    resumed = run_job(cfg, output_dir=tmp_path / "resumed")
    assert whole["status"] == resumed["status"] == "completed"
    assert [a["supernet_acc"] for a in resumed["archs"]] == [
        a["supernet_acc"] for a in whole["archs"]
    ]


def write_keys_gt(path: Path, specs, seed: int = 0) -> list[str]:
    """A GT table of the given specs' hashes with random accuracies; their keys."""
    import numpy as np

    from nasheur.spaces import get_space

    space = get_space("nb101")
    keys = list(dict.fromkeys(space.key(s) for s in specs))
    rng = np.random.default_rng(seed)
    rows = [f"{k},{rng.uniform(0.1, 0.95):.6f}" for k in keys]
    path.write_text("# unit: fraction\nkey,accuracy\n" + "\n".join(rows) + "\n")
    return keys


def test_a_table_7_job_searches_a_random_subset_and_also_tests_on_its_subspace(tmp_path):
    # Table 7's baseline trains and searches a random subset as large as sub-space 4; the same
    # super-net is then evaluated on a second pool, drawn from sub-space 4 itself (Table 6)
    import numpy as np

    from nasheur.results.summary import summary_table
    from nasheur.spaces import get_space
    from nasheur.spaces.nb101 import NB101SubSpace

    space = get_space("nb101")
    base = [*TINY_JOB, *NB101_TINY, "protocol.epochs=1", "supernet.dynamic_channels=fixed"]
    subset_keys = ["supernet.random_subspace=true", "supernet.subspace=4"]
    subset = space.for_config(compose_job([*base, *subset_keys, "ground_truth.path=/dev/null"]))
    rng = np.random.default_rng(0)
    members = [subset.enumerate()[int(i)] for i in rng.choice(len(subset.enumerate()), 20)]
    others = [s for s in (space.sample(rng) for _ in range(60)) if not subset.contains(s)][:20]
    sub4 = NB101SubSpace(4).enumerate()
    in_sub4 = [sub4[int(i)] for i in rng.choice(len(sub4), 16)]
    keys = write_keys_gt(tmp_path / "gt.csv", [*members, *others, *in_sub4])
    # the subset's architectures with GT: those drawn from it, and any of sub-space 4's in it
    member_keys = {k for k in keys if subset.contains(space.parse(k))}
    sub4_keys = {k for k in keys if space.parse(k).output_inputs() == 4}
    assert len(member_keys) >= 20 and len(sub4_keys) >= 16

    cfg = compose_job([*base, *subset_keys, f"ground_truth.path={tmp_path / 'gt.csv'}"])
    validate(cfg)
    rec = run_job(cfg, output_dir=tmp_path / "job")
    assert rec["status"] == "completed", rec.get("error")
    assert {a["key"] for a in rec["archs"]} <= member_keys  # the GT keys in the subset only
    assert rec["eval"]["searched"] == {
        "space": "NB101RandomSubset(size_of=4, size=10467)",
        "architectures": len(member_keys),
    }
    second = rec["extra_pools"]["subspace"]
    assert len(second["archs"]) == 12 and {a["key"] for a in second["archs"]} <= sub4_keys
    assert second["searched"] == {
        "space": "NB101SubSpace(subspace=4)",
        "architectures": len(sub4_keys),
    }
    assert set(second["metrics"]) == set(rec["metrics"])
    # each pool's P>R ranks among the architectures of its own space searched
    table = gt_table(tmp_path / "gt.csv")
    for pool, among in ((rec, member_keys), (second, sub4_keys)):
        assert pool["metrics"]["p_beat_random"] == pytest.approx(
            p_beat_random_by_hand(pool["archs"], [table[k] for k in among])
        )
    pools = json.loads((tmp_path / "job" / "pool.json").read_text())
    assert pools["keys"] == [a["key"] for a in rec["archs"]]
    assert pools["extra"]["subspace"] == [a["key"] for a in second["archs"]]
    summary = summary_table(rec, tmp_path)
    assert f"(among the {len(member_keys)} of NB101RandomSubset(size_of=4, size=10467))" in summary
    saved = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert saved["extra_pools"] == json.loads(json.dumps(rec["extra_pools"]))


def test_a_key_of_no_nb101_architecture_fails_before_training(tmp_path):
    # the whole space checks a key's form only (32 hex digits) when reading the table: a key
    # that hashes no architecture is caught with the pool, not after the epochs
    from nasheur.groundtruth.table import GroundTruthError

    gt = write_nb101_gt(tmp_path / "gt.csv", n=11)
    bogus = "0123456789abcdef0123456789abcdef"
    gt.write_text(gt.read_text() + f"{bogus},0.5\n")
    cfg = compose_job([*TINY_JOB, *NB101_TINY, "protocol.epochs=1", f"ground_truth.path={gt}"])
    with pytest.raises(GroundTruthError, match=f"{bogus}.*not the hash of any NB101"):
        run_job(cfg, output_dir=tmp_path / "job")  # a pool of 12: every key is drawn
    assert not (tmp_path / "job" / "checkpoint.pt").exists()
