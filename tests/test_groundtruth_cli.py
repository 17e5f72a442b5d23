"""``python -m nasheur.groundtruth convert|show`` on every official format (fixtures made here)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasheur.groundtruth import read_table, source_sha256, write_table
from tests.test_groundtruth_loaders import (
    ARCHS,
    FEWER,
    HASH_A,
    HASH_B,
    NDS_JOBS,
    expected_nb201,
    expected_nds,
    nats_infos,
    nb101_rows,
    nb201_dict,
    write_nb101,
    write_pbz2,
)


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nasheur.groundtruth", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nb101_expected(metric: str) -> dict[str, float]:
    col = 3 if metric == "test" else 2
    rows = [r for r in nb101_rows() if r[1] == 108]
    return {h: float(np.mean([r[col] for r in rows if r[0] == h])) for h in (HASH_A, HASH_B)}


def _make(kind: str, tmp_path: Path) -> Path:
    if kind == "nb101":
        path = tmp_path / "nasbench_only108.tfrecord"
        write_nb101(path)
    elif kind == "nb201":
        import torch

        path = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
        torch.save(nb201_dict(), path)
    elif kind == "nats":
        path = write_pbz2(
            tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2",
            {
                "meta_archs": list(ARCHS),
                "arch2infos": {i: nats_infos(i) for i in range(len(ARCHS))},
                "evaluated_indexes": list(range(len(ARCHS))),
            },
        )
    elif kind == "nats-dir":
        path = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
        path.mkdir()
        write_pbz2(path / "meta.pickle.pbz2", {"meta_archs": list(ARCHS)})
        for i in range(len(ARCHS)):
            write_pbz2(path / f"{i:06d}.pickle.pbz2", nats_infos(i))
    elif kind == "nds":
        path = tmp_path / "DARTS.json"
        path.write_text(json.dumps({"top": NDS_JOBS[:1], "mid": NDS_JOBS[1:]}))
    else:
        raise AssertionError(kind)
    return path


# kind, extra args, default output suffix, expected header, expected {key: accuracy}
CASES = [
    (
        "nb101",
        ["--metric", "valid"],
        ".valid.gt.csv",
        {"benchmark": "nb101", "space": "nb101", "metric": "valid", "epochs": "108"},
        lambda: _nb101_expected("valid"),
    ),
    (
        "nb201",
        ["--dataset", "cifar10-valid"],
        ".cifar10-valid.gt.csv",
        {"benchmark": "nb201", "space": "nb201", "dataset": "cifar10-valid", "epochs": "200"},
        lambda: dict(zip(ARCHS, expected_nb201("cifar10-valid", "x-valid", FEWER), strict=True)),
    ),
    (
        "nats",
        [],
        ".cifar10.gt.csv",
        {"benchmark": "nats-tss", "space": "nb201", "dataset": "cifar10", "metric": "test"},
        lambda: dict(zip(ARCHS, expected_nb201("cifar10", "ori-test"), strict=True)),
    ),
    (
        "nats-dir",
        ["--dataset", "cifar10-valid", "--metric", "test"],
        ".cifar10-valid-test.gt.csv",
        {"benchmark": "nats-tss", "dataset": "cifar10-valid", "metric": "test"},
        lambda: dict(zip(ARCHS, expected_nb201("cifar10-valid", "ori-test", FEWER), strict=True)),
    ),
    (
        "nds",
        [],
        ".test.gt.csv",
        {"benchmark": "nds-darts", "space": "darts_nds", "epochs": "100", "repeats": "1-2"},
        lambda: {k: v for k, (v, _) in expected_nds().items()},
    ),
]


@pytest.mark.parametrize(
    ("kind", "args", "suffix", "header", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_convert_each_format(tmp_path, kind, args, suffix, header, expected):
    src = _make(kind, tmp_path)
    done = run_cli("convert", src, *args)
    assert done.returncode == 0, done.stderr
    out = src.with_name(src.name + suffix)
    assert out.is_file() and str(out) in done.stdout

    gt = read_table(out)
    want = expected()
    assert set(gt.keys) == set(want)
    for key, value in want.items():
        assert gt[key] == pytest.approx(value, abs=1e-15)
    meta = gt.meta
    assert meta["source"] == src.name and meta["unit"] == "fraction"
    assert meta["sha256"] == (source_sha256(src) if src.is_dir() else _sha(src))
    for name, value in header.items():
        assert meta[name] == value or meta[name].startswith(value), (name, meta[name])
    assert "seeds" in meta or "repeats" in meta
    if kind.startswith("nb201") or kind.startswith("nats"):
        assert meta["seeds"] == "777,888,999"


def test_convert_out_and_show(tmp_path):
    src = _make("nb101", tmp_path)
    out = tmp_path / "tables" / "nb101.csv"
    done = run_cli("convert", src, "--out", out)
    assert done.returncode == 0, done.stderr
    shown = run_cli("show", out)
    assert shown.returncode == 0, shown.stderr
    assert f"# sha256: {_sha(src)}" in shown.stdout
    assert "# epochs: 108" in shown.stdout and "# metric: test" in shown.stdout
    assert "rows: 2" in shown.stdout

    # a CSV table is re-written; its provenance moves to upstream_*
    again = tmp_path / "again.csv"
    done = run_cli("convert", out, "--out", again)
    assert done.returncode == 0, done.stderr
    meta = read_table(again).meta
    assert meta["sha256"] == _sha(out) and meta["upstream_sha256"] == _sha(src)
    assert meta["benchmark"] == "nb101"


def test_convert_plain_nb201_layout_table(tmp_path):
    src = tmp_path / "nb201.csv"
    src.write_text(
        "index,arch_str,valid_acc,test_acc\n"
        + "".join(f"{i},{a},{50 + i},{60 + i}\n" for i, a in enumerate(ARCHS))
    )
    out = tmp_path / "out.csv"
    done = run_cli("convert", src, "--column", "test_acc", "--out", out)
    assert done.returncode == 0, done.stderr
    gt = read_table(out)
    assert gt.keys == tuple(ARCHS)
    np.testing.assert_allclose(gt.acc, [(60 + i) / 100 for i in range(len(ARCHS))])


def test_convert_beside_a_read_only_source_asks_for_out(tmp_path):
    # a benchmark folder without write bits (even for root): nothing is written into it
    folder = tmp_path / "bench"
    folder.mkdir()
    src = _make("nb101", folder)
    folder.chmod(0o555)
    try:
        done = run_cli("convert", src)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert f"{folder}: not writable (its mode bits)" in done.stderr
        assert "--out <table.csv>" in done.stderr and sorted(folder.iterdir()) == [src]
        done = run_cli("convert", src, "--out", tmp_path / "t.csv")
        assert done.returncode == 0, done.stderr
    finally:
        folder.chmod(0o755)


def test_convert_errors_are_reported(tmp_path):
    src = _make("nb101", tmp_path)
    blob = bytearray(src.read_bytes())
    blob[40] ^= 1  # inside the first record's data
    src.write_bytes(bytes(blob))
    done = run_cli("convert", src)
    assert done.returncode == 1
    assert "error:" in done.stderr and "byte offset 0" in done.stderr
    assert "Traceback" not in done.stderr

    done = run_cli("convert", tmp_path / "missing.pth")
    assert done.returncode == 1 and "not found" in done.stderr

    table = tmp_path / "t.csv"
    write_table(table, ["a"], [0.5], meta={"dataset": "cifar10"})
    done = run_cli("show", table)
    assert done.returncode == 0 and "rows: 1" in done.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--seeds", "a,b"], "argument --seeds: expects comma-separated integers, got 'a,b'"),
        (["--seeds", ","], "argument --seeds: expects distinct seeds"),
        (["--seeds", "0,0"], "argument --seeds: expects distinct seeds"),
        (["--macro", "channels"], "argument --macro: expects KEY=VALUE, got 'channels'"),
        (["--macro", "=8"], "argument --macro: expects KEY=VALUE"),
        (["--archs", "0"], "argument --archs: must be >= 1, got 0"),
        # numpy and torch take no negative seed: refused before a progress file is written
        (["--seeds", "0,-1"], "argument --seeds: expects seeds >= 0, got '0,-1'"),
        (["--arch-seed", "-1"], "argument --arch-seed: must be >= 0, got -1"),
        (["--data-seed", "-1"], "argument --data-seed: must be >= 0, got -1"),
        (["--test-seed", "-5"], "argument --test-seed: must be >= 0, got -5"),
        (["--limit", "-1"], "argument --limit: must be >= 0"),
        (["--lr", "nan"], "argument --lr: must be a finite number > 0"),
        (["--lr", "0"], "argument --lr: must be a finite number > 0"),  # nothing would train
        (["--weight-decay", "-1"], "argument --weight-decay: must be a finite number >= 0"),
        (["--space", "nosuch"], "argument --space: invalid choice: 'nosuch'"),
        (["--progress", "{tmp}"], "argument --progress: {tmp} is a folder, not a file"),
        (["--num-classes", "0"], "argument --num-classes: must be >= 2, got 0"),
        # options that only fail together, named as the command line spells them
        (["--image-size", "10"], "--image-size 10: search space embedded's networks take a "),
        (["--image-size", "4"], "--image-size 4: procedural images are >= 8"),
        (["--num-classes", "11"], "--num-classes 11: procedural data has at most 10 classes"),
        (["--data-seed", "3", "--test-seed", "3"], "--data-seed and --test-seed must differ"),
    ],
)
def test_build_names_the_option_of_a_bad_value(tmp_path, capsys, args, said):
    from nasheur.groundtruth.builder import build_main

    out = tmp_path / "gt.csv"
    args = [a.format(tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as exit_:
        build_main(["--out", str(out), *args])
    assert exit_.value.code == 2 and said.format(tmp=tmp_path) in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_build_and_convert_refuse_an_out_that_is_not_a_file(tmp_path):
    done = run_cli("build", "--out", tmp_path / "x.csv", "--seeds", "a,b")  # the audit's case
    assert done.returncode == 2 and "argument --seeds" in done.stderr
    afile = tmp_path / "afile"
    afile.write_text("")
    src = tmp_path / "t.csv"
    write_table(src, ["a"], [0.5], meta={"dataset": "cifar10"})
    for out, said in (
        ("", "expects a file path, got an empty one"),
        (tmp_path, f"{tmp_path} is a folder, not a file"),
        (afile / "x.csv", f"{afile / 'x.csv'}: {afile} is a file, not a folder"),
    ):
        for command in (["build"], ["convert", src]):
            done = run_cli(*command, "--out", out)
            assert done.returncode == 2, (command, out, done.stderr)
            assert f"argument --out: {said}" in done.stderr, done.stderr
    assert afile.read_text() == ""


# ----------------------------------------------------------------------------- audit additions


def test_convert_a_percent_table_into_fractions(tmp_path):
    # the unit is the written table's own (fraction), not the source's
    from nasheur.groundtruth.convert import convert_file

    src = tmp_path / "percent.csv"
    src.write_text("# unit: percent\n# dataset: cifar10\nkey,accuracy\na,93.5\nb,10\n")
    out, _ = convert_file(src, tmp_path / "out.csv")
    gt = read_table(out)
    assert gt.meta["unit"] == "fraction" and gt.meta["dataset"] == "cifar10"
    assert gt["a"] == pytest.approx(0.935) and gt["b"] == 0.1


def test_convert_and_show_honour_unit_and_report_refusals(tmp_path, capsys):
    from nasheur.groundtruth.__main__ import main
    from tests.test_groundtruth_loaders import _OsSystem

    src = tmp_path / "plain.csv"  # no '# unit:' line: the unit comes from --unit
    src.write_text("key,accuracy\na,93.5\nb,10\n")
    assert main(["show", str(src), "--unit", "percent"]) == 0
    assert "rows: 2" in capsys.readouterr().out
    out = tmp_path / "out.csv"
    assert main(["convert", str(src), "--unit", "percent", "--out", str(out)]) == 0
    assert read_table(out)["a"] == pytest.approx(0.935)
    capsys.readouterr()
    # an allow-list refusal (an UnsafePickleError) is an error line, not a traceback
    marker = tmp_path / "marker"
    evil = write_pbz2(
        tmp_path / "evil.pickle.pbz2",
        {"meta_archs": list(ARCHS), "x": _OsSystem(f"touch {marker}")},
    )
    assert main(["convert", str(evil), "--out", str(tmp_path / "evil.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "refusing to load the global" in err
    assert not marker.exists()


@pytest.mark.parametrize("flag", [["--column", "validation_accuracy"], ["--unit", "percent"]])
def test_convert_refuses_csv_only_flags_for_a_benchmark_file(tmp_path, capsys, flag):
    # --column / --unit were ignored for a benchmark file: the default (test) accuracy was
    # written as if the column asked for had been read
    from nasheur.groundtruth.__main__ import main

    src = _make("nb101", tmp_path)
    out = tmp_path / "out.csv"
    assert main(["convert", str(src), *flag, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: --column and --unit apply to CSV tables only"), err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["nds", "nats-dir"])
def test_convert_refuses_an_out_that_is_its_source(tmp_path, kind):
    # `--out` naming the downloaded file (or a link to it, or a file of a -simple folder)
    # would replace the benchmark with its table: refused before it is read, the file intact
    src = _make(kind, tmp_path)
    inside = src / "000000.pickle.pbz2" if src.is_dir() else src
    link = tmp_path / "link"
    link.symlink_to(inside)
    before = _sha(inside)
    for out in (inside, link):
        done = run_cli("convert", src, "--out", out)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"error: {out}: the output table" in done.stderr, done.stderr
        assert _sha(inside) == before
    if src.is_dir():
        done = run_cli("convert", src, "--out", src / "table.csv")
        assert done.returncode == 1 and "inside the source folder" in done.stderr
        assert not (src / "table.csv").exists()


def test_show_names_its_own_flag_and_refuses_a_folder_in_one_line(tmp_path, capsys):
    # on the command line the unit is --unit: a refusal names it beside the config key, and a
    # folder given to `show` is one line naming it, not the OS's bare "[Errno 21]"
    from nasheur.groundtruth.__main__ import main

    plain = tmp_path / "plain.csv"
    plain.write_text("key,accuracy\na,93.5\nb,10\n")
    assert main(["show", str(plain)]) == 1
    assert "--unit percent|fraction" in capsys.readouterr().err
    nb201 = tmp_path / "nb201.csv"
    nb201.write_text(
        "index,arch_str,valid_acc,test_acc\n"
        "0,|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|,91.0,90.5\n"
    )
    assert main(["show", str(nb201), "--unit", "fraction"]) == 1
    err = capsys.readouterr().err
    assert "NB201's layout" in err and "--unit 'fraction'" in err, err
    assert main(["show", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: a folder, not a ground-truth table"), err
    assert "Errno" not in err
