"""Format details of the ground-truth readers: NDS concat lists, the NB201 CSV layout's
metric, and NB101's evaluation count, TFRecord framing, protobuf decoding and record checks
(fixtures from the loader tests' own writers)."""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import types

import numpy as np
import pytest

from nasheur.groundtruth import GroundTruthError, load_ground_truth, nb101, read_table
from nasheur.groundtruth.convert import convert_file, default_output
from nasheur.groundtruth.nb101 import (
    EvaluationData,
    TFRecordError,
    crc32c_backend,
    decode_model_metrics,
    iter_nb101,
    iter_tfrecords,
    read_nb101,
)
from nasheur.groundtruth.nds import read_nds
from nasheur.spaces.darts_genotype import from_nds, parse_key
from tests.test_groundtruth_loaders import (
    ADJ,
    G1,
    HASH_A,
    NDS_JOBS,
    OPS,
    crc32c_bitwise,
    evaluation_data,
    model_metrics,
    nb101_record,
    pb_bytes,
    pb_double,
    pb_field,
    pb_varint,
    tfrecord_bytes,
)

# ============================================================================ NDS concat


BAD_CONCATS = [
    pytest.param(5, id="int"),
    pytest.param("2345", id="string"),
    pytest.param([2, "3"], id="string-item"),
    pytest.param([2.0, 3.0], id="float-items"),
    pytest.param([True, 3], id="bool-item"),
    pytest.param([1, 2], id="cell-input"),
    pytest.param([2, 6], id="past-last-node"),
    pytest.param([2, 2], id="repeated"),
    pytest.param([], id="empty"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("which", ["normal_concat", "reduce_concat"])
@pytest.mark.parametrize("concat", BAD_CONCATS)
def test_nds_bad_concat_names_file_and_job(tmp_path, which, concat):
    jobs = json.loads(json.dumps(NDS_JOBS))
    jobs[1]["net"]["genotype"][which] = concat
    path = tmp_path / "DARTS.json"
    path.write_text(json.dumps(jobs))
    with pytest.raises(ValueError, match=r"must|integer") as parsed:
        from_nds(jobs[1]["net"]["genotype"])
    assert not isinstance(parsed.value, TypeError)
    where = f"{path}: job 1: bad genotype: {which}"
    with pytest.raises(GroundTruthError, match=re.escape(where)):
        read_nds(path)


def test_nds_other_concat_lists_are_read(tmp_path):
    # any order of a subset of the nodes 2..5 is valid; the key sorts it
    genotype = json.loads(json.dumps(G1))
    genotype["normal_concat"] = [5, 3]
    genotype["reduce_concat"] = [5, 4, 3, 2]
    g = from_nds(genotype)
    assert g.normal.concat == (5, 3) and g.reduce.concat == (5, 4, 3, 2)
    key = g.key()
    assert "concat=3,5" in key and key.count("concat=") == 1  # the reduce cell has the default
    assert parse_key(key).normal.concat == (3, 5)


# ============================================================================ NB201 CSV metric

# percent values whose valid and test columns differ, so that a mix-up shows
NB201_ROWS = [
    ("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|", 81.5, 80.25),
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|none~1|none~2|", 10.0, 12.5),
]


@pytest.fixture
def nb201_csv(tmp_path):
    path = tmp_path / "nb201.csv"
    path.write_text(
        "index,arch_str,valid_acc,test_acc\n"
        + "".join(f"{i},{a},{v},{t}\n" for i, (a, v, t) in enumerate(NB201_ROWS))
    )
    return path


def _expected(col: int) -> list[float]:
    return [row[col] / 100 for row in NB201_ROWS]


@pytest.mark.parametrize(
    ("metric", "column", "col"),
    [(None, None, 1), ("valid", None, 1), ("test", None, 2), ("test", "test_acc", 2)],
)
def test_nb201_layout_metric_picks_column(nb201_csv, metric, column, col):
    gt = load_ground_truth(nb201_csv, metric=metric, column=column)
    assert gt.keys == tuple(row[0] for row in NB201_ROWS)
    np.testing.assert_allclose(gt.acc, _expected(col), rtol=0, atol=1e-15)
    name = "valid" if col == 1 else "test"
    assert gt.meta["metric"] == name and gt.meta["column"] == f"{name}_acc"


def test_nb201_layout_metric_conflicts(nb201_csv):
    with pytest.raises(GroundTruthError, match=r"nb201\.csv:1: column 'valid_acc'.*metric 'test'"):
        load_ground_truth(nb201_csv, metric="test", column="valid_acc")
    with pytest.raises(GroundTruthError, match=r"nb201\.csv:1: metric 'train'"):
        read_table(nb201_csv, metric="train")


def test_nb201_layout_converted_table_records_the_column(nb201_csv, tmp_path):
    out, _ = convert_file(nb201_csv, tmp_path / "out.csv", metric="test")
    header = [line for line in out.read_text().splitlines() if line.startswith("#")]
    assert "# column: test_acc" in header and "# metric: test" in header
    again = load_ground_truth(out, metric="test")
    np.testing.assert_allclose(again.acc, _expected(2), rtol=0, atol=1e-15)
    with pytest.raises(GroundTruthError, match=r"metric 'test'.*metric 'valid' was asked"):
        load_ground_truth(out, metric="valid")
    # converting for each metric does not overwrite the other's default output
    assert default_output(nb201_csv, metric="test") != default_output(nb201_csv, metric="valid")


def test_own_layout_keeps_its_column(tmp_path):
    # the project's layout has one accuracy: metric is checked against its header, not mapped;
    # a header that names none cannot honour one (a job would record a protocol never applied)
    path = tmp_path / "gt.csv"
    path.write_text("# unit: percent\nkey,accuracy\na,50\n")
    assert load_ground_truth(path)["a"] == 0.5
    for key, value in (("metric", "test"), ("dataset", "cifar10")):
        with pytest.raises(
            GroundTruthError,
            match=rf"{key} '{value}' was asked for \(ground_truth\.{key}=.*does not say",
        ):
            load_ground_truth(path, **{key: value})
    path.write_text("# unit: percent\n# metric: test\nkey,accuracy\na,50\n")
    assert load_ground_truth(path, metric="test")["a"] == 0.5
    assert "column" not in read_table(path).meta
    path.write_text("# unit: percent\n# metric: valid\nkey,accuracy\na,50\n")
    with pytest.raises(GroundTruthError, match=r"metric 'valid'.*metric 'test' was asked"):
        load_ground_truth(path, metric="test")


def test_shared_nb201_table_metric(shared_nb201_csv):
    first = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    # the values of its first row (tests/../shared/data/nb201-cifar10-valid-200ep.csv)
    assert load_ground_truth(shared_nb201_csv, metric="test")[first] == pytest.approx(0.8152)
    assert load_ground_truth(shared_nb201_csv)[first] == pytest.approx(0.8198266666)


# ============================================================================ NB101 evaluations


def _record(evals: list[bytes], h: str = HASH_A, epochs: int = 108) -> bytes:
    metrics = model_metrics(evals, 1234, 99.0)
    return json.dumps([h, epochs, ADJ, OPS, base64.b64encode(metrics).decode()]).encode()


def _evals(n: int) -> list[bytes]:
    # evaluation k has test accuracy 0.1 * (k + 1): index 2 reads 0.3, the last 0.1 * n
    return [evaluation_data(float(k), 0.5, 0.05 * (k + 1), 0.1 * (k + 1)) for k in range(n)]


@pytest.mark.parametrize("n", [0, 1, 2, 4, 5])
def test_nb101_wrong_evaluation_count_is_named(tmp_path, n):
    good = nb101_record(HASH_A, 108, 0.91, 0.90, 1234, 0)
    blob, offsets = tfrecord_bytes([good, _record(_evals(n))])
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(blob)
    where = f"{path}: record at byte offset {offsets[1]} ({HASH_A}) has {n} evaluations"
    with pytest.raises(TFRecordError, match=re.escape(where) + ".*expected 3"):
        read_nb101(path)


def test_nb101_reads_index_2_of_three(tmp_path):
    blob, _ = tfrecord_bytes([_record(_evals(3)), _record(_evals(3)[::-1])])
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(blob)
    res = read_nb101(path)
    # index 2 is 0.3 in the first run and 0.1 in the reversed one
    assert res.gt[HASH_A] == pytest.approx((0.3 + 0.1) / 2, abs=1e-15)
    assert res.valid[0] == pytest.approx((0.15 + 0.05) / 2, abs=1e-15)
    assert res.repeats.tolist() == [2]
    assert res.gt.meta["split"] == "evaluation_data[2].test_accuracy"


@pytest.mark.parametrize(("dropped", "name"), [(5, "test_accuracy"), (4, "validation_accuracy")])
def test_nb101_final_evaluation_without_an_accuracy_is_refused(tmp_path, dropped, name):
    # proto2 leaves an absent double at 0.0: read on, it would be a 0% ground truth
    values = {1: 108.0, 2: 1350.0, 3: 0.99, 4: 0.91, 5: 0.90}
    final = b"".join(pb_double(k, v) for k, v in values.items() if k != dropped)
    good = nb101_record(HASH_A, 108, 0.91, 0.90, 1234, 0)
    blob, offsets = tfrecord_bytes([good, _record([*_evals(2), final])])
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(blob)
    where = f"{path}: record at byte offset {offsets[1]} ({HASH_A}): its final evaluation"
    with pytest.raises(TFRecordError, match=re.escape(where) + rf".* has no {name}$"):
        read_nb101(path)
    # an earlier evaluation may lack it: only the final one is read
    blob, _ = tfrecord_bytes([_record([final, *_evals(3)[1:]])])
    path.write_bytes(blob)
    assert read_nb101(path).gt[HASH_A] == pytest.approx(0.3)


def test_nb101_a_fourth_repeat_is_refused(tmp_path):
    # NAS-Bench-101 trains each cell 3 times per budget: a 4th run is a duplicated record
    rows = [nb101_record(HASH_A, 108, 0.91, 0.90, 1234, i) for i in range(4)]
    rows.insert(2, nb101_record(HASH_A, 36, 0.8, 0.8, 1234, 9))  # another budget's run
    blob, offsets = tfrecord_bytes(rows)
    path = tmp_path / "nasbench_full.tfrecord"
    path.write_bytes(blob)
    where = f"{path}: record at byte offset {offsets[4]} ({HASH_A}): a repeat beyond the 3 runs"
    with pytest.raises(TFRecordError, match=re.escape(where) + r".*\(108 epochs\)"):
        read_nb101(path)
    blob, _ = tfrecord_bytes(rows[:4])  # three at 108 epochs and one at 36
    path.write_bytes(blob)
    res = read_nb101(path)
    assert res.repeats.tolist() == [3] and res.gt[HASH_A] == pytest.approx(0.90)


# ============================================================================ audit additions


def _nb101_file(tmp_path, records: list[bytes]):
    blob, offsets = tfrecord_bytes(records)
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(blob)
    return path, offsets


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (_record(_evals(3), epochs="108"), "epochs '108' is not an integer"),
        # equal to the budget, but no integer: refused like 36.0 is, not read as 108
        (_record(_evals(3), epochs=108.0), "epochs 108.0 is not an integer"),
        (_record(_evals(3), h="abc123"), "'abc123' is not an MD5 module hash"),
        (nb101_record(HASH_A, 108, 0.91, 93.5, 1234, 1), "test=93.5, valid=0.91 are not fractions"),
        (nb101_record(HASH_A, 108, 0.91, 0.90, 999, 1), "999 trainable parameters, but an earlier"),
    ],
    ids=["epochs as text", "epochs as a float", "short hash", "percent", "other params"],
)
def test_nb101_records_a_reader_must_not_take(tmp_path, bad, said):
    good = nb101_record(HASH_A, 108, 0.91, 0.90, 1234, 0)
    path, offsets = _nb101_file(tmp_path, [good, bad])
    with pytest.raises(
        TFRecordError, match=re.escape(f"record at byte offset {offsets[1]}")
    ) as info:
        read_nb101(path)
    assert said in str(info.value)


def test_nb101_without_the_budget_or_with_another_metric_is_refused(tmp_path):
    path, _ = _nb101_file(tmp_path, [nb101_record(HASH_A, 36, 0.8, 0.8, 1234, 0)])
    with pytest.raises(GroundTruthError, match=r"no record trained for 108 epochs"):
        read_nb101(path)
    assert read_nb101(path, epochs=36).gt[HASH_A] == pytest.approx(0.8)
    with pytest.raises(ValueError, match=r"metric 'train': one of test, valid"):
        read_nb101(path, epochs=36, metric="train")


def test_nb101_adjacency_of_other_characters_is_refused(tmp_path):
    good = nb101_record(HASH_A, 108, 0.91, 0.90, 1234, 0)
    row = json.loads(good)
    row[2] = row[2].replace("1", "2", 1)  # 49 characters, 7 x 7, but a '2'
    path, offsets = _nb101_file(tmp_path, [good, json.dumps(row).encode()])
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[1]}: adjacency .*V-vertex"):
        list(iter_nb101(path))


def test_protobuf_fields_that_run_past_their_message_are_refused():
    # an unknown field whose length runs past the end of its message
    with pytest.raises(ValueError, match="field 12 runs past the end"):
        decode_model_metrics(pb_bytes(12, b"abc")[:-1])
    # a truncated double at the end of an evaluation, with more of the outer message after
    # it: its bytes are not the double's
    evaluation = pb_double(1, 108.0) + pb_field(5, 1, b"\x00\x00")
    outer = pb_bytes(1, evaluation) + pb_field(2, 0, pb_varint(1234)) + pb_double(3, 5.0)
    with pytest.raises(ValueError, match="EvaluationData field 5 is truncated"):
        decode_model_metrics(outer)


def test_nb101_an_unknown_field_in_the_place_of_test_accuracy_is_no_test_accuracy(tmp_path):
    # fields 1-4, then field 7 (unknown, a double) where field 5 usually is
    final = b"".join(pb_double(k, v) for k, v in ((1, 108.0), (2, 1.0), (3, 0.99), (4, 0.91)))
    final += pb_double(7, 0.5)
    decoded = decode_model_metrics(pb_bytes(1, final)).evaluation_data[0]
    assert (decoded.validation_accuracy, decoded.test_accuracy) == (0.91, 0.0)  # proto2 default
    path, _ = _nb101_file(tmp_path, [_record([*_evals(2), final])])
    with pytest.raises(TFRecordError, match=r"final evaluation \(index 2\) has no test_accuracy"):
        read_nb101(path)


# ============================================================================ NB101 framing


def _three_runs() -> list[bytes]:
    return [nb101_record(HASH_A, 108, 0.91, 0.90, 1234, i) for i in range(3)]


def _offsets_until_error(path, **kwargs) -> tuple[list[int], TFRecordError]:
    seen = []
    with pytest.raises(TFRecordError) as info:
        for off, _ in iter_tfrecords(path, **kwargs):
            seen.append(off)
    return seen, info.value


@pytest.mark.parametrize("backend", ["numpy", "python"])
def test_an_empty_tfrecord_file_has_no_records(tmp_path, backend):
    # the batch left to check at the end of the file is empty: numpy's CRC of no chunks
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(iter_tfrecords(path, backend=backend)) == []
    assert crc32c_backend(backend)[1]([]).tolist() == []
    with pytest.raises(GroundTruthError, match=r"empty\.tfrecord: no record trained for 108"):
        read_nb101(path, backend=backend)


@pytest.mark.parametrize("verify", [True, False])
def test_a_record_cut_inside_its_crc_says_how_many_bytes_follow(tmp_path, verify):
    records = _three_runs()
    path, offsets = _nb101_file(tmp_path, records)
    blob = path.read_bytes()
    path.write_bytes(blob[:-2])  # the last data CRC lost 2 of its 4 bytes
    n = len(records[2])
    seen, err = _offsets_until_error(path, verify=verify)
    assert str(err) == (
        f"{path}: truncated record at byte offset {offsets[2]}: it declares {n} data bytes "
        f"plus a 4-byte CRC, but only {n + 2} bytes follow"
    )
    assert seen == offsets[:2]  # the whole records before it are delivered


@pytest.mark.parametrize("verify", [True, False])
def test_a_length_past_the_end_is_a_crc_error_only_when_verifying(tmp_path, verify):
    records = _three_runs()
    path, offsets = _nb101_file(tmp_path, records)
    blob = path.read_bytes()
    bad = bytearray(blob)
    bad[offsets[1] + 1] ^= 0x20  # record 1's length grows by 8192: past the end of the file
    path.write_bytes(bytes(bad))
    seen, err = _offsets_until_error(path, verify=verify)
    assert seen == offsets[:1]
    if verify:  # the stored length CRC says the length itself is damaged
        assert "corrupt record at byte offset" in str(err) and "length CRC" in str(err)
    else:  # no CRC is read: what is left is a record the file cannot hold
        declared = len(records[1]) + 8192
        assert f"it declares {declared} data bytes" in str(err)
    assert f"byte offset {offsets[1]}:" in str(err)


def test_records_before_a_truncated_header_are_delivered(tmp_path):
    path, offsets = _nb101_file(tmp_path, _three_runs())
    blob = path.read_bytes()
    path.write_bytes(blob[: offsets[2] + 5])
    seen, err = _offsets_until_error(path)
    assert seen == offsets[:2]
    assert f"byte offset {offsets[2]}: 5 header bytes where 12 are needed" in str(err)


def test_a_file_that_shrinks_while_read_names_the_record(tmp_path, monkeypatch):
    # the size taken at the start promises the whole record; the read then comes up short
    path, offsets = _nb101_file(tmp_path, _three_runs())
    blob = path.read_bytes()
    path.write_bytes(blob[: offsets[2] + 40])
    monkeypatch.setattr(os.path, "getsize", lambda p: len(blob))
    seen, err = _offsets_until_error(path)
    assert seen == offsets[:2]
    assert (
        str(err) == f"{path}: truncated record at byte offset {offsets[2]}: the file ends inside it"
    )


def test_every_record_is_delivered_once_across_batches(tmp_path, monkeypatch):
    # batches of 2: records 0-1, 2-3, 4; a record left in a checked batch would come twice
    records = [nb101_record(HASH_A, 108, 0.91, 0.90, 1234, i) for i in range(5)]
    path, offsets = _nb101_file(tmp_path, records)
    blob = path.read_bytes()
    monkeypatch.setattr(nb101, "_BATCH", 2)
    got = list(iter_tfrecords(path))
    assert [off for off, _ in got] == offsets and [d for _, d in got] == records
    bad = bytearray(blob)
    bad[offsets[3] + 12 + 20] ^= 0x20  # data of record 3, in the second batch
    path.write_bytes(bytes(bad))
    seen, err = _offsets_until_error(path)
    assert seen == offsets[:3] and "data CRC" in str(err)


class _ByteCount:
    def __init__(self) -> None:
        self.n = 0

    def update(self, data: bytes) -> None:
        self.n += len(data)


def test_a_suspiciously_long_record_has_its_length_checked_before_it_is_read(tmp_path, monkeypatch):
    # every length counts as suspicious here: records read one by one, each once
    records = _three_runs()
    path, offsets = _nb101_file(tmp_path, records)
    blob = path.read_bytes()
    monkeypatch.setattr(nb101, "_SUSPICIOUS_LENGTH", 0)
    assert [d for _, d in iter_tfrecords(path)] == records
    # a bad length CRC stops the read at the header: the data it declares is never read
    bad = bytearray(blob)
    bad[offsets[1] + 9] ^= 0x20  # the stored length CRC of record 1
    path.write_bytes(bytes(bad))
    counted = _ByteCount()
    seen, err = _offsets_until_error(path, hasher=counted)
    assert seen == offsets[:1] and "length CRC" in str(err)
    assert counted.n == offsets[1] + 12


def test_crc_backend_choice_and_its_fallbacks(monkeypatch):
    with pytest.raises(ValueError, match="unknown CRC backend 'fast'"):
        crc32c_backend("fast")
    monkeypatch.setitem(sys.modules, "crc32c", None)  # neither package importable
    monkeypatch.setitem(sys.modules, "google_crc32c", None)
    assert crc32c_backend("auto")[0] == "numpy"
    with pytest.raises(ValueError, match="neither the crc32c nor the google_crc32c"):
        crc32c_backend("package")
    # a package that fails the check value is not trusted
    broken = types.ModuleType("crc32c")
    broken.crc32c = lambda data, value=0: 0
    monkeypatch.setitem(sys.modules, "crc32c", broken)
    assert crc32c_backend("auto")[0] == "numpy"
    google = types.ModuleType("google_crc32c")
    google.value = crc32c_bitwise
    monkeypatch.setitem(sys.modules, "google_crc32c", google)
    name, many = crc32c_backend("package")
    assert name == "google_crc32c" and many([b"123456789"]).tolist() == [0xE3069283]


# ============================================================================ NB101 protobuf


@pytest.mark.parametrize(
    "params",
    [
        128,  # varint 0x80 0x01: a first byte of exactly 0x80 continues
        2_694_282,
        2**31 - 1,
        -(2**31),  # int32's minimum: ten bytes on the wire, sign-extended
        -1,
    ],
)
def test_trainable_parameters_as_int32(params):
    assert decode_model_metrics(pb_field(2, 0, pb_varint(params))).trainable_parameters == params


@pytest.mark.parametrize(
    ("blob", "said"),
    [
        (pb_field(2, 0, b"\x80"), "truncated varint"),  # the value's last byte continues
        (b"\x0a", "truncated varint"),  # an evaluation's tag, then the end: no length
        (b"\x80", "truncated varint"),  # a tag that continues past the end
        (pb_field(2, 0, b"\xff" * 10 + b"\x01"), "varint longer than 10 bytes"),
        (pb_double(0, 1.0), "field number 0 in ModelMetrics"),
        (pb_bytes(1, pb_double(0, 1.0)), "field number 0 in EvaluationData"),
        # a checkpoint path longer than its evaluation, with more of the outer message after
        (
            pb_bytes(1, pb_double(1, 1.0) + pb_field(6, 2, pb_varint(10) + b"abc"))
            + pb_field(2, 0, pb_varint(1234)),
            "checkpoint_path is truncated",
        ),
    ],
    ids=["value", "length", "tag", "eleven-bytes", "field-0", "eval-field-0", "path"],
)
def test_malformed_protobuf_is_refused(blob, said):
    with pytest.raises(ValueError, match=said):
        decode_model_metrics(blob)


def test_evaluations_decode_in_any_field_order_and_length():
    # shuffled: the fields in reverse order (no fast path); the path makes the evaluation
    # exactly 128 bytes (a two-byte length, 0x80 0x01) and then 301
    for path in ("p" * 81, "q" * 253):
        ev = evaluation_data(108.0, 0.99, 0.91, 0.90, path=path, shuffled=True)
        assert len(ev) == 47 + len(path) + (len(path) >= 128)
        (got,) = decode_model_metrics(pb_bytes(1, ev)).evaluation_data
        assert got == EvaluationData(108.0, 1350.0, 0.99, 0.91, 0.90, path)
    # a checkpoint path is bookkeeping: a byte that is not UTF-8 does not refuse the run
    ev = pb_double(5, 0.9) + pb_bytes(6, b"/ckpt/\xff")
    (got,) = decode_model_metrics(pb_bytes(1, ev)).evaluation_data
    assert (got.test_accuracy, got.checkpoint_path) == (0.9, "/ckpt/\ufffd")


def test_fields_with_two_byte_tags_are_skipped():
    # field 16 (tag 0x80 0x01) and field 2047 in both messages: unknown, skipped
    unknown = pb_field(16, 0, pb_varint(5)) + pb_bytes(2047, b"later")
    ev = evaluation_data(108.0, 0.99, 0.91, 0.90) + unknown
    m = decode_model_metrics(unknown + pb_bytes(1, ev) + pb_field(2, 0, pb_varint(1234)))
    assert m.trainable_parameters == 1234
    assert m.evaluation_data == (EvaluationData(108.0, 1350.0, 0.99, 0.91, 0.90),)


def test_a_known_field_number_with_another_wire_type_is_an_unknown_field():
    # as protobuf's parsers do: the field is skipped, the declared field keeps its default
    ev = b"".join(pb_double(k, v) for k, v in ((1, 108.0), (2, 1.0), (3, 0.99), (4, 0.91)))
    ev += pb_field(5, 0, pb_varint(1)) + pb_field(6, 0, pb_varint(200))
    m = decode_model_metrics(pb_field(1, 0, pb_varint(0)) + pb_bytes(1, ev))
    assert m.evaluation_data == (EvaluationData(108.0, 1.0, 0.99, 0.91, 0.0, ""),)
    assert decode_model_metrics(pb_double(2, 7.0)).trainable_parameters == 0


# ============================================================================ NB101 records


def _row(**change) -> bytes:
    row = json.loads(nb101_record(HASH_A, 108, 0.91, 0.90, 1234, 1))
    for i, name in enumerate(("hash", "epochs", "adjacency", "operations", "metrics")):
        if name in change:
            row[i] = change[name]
    return json.dumps(row).encode()


GOOD_B64 = json.loads(_row())[4]

# records no NAS-Bench-101 reader can decode, for either reader
UNDECODABLE = [
    pytest.param(b"[1, 2", "is not UTF-8 JSON", id="not-json"),
    pytest.param(b'["\xff"]', "is not UTF-8 JSON", id="not-utf8"),
    pytest.param(
        json.dumps([HASH_A, 108, ADJ, OPS]).encode(),
        "is not the NAS-Bench-101 list",
        id="four-items",
    ),
    pytest.param(
        _row(metrics=base64.b64encode(pb_double(3, 1.0)[:-1]).decode()),
        "bad ModelMetrics",
        id="cut-protobuf",
    ),
    pytest.param(_row(metrics=12345), "bad ModelMetrics", id="metrics-number"),
    # a character outside base64 is an error, not skipped over
    pytest.param(
        _row(metrics=GOOD_B64[:4] + "!" + GOOD_B64[4:]), "bad ModelMetrics", id="not-base64"
    ),
]


@pytest.mark.parametrize(("bad", "said"), UNDECODABLE)
@pytest.mark.parametrize(
    "reader", [read_nb101, lambda p: list(iter_nb101(p))], ids=["read", "iter"]
)
def test_undecodable_records_name_the_file_and_offset(tmp_path, reader, bad, said):
    path, offsets = _nb101_file(tmp_path, [_row(), bad])
    where = f"{path}: record at byte offset {offsets[1]}"
    with pytest.raises(TFRecordError, match=re.escape(where) + ".*" + said):
        reader(path)


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (_row(hash="g" * 32), f"{'g' * 32!r} is not an MD5 module hash"),  # 32, not hex
        (_row(hash=12345), "12345 is not an MD5 module hash"),
        (nb101_record(HASH_A, 108, 93.5, 0.90, 1234, 1), "test=0.9, valid=93.5 are not fractions"),
        (nb101_record(HASH_A, 108, 0.91, -0.1, 1234, 1), "test=-0.1, valid=0.91 are not fractions"),
        (nb101_record(HASH_A, 108, float("nan"), 0.9, 1234, 1), "valid=nan are not fractions"),
    ],
    ids=["hash-not-hex", "hash-number", "valid-percent", "test-negative", "valid-nan"],
)
def test_nb101_values_a_ground_truth_cannot_hold(tmp_path, bad, said):
    path, offsets = _nb101_file(tmp_path, [_row(), bad])
    with pytest.raises(
        TFRecordError, match=re.escape(f"record at byte offset {offsets[1]}")
    ) as info:
        read_nb101(path)
    assert said in str(info.value)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"epochs": 108.7}, "epochs 108.7 is not an integer"),  # int() would read it as 108
        ({"epochs": "108"}, "epochs '108' is not an integer"),
        ({"epochs": None}, "epochs None is not an integer"),
        ({"epochs": True}, "epochs True is not an integer"),
        ({"hash": 12345}, "12345 is not an MD5 module hash"),
        ({"hash": "x" * 32}, "is not an MD5 module hash"),
    ],
    ids=["epochs-float", "epochs-str", "epochs-null", "epochs-bool", "hash-int", "hash-not-hex"],
)
def test_nb101_records_whose_hash_or_epochs_are_of_another_kind(tmp_path, change, said):
    path, offsets = _nb101_file(tmp_path, [_row(), _row(**change)])
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[1]}: .*{re.escape(said)}"):
        list(iter_nb101(path))
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[1]}: .*{re.escape(said)}"):
        read_nb101(path)


@pytest.mark.parametrize(
    ("adjacency", "operations"),
    [
        (ADJ + "0", OPS),  # 50 characters: no V x V matrix
        (ADJ, OPS.rsplit(",", 1)[0]),  # 7 x 7, but 6 operations
        ("", []),  # no vertex at all
        (ADJ, OPS.split(",")),  # operations as a list, not the comma-separated string
    ],
    ids=["not-square", "ops-short", "empty", "ops-list"],
)
def test_nb101_cells_that_are_no_v_vertex_cell(tmp_path, adjacency, operations):
    path, offsets = _nb101_file(
        tmp_path, [_row(), _row(adjacency=adjacency, operations=operations)]
    )
    with pytest.raises(TFRecordError, match=rf"byte offset {offsets[1]}: adjacency .*V-vertex"):
        list(iter_nb101(path))
