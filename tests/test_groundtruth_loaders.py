"""Official ground-truth files (NB101 TFRecord, NB201 .pth, NATS .pbz2 / folder, NDS .json).

Every fixture is written here, in the real container format, by code independent of the
readers (its own protobuf encoder and bit-wise CRC32C); nothing is downloaded.
"""

from __future__ import annotations

import base64
import bz2
import contextlib
import json
import os
import pickle
import re
import struct
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from nasheur.groundtruth import (
    GroundTruthError,
    cache_path,
    detect_format,
    load_ground_truth,
    read_table,
    source_sha256,
)
from nasheur.groundtruth.nb101 import (
    TFRecordError,
    crc32c,
    crc32c_backend,
    decode_model_metrics,
    iter_nb101,
    iter_tfrecords,
    masked_crc32c,
    read_nb101,
)
from nasheur.groundtruth.nb201 import (
    load_pbz2,
    load_pth,
    read_nats_folder,
    read_nats_pbz2,
    read_nb201,
    read_nb201_pth,
)
from nasheur.groundtruth.nds import read_nds
from nasheur.safe_pickle import UnsafePickleError
from nasheur.spaces.darts_genotype import from_nds
from nasheur.spaces.nb201 import NB201Arch, to_str

# ============================================================================ NB101 fixtures


def crc32c_bitwise(data: bytes) -> int:
    """CRC32C one bit at a time (no table): an independent reference."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def pb_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def pb_field(number: int, wire: int, payload: bytes) -> bytes:
    return pb_varint(number << 3 | wire) + payload


def pb_double(number: int, value: float) -> bytes:
    return pb_field(number, 1, struct.pack("<d", value))


def pb_bytes(number: int, value: bytes) -> bytes:
    return pb_field(number, 2, pb_varint(len(value)) + value)


def evaluation_data(epoch, train, valid, test, *, path="", shuffled=False) -> bytes:
    fields = [
        pb_double(1, epoch),
        pb_double(2, 12.5 * epoch),
        pb_double(3, train),
        pb_double(4, valid),
        pb_double(5, test),
    ]
    if shuffled:  # protobuf allows any field order
        fields.reverse()
    out = b"".join(fields)
    if path:
        out += pb_bytes(6, path.encode())
    return out


def model_metrics(evals: list[bytes], params: int, total: float, *, unknown=False) -> bytes:
    out = b"".join(pb_bytes(1, e) for e in evals)
    if unknown:  # fields a reader must skip: varint, fixed32, fixed64, bytes
        out += pb_field(9, 0, pb_varint(300)) + pb_field(10, 5, b"\x01\x02\x03\x04")
        out += pb_double(11, 1.5) + pb_bytes(12, b"not for us")
    out += pb_field(2, 0, pb_varint(params)) + pb_double(3, total)
    return out


ADJ = "0110000000100000001000000010000000100000010000000"
OPS = "input,conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3,conv3x3-bn-relu,conv1x1-bn-relu,output"

HASH_A = "a" * 32  # three repeats at 108 epochs
HASH_B = "0123456789abcdef" * 2  # one repeat at 108, plus shorter budgets
HASH_C = "f" * 32  # only a 36-epoch run: not in the ground truth


def nb101_rows() -> list[tuple[str, int, float, float, int]]:
    """(hash, epochs, final valid, final test, params)."""
    return [
        (HASH_A, 108, 0.91, 0.90, 2_694_282),
        (HASH_B, 4, 0.50, 0.49, 1_000_000),
        (HASH_A, 108, 0.93, 0.92, 2_694_282),
        (HASH_B, 108, 0.80, 0.81, 1_000_000),
        (HASH_C, 36, 0.70, 0.71, 42),
        (HASH_A, 108, 0.92, 0.95, 2_694_282),
        (HASH_B, 12, 0.60, 0.61, 1_000_000),
    ]


def nb101_record(h, epochs, valid, test, params, i) -> bytes:
    evals = [
        evaluation_data(0.0, 0.1, 0.1, 0.1),
        evaluation_data(epochs / 2, 0.5, 0.5, 0.5, path=f"/ckpt/{i}/half"),
        evaluation_data(float(epochs), 0.99, valid, test, shuffled=bool(i % 2), path=""),
    ]
    metrics = model_metrics(evals, params, 1000.0 + i, unknown=bool(i % 3 == 0))
    row = [h, epochs, ADJ, OPS, base64.b64encode(metrics).decode("ascii")]
    return json.dumps(row).encode("utf-8")


def tfrecord_bytes(records: list[bytes]) -> tuple[bytes, list[int]]:
    out = bytearray()
    offsets = []
    for data in records:
        offsets.append(len(out))
        length = struct.pack("<Q", len(data))
        out += length + struct.pack("<I", _masked(crc32c_bitwise(length)))
        out += data + struct.pack("<I", _masked(crc32c_bitwise(data)))
    return bytes(out), offsets


def write_nb101(path: Path) -> list[int]:
    records = [nb101_record(*row, i) for i, row in enumerate(nb101_rows())]
    blob, offsets = tfrecord_bytes(records)
    path.write_bytes(blob)
    return offsets


@pytest.fixture
def nb101_file(tmp_path) -> Path:
    path = tmp_path / "nasbench_full.tfrecord"
    write_nb101(path)
    return path


# ============================================================================ NB101 tests


def test_crc32c_known_answers():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283
    rng = np.random.default_rng(0)
    chunks = [rng.bytes(int(n)) for n in rng.integers(0, 70, 64)] + [b"", b"x"]
    expected = [crc32c_bitwise(c) for c in chunks]
    assert [crc32c(c) for c in chunks] == expected
    for backend in ("numpy", "python", "auto"):
        _, many = crc32c_backend(backend)
        assert many(chunks).tolist() == expected, backend
    assert masked_crc32c(b"abc") == _masked(crc32c_bitwise(b"abc"))


def test_optional_crc_package_is_used_when_importable(monkeypatch):
    import sys
    import types

    fake = types.ModuleType("crc32c")
    calls = []

    def fake_crc(data, value=0):
        calls.append(len(data))
        return crc32c(data, value)

    fake.crc32c = fake_crc
    monkeypatch.setitem(sys.modules, "crc32c", fake)
    name, many = crc32c_backend("auto")
    assert name == "crc32c"
    assert many([b"123456789"]).tolist() == [0xE3069283] and calls


def test_nb101_ground_truth(nb101_file):
    res = read_nb101(nb101_file)
    gt = res.gt
    assert set(gt.keys) == {HASH_A, HASH_B}  # HASH_C has no 108-epoch run
    rows = [r for r in nb101_rows() if r[1] == 108]
    for h in (HASH_A, HASH_B):
        mine = [r for r in rows if r[0] == h]
        i = gt.index(h)
        assert gt[h] == pytest.approx(np.mean([r[3] for r in mine]), abs=1e-15)
        assert res.test[i] == pytest.approx(np.mean([r[3] for r in mine]), abs=1e-15)
        assert res.valid[i] == pytest.approx(np.mean([r[2] for r in mine]), abs=1e-15)
        assert res.repeats[i] == len(mine)
        assert res.params[i] == mine[0][4]
    assert res.records == len(nb101_rows())
    assert gt.meta["epochs"] == "108" and gt.meta["metric"] == "test"
    assert gt.meta["repeats"].startswith("1-3")

    valid = read_nb101(nb101_file, metric="valid", backend="python").gt
    assert valid[HASH_A] == pytest.approx(np.mean([0.91, 0.93, 0.92]), abs=1e-15)
    short = read_nb101(nb101_file, epochs=36).gt
    assert short.keys == (HASH_C,) and short[HASH_C] == pytest.approx(0.71)


def test_nb101_records_decode(nb101_file):
    recs = list(iter_nb101(nb101_file))
    assert [(r.module_hash, r.epochs) for r in recs] == [(r[0], r[1]) for r in nb101_rows()]
    first = recs[0]
    assert first.ops == tuple(OPS.split(","))
    assert first.matrix[0] == (0, 1, 1, 0, 0, 0, 0) and len(first.matrix) == 7
    m = first.metrics
    assert len(m.evaluation_data) == 3 and m.trainable_parameters == 2_694_282
    assert m.total_time == 1000.0
    final = m.evaluation_data[2]
    assert (final.current_epoch, final.validation_accuracy, final.test_accuracy) == (
        108.0,
        0.91,
        0.90,
    )
    assert recs[1].metrics.evaluation_data[1].checkpoint_path == "/ckpt/1/half"


def test_protobuf_decoder_edge_cases():
    neg = decode_model_metrics(pb_field(2, 0, pb_varint(-5)))
    assert neg.trainable_parameters == -5
    with pytest.raises(ValueError, match="wire type 3"):
        decode_model_metrics(pb_field(7, 3, b""))
    with pytest.raises(ValueError, match="truncated"):
        decode_model_metrics(pb_bytes(1, evaluation_data(1, 2, 3, 4))[:-3])
    with pytest.raises(ValueError):
        decode_model_metrics(pb_double(3, 1.0)[:-1])


def _flip(path: Path, at: int) -> None:
    blob = bytearray(path.read_bytes())
    blob[at] ^= 0x20
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("backend", ["numpy", "python"])
def test_tfrecord_corrupt_data_names_offset(tmp_path, backend):
    path = tmp_path / "bad.tfrecord"
    offsets = write_nb101(path)
    _flip(path, offsets[3] + 12 + 20)  # a byte inside record 3's data
    seen = []
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[3]}\b.*data CRC"):
        for off, _ in iter_tfrecords(path, backend=backend):
            seen.append(off)
    assert seen == offsets[:3]  # the good records before it were delivered
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[3]}\b"):
        read_nb101(path)


def test_tfrecord_corrupt_length_and_truncation(tmp_path):
    path = tmp_path / "len.tfrecord"
    for at, what in ((1, "past the end of the file"), (0, "still inside the file")):
        offsets = write_nb101(path)
        _flip(path, offsets[2] + at)  # the length itself changes (by 8192 or by 32 bytes)
        with pytest.raises(TFRecordError, match=rf"byte offset {offsets[2]}\b.*length CRC"):
            list(iter_tfrecords(path))
        assert what

    offsets = write_nb101(path)
    _flip(path, offsets[4] + 9)  # the stored length CRC
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[4]}\b.*length CRC"):
        list(iter_tfrecords(path))
    assert len(list(iter_tfrecords(path, verify=False))) == len(offsets)

    offsets = write_nb101(path)
    full = path.read_bytes()
    path.write_bytes(full[: offsets[-1] + 40])  # inside the last record
    with pytest.raises(TFRecordError, match=rf"truncated record at byte offset {offsets[-1]}\b"):
        read_nb101(path)
    path.write_bytes(full[: offsets[-1] + 5])  # inside the last header
    with pytest.raises(TFRecordError, match=rf"truncated record at byte offset {offsets[-1]}\b"):
        list(iter_tfrecords(path))


def test_tfrecord_record_that_is_not_nb101(tmp_path):
    path = tmp_path / "other.tfrecord"
    blob, offsets = tfrecord_bytes([nb101_record(*nb101_rows()[0], 0), b'{"not": "a list"}'])
    path.write_bytes(blob)
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[1]}\b"):
        read_nb101(path)


# ============================================================================ NB201 fixtures

ARCHS = [
    to_str(NB201Arch(ops))
    for ops in [(3, 3, 3, 3, 3, 3), (1, 0, 2, 4, 1, 3), (0, 0, 0, 0, 0, 0), (2, 2, 1, 0, 4, 3)]
]
SEEDS = {"cifar10-valid": (777, 888, 999), "cifar10": (777, 888, 999)}


def _acc(index: int, dataset: str, seed: int, name: str, hp: int) -> float:
    """A distinct percentage for each (arch, dataset, seed, eval name, budget)."""
    base = 50.0 + 7.0 * index + (3.0 if dataset == "cifar10" else 0.0) + seed / 1000.0
    return base + (1.0 if name == "x-valid" else 0.0) - (20.0 if hp == 12 else 0.0)


def results_count(index: int, dataset: str, seed: int, hp: int) -> dict:
    last = hp - 1
    names = ["ori-test"] if dataset == "cifar10" else ["x-valid", "ori-test"]
    evals = {f"{n}@{last}": _acc(index, dataset, seed, n, hp) for n in names}
    evals.update({f"{n}@{last // 2}": 1.0 for n in names})  # an earlier epoch: never used
    return {
        "name": ARCHS[index],
        "dataset": dataset,
        "seed": seed,
        "epochs": hp,
        "params": 0.1 * index,
        "flop": 1.0,
        "train_acc1es": {e: 10.0 for e in range(3)},
        "eval_names": list(evals),
        "eval_acc1es": evals,
        "eval_times": {k: 1.0 for k in evals},
        "net_state_dict": None,
    }


def arch_results(index: int, hp: int, n_seeds: dict | None = None) -> dict:
    n_seeds = n_seeds or {}
    seeds = {d: list(s[: n_seeds.get(d, len(s))]) for d, s in SEEDS.items()}
    all_results = {(d, s): results_count(index, d, s, hp) for d, ss in seeds.items() for s in ss}
    all_results[("cifar100", 777)] = results_count(index, "cifar100", 777, hp)
    return {
        "arch_index": index,
        "arch_str": ARCHS[index],
        "all_results": all_results,
        "dataset_seed": {**seeds, "cifar100": [777]},
        "clear_net_done": True,
    }


def expected_nb201(dataset: str, name: str, n_seeds: dict | None = None) -> list[float]:
    n_seeds = n_seeds or {}
    out = []
    for i in range(len(ARCHS)):
        seeds = SEEDS[dataset][: n_seeds.get(dataset, 3) if i == 1 else 3]
        out.append(float(np.mean([_acc(i, dataset, s, name, 200) for s in seeds])) / 100.0)
    return out


# arch 1 has a single seed of cifar10-valid in the fixtures
FEWER = {"cifar10-valid": 1}


def nb201_dict() -> dict:
    infos = {
        i: {
            "less": arch_results(i, 12),
            "full": arch_results(i, 200, FEWER if i == 1 else None),
        }
        for i in range(len(ARCHS))
    }
    # a numpy scalar: the .pth reader allows these (nothing else)
    infos[0]["full"]["all_results"][("cifar10", 777)]["params"] = np.float64(1.5)
    return {"meta_archs": list(ARCHS), "arch2infos": infos, "evaluated_indexes": list(range(4))}


def nats_infos(i: int) -> OrderedDict:
    return OrderedDict(
        [("12", arch_results(i, 12)), ("200", arch_results(i, 200, FEWER if i == 1 else None))]
    )


def write_pbz2(path: Path, obj) -> Path:
    with bz2.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


@pytest.fixture
def nb201_pth(tmp_path) -> Path:
    import torch

    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(nb201_dict(), path)
    return path


@pytest.fixture
def nats_pbz2(tmp_path) -> Path:
    obj = {
        "meta_archs": list(ARCHS),
        "arch2infos": {i: nats_infos(i) for i in range(len(ARCHS))},
        "evaluated_indexes": set(range(len(ARCHS))),
    }
    return write_pbz2(tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2", obj)


@pytest.fixture
def nats_dir(tmp_path) -> Path:
    folder = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    write_pbz2(folder / "meta.pickle.pbz2", {"meta_archs": list(ARCHS), "evaluated_indexes": []})
    for i in range(len(ARCHS)):
        infos = nats_infos(i)
        if i == 2:  # tolerated variant: the ArchResults one level further down
            infos["200"] = {"arch_results": infos["200"]}
        write_pbz2(folder / f"{i:06d}.pickle.pbz2", infos)
    return folder


# ============================================================================ NB201 tests


@pytest.mark.parametrize(
    ("dataset", "metric", "name"),
    [
        ("cifar10", None, "ori-test"),
        ("cifar10-valid", None, "x-valid"),
        ("cifar10-valid", "test", "ori-test"),
    ],
)
def test_nb201_pth(nb201_pth, dataset, metric, name):
    res = read_nb201_pth(nb201_pth, dataset=dataset, metric=metric)
    assert res.gt.keys == tuple(ARCHS)
    expected = expected_nb201(dataset, name, FEWER)
    np.testing.assert_allclose(res.gt.acc, expected, rtol=0, atol=1e-15)
    assert res.gt.meta["epochs"] == "200" and res.gt.meta["dataset"] == dataset
    assert res.gt.meta["split"] == f"eval_acc1es[{name}@199]"
    if dataset == "cifar10-valid":
        assert res.seeds.tolist() == [3, 1, 3, 3]
        assert res.gt.meta["seeds_per_arch"].startswith("1-3")


def test_nb201_default_is_cifar10_test_and_never_the_12_epoch_entry(nb201_pth):
    gt = read_nb201_pth(nb201_pth).gt
    assert gt.meta["dataset"] == "cifar10" and gt.meta["metric"] == "test"
    np.testing.assert_allclose(gt.acc, expected_nb201("cifar10", "ori-test"), atol=1e-15)
    less = [
        np.mean([_acc(i, "cifar10", s, "ori-test", 12) for s in SEEDS["cifar10"]]) / 100
        for i in range(len(ARCHS))
    ]
    assert not np.isclose(gt.acc, less).any()


def test_pth_containers_plain_fast_path_and_tensor_fallback(tmp_path, monkeypatch):
    import torch

    zip_pth = tmp_path / "zip.pth"
    legacy_pth = tmp_path / "legacy.pth"
    torch.save(nb201_dict(), zip_pth)
    torch.save(nb201_dict(), legacy_pth, _use_new_zipfile_serialization=False)
    tensor_obj = nb201_dict()
    tensor_obj["arch2infos"][0]["full"]["all_results"][("cifar10", 888)]["flop"] = torch.ones(2)
    tensor_pth = tmp_path / "tensor.pth"
    torch.save(tensor_obj, tensor_pth)
    expected = expected_nb201("cifar10", "ori-test")

    real_load = torch.load
    calls = []

    def counting_load(*args, **kwargs):
        assert kwargs.get("weights_only") is True
        calls.append(args[0])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    for path in (zip_pth, legacy_pth, tensor_pth):
        gt = read_nb201_pth(path).gt
        np.testing.assert_allclose(gt.acc, expected, rtol=0, atol=1e-15)
    # plain data is read without torch's (slow) unpickler; the tensor file needs it
    assert calls == [tensor_pth]
    flop = load_pth(tensor_pth)["arch2infos"][0]["full"]["all_results"][("cifar10", 888)]["flop"]
    assert torch.equal(flop, torch.ones(2))


def test_nb201_refuses_12_epoch_only_and_bad_protocols(tmp_path):
    import torch

    obj = nb201_dict()
    del obj["arch2infos"][2]["full"]
    torch.save(obj, tmp_path / "less.pth")
    with pytest.raises(GroundTruthError, match=r"architecture 2: no 200-epoch entry.*12-epoch"):
        read_nb201_pth(tmp_path / "less.pth")

    obj = nb201_dict()
    obj["arch2infos"][1]["full"] = arch_results(1, 12)  # labelled full, trained 12 epochs
    torch.save(obj, tmp_path / "short.pth")
    with pytest.raises(GroundTruthError, match=r"architecture 1.*12 epochs, not 200"):
        read_nb201_pth(tmp_path / "short.pth")

    with pytest.raises(GroundTruthError, match="metric 'valid' for dataset 'cifar10'"):
        read_nb201_pth(tmp_path / "short.pth", dataset="cifar10", metric="valid")
    with pytest.raises(GroundTruthError, match="cifar100"):
        read_nb201_pth(tmp_path / "short.pth", dataset="cifar100")

    # accuracies stored as fractions (not as released) would each sit far below chance
    obj = nb201_dict()
    for infos in obj["arch2infos"].values():
        for run in infos["full"]["all_results"].values():
            run["eval_acc1es"] = {k: v / 100 for k, v in run["eval_acc1es"].items()}
    torch.save(obj, tmp_path / "fractions.pth")
    with pytest.raises(GroundTruthError, match=r"fractions\.pth: every eval_acc1es.* at most 1"):
        read_nb201_pth(tmp_path / "fractions.pth")
    # the bound itself: every value exactly 1 (100% as a fraction) is the whole-file case too
    for infos in obj["arch2infos"].values():
        for run in infos["full"]["all_results"].values():
            run["eval_acc1es"] = dict.fromkeys(run["eval_acc1es"], 1.0)
    torch.save(obj, tmp_path / "ones.pth")
    with pytest.raises(GroundTruthError, match=r"ones\.pth: every eval_acc1es.* at most 1"):
        read_nb201_pth(tmp_path / "ones.pth")


def _nats_with(tmp_path, change) -> Path:
    infos = {i: nats_infos(i) for i in range(len(ARCHS))}
    change(infos)
    return write_pbz2(
        tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2",
        {"meta_archs": list(ARCHS), "arch2infos": infos},
    )


@pytest.mark.parametrize(
    ("dataset", "name"), [("cifar10", "ori-test"), ("cifar10-valid", "x-valid")]
)
def test_nb201_one_run_in_fractions_among_percent_is_refused(tmp_path, dataset, name):
    """One seed's accuracy as a fraction would drag its architecture's mean down unseen."""
    key = f"{name}@199"

    def one_run(infos):
        run = infos[3]["200"]["all_results"][(dataset, 888)]
        run["eval_acc1es"][key] /= 100

    path = _nats_with(tmp_path, one_run)
    where = f"{path}: architecture 3, {dataset} seed 888: eval_acc1es['{key}'] = "
    with pytest.raises(GroundTruthError, match=re.escape(where) + r"0\.\d+% is below 5%.*fraction"):
        read_nats_pbz2(path, dataset=dataset)

    # at chance, as NB201's 341 cells without a path score (9.712% on x-valid, 10% on the
    # CIFAR-10 test set), is a real accuracy
    def at_chance(infos):
        for seed in SEEDS[dataset]:
            infos[0]["200"]["all_results"][(dataset, seed)]["eval_acc1es"][key] = 9.712

    gt = read_nats_pbz2(_nats_with(tmp_path, at_chance), dataset=dataset).gt
    assert gt[ARCHS[0]] == pytest.approx(0.09712, abs=1e-15)


def test_nb201_a_seed_listed_twice_is_refused(tmp_path):
    def twice(infos):
        infos[0]["200"]["dataset_seed"]["cifar10"] = [777, 777, 777, 888]

    path = _nats_with(tmp_path, twice)
    where = f"{path}: architecture 0: dataset_seed['cifar10'] = [777, 777, 777, 888] lists "
    with pytest.raises(GroundTruthError, match=re.escape(where + "seed 777 twice")):
        read_nats_pbz2(path)
    # the other dataset's seeds are not read, so they are not checked
    assert len(read_nats_pbz2(path, dataset="cifar10-valid").gt) == len(ARCHS)


def test_nats_single_file_and_folder(nats_pbz2, nats_dir):
    for dataset, name in (("cifar10", "ori-test"), ("cifar10-valid", "x-valid")):
        expected = expected_nb201(dataset, name, FEWER)
        one = read_nats_pbz2(nats_pbz2, dataset=dataset).gt
        many = read_nats_folder(nats_dir, dataset=dataset).gt
        for gt in (one, many):
            assert gt.keys == tuple(ARCHS)
            np.testing.assert_allclose(gt.acc, expected, rtol=0, atol=1e-15)
            assert gt.meta["benchmark"] == "nats-tss" and gt.meta["epochs"] == "200"


def test_nats_folder_missing_file(nats_dir):
    (nats_dir / "000003.pickle.pbz2").unlink()
    with pytest.raises(GroundTruthError, match=r"000003\.pickle\.pbz2 \(architecture 3\)"):
        read_nats_folder(nats_dir)


def test_nats_folder_progress_and_its_meta_file(nats_dir):
    calls = []
    read_nats_folder(nats_dir, progress=lambda done, total: calls.append((done, total)))
    n = len(ARCHS)
    assert calls == [(i, n) for i in range(1, n + 1)]
    meta = nats_dir / "meta.pickle.pbz2"
    with pytest.raises(
        GroundTruthError,
        match=r"meta\.pickle\.pbz2: no 'arch2infos' dict \(a -simple folder's meta file\? pass "
        r"the folder itself\)",
    ):
        read_nats_pbz2(meta)
    meta.unlink()
    with pytest.raises(
        GroundTruthError, match=re.escape(f"{nats_dir}: no meta.pickle.pbz2 in this folder")
    ):
        read_nats_folder(nats_dir)


def test_nats_budgets_keyed_by_ints_and_a_wrapper_beside_other_entries(tmp_path):
    # the budgets as ints (12 / 200), and architecture 2's ArchResults one level down after
    # a dict that is not one: the 200-epoch results are found and read either way
    def change(infos):
        for i, entry in infos.items():
            infos[i] = {12: entry["12"], 200: entry["200"]}
        infos[2][200] = {"info": {"note": "no results"}, "arch_results": infos[2][200]}

    path = _nats_with(tmp_path, change)
    for dataset, name in (("cifar10", "ori-test"), ("cifar10-valid", "x-valid")):
        gt = read_nats_pbz2(path, dataset=dataset).gt
        expected = expected_nb201(dataset, name, FEWER)
        np.testing.assert_allclose(gt.acc, expected, rtol=0, atol=1e-15)


def test_read_nb201_picks_the_reader_by_the_path(nb201_pth, nats_pbz2, nats_dir, tmp_path):
    expected = expected_nb201("cifar10-valid", "x-valid", FEWER)
    for path, benchmark in ((nb201_pth, "nb201"), (nats_pbz2, "nats-tss"), (nats_dir, "nats-tss")):
        gt = read_nb201(path, dataset="cifar10-valid").gt
        assert gt.meta["benchmark"] == benchmark
        np.testing.assert_allclose(gt.acc, expected, rtol=0, atol=1e-15)
    # the suffix in capitals, as detect_format (which picked nb201-pth) reads it
    upper = tmp_path / "NAS-BENCH-201-V1_1-096897.PTH"
    upper.write_bytes(nb201_pth.read_bytes())
    assert read_nb201(upper, dataset="cifar10-valid").gt.meta["benchmark"] == "nb201"
    other = tmp_path / "NAS-Bench-201-v1_1-096897.pickle"
    other.write_bytes(nb201_pth.read_bytes())
    with pytest.raises(GroundTruthError, match=r"not a NAS-Bench-201 \.pth, a NATS-Bench"):
        read_nb201(other)


class _Payload:
    """Unpickling this would call _mark (a stand-in for arbitrary code)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (_mark, (self.marker,))


def _mark(marker: str) -> None:
    Path(marker).write_text("executed")


class _OsSystem:
    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_pickles_asking_for_other_globals_are_refused(tmp_path):
    marker = tmp_path / "marker"
    bad = write_pbz2(
        tmp_path / "evil.pickle.pbz2",
        {"meta_archs": list(ARCHS), "x": _OsSystem(f"touch {marker}")},
    )
    with pytest.raises(UnsafePickleError, match=r"evil\.pickle\.pbz2.*(posix|os|nt)\.system"):
        load_pbz2(bad)
    with pytest.raises(UnsafePickleError):
        read_nats_pbz2(bad)
    assert not marker.exists()


def test_pth_with_a_custom_object_is_refused(tmp_path):
    import torch

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    obj = nb201_dict()
    obj["x"] = _Payload(str(marker))
    torch.save(obj, path)
    with pytest.raises(UnsafePickleError, match=r"evil\.pth.*_mark"):
        load_pth(path)
    with pytest.raises(UnsafePickleError):
        load_ground_truth(path)
    assert not marker.exists()
    assert not (tmp_path / ".nasheur-gt-cache").exists()  # no cache folder left for it


# ============================================================================ NDS fixtures

G1 = {
    "normal": [
        ["sep_conv_3x3", 0],
        ["sep_conv_5x5", 1],
        ["skip_connect", 0],
        ["dil_conv_3x3", 2],
        ["max_pool_3x3", 1],
        ["avg_pool_3x3", 3],
        ["sep_conv_3x3", 4],
        ["skip_connect", 2],
    ],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [
        ["max_pool_3x3", 0],
        ["max_pool_3x3", 1],
        ["skip_connect", 2],
        ["max_pool_3x3", 1],
        ["max_pool_3x3", 0],
        ["skip_connect", 2],
        ["skip_connect", 2],
        ["max_pool_3x3", 1],
    ],
    "reduce_concat": [2, 3, 4, 5],
}


def _swapped(genotype: dict) -> dict:
    """The same network: the two (op, input) pairs of every node in the other order."""
    out = json.loads(json.dumps(genotype))
    for cell in ("normal", "reduce"):
        pairs = out[cell]
        out[cell] = [p for k in range(0, 8, 2) for p in (pairs[k + 1], pairs[k])]
    return out


def _variant(genotype: dict, op: str) -> dict:
    out = json.loads(json.dumps(genotype))
    out["normal"][0][0] = op
    return out


G2 = _variant(G1, "dil_conv_5x5")
G3 = _variant(G1, "avg_pool_3x3")


def job(genotype: dict, errors: list[float], epochs: int = 100) -> dict:
    return {
        "net": {"genotype": genotype, "width": 16, "depth": 8, "aux": False},
        "optim": {"max_ep": epochs, "base_lr": 0.1},
        "test_ep_top1": errors,
        "train_ep_top1": [e - 5 for e in errors],
    }


NDS_JOBS = [
    job(G1, [80.0, 40.0, 7.5]),
    job(G2, [70.0, 30.0, 9.25]),
    job(_swapped(G1), [75.0, 35.0, 6.5]),
    job(G3, [90.0, 50.0, 12.0]),
]


def expected_nds() -> dict[str, tuple[float, int]]:
    k1, k2, k3 = (from_nds(g).key() for g in (G1, G2, G3))
    return {k1: ((92.5 + 93.5) / 200, 2), k2: (0.9075, 1), k3: (0.88, 1)}


@pytest.fixture
def nds_list(tmp_path) -> Path:
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps(NDS_JOBS))
    return path


@pytest.fixture
def nds_dict(tmp_path) -> Path:
    path = tmp_path / "DARTS_topmid.json"
    path.write_text(json.dumps({"top": NDS_JOBS[:2], "mid": NDS_JOBS[2:]}))
    return path


# ============================================================================ NDS tests


def test_nds_repeats_are_averaged(nds_list, nds_dict):
    assert from_nds(G1).key() == from_nds(_swapped(G1)).key()
    expected = expected_nds()
    for path in (nds_list, nds_dict):
        res = read_nds(path)
        # in the order each genotype first appears (a dict's lists in the dict's order)
        assert res.gt.keys == tuple(expected)
        for key, (value, repeats) in expected.items():
            assert res.gt[key] == pytest.approx(value, abs=1e-15)
            assert res.repeats[res.gt.index(key)] == repeats
        assert res.jobs == 4
        assert res.gt.meta["epochs"] == "100" and res.gt.meta["space"] == "darts_nds"


def test_nds_json_saved_with_a_bom_is_read(nds_list):
    nds_list.write_bytes(b"\xef\xbb\xbf" + nds_list.read_bytes())
    assert read_nds(nds_list).jobs == 4


def test_nds_bad_jobs_are_named(tmp_path):
    jobs = json.loads(json.dumps(NDS_JOBS))
    del jobs[2]["test_ep_top1"]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(jobs))
    with pytest.raises(GroundTruthError, match="job 2 has no test_ep_top1"):
        read_nds(path)
    jobs = json.loads(json.dumps(NDS_JOBS))
    del jobs[1]["net"]["genotype"]
    path.write_text(json.dumps({"top": jobs[:1], "mid": jobs[1:]}))
    with pytest.raises(GroundTruthError, match=r"job mid\[0\] has no net.genotype"):
        read_nds(path)
    jobs = json.loads(json.dumps(NDS_JOBS))
    jobs[3]["net"]["genotype"]["normal"][0][0] = "conv_7x7"
    path.write_text(json.dumps(jobs))
    with pytest.raises(GroundTruthError, match=r"job 3: bad genotype.*conv_7x7"):
        read_nds(path)
    # errors stored as fractions (not as NDS released them) would all read as ~99.9%
    jobs = json.loads(json.dumps(NDS_JOBS))
    for job in jobs:
        job["test_ep_top1"] = [e / 100 for e in job["test_ep_top1"]]
    path.write_text(json.dumps(jobs))
    with pytest.raises(GroundTruthError, match=r"a\.json: every last test_ep_top1 is at most 1"):
        read_nds(path)


@pytest.mark.parametrize("name", ["DARTS_in.json", "DARTS_lr-wd_in.json", "darts_IN.JSON"])
def test_nds_imagenet_results_are_refused_by_their_name(tmp_path, name):
    # NDS's ImageNet jobs carry no dataset field; ranking a CIFAR-10 super-net against them
    # would run to the end without an error
    path = tmp_path / name
    path.write_text(json.dumps(NDS_JOBS))
    with pytest.raises(GroundTruthError, match=rf"{re.escape(name)}: NDS's ImageNet results"):
        read_nds(path)
    (tmp_path / "DARTS_fix-w-d.json").write_text(json.dumps(NDS_JOBS))
    assert read_nds(tmp_path / "DARTS_fix-w-d.json").jobs == 4


@pytest.mark.parametrize("label", ["0", "2", "3"])
def test_nds_one_job_in_fractions_among_percent_is_refused(tmp_path, label):
    jobs = json.loads(json.dumps(NDS_JOBS))
    i = int(label)
    jobs[i]["test_ep_top1"] = [e / 100 for e in jobs[i]["test_ep_top1"]]
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps(jobs))
    last = NDS_JOBS[i]["test_ep_top1"][-1] / 100
    where = f"{path}: job {label}: the last test_ep_top1 {last:g} is at most 1"
    with pytest.raises(GroundTruthError, match=re.escape(where) + ".*fraction among percentages"):
        read_nds(path)
    # the bound itself: no DARTS network errs 1% or less
    jobs = json.loads(json.dumps(NDS_JOBS))
    jobs[i]["test_ep_top1"][-1] = 1.0
    path.write_text(json.dumps({"top": jobs}))
    with pytest.raises(GroundTruthError, match=re.escape(f"job top[{label}]: the last")):
        read_nds(path)
    jobs[i]["test_ep_top1"][-1] = 1.5
    path.write_text(json.dumps(jobs))
    assert read_nds(path).jobs == 4


# ============================================================================ detection, cache


def test_detect_format(nb101_file, nb201_pth, nats_pbz2, nats_dir, nds_list, tmp_path):
    assert detect_format(nb101_file) == "nb101"
    assert detect_format(nb201_pth) == "nb201-pth"
    assert detect_format(nats_pbz2) == "nats-pbz2"
    assert detect_format(nats_dir) == "nats-dir"
    assert detect_format(nds_list) == "nds-json"
    # by content when the name says nothing
    for src, name in (
        (nb101_file, "a.bin"),
        (nats_pbz2, "b.bin"),
        (nds_list, "c.bin"),
        (nb201_pth, "d.bin"),
    ):
        (tmp_path / name).write_bytes(src.read_bytes())
    assert [detect_format(tmp_path / n) for n in ("a.bin", "b.bin", "c.bin", "d.bin")] == [
        "nb101",
        "nats-pbz2",
        "nds-json",
        "nb201-pth",
    ]
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(GroundTruthError, match=r"meta\.pickle\.pbz2"):
        detect_format(tmp_path / "empty_dir")


def test_folder_sha256_is_over_names_and_contents(nats_dir):
    first = source_sha256(nats_dir)
    assert first == source_sha256(nats_dir)
    (nats_dir / "000001.pickle.pbz2").rename(nats_dir / "000001.pickle.pbz2.bak")
    assert source_sha256(nats_dir) != first


def test_load_ground_truth_caches(nats_pbz2, monkeypatch):
    from nasheur.groundtruth import convert, nb201

    seen_keys = []
    first = load_ground_truth(nats_pbz2, dataset="cifar10-valid", validate_key=seen_keys.append)
    assert seen_keys == list(ARCHS)
    np.testing.assert_allclose(first.acc, expected_nb201("cifar10-valid", "x-valid", FEWER))
    cached = cache_path(nats_pbz2, dataset="cifar10-valid")
    assert cached.is_file() and cached.parent == nats_pbz2.parent / ".nasheur-gt-cache"
    assert first.meta["sha256"] == source_sha256(nats_pbz2)
    assert first.meta["source"] == nats_pbz2.name

    def boom(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(nb201, "read_nats_pbz2", boom)
    monkeypatch.setattr(nb201, "load_pbz2", boom)
    monkeypatch.setattr(convert, "_file_sha256", boom)
    again = load_ground_truth(nats_pbz2, dataset="cifar10-valid")
    assert again.keys == first.keys and np.array_equal(again.acc, first.acc)
    assert again.meta["sha256"] == first.meta["sha256"]

    # another protocol is another cache entry; a changed source is converted again
    with pytest.raises(AssertionError, match="read again"):
        load_ground_truth(nats_pbz2, dataset="cifar10")
    st = nats_pbz2.stat()
    os.utime(nats_pbz2, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="read again"):
        load_ground_truth(nats_pbz2, dataset="cifar10-valid")


def test_a_simple_folder_with_a_file_replaced_keeping_its_size_is_converted_again(
    nats_dir, monkeypatch
):
    from nasheur.groundtruth import convert, nb201

    load_ground_truth(nats_dir, dataset="cifar10-valid")
    old = nats_dir / "000000.pickle.pbz2"
    newest = max(f.stat().st_mtime_ns for f in nats_dir.iterdir())
    # `cp -p` of another file of the same size from a backup: its mtime older than the newest
    old.write_bytes(bytes(b ^ 1 for b in old.read_bytes()))
    os.utime(old, ns=(newest - 10**9, newest - 10**9))

    def boom(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(nb201, "read_nats_folder", boom)
    monkeypatch.setattr(convert, "_file_sha256", boom)
    with pytest.raises(AssertionError, match="read again"):
        load_ground_truth(nats_dir, dataset="cifar10-valid")


def test_a_cache_of_another_converter_version_is_not_read(nds_list, monkeypatch):
    # a corrected reader must not go on serving the table an earlier one cached
    from nasheur.groundtruth import convert

    first = load_ground_truth(nds_list)
    assert list(load_ground_truth(nds_list).acc) == list(first.acc)  # the cache, as is
    monkeypatch.setattr(convert, "CONVERTER_VERSION", convert.CONVERTER_VERSION + 1)
    reads = []
    read = convert._read_format
    monkeypatch.setattr(convert, "_read_format", lambda *a, **k: reads.append(a) or read(*a, **k))
    assert list(load_ground_truth(nds_list).acc) == list(first.acc) and len(reads) == 1


def test_processes_side_by_side_convert_a_file_once(nds_list, monkeypatch):
    # the sweeps of one table, launched at once, each check the ground truth before they
    # submit: one reads the benchmark file, the others wait for its table
    import threading

    from nasheur.groundtruth import convert

    reads, inside = [], threading.Event()
    read = convert._read_format

    def slow_read(*args, **kwargs):
        reads.append(args)
        inside.set()
        time.sleep(0.3)  # long enough for the other caller to reach the conversion
        return read(*args, **kwargs)

    monkeypatch.setattr(convert, "_read_format", slow_read)
    got = []
    first = threading.Thread(target=lambda: got.append(load_ground_truth(nds_list)))
    first.start()
    assert inside.wait(10)
    got.append(load_ground_truth(nds_list))  # meanwhile, in another "process"
    first.join()
    assert len(reads) == 1
    assert [list(g.acc) for g in got] == [list(got[0].acc)] * 2
    assert [p.name for p in (nds_list.parent / ".nasheur-gt-cache").iterdir()] == [
        cache_path(nds_list).name
    ]  # no lock file left


@pytest.mark.parametrize("fails", ["read", "write"])
def test_a_failed_conversion_leaves_a_cache_folder_that_was_there_before(
    nds_list, tmp_path, monkeypatch, fails
):
    # ground_truth.cache_dir: the user's own folder, empty; only a folder that the conversion
    # made goes again when it is left empty
    import errno

    from nasheur.groundtruth import convert

    mine = tmp_path / "my-cache"
    mine.mkdir()

    def refused(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert, "_read_format" if fails == "read" else "write_table", refused)
    with (
        contextlib.suppress(OSError),
        pytest.warns(UserWarning) if fails == "write" else contextlib.nullcontext(),
    ):
        load_ground_truth(nds_list, cache_dir=mine)
    assert mine.is_dir() and list(mine.iterdir()) == []
    made = tmp_path / "made-here"
    with (
        contextlib.suppress(OSError),
        pytest.warns(UserWarning) if fails == "write" else contextlib.nullcontext(),
    ):
        load_ground_truth(nds_list, cache_dir=made)
    assert not made.exists()


def test_load_ground_truth_cache_dirs(nds_list, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # an explicit cache_dir
    gt = load_ground_truth(nds_list, cache_dir=tmp_path / "mine")
    assert len(list((tmp_path / "mine").glob("DARTS.json.*.gt.csv"))) == 1
    # a source folder that must not be written: the user cache instead
    ro = tmp_path / "ro"
    ro.mkdir()
    src = ro / "DARTS.json"
    src.write_bytes(nds_list.read_bytes())
    ro.chmod(0o555)
    try:
        again = load_ground_truth(src)
    finally:
        ro.chmod(0o755)
    assert not (ro / ".nasheur-gt-cache").exists()
    assert len(list((tmp_path / "xdg" / "nasheur" / "gt").glob("DARTS.json.*.gt.csv"))) == 1
    assert set(again.keys) == set(gt.keys)


@pytest.mark.parametrize(
    ("source_mode", "table_mode", "folder_mode"),
    [
        (0o644, 0o644, 0o755),  # a benchmark file others may read: so may they its table
        (0o640, 0o640, 0o750),  # its group
        (0o600, 0o600, 0o700),  # nobody else: the umask's private modes stay
    ],
)
def test_a_cache_table_is_as_readable_as_its_benchmark_file(
    nds_list, source_mode, table_mode, folder_mode
):
    # a group shares $NASHEUR_DATA; the member who converts first has umask 077
    nds_list.chmod(source_mode)
    before = os.umask(0o077)
    try:
        load_ground_truth(nds_list)
    finally:
        os.umask(before)
    folder = nds_list.parent / ".nasheur-gt-cache"
    (table,) = folder.glob("DARTS.json.*.gt.csv")
    assert (table.stat().st_mode & 0o777, folder.stat().st_mode & 0o777) == (
        table_mode,
        folder_mode,
    )


def test_a_table_converted_by_hand_is_as_readable_as_its_benchmark_file(nds_list):
    # `python -m nasheur.groundtruth convert` writes beside the source, in the shared
    # $NASHEUR_DATA: as readable as the cache table of the same conversion
    from nasheur.groundtruth.convert import convert_file

    nds_list.chmod(0o644)
    before = os.umask(0o077)
    try:
        out, _ = convert_file(nds_list)
    finally:
        os.umask(before)
    assert out.parent == nds_list.parent and out.stat().st_mode & 0o777 == 0o644


def test_load_ground_truth_tables_and_options(nb101_file, tmp_path):
    gt = load_ground_truth(nb101_file, metric="valid")
    assert gt.meta["metric"] == "valid" and gt.meta["benchmark"] == "nb101"
    # a CSV table is read directly; a header that names another protocol is refused
    table = cache_path(nb101_file, metric="valid")
    assert read_table(table).keys == gt.keys
    copy = tmp_path / "copy.csv"
    copy.write_bytes(table.read_bytes())
    assert load_ground_truth(copy).keys == gt.keys
    with pytest.raises(GroundTruthError, match=r"metric 'valid'.*metric 'test' was asked"):
        load_ground_truth(copy, metric="test")
    with pytest.raises(GroundTruthError, match="CSV tables only"):
        load_ground_truth(nb101_file, column="accuracy")
    with pytest.raises(GroundTruthError, match="cifar10 only"):
        load_ground_truth(nb101_file, dataset="cifar10-valid")

    def reject(key):
        raise ValueError("not in this space")

    with pytest.raises(GroundTruthError, match="rejected: not in this space"):
        load_ground_truth(nb101_file, validate_key=reject)


def test_reading_nb101_needs_no_tensorflow(nb101_file):
    # spec section 7: the authors' code imported TensorFlow for every run; a subprocess, so
    # that no other test's imports count
    import subprocess
    import sys

    code = (
        "import sys; from nasheur.groundtruth import load_ground_truth; "
        f"gt = load_ground_truth({str(nb101_file)!r}, cache_dir={str(nb101_file.parent)!r}); "
        "assert len(gt) > 0; print(sorted(m for m in sys.modules if m.split('.')[0] "
        "in ('tensorflow', 'tf', 'nasbench')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ============================================================================ audit additions


def test_reading_a_benchmark_leaves_the_garbage_collector_as_it_was(nats_pbz2, nb201_pth):
    # the readers pause the cyclic GC while unpickling; the job that reads them needs it back
    import gc

    assert gc.isenabled()
    read_nats_pbz2(nats_pbz2)
    read_nb201_pth(nb201_pth)
    assert gc.isenabled()
    gc.disable()
    try:
        load_pbz2(nats_pbz2)
        assert not gc.isenabled()  # nor turned on where the caller had it off
    finally:
        gc.enable()


def test_nds_entries_and_errors_outside_the_format_are_refused(tmp_path):
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps({"top": NDS_JOBS[:2], "meta": {"version": 1}}))
    with pytest.raises(
        GroundTruthError, match=r"DARTS\.json: the entry 'meta' is not a list of jobs"
    ):
        read_nds(path)
    # a negative error would be an accuracy above 100%
    jobs = json.loads(json.dumps(NDS_JOBS))
    jobs[1]["test_ep_top1"][-1] = -5.0
    path.write_text(json.dumps(jobs))
    with pytest.raises(
        GroundTruthError, match=r"job 1: the last test_ep_top1 -5\.0 is not an error"
    ):
        read_nds(path)


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ([50.0, 150.0], r"job 1: the last test_ep_top1 150\.0 is not an error in %"),
        ([50.0, True], r"job 1: the last test_ep_top1 True is not a number"),
        ([50.0, "7.5"], r"job 1: the last test_ep_top1 '7\.5' is not a number"),
        ([], r"job 1 has no test_ep_top1"),
        # past float's range: refused by name, not an OverflowError
        ([50.0, 10**400], r"job 1: the last test_ep_top1 1000.* is not an error in %"),
        ([50.0, float("inf")], r"job 1: the last test_ep_top1 inf is not a number"),
    ],
    ids=["above 100", "a bool", "text", "empty", "a 401-digit int", "infinite"],
)
def test_nds_last_errors_that_are_not_percentages_are_refused(tmp_path, curve, message):
    jobs = json.loads(json.dumps(NDS_JOBS))
    jobs[1]["test_ep_top1"] = curve
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps(jobs))
    with pytest.raises(GroundTruthError, match=r"DARTS\.json: " + message):
        read_nds(path)


def test_nds_epochs_are_max_ep_of_every_job_or_the_curve_lengths_of_every_job(tmp_path):
    path = tmp_path / "DARTS.json"
    jobs = [
        job(G1, [80.0, 7.5], epochs=100),
        job(G2, [70.0, 40.0, 9.25], epochs=50),
        job(G3, [90.0, 50.0, 30.0, 12.0], epochs=80),
    ]
    path.write_text(json.dumps(jobs))
    assert read_nds(path).gt.meta["epochs"] == "50-100"
    # one job without max_ep: the curves' lengths (2, 3, 4) for all, not the others' max_ep
    del jobs[1]["optim"]["max_ep"]
    path.write_text(json.dumps(jobs))
    assert read_nds(path).gt.meta["epochs"] == "2-4"
    # no epoch count: neither an error nor a guess (1e400 is read as an infinity)
    for none in (True, "100", 1e400, float("nan"), 99.5, 0):
        jobs[1]["optim"]["max_ep"] = none
        path.write_text(json.dumps(jobs))
        assert read_nds(path).gt.meta["epochs"] == "2-4", none
    jobs[1]["optim"]["max_ep"] = 50.0  # a whole float is a count
    path.write_text(json.dumps(jobs))
    assert read_nds(path).gt.meta["epochs"] == "50-100"


def test_nds_without_jobs_or_with_only_errors_of_at_most_1_is_refused(tmp_path):
    path = tmp_path / "DARTS.json"
    for empty in ([], {"top": []}):
        path.write_text(json.dumps(empty))
        with pytest.raises(GroundTruthError, match=r"DARTS\.json: no jobs"):
            read_nds(path)
    # three repeats erring exactly 1% each: every error at most 1, though their mean
    # accuracy, 0.99 three times over divided by 3, rounds to just below 0.99
    path.write_text(json.dumps([job(g, [50.0, 1.0]) for g in (G1, _swapped(G1), G1)]))
    with pytest.raises(GroundTruthError, match=r"job 0: the last test_ep_top1 1 is at most 1"):
        read_nds(path)


def test_folder_sha256_is_the_documented_digest(nats_dir):
    # sha256 over "<relative posix name>\0<file sha256>\n" of its files in sorted name order
    import hashlib

    lines = b"".join(
        f"{f.name}\0{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode()
        for f in sorted(nats_dir.iterdir())
    )
    assert source_sha256(nats_dir) == hashlib.sha256(lines).hexdigest()


def test_detect_format_by_content_for_any_suffix_case(nds_dict, tmp_path):
    # a dict of job lists ({top, mid}) is NDS too, and a suffix in capitals is the suffix
    (tmp_path / "c.bin").write_bytes(nds_dict.read_bytes())
    assert detect_format(tmp_path / "c.bin") == "nds-json"
    table = tmp_path / "GT.CSV"
    table.write_text("# made by: J\u00f6rg\n# unit: fraction\nkey,accuracy\na,0.5\n")
    assert detect_format(table) == "table"


def test_nds_has_no_validation_metric(nds_list):
    with pytest.raises(GroundTruthError, match=r"NDS DARTS records test errors only"):
        load_ground_truth(nds_list, metric="valid")
    assert not (nds_list.parent / ".nasheur-gt-cache").exists()


def test_keys_are_checked_when_the_cache_cannot_be_written(nds_list, monkeypatch):
    from nasheur.groundtruth import convert

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    def reject(key):
        raise ValueError("not in this space")

    monkeypatch.setattr(convert, "write_table", disk_full)
    with (
        pytest.warns(UserWarning, match="could not write the ground-truth cache"),
        pytest.raises(GroundTruthError, match=r"DARTS\.json: key .* rejected: not in this space"),
    ):
        load_ground_truth(nds_list, validate_key=reject)
    with pytest.warns(UserWarning, match="converting .* again next time"):
        assert len(load_ground_truth(nds_list, validate_key=lambda k: None)) == 3


def test_the_fingerprint_of_a_converted_table_is_its_own_checksum(nb101_file, tmp_path):
    # the table's '# sha256:' line is its source's; a job evaluated against the table records
    # the table's own
    import hashlib

    from nasheur.groundtruth.convert import convert_file, source_fingerprint

    out, gt = convert_file(nb101_file, tmp_path / "nb101.csv")
    assert gt.meta["sha256"] == hashlib.sha256(nb101_file.read_bytes()).hexdigest()
    from nasheur import __version__

    assert gt.meta["converter"] == f"nasheur.groundtruth {__version__}"  # what wrote it
    table = read_table(out)
    fingerprint = source_fingerprint(out, table.meta)
    assert fingerprint["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert source_fingerprint(nb101_file, gt.meta)["sha256"] == gt.meta["sha256"]


def test_a_cache_folder_inside_a_simple_folder_is_not_part_of_its_checksum(nats_dir):
    first = source_sha256(nats_dir)
    inner = nats_dir / ".nasheur-gt-cache"
    inner.mkdir()
    (inner / "meta.pickle.pbz2.1-2.cifar10.gt.csv").write_text("# unit: fraction\n")
    assert source_sha256(nats_dir) == first


def test_a_job_caches_its_table_under_the_home_a_tilde_names(nds_list, tmp_path, monkeypatch):
    # ground_truth.cache_dir=~/gt-cache given quoted reaches the job with its tilde, as
    # ground_truth.path may: a folder named "~" in the job's folder would be a surprise
    from nasheur.config import Config, GroundTruthConfig, SearchSpaceConfig, SpaceName
    from nasheur.job import read_ground_truth
    from nasheur.spaces import get_space

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cfg = Config(
        search_space=SearchSpaceConfig(name=SpaceName.darts_nds),
        ground_truth=GroundTruthConfig(path=str(nds_list), cache_dir="~/gt-cache"),
    )
    read_ground_truth(cfg, get_space("darts_nds"))
    assert len(list((tmp_path / "home" / "gt-cache").glob("DARTS.json.*.gt.csv"))) == 1
    assert not (tmp_path / "~").exists()
