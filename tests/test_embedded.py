"""The embedded space, its procedural data and its shipped ground truth."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import torch

from nasheur.data.procedural import (
    MAX_CLASSES,
    PROCEDURAL_MEAN,
    PROCEDURAL_STD,
    make_procedural,
    texture_maps,
)
from nasheur.groundtruth.builder import mean_pairwise_kendall, spread_points
from nasheur.groundtruth.embedded import PER_SEED, TABLE, table_path
from nasheur.groundtruth.table import read_table
from nasheur.spaces.embedded import EmbeddedSpace
from nasheur.spaces.nb201 import NB201Space

# ----------------------------------------------------------------------------- shipped table


@pytest.fixture(scope="module")
def shipped():
    return read_table(TABLE, validate_key=EmbeddedSpace().validate_key)


@pytest.fixture(scope="module")
def per_seed(shipped):
    with open(PER_SEED, newline="") as f:
        rows = list(csv.DictReader(f))
    seeds = sorted({int(r["seed"]) for r in rows})
    acc = {(r["key"], int(r["seed"])): float(r["accuracy"]) for r in rows}
    assert len(acc) == len(rows) == len(shipped) * len(seeds)
    return np.array([[acc[(k, s)] for s in seeds] for k in shipped.keys]), seeds


def test_shipped_table_is_small_and_valid(shipped):
    assert table_path() == str(TABLE)
    assert TABLE.stat().st_size + PER_SEED.stat().st_size < 1_000_000
    space = EmbeddedSpace()
    assert len(shipped) >= 300
    assert len({space.unique_key(k) for k in shipped.keys}) == len(shipped)  # unique cells
    assert shipped.meta["space"] == "embedded" and int(shipped.meta["archs"]) == len(shipped)
    assert shipped.meta["per_seed"] == PER_SEED.name
    assert shipped.meta["regenerate"].startswith("python -m nasheur.groundtruth build")


def test_shipped_table_meets_its_quality_targets(shipped):
    assert len(shipped.meta["seeds"].split()) >= 2
    assert float(shipped.meta["seed_kendall_tau"]) >= 0.6
    assert float(shipped.meta["spread_p90_p10"]) >= 10.0


def test_header_statistics_follow_from_the_per_seed_sidecar(shipped, per_seed):
    acc, seeds = per_seed
    assert [str(s) for s in seeds] == shipped.meta["seeds"].split()
    assert np.array_equal(acc.mean(axis=1), np.asarray(shipped.acc))
    assert f"{mean_pairwise_kendall(acc):.4f}" == shipped.meta["seed_kendall_tau"]
    assert f"{spread_points(acc.mean(axis=1)):.2f}" == shipped.meta["spread_p90_p10"]


# ----------------------------------------------------------------------------- the space


def test_embedded_space_is_nb201_cells_at_a_small_size():
    space = EmbeddedSpace()
    assert space.name == "embedded"
    assert space.ops_on == ("edge", "node") and space.dynamic_channels == ("fixed",)
    assert space.samplers == ("random_nas", "random_a", "fairnas")
    assert dict(space.macro_defaults) == {"channels": 8, "layers": 3, "num_classes": 10}
    rng = np.random.default_rng(0)
    arch = space.sample(rng)
    assert space.key(arch) == NB201Space().key(arch)
    assert space.parse(space.key(arch)) == arch
    net = space.standalone(space.key(arch))
    assert net(torch.zeros(2, 3, 12, 12)).shape == (2, 10)
    assert space.standalone(arch, channels=4, layers=1, num_classes=3).classifier.out_features == 3
    with pytest.raises(TypeError):
        space.standalone(arch, depth=2)


# ----------------------------------------------------------------------------- procedural data


def test_procedural_shapes_and_balance():
    x, y = make_procedural(103, 12, 10, seed=0)
    assert x.shape == (103, 3, 12, 12) and x.dtype == np.uint8
    assert y.shape == (103,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 103 and counts.max() - counts.min() <= 1
    x3, y3 = make_procedural(30, 16, 3, seed=5)
    assert x3.shape == (30, 3, 16, 16) and set(np.unique(y3)) == {0, 1, 2}


def test_procedural_bytes_are_pinned():
    # the shipped ground truth was measured on these images: a change of the generator (or of
    # numpy's PCG64 streams) must show up here, and then the table must be rebuilt
    x, y = make_procedural(40, 12, 10, seed=0)
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    assert digest == "18f6fc805a7c1ebbe6bb6d7640263aea9dfe97575c24682e50a44414941d7163"


def test_procedural_pixel_statistics_match_the_constants():
    x, _ = make_procedural(500, 12, 10, seed=1)
    px = x.astype(np.float64) / 255.0
    assert px.mean() == pytest.approx(PROCEDURAL_MEAN[0], abs=0.03)
    assert px.std() == pytest.approx(PROCEDURAL_STD[0], abs=0.04)


def test_textures_survive_a_horizontal_flip():
    # every class maps to itself under the flip of the augmentation (at some phase)
    size = 12
    for kind in range(MAX_CLASSES):
        k = np.array([kind])
        flipped = texture_maps(k, np.array([0]), np.array([0]), size)[0, :, ::-1]
        assert any(
            np.array_equal(flipped, texture_maps(k, np.array([py]), np.array([px]), size)[0])
            for py in range(12)
            for px in range(12)
        ), kind


def test_procedural_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        make_procedural(10, 12, MAX_CLASSES + 1, 0)
    with pytest.raises(ValueError, match="image_size"):
        make_procedural(10, 4, 10, 0)
    with pytest.raises(ValueError, match="num_images"):
        make_procedural(0, 12, 10, 0)


@pytest.mark.slow
def test_the_shipped_table_reproduces(tmp_path, per_seed, shipped):
    """Retraining the sample's first two architectures with the recorded settings gives their
    shipped per-seed accuracies: exactly on the machine that built it, within 1% elsewhere
    (float rounding may move a few of the 1,000 test images) for an architecture that trains
    stably. One whose two shipped seeds already differ by more than 5 points trains
    chaotically: two epochs on another CPU's rounding can land it several points away (the
    second one here: 0.589 and 0.773 shipped, 0.696 and 0.703 on an AMD EPYC, 0.679 and 0.813
    there with torch 2.6), so for it the mean over seeds is compared, within half the shipped
    seeds' own spread (at least 5 points): the scale of its seed-to-seed noise."""
    from nasheur.groundtruth.builder import BuildSettings, build

    settings = BuildSettings(archs=2)  # the defaults are the shipped table's settings
    assert f"--archs {len(shipped)}" in shipped.meta["regenerate"]
    result = build(tmp_path / "gt.csv", settings, log=None)
    acc, seeds = per_seed
    assert list(result.keys) == list(shipped.keys[:2]) and list(settings.seeds) == seeds
    for got, want in zip(result.per_seed_acc, acc[:2], strict=True):
        if np.ptp(want) <= 0.05:
            np.testing.assert_allclose(got, want, rtol=0, atol=0.01)
        else:
            assert np.mean(got) == pytest.approx(np.mean(want), abs=max(0.05, np.ptp(want) / 2))
    assert np.ptp(acc[0]) <= 0.05  # at least one stable architecture is held to 1%
