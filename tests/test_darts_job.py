"""DARTS-NDS end to end: a ``DARTS.json`` in the NDS format made by the test, its ground-truth
table, the space's paper defaults, and short super-net jobs with ops on nodes and on edges.

``write_darts_json`` and ``write_darts_gt`` are for other tests too (e.g. the factor sweep)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nasheur.config import ConfigError, validate
from nasheur.spaces import get_space
from nasheur.spaces.darts_genotype import Cell, Genotype, from_nds
from tests.conftest import TINY_JOB, completed_job, compose_job

SPACE = get_space("darts_nds")
# on top of TINY_JOB: a DARTS job small enough for a test (3 cells: normal, reduce, reduce)
TINY_DARTS = ["search_space=darts_nds", "fidelity.baseline.layers=3"]


def _swap_all_terms(g: Genotype) -> Genotype:
    def swap(cell: Cell) -> Cell:
        pairs = list(cell.pairs)
        for node in range(len(pairs) // 2):
            pairs[2 * node], pairs[2 * node + 1] = pairs[2 * node + 1], pairs[2 * node]
        return Cell(tuple(pairs), cell.concat)

    return Genotype(swap(g.normal), swap(g.reduce))


def write_darts_json(path: Path, n: int = 30, seed: int = 0) -> Path:
    """An NDS ``DARTS.json``: a JSON list of ``n + 1`` jobs over ``n`` distinct genotypes.

    Each job is ``{"net": {"genotype": <NDS form>}, "test_ep_top1": [top-1 error in % per
    epoch]}``; the last job repeats the first genotype (with the two terms of every node
    swapped, which is the same network) with another final error.
    """
    rng = np.random.default_rng(seed)
    genotypes: dict[str, Genotype] = {}
    while len(genotypes) < n:
        g = SPACE.sample(rng)
        genotypes.setdefault(g.key(), g)
    chosen = list(genotypes.values())
    chosen.append(_swap_all_terms(chosen[0]))
    jobs = []
    for g in chosen:
        final = float(rng.uniform(4.0, 12.0))
        curve = [round(final + 30.0 / (e + 1), 3) for e in range(4)] + [round(final, 3)]
        jobs.append({"net": {"genotype": g.to_nds()}, "test_ep_top1": curve})
    path.write_text(json.dumps(jobs))
    return path


def write_darts_gt(json_path: Path, csv_path: Path) -> Path:
    """The GT table of a ``DARTS.json``, made here without the project's loader: key
    ``Genotype.key()``, accuracy ``(100 - last error) / 100`` averaged over repeats."""
    sums: dict[str, list[float]] = {}
    for job in json.loads(json_path.read_text()):
        key = from_nds(job["net"]["genotype"]).key()
        entry = sums.setdefault(key, [0.0, 0])
        entry[0] += (100.0 - job["test_ep_top1"][-1]) / 100.0
        entry[1] += 1
    with open(csv_path, "w", newline="") as fh:
        fh.write("# unit: fraction\n")
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["key", "accuracy"])
        for key, (total, count) in sums.items():
            writer.writerow([key, repr(total / count)])
    return csv_path


def read_gt(csv_path: Path) -> dict[str, float]:
    with open(csv_path, newline="") as fh:
        rows = [line for line in fh if not line.startswith("#")]
    return {r["key"]: float(r["accuracy"]) for r in csv.DictReader(rows)}


def test_the_fixture_has_one_repeat_averaged_in_the_table(tmp_path):
    data = write_darts_json(tmp_path / "DARTS.json", n=20, seed=1)
    jobs = json.loads(data.read_text())
    assert len(jobs) == 21 and set(jobs[0]["net"]["genotype"]) == {
        "normal",
        "normal_concat",
        "reduce",
        "reduce_concat",
    }
    assert jobs[-1]["net"]["genotype"] != jobs[0]["net"]["genotype"]  # swapped terms
    gt = read_gt(write_darts_gt(data, tmp_path / "gt.csv"))
    assert len(gt) == 20
    first = from_nds(jobs[0]["net"]["genotype"]).key()
    expected = (200.0 - jobs[0]["test_ep_top1"][-1] - jobs[-1]["test_ep_top1"][-1]) / 200.0
    assert gt[first] == pytest.approx(expected)
    for key in gt:
        SPACE.validate_key(key)


def test_the_project_loader_gives_the_same_table(tmp_path):
    nds = pytest.importorskip("nasheur.groundtruth.nds")
    from nasheur.groundtruth import convert_file, read_table

    data = write_darts_json(tmp_path / "DARTS.json", n=20, seed=2)
    mine = read_gt(write_darts_gt(data, tmp_path / "gt.csv"))
    res = nds.read_nds(data)
    assert res.jobs == 21 and sorted(res.repeats.tolist()) == [1] * 19 + [2]
    assert dict(zip(res.gt.keys, res.gt.acc.tolist(), strict=True)) == pytest.approx(mine)
    out, _ = convert_file(data, tmp_path / "converted.csv")
    table = read_table(out, validate_key=SPACE.validate_key)
    assert dict(zip(table.keys, table.acc.tolist(), strict=True)) == pytest.approx(mine)


def test_paper_defaults_of_the_space():
    cfg = compose_job(["search_space=darts_nds"])
    s, f, p = cfg.supernet, cfg.fidelity, cfg.protocol
    assert (s.ops_on.value, s.dynamic_channels.value, s.subspace) == ("edge", "fixed", None)
    assert (s.ofa_kernel, s.wsbn, s.path_dropout, s.global_dropout) == (False, True, 0.0, 0.0)
    assert (f.layers, f.channels, f.batch_size, f.train_portion) == (12, 36, 256, 0.9)
    assert (f.baseline.layers, f.baseline.channels) == (12, 36)
    assert (p.lr, p.epochs, p.weight_decay, p.bn_track, p.bn_affine) == (
        0.025,
        400,
        0.0,
        False,
        False,
    )
    assert (p.momentum, p.grad_clip, p.lr_min) == (0.9, 5.0, 0.0)
    with pytest.raises(ConfigError, match="sampler=random_a is not supported"):
        validate(compose_job(["search_space=darts_nds", "sampler=random_a"]))


@pytest.mark.parametrize("key", ["fidelity.layers", "fidelity.baseline.layers"])
def test_a_supernet_without_a_normal_cell_is_refused(key):
    from nasheur.spaces.darts_net import reduction_layers

    # DARTS reduces at cells layers // 3 and 2 * layers // 3: 1 and 2 cells all reduce
    assert [set(range(n)) <= set(reduction_layers(n)) for n in (1, 2, 3)] == [True, True, False]
    for n in (1, 2):
        with pytest.raises(ConfigError, match=rf"{key}={n} is not supported .* >= 3"):
            validate(compose_job(["search_space=darts_nds", f"{key}={n}"]))


@pytest.mark.parametrize(
    ("overrides", "gt_from"),
    [
        (["supernet.ops_on=node"], "test"),
        (["supernet.ops_on=edge"], "loader"),
        (["supernet.ops_on=edge", "sampler=fairnas", "run.max_steps_per_epoch=2"], "test"),
    ],
    ids=["node", "edge", "edge-fairnas"],
)
def test_a_tiny_darts_job_completes(overrides, gt_from, tmp_path):
    """gt_from: the table made here, or the project's NDS loader's conversion of DARTS.json."""
    data = write_darts_json(tmp_path / "DARTS.json", n=30, seed=0)
    gt = read_gt(write_darts_gt(data, tmp_path / "gt.csv"))
    gt_path = tmp_path / "gt.csv"
    if gt_from == "loader":
        pytest.importorskip("nasheur.groundtruth.nds")
        from nasheur.groundtruth import convert_file

        gt_path, _ = convert_file(data, tmp_path / "converted.csv")
    rec = completed_job(
        [
            *TINY_JOB,
            *TINY_DARTS,
            "protocol.epochs=1",
            "run.max_steps_per_epoch=4",
            f"ground_truth.path={gt_path}",
            *overrides,
        ],
        tmp_path / "job",
    )
    assert rec["config"]["search_space"]["name"] == "darts_nds"
    assert rec["config"]["fidelity"]["layers"] == 3
    assert rec["config"]["supernet"]["ops_on"] == overrides[0].split("=")[1]
    keys = [a["key"] for a in rec["archs"]]
    assert len(keys) == 12 and len(set(keys)) == 12 and set(keys) <= set(gt)
    assert all(a["gt_acc"] == pytest.approx(gt[a["key"]]) for a in rec["archs"])
    assert rec["ground_truth"]["architectures"] == 30
    assert all(v is not None for v in rec["metrics"].values())


@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("ground_truth.metric=valid", "ground_truth.metric=valid: NDS DARTS records test errors"),
        ("ground_truth.dataset=cifar10-valid", "ground_truth.dataset=cifar10-valid: NDS DARTS"),
    ],
)
def test_a_protocol_the_benchmark_file_lacks_is_refused_naming_the_key(tmp_path, override, said):
    data = write_darts_json(tmp_path / "DARTS.json", n=5)
    cfg = compose_job(["search_space=darts_nds", f"ground_truth.path={data}", override])
    with pytest.raises(ConfigError, match=said):
        validate(cfg)  # before any data is read
