"""Image data: synthetic set, CIFAR-10 reader (safe unpickling), splits and the device loader."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch

from nasheur.data import (
    DatasetNotFoundError,
    DeviceLoader,
    load_cifar10_train,
    load_image_data,
    make_synthetic,
    split_train_val,
)
from nasheur.data.cifar10 import BadBatchError
from nasheur.data.loader import PAD
from nasheur.data.procedural import make_procedural
from nasheur.safe_pickle import NUMPY_ARRAY_GLOBALS, UnsafePickleError, safe_load
from tests.conftest import write_fake_cifar

# ----------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_and_balance():
    x, y = make_synthetic(103, 16, 10, seed=0)
    assert x.shape == (103, 3, 16, 16) and x.dtype == np.uint8
    assert y.shape == (103,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103
    assert y.min() >= 0 and y.max() < 10


@pytest.mark.parametrize("make", [make_synthetic, make_procedural])
def test_generated_sets_are_deterministic_and_seeded(make):
    a = make(300, 16, 5, seed=3)
    b = make(300, 16, 5, seed=3)
    c = make(300, 16, 5, seed=4)
    assert a[0].tobytes() == b[0].tobytes() and np.array_equal(a[1], b[1])
    assert a[0].tobytes() != c[0].tobytes()


def test_synthetic_pixel_statistics():
    # about the documented normalisation constants (mean 0.5, std 0.25 in [0, 1] units)
    x, _ = make_synthetic(500, 32, 10, seed=0)
    v = x.astype(np.float64) / 255
    assert 0.45 < v.mean() < 0.55
    assert 0.18 < v.std() < 0.32


def test_synthetic_has_class_structure():
    # nearest class mean (on a held-out half) beats chance clearly: the classes are learnable
    x, y = make_synthetic(2000, 16, 10, seed=1)
    f = x.reshape(len(x), -1).astype(np.float64)
    tr, te = slice(0, 1000), slice(1000, 2000)
    means = np.stack([f[tr][y[tr] == c].mean(0) for c in range(10)])
    pred = np.argmin(((f[te][:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    acc = (pred == y[te]).mean()
    assert acc > 0.2, acc


# the limits each generator documents (synthetic: S >= 4 and no class maximum, 50 standing for
# many; procedural: S >= 8 and 2..10 classes; both: at least one image and two classes)
@pytest.mark.parametrize(
    ("make", "min_size", "max_classes"),
    [(make_synthetic, 4, 50), (make_procedural, 8, 10)],
    ids=["synthetic", "procedural"],
)
def test_generated_sets_take_their_documented_limits(make, min_size, max_classes):
    x, y = make(1, min_size, 2, seed=0)  # one image, the smallest size, two classes
    assert x.shape == (1, 3, min_size, min_size) and y.shape == (1,)
    x, y = make(max_classes, min_size, max_classes, seed=0)  # one image per class
    assert sorted(y.tolist()) == list(range(max_classes))


@pytest.mark.parametrize(
    ("make", "min_size"), [(make_synthetic, 4), (make_procedural, 8)], ids=["syn", "proc"]
)
@pytest.mark.parametrize(
    ("args", "key"),
    [
        ((0, None, 2), "num_images"),
        ((-1, None, 2), "num_images"),
        ((1, "below", 2), "image_size"),  # one pixel under the documented minimum
        ((1, None, 1), "num_classes"),  # a single class is no classification task
        ((1, None, 0), "num_classes"),
    ],
)
def test_generated_sets_refuse_arguments_just_past_their_limits(make, min_size, args, key):
    n, size, classes = args
    size = min_size - 1 if size == "below" else min_size
    with pytest.raises(ValueError, match=key):
        make(n, size, classes, seed=0)


@pytest.mark.parametrize("make", [make_synthetic, make_procedural])
def test_generated_labels_come_shuffled(make):
    # "order shuffled": labels in the cyclic order 0, 1, ..., C-1, 0, ... would put every
    # class at fixed indices of every share
    _, y = make(100, 8, 5, seed=0)
    assert not np.array_equal(y, np.arange(100) % 5)
    assert np.array_equal(np.bincount(y), [20] * 5)  # still balanced


def test_synthetic_upsampling_is_bilinear_with_aligned_corners():
    # bilinear interpolation reproduces a linear function exactly, and "aligned corners" puts
    # grid point i at pixel i * (S - 1) / (G - 1): so a ramp 3*i + 5*j on a 4x4 grid becomes
    # the ramp 3*y*3/(S-1) + 5*x*3/(S-1) on S x S pixels, its corners the grid's corners
    from nasheur.data.synthetic import _upsample

    g, s = 4, 10
    i, j = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
    grid = (3.0 * i + 5.0 * j).astype(np.float32)[None, None]  # (1, 1, G, G)
    yy, xx = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    want = 3.0 * yy * (g - 1) / (s - 1) + 5.0 * xx * (g - 1) / (s - 1)
    np.testing.assert_allclose(_upsample(grid, s)[0, 0], want, atol=1e-4)


def test_the_synthetic_distractor_belongs_to_no_class(monkeypatch):
    # the module docstring: the colour blob is "shared by no class". With the class signal
    # switched off, the nearest class mean must fall to chance (1/4): a distractor picked by
    # the label would still give the class away
    monkeypatch.setattr("nasheur.data.synthetic._CONTRAST", (0.0, 0.0))
    x, y = make_synthetic(2000, 8, 4, seed=1)
    f = x.reshape(len(x), -1).astype(np.float64)
    tr, te = slice(0, 1000), slice(1000, 2000)
    means = np.stack([f[tr][y[tr] == c].mean(0) for c in range(4)])
    pred = np.argmin(((f[te][:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == y[te]).mean() < 0.35


def test_synthetic_pixels_are_rounded_around_128(monkeypatch):
    # "to uint8 around 128": with only the brightness left (a uniform draw in +-0.3, i.e.
    # +-30 steps, constant over an image's channel), rounding to the nearest step gives the
    # values 98..158, centred on 128; truncation would give 98..157
    monkeypatch.setattr("nasheur.data.synthetic._CONTRAST", (0.0, 0.0))
    monkeypatch.setattr("nasheur.data.synthetic._DISTRACTOR", 0.0)
    monkeypatch.setattr("nasheur.data.synthetic._NOISE", 0.0)
    x, _ = make_synthetic(3000, 4, 2, seed=0)
    assert (x == x[:, :, :1, :1]).all()  # one value per image and channel
    assert (x.min(), x.max()) == (98, 158)


def test_synthetic_images_are_shifted_windows_of_their_class_stripes(monkeypatch):
    # with the smooth patterns and blobs flattened to zero, the noise off and the contrast 1,
    # an image is its class's stripe texture plus a brightness per channel. Every class is
    # striped (two levels in its strongest channel), the two levels lie the class's fixed
    # stripe colour apart in every image (a contrast range (1, 1) is exactly 1, rounding aside),
    # and a class's images do not all show one window (the random shift, at least one pixel
    # even for 4-pixel images)
    import nasheur.data.synthetic as synthetic

    monkeypatch.setattr(
        synthetic, "_upsample", lambda g, size: np.zeros((*g.shape[:-2], size, size), np.float32)
    )
    monkeypatch.setattr(synthetic, "_NOISE", 0.0)
    monkeypatch.setattr(synthetic, "_CONTRAST", (1.0, 1.0))
    x, y = make_synthetic(500, 4, 10, seed=0)
    for c in range(10):
        imgs = x[y == c].astype(np.int64)
        channel = np.argmax(np.ptp(imgs[0].reshape(3, -1), axis=1))  # its strongest colour
        plane = imgs[:, channel].reshape(len(imgs), -1)
        steps = np.ptp(plane, axis=1)
        assert steps.min() >= 2 and np.ptp(steps) <= 1, (c, steps)
        above = plane > plane.mean(1)[:, None]
        assert len({a.tobytes() for a in above}) > 1, c  # not all one window


# what the procedural module's table says each class is, in (row y, column x) of the texture
_TEXTURE_TABLE = {
    "hstripes2": lambda y, x: y % 2 == 0,  # horizontal stripes, period 2
    "vstripes2": lambda y, x: x % 2 == 0,
    "checker2": lambda y, x: (y + x) % 2 == 0,
    "hlines3": lambda y, x: y % 3 == 0,  # one row in three
    "vlines3": lambda y, x: x % 3 == 0,
    "dots3": lambda y, x: (y % 3 == 0) & (x % 3 == 0),  # a dot every 3 pixels both ways
    "grid3": lambda y, x: (y % 3 == 0) | (x % 3 == 0),
    "hstripes4": lambda y, x: y % 4 < 2,  # two rows on, two off
    "vstripes4": lambda y, x: x % 4 < 2,
    "checker4": lambda y, x: (y // 2 + x // 2) % 2 == 0,  # 2x2 blocks
}


def test_each_procedural_label_draws_the_texture_its_name_says():
    # label k is TEXTURES[k]: its map is the table's pattern at some phase (up to 12 per axis)
    from nasheur.data.procedural import MAX_CLASSES, TEXTURES, texture_maps

    size = 12
    assert MAX_CLASSES == len(TEXTURES) == 10 and set(TEXTURES) == set(_TEXTURE_TABLE)
    yy, xx = np.meshgrid(np.arange(size + 12), np.arange(size + 12), indexing="ij")
    for k, name in enumerate(TEXTURES):
        got = texture_maps(np.array([k]), np.array([0]), np.array([0]), size)[0]
        table = _TEXTURE_TABLE[name](yy, xx).astype(np.float32)
        shifts = [table[py : py + size, px : px + size] for py in range(12) for px in range(12)]
        assert any(np.array_equal(got, s) for s in shifts), name


# ----------------------------------------------------------------------------- CIFAR-10


def test_cifar_reads_fake_release(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    x_ref, y_ref = write_fake_cifar(folder)
    for root in (tmp_path, folder, str(folder)):
        x, y = load_cifar10_train(root)
        assert x.shape == (100, 3, 32, 32) and x.dtype == np.uint8
        assert y.dtype == np.int64
        assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_a_cifar_subset_is_read_and_said(tmp_path, caplog, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder, n_per_batch=20)
    with caplog.at_level("WARNING", logger="nasheur"):
        load_cifar10_train(folder)
    (said,) = [r.getMessage() for r in caplog.records]
    assert str(folder) in said and "data_batch_1 20, " in said and "not 10,000" in said
    caplog.clear()
    # batches of the release's size (made small here): nothing to say
    monkeypatch.setattr("nasheur.data.cifar10.IMAGES_PER_BATCH", 20)
    with caplog.at_level("WARNING", logger="nasheur"):
        load_cifar10_train(folder)
    assert not caplog.records


def test_copies_of_one_cifar_batch_are_said(tmp_path, caplog, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    monkeypatch.setattr("nasheur.data.cifar10.IMAGES_PER_BATCH", 20)  # the size is the release's
    with caplog.at_level("WARNING", logger="nasheur"):
        load_cifar10_train(folder)
    assert not caplog.records  # five different batches
    # the audit's case: one valid batch under all five names
    one = (folder / "data_batch_1").read_bytes()
    for i in range(2, 6):
        (folder / f"data_batch_{i}").write_bytes(one)
    with caplog.at_level("WARNING", logger="nasheur"):
        x, _ = load_cifar10_train(folder)
    assert len(x) == 100
    (said,) = [r.getMessage() for r in caplog.records]
    assert str(folder) in said and "not the release" in said
    assert "data_batch_2 = data_batch_1" in said and "data_batch_5 = data_batch_1" in said
    caplog.clear()
    # batch 1's images and labels re-saved otherwise (other bytes on disk): said all the same
    x, y = write_fake_cifar(tmp_path / "again")
    batch = {b"batch_label": b"copy", b"labels": y[:20].tolist(), b"data": x[:20].reshape(20, -1)}
    (tmp_path / "again" / "data_batch_4").write_bytes(pickle.dumps(batch, protocol=4))
    with caplog.at_level("WARNING", logger="nasheur"):
        load_cifar10_train(tmp_path / "again")
    (said,) = [r.getMessage() for r in caplog.records]
    assert "(data_batch_4 = data_batch_1)" in said


@pytest.mark.parametrize("differs", ["labels", "images"])
def test_batches_that_share_only_images_or_only_labels_are_not_copies(
    tmp_path, caplog, monkeypatch, differs
):
    # a copy is the same images with the same labels: batch 2 made of batch 1's images with
    # other labels (or batch 1's labels on other images) is a different batch
    folder = tmp_path / "cifar-10-batches-py"
    x, y = write_fake_cifar(folder)
    monkeypatch.setattr("nasheur.data.cifar10.IMAGES_PER_BATCH", 20)  # the size is the release's
    data, labels = x[:20].reshape(20, -1), y[:20]
    if differs == "labels":
        labels = (labels + 1) % 10
    else:
        data = 255 - data
    batch = {b"data": data, b"labels": labels.tolist()}
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with caplog.at_level("WARNING", logger="nasheur"):
        load_cifar10_train(folder)
    assert not caplog.records


def test_load_image_data_cifar_from_fake_release(tmp_path):
    x_ref, y_ref = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    d = load_image_data("cifar10", train_portion=0.9, val_portion=0.1, root=str(tmp_path))
    assert d.train_x.shape == (90, 3, 32, 32) and d.val_x.shape == (10, 3, 32, 32)
    assert d.num_classes == 10 and d.image_size == 32 and d.mean[0] == 0.4914
    split = split_train_val(100, 0.9, 0.1, seed=0)
    assert np.array_equal(d.val_x.numpy(), x_ref[split.val_idx])
    assert np.array_equal(d.train_y.numpy(), y_ref[split.train_idx])


def test_cifar_missing_folder_names_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10_train(missing)
    msg = str(info.value)
    assert str(missing / "cifar-10-batches-py") in msg
    assert "cifar-10-python.tar.gz" in msg and "dataset.root=" in msg
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["data_batch_1", "data_batch_4"])
def test_cifar_missing_batch_file(tmp_path, name):
    # data_batch_1 is the file the folder is recognised by: without it the folder is still
    # the one named cifar-10-batches-py, and the error says which batch is missing
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    (folder / name).unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"CIFAR-10 incomplete: missing .*{name}"):
        load_cifar10_train(tmp_path)


def test_an_existing_directory_without_the_release_names_the_folder_it_expected(tmp_path):
    # the directory exists but holds no batches: the error points at the folder the release
    # extracts to, not at batch files missing from the directory itself
    with pytest.raises(DatasetNotFoundError, match="CIFAR-10 not found") as info:
        load_cifar10_train(tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)


def test_the_extracted_folder_is_read_before_stray_batches_beside_it(tmp_path):
    # a directory that holds cifar-10-batches-py is read through that folder, even when other
    # batch files lie in the directory itself
    x_ref, y_ref = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    write_fake_cifar(tmp_path / "stray", n_per_batch=3)
    for stray in (tmp_path / "stray").iterdir():
        stray.rename(tmp_path / stray.name)
    x, y = load_cifar10_train(tmp_path)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_a_cifar_batch_with_str_keys_is_read(tmp_path):
    # a batch re-saved by Python 3 from a decoded dict has the keys "data" and "labels"
    folder = tmp_path / "cifar-10-batches-py"
    x_ref, y_ref = write_fake_cifar(folder)
    batch = {"data": x_ref[20:40].reshape(20, -1), "labels": y_ref[20:40].tolist()}
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    x, y = load_cifar10_train(folder)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)


def test_cifar_labels_stored_as_a_small_array_come_back_as_int64(tmp_path):
    # labels saved as a uint8 array (not the release's list of ints) in every batch: the
    # reader's documented int64 must not depend on how the batches stored them
    folder = tmp_path / "cifar-10-batches-py"
    x_ref, y_ref = write_fake_cifar(folder)
    for i in range(5):
        share = slice(20 * i, 20 * (i + 1))
        labels = y_ref[share].astype(np.uint8)
        batch = {b"data": x_ref[share].reshape(20, -1), b"labels": labels}
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    x, y = load_cifar10_train(folder)
    assert y.dtype == np.int64 and np.array_equal(y, y_ref) and np.array_equal(x, x_ref)


@pytest.mark.parametrize("labels", [np.zeros(0, np.int64), []], ids=["array", "list"])
def test_an_empty_cifar_batch_is_read_as_a_subset(tmp_path, caplog, labels):
    # no labels at all: the 0..9 range check has no minimum to take, and the batch is said;
    # the release's form, a list, is empty too (numpy reads `[]` as float64: not refused)
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    batch = {b"data": np.zeros((0, 3072), np.uint8), b"labels": labels}
    (folder / "data_batch_5").write_bytes(pickle.dumps(batch, protocol=2))
    with caplog.at_level("WARNING", logger="nasheur"):
        x, y = load_cifar10_train(folder)
    assert x.shape == (80, 3, 32, 32) and y.shape == (80,)
    assert any("data_batch_5 0" in r.getMessage() for r in caplog.records)


def test_cifar_wrong_shape_names_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f, protocol=2)
    with pytest.raises(ValueError, match="data_batch_2"):
        load_cifar10_train(folder)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_refuses_code_in_pickle(tmp_path, capfd):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(UnsafePickleError) as info:
        load_cifar10_train(folder)
    msg = str(info.value)
    assert "data_batch_3" in msg
    assert f"{os.system.__module__}.system" in msg  # posix.system on Linux
    assert "pwned" not in capfd.readouterr().out


def test_safe_load_numpy_protocols_and_forms():
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    obj = {"a": arr, "s": np.float64(2.5), "d": np.dtype("int16")}
    for proto in (2, 4, 5):
        out = safe_load(
            io.BytesIO(pickle.dumps(obj, protocol=proto)),
            {**NUMPY_ARRAY_GLOBALS, ("_codecs", "encode"): __import__("codecs").encode},
            source="mem",
        )
        assert np.array_equal(out["a"], arr) and out["s"] == 2.5 and out["d"] == np.int16
    # module -> names form, and pair form
    import collections

    data = pickle.dumps(collections.OrderedDict(a=1))
    assert safe_load(io.BytesIO(data), {"collections": {"OrderedDict"}}, source="m") == {"a": 1}
    assert safe_load(io.BytesIO(data), [("collections", "OrderedDict")], source="m") == {"a": 1}
    with pytest.raises(UnsafePickleError, match=r"src\.bin.*collections\.OrderedDict"):
        safe_load(io.BytesIO(data), NUMPY_ARRAY_GLOBALS, source="src.bin")


# ----------------------------------------------------------------------------- splits


def test_split_sizes_and_disjoint():
    s = split_train_val(1000, 0.5, 0.1, seed=0)
    assert len(s.train_idx) == 500 and len(s.val_idx) == 100
    assert s.train_idx.dtype == np.int64 and s.val_idx.dtype == np.int64
    assert not set(s.train_idx.tolist()) & set(s.val_idx.tolist())
    assert not s.val_overlaps_train
    full = split_train_val(1000, 0.9, 0.1, seed=0)
    assert sorted(np.concatenate([full.train_idx, full.val_idx]).tolist()) == list(range(1000))
    assert not full.val_overlaps_train
    # shares that fit stay apart however they round: 0.9 of 15 is 13.5, which rounds to 14,
    # and 0.1 is 1.5, which rounds to 2
    for n in (15, 35):
        odd = split_train_val(n, 0.9, 0.1, seed=0)
        assert len(odd.train_idx) + len(odd.val_idx) == n and not odd.val_overlaps_train


def test_split_val_fixed_across_portions_and_overlap():
    a = split_train_val(1000, 0.25, seed=7)
    b = split_train_val(1000, 0.9, seed=7)
    c = split_train_val(1000, 1.0, seed=7)
    assert np.array_equal(a.val_idx, b.val_idx) and np.array_equal(a.val_idx, c.val_idx)
    assert np.array_equal(b.train_idx[:250], a.train_idx)
    assert c.val_overlaps_train and set(c.val_idx.tolist()) <= set(c.train_idx.tolist())


def test_split_deterministic_and_seeded():
    a = split_train_val(500, 0.5, seed=1)
    b = split_train_val(500, 0.5, seed=1)
    c = split_train_val(500, 0.5, seed=2)
    assert np.array_equal(a.train_idx, b.train_idx) and np.array_equal(a.val_idx, b.val_idx)
    assert not np.array_equal(a.train_idx, c.train_idx)


_TRAIN_RANGE = r"fidelity\.train_portion must lie in \(0, 1\]"
_VAL_RANGE = r"dataset\.val_portion must lie in \(0, 1\)"


@pytest.mark.parametrize(
    ("train", "val", "said"),
    [
        # a portion of 0 is refused as out of range, not only by the empty share it leaves
        (0.0, 0.1, _TRAIN_RANGE),
        (1.5, 0.1, _TRAIN_RANGE),
        (-0.1, 0.1, _TRAIN_RANGE),
        (0.5, 0.0, _VAL_RANGE),
        (0.5, 1.0, _VAL_RANGE),
        (float("nan"), 0.1, _TRAIN_RANGE),
        (None, 0.1, r"fidelity\.train_portion must be a number, got None"),
        (0.5, "a tenth", r"dataset\.val_portion must be a number"),
        # in range, but 0.001 of 100 images rounds to none
        (0.001, 0.1, r"fidelity\.train_portion=0\.001 leaves no training image out of 100"),
        (0.5, 0.001, r"dataset\.val_portion=0\.001 leaves no validation image out of 100"),
    ],
)
def test_split_range_errors(train, val, said):
    with pytest.raises(ValueError, match=said):
        split_train_val(100, train, val)


def test_a_single_image_is_not_split():
    # portions that overlap would give train and validation the same one image
    with pytest.raises(ValueError, match="need at least 2 images to split, got 1"):
        split_train_val(1, 1.0, 0.9)


def test_the_default_validation_share_is_the_papers_ten_percent():
    # spec section 3: CIFAR-10's 50,000 training images split 90/10 into train/validation
    s = split_train_val(50_000, 0.9)
    assert len(s.train_idx) == 45_000 and len(s.val_idx) == 5_000
    assert len(np.union1d(s.train_idx, s.val_idx)) == 50_000 and not s.val_overlaps_train


def test_split_indices_are_read_only():
    # a Split is frozen, and so are the index arrays that every share is gathered by
    s = split_train_val(100, 0.5)
    for idx in (s.train_idx, s.val_idx):
        with pytest.raises(ValueError, match="read-only"):
            idx[0] = 0


def test_load_image_data_synthetic_and_unknown():
    d = load_image_data("synthetic", train_portion=0.5, num_images=200, image_size=8)
    assert d.train_x.shape == (100, 3, 8, 8) and d.train_x.dtype == torch.uint8
    assert d.val_x.shape == (20, 3, 8, 8) and d.val_y.dtype == torch.int64
    assert d.image_size == 8 and d.num_classes == 10 and not d.val_overlaps_train
    assert d.mean == (0.5, 0.5, 0.5) and d.std == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match="cifar10, synthetic"):
        load_image_data("imagenet", train_portion=0.5)
    with pytest.raises(DatasetNotFoundError, match=r"dataset\.root"):
        load_image_data("cifar10", train_portion=0.5, root=None)


# ----------------------------------------------------------------------------- DeviceLoader

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _norm(x_u8):
    m = torch.tensor(MEAN).view(1, 3, 1, 1)
    s = torch.tensor(STD).view(1, 3, 1, 1)
    return (x_u8.float() / 255 - m) / s


def _indexed_set(n, size=8):
    """Images whose pixel (0, 0, 0) encodes the index (so a batch reveals which images it holds)."""
    x = torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0))
    x = x.to(torch.uint8)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return x, torch.arange(n, dtype=torch.int64)


def test_train_batches_no_augment_permutation_order():
    x, y = _indexed_set(50)
    loader = DeviceLoader(x, y, batch_size=8, mean=MEAN, std=STD, augment=False)
    assert len(loader) == loader.steps_per_epoch == 6 and loader.num_images == 50
    g = torch.Generator().manual_seed(5)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(5))
    seen = []
    for step, (xb, yb) in enumerate(loader.train_batches(g)):
        assert xb.shape == (8, 3, 8, 8) and xb.dtype == torch.float32
        idx = perm[step * 8 : (step + 1) * 8]
        assert torch.equal(yb, idx)
        torch.testing.assert_close(xb, _norm(x[idx]))
        seen.extend(yb.tolist())
    assert len(seen) == 48 and len(set(seen)) == 48  # distinct, drop_last


def test_train_batches_small_set_single_batch_and_reseeding():
    x, y = _indexed_set(5)
    loader = DeviceLoader(x, y, batch_size=8, mean=MEAN, std=STD, augment=True)
    assert loader.steps_per_epoch == 1
    batches = list(loader.train_batches(torch.Generator().manual_seed(0)))
    assert len(batches) == 1 and sorted(batches[0][1].tolist()) == [0, 1, 2, 3, 4]
    again = list(loader.train_batches(torch.Generator().manual_seed(0)))
    assert torch.equal(batches[0][0], again[0][0])


def test_augmentation_shift_and_flip():
    s, n = 16, 400
    r0, c0 = 8, 1  # a single bright pixel near the left edge
    x = torch.zeros((n, 3, s, s), dtype=torch.uint8)
    x[:, :, r0, c0] = 255
    y = torch.zeros(n, dtype=torch.int64)
    loader = DeviceLoader(x, y, batch_size=n, mean=(0, 0, 0), std=(1, 1, 1), augment=True)
    ((xb, _),) = list(loader.train_batches(torch.Generator().manual_seed(1)))
    assert xb.shape == (n, 3, s, s)
    assert torch.all((xb == 0) | (xb == 1))  # padding is black; no values were mixed
    row_shifts, col_shifts, flipped, plain = set(), set(), 0, 0
    for img in xb:
        assert torch.equal(img[0], img[1]) and torch.equal(img[0], img[2])
        pos = img[0].nonzero()
        assert len(pos) <= 1  # the pixel moved (or left the crop); nothing else appeared
        if len(pos) == 0:
            continue
        r, c = pos[0].tolist()
        assert abs(r - r0) <= PAD
        row_shifts.add(r - r0)
        if c < s // 2:  # not mirrored: the pixel stays near the left edge
            assert abs(c - c0) <= PAD
            col_shifts.add(c - c0)
            plain += 1
        else:  # mirrored: near the right edge
            assert abs((s - 1 - c) - c0) <= PAD
            flipped += 1
    assert row_shifts == set(range(-PAD, PAD + 1))
    assert len(col_shifts) >= PAD + 1
    assert flipped > n // 4 and plain > n // 4
    # with augment=False the same images come back untouched
    loader = DeviceLoader(x, y, batch_size=n, mean=(0, 0, 0), std=(1, 1, 1), augment=False)
    ((xb, _),) = list(loader.train_batches(torch.Generator().manual_seed(1)))
    assert torch.equal(xb, x.float() / 255)


def test_flip_only_mirrors():
    # with every crop at the centre offset the augmentation is a pure (random) flip
    s, n = 6, 64
    x = torch.randint(0, 256, (n, 3, s, s), generator=torch.Generator().manual_seed(2))
    x = x.to(torch.uint8)
    y = torch.arange(n)
    loader = DeviceLoader(x, y, batch_size=n, mean=(0, 0, 0), std=(1, 1, 1), augment=True)
    centre = torch.full((n, 2), PAD, dtype=torch.int64)
    flips = torch.arange(n) % 2 == 1
    out = loader._crop_flip(x, centre, flips)
    assert torch.equal(out[~flips], x[~flips])
    assert torch.equal(out[flips], x[flips].flip(-1))
    # and a shift with no flip is a plain translation with zero fill
    shift = torch.tensor([[PAD + 1, PAD - 2]]).expand(n, 2)
    out = loader._crop_flip(x, shift, torch.zeros(n, dtype=torch.bool))
    assert torch.equal(out[:, :, : s - 1, 2:], x[:, :, 1:, : s - 2])
    assert torch.all(out[:, :, s - 1, :] == 0) and torch.all(out[:, :, :, :2] == 0)


def test_augment_off_is_identity_on_values():
    x, y = _indexed_set(16)
    loader = DeviceLoader(x, y, batch_size=16, mean=MEAN, std=STD, augment=False)
    ((xb, yb),) = list(loader.train_batches(torch.Generator().manual_seed(3)))
    torch.testing.assert_close(xb, _norm(x[yb]))


@pytest.mark.parametrize(
    ("n", "bs", "valid"), [(10, 4, [4, 4, 2]), (3, 8, [3]), (8, 4, [4, 4]), (1, 1, [1])]
)
def test_eval_batches_cover_once(n, bs, valid):
    x, y = _indexed_set(n)
    loader = DeviceLoader(x, y, batch_size=bs, mean=MEAN, std=STD, augment=True)
    counted = []
    batches = list(loader.eval_batches())
    assert [b[2] for b in batches] == valid and loader.eval_steps == len(valid)
    for xb, yb, n_valid in batches:
        assert xb.shape[0] == bs and yb.shape[0] == bs
        torch.testing.assert_close(xb, _norm(x[yb]))  # no augmentation
        counted.extend(yb[:n_valid].tolist())
    assert counted == list(range(n))


_IMAGES = r"images must be a uint8 \(N, C, H, W\) tensor"
_LABELS = r"labels must be an int64 \(N,\) tensor"
_PER_CHANNEL = r"mean and std need 3 values \(one per channel\)"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"images": lambda x: x.float()}, _IMAGES),
        ({"images": lambda x: x[:, 0]}, _IMAGES),  # no channel axis
        ({"labels": lambda y: y.to(torch.int32)}, _LABELS),
        ({"labels": lambda y: y[:, None]}, _LABELS),
        ({"labels": lambda y: y[:3]}, "4 images but 3 labels"),
        # a device other than the images' (meta stands in for a GPU on a CPU-only machine)
        ({"labels": lambda y: torch.empty(4, dtype=torch.int64, device="meta")}, "move both"),
        ({"images": lambda x: x[:0], "labels": lambda y: y[:0]}, "no images"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"mean": MEAN[:2]}, _PER_CHANNEL),
        ({"std": STD[:2]}, _PER_CHANNEL),
        ({"std": (0.2, 0.0, 0.3)}, r"std must be positive"),  # a division by zero
        ({"std": (0.2, float("nan"), 0.3)}, r"mean and std must be finite"),  # NaN > 0 fails
        ({"mean": (0.5, float("inf"), 0.5)}, r"mean and std must be finite"),
        ({"images": lambda x: x[:, :, :, :6]}, r"square images expected, got \(8, 6\)"),
    ],
    ids=[
        "float images",
        "3-D images",
        "int32 labels",
        "2-D labels",
        "a label short",
        "labels elsewhere",
        "empty set",
        "batch 0",
        "two means",
        "two stds",
        "zero std",
        "NaN std",
        "infinite mean",
        "not square",
    ],
)
def test_loader_rejects_bad_input(change, said):
    x, y = _indexed_set(4)
    kw = {"batch_size": 2, "mean": MEAN, "std": STD, "augment": False}
    kw.update({k: v for k, v in change.items() if k not in ("images", "labels")})
    x = change.get("images", lambda t: t)(x)
    y = change.get("labels", lambda t: t)(y)
    with pytest.raises(ValueError, match=said):
        DeviceLoader(x, y, **kw)


@pytest.mark.cuda
def test_loader_on_cuda_with_cuda_generator():
    x, y = _indexed_set(50)
    x, y = x.cuda(), y.cuda()
    loader = DeviceLoader(x, y, batch_size=8, mean=MEAN, std=STD, augment=True)
    g = torch.Generator(device=x.device).manual_seed(0)
    batches = list(loader.train_batches(g))
    assert len(batches) == 6 and batches[0][0].is_cuda
    cpu_g = torch.Generator().manual_seed(0)
    assert len(list(loader.train_batches(cpu_g))) == 6
    assert sum(b[2] for b in loader.eval_batches()) == 50


def test_a_truncated_cifar_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    batch = folder / "data_batch_3"
    data = batch.read_bytes()
    batch.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        BadBatchError, match=r"data_batch_3: .*extract cifar-10-python\.tar\.gz again"
    ):
        load_cifar10_train(tmp_path)


def _batch(data, labels) -> bytes:
    return pickle.dumps({b"data": data, b"labels": labels}, protocol=2)


_TWO_IMAGES = np.zeros((2, 3072), np.uint8)
_DAMAGED = r"a damaged or truncated CIFAR-10 batch \("


@pytest.mark.parametrize(
    ("content", "said"),
    [
        # an APPEND on an int: the unpickler raises AttributeError
        (b"\x80\x02K\x01K\x02a.", _DAMAGED + "AttributeError"),
        # each kind of error a damaged byte stream raises is said as a damaged batch: an empty
        # file, a list as a dict key, an unknown codec for bytes, a string longer than memory
        (b"", _DAMAGED + "EOFError"),
        (b"\x80\x02}(]]u.", _DAMAGED + "TypeError"),
        (
            b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00nope\x86R.",
            _DAMAGED + "LookupError",
        ),
        (b"\x80\x04\x8d" + (2**63).to_bytes(8, "little") + b".", _DAMAGED + "OverflowError"),
        (pickle.dumps(5, protocol=2), r"not a CIFAR-10 batch \(a int, not a dict\)"),
        (_batch(_TWO_IMAGES, [[1, 2], [3]]), r"'labels' is not a list of integers"),
        # the pixels: uint8 rows of 3072, whatever else would reshape to 3 x 32 x 32
        (_batch(_TWO_IMAGES.astype(np.float32), [0, 1]), r"'data' must be a 2-D uint8 array"),
        (_batch(_TWO_IMAGES[:, :, None], [0, 1]), r"'data' must be a 2-D uint8 array"),
        (_batch(_TWO_IMAGES.tobytes(), [0, 1]), r"'data' must be a 2-D uint8 array"),
        # the labels: one integer per image
        (_batch(_TWO_IMAGES, [[0], [1]]), r"\(2, 1\) labels for 2 images"),
        (_batch(_TWO_IMAGES, [0, 1, 2]), r"\(3,\) labels for 2 images"),
        (_batch(_TWO_IMAGES, [0.0, 1.0]), r"labels must be integers, got dtype float64"),
    ],
    ids=[
        "attribute error",
        "empty file",
        "type error",
        "lookup error",
        "overflow error",
        "not a dict",
        "ragged labels",
        "float pixels",
        "3-D pixels",
        "pixels as bytes",
        "2-D labels",
        "a label too many",
        "float labels",
    ],
)
def test_a_crafted_cifar_batch_is_named_whatever_breaks(tmp_path, content, said):
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    (folder / "data_batch_4").write_bytes(content)
    with pytest.raises(BadBatchError, match=r"data_batch_4: " + said):
        load_cifar10_train(tmp_path)


@pytest.mark.parametrize("name", ["procedural", "synthetic"])
def test_a_generated_set_too_large_for_memory_names_its_keys(monkeypatch, name):
    import nasheur.data as data
    from nasheur.config import ConfigError

    def too_large(n, size, classes, seed):
        raise MemoryError(f"cannot allocate {n} x 3 x {size} x {size}")  # as numpy does

    monkeypatch.setitem(data.GENERATED, name, (too_large, *data.GENERATED[name][1:]))
    with pytest.raises(ConfigError, match=rf"dataset.image_size=2048 .*{name} set ran out of mem"):
        load_image_data(name, train_portion=0.9, num_images=3000, image_size=2048)


# ----------------------------------------------------------------------------- audit: pinned answers


@pytest.mark.parametrize("name", ["synthetic", "procedural"])
def test_each_share_keeps_every_image_with_its_own_label(name):
    # the generator's own (image, label) pairs, looked up by the image's bytes: a share whose
    # labels came from other indices than its images would pair images with wrong classes
    n, size = 120, 8
    make = make_synthetic if name == "synthetic" else make_procedural
    images, labels = make(n, size, 10, 0)
    label_of = {images[i].tobytes(): int(labels[i]) for i in range(n)}
    assert len(label_of) == n  # every image distinct, so its bytes name it
    d = load_image_data(name, train_portion=0.5, val_portion=0.25, num_images=n, image_size=size)
    for x, y in ((d.train_x, d.train_y), (d.val_x, d.val_y)):
        assert len(x) == len(y)
        assert [label_of[img.numpy().tobytes()] for img in x] == y.tolist()


def test_the_cifar_shares_keep_their_labels_and_the_split_seed_draws_them(tmp_path):
    x_ref, y_ref = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    for seed in (0, 3):
        d = load_image_data(
            "cifar10", train_portion=0.5, val_portion=0.1, root=str(tmp_path), split_seed=seed
        )
        split = split_train_val(100, 0.5, 0.1, seed=seed)
        assert np.array_equal(d.train_x.numpy(), x_ref[split.train_idx])
        assert np.array_equal(d.train_y.numpy(), y_ref[split.train_idx])
        assert np.array_equal(d.val_x.numpy(), x_ref[split.val_idx])
        assert np.array_equal(d.val_y.numpy(), y_ref[split.val_idx])


def test_the_split_seed_not_the_data_seed_draws_the_validation_share():
    # README "Validation share": one permutation drawn with dataset.split_seed; the data seed
    # draws the generated images only
    kw = {"train_portion": 0.5, "val_portion": 0.25, "num_images": 80, "image_size": 8}
    images, _ = make_synthetic(80, 8, 10, 0)
    for split_seed in (0, 5):
        d = load_image_data("synthetic", split_seed=split_seed, data_seed=0, **kw)
        val_idx = split_train_val(80, 0.5, 0.25, seed=split_seed).val_idx
        assert np.array_equal(d.val_x.numpy(), images[val_idx])


def test_cifar10_is_normalised_by_its_rgb_training_statistics(tmp_path):
    # the published per-channel statistics of the 50,000 training images, in pixel units
    # (as NAS-Bench-201's code writes them): mean (125.3, 123.0, 113.9), std (63.0, 62.1, 66.7)
    write_fake_cifar(tmp_path / "cifar-10-batches-py")
    d = load_image_data("cifar10", train_portion=0.9, root=str(tmp_path))
    np.testing.assert_allclose(d.mean, np.array([125.3, 123.0, 113.9]) / 255, atol=5e-4)
    np.testing.assert_allclose(d.std, np.array([63.0, 62.1, 66.7]) / 255, atol=5e-4)


def test_the_random_crop_pads_four_pixels():
    # spec section 3: random crop with padding 4, so a pixel moves by -4..4 in each axis, all
    # of them drawn, and no further
    s, n = 16, 600
    x = torch.zeros((n, 3, s, s), dtype=torch.uint8)
    x[:, :, 8, 8] = 255  # in the middle: it never leaves the crop
    y = torch.zeros(n, dtype=torch.int64)
    loader = DeviceLoader(x, y, batch_size=n, mean=(0, 0, 0), std=(1, 1, 1), augment=True)
    ((xb, _),) = list(loader.train_batches(torch.Generator().manual_seed(4)))
    rows, cols = set(), set()
    for img in xb:
        ((r, c),) = img[0].nonzero().tolist()
        rows.add(r - 8)
        cols.add(min(abs(c - 8), abs((s - 1 - c) - 8)))  # mirrored or not
    assert rows == set(range(-4, 5))
    assert max(cols) == 4


@pytest.mark.parametrize(("n", "bs"), [(10, 4), (3, 8), (7, 5)])
def test_the_last_eval_batch_wraps_around_to_the_start(n, bs):
    # README "Evaluation batches": the last batch is completed from the start of the share
    # (tiled when the share is smaller than a batch), so BN's batch statistics see a full
    # batch of real images in a fixed order
    x, y = _indexed_set(n)
    loader = DeviceLoader(x, y, batch_size=bs, mean=MEAN, std=STD, augment=False)
    *_, (xb, yb, n_valid) = loader.eval_batches()
    start = (loader.eval_steps - 1) * bs
    expected = [(start + i) % n for i in range(bs)]
    assert n_valid == n - start and yb.tolist() == expected
    torch.testing.assert_close(xb, _norm(x[expected]))


@pytest.mark.parametrize("bad", [10, -1])
def test_a_cifar_label_outside_its_ten_classes_is_refused(tmp_path, bad):
    # CIFAR-10 has the classes 0..9: a label 10 would index past the classifier's outputs
    folder = tmp_path / "cifar-10-batches-py"
    write_fake_cifar(folder)
    with open(folder / "data_batch_3", "wb") as f:
        data = np.zeros((4, 3072), np.uint8)
        pickle.dump({b"data": data, b"labels": [0, 9, bad, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"data_batch_3: labels must lie in 0\.\.9"):
        load_cifar10_train(folder)
