"""The atomic writes of src/nasheur/io.py on their own: what makes an artefact survive a crash
(the temporary beside it, fsync, the rename, the cleanup of a killed write's temporary) and
what a JSON record holds. tests/test_groundtruth_table.py covers the failed write and the
file's mode through write_table."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from nasheur.io import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    read_json,
    remove_stale_temporaries,
)


def test_a_write_into_a_folder_not_made_yet_makes_it(tmp_path):
    # a job's first record goes into a run folder that nothing created before
    path = tmp_path / "runs" / "job0" / "metrics.json"
    atomic_write_json(path, {"status": "running"})
    assert read_json(path) == {"status": "running"}


def test_a_killed_writes_temporary_lies_beside_its_file_where_the_cleanup_finds_it(tmp_path):
    # beside it: the rename stays within one folder (one file system), so it is atomic; named
    # ".<file>.<8 of tempfile's characters>.tmp": the name remove_stale_temporaries removes
    path = tmp_path / "metrics.json"
    writing = atomic_path(path)
    tmp = writing.__enter__()  # the process is "killed" here: the block never ends
    tmp.write_text("half a record")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".metrics.json.") and tmp.name.endswith(".tmp")
    assert len(tmp.name) == len(".metrics.json.") + 8 + len(".tmp")
    assert remove_stale_temporaries(tmp_path, ("metrics.json",)) == [tmp]
    assert not path.exists() and list(tmp_path.iterdir()) == []
    # end the generator as an error would: it must not trip on its temporary being gone
    assert not writing.__exit__(RuntimeError, RuntimeError("killed"), None)
    assert not path.exists()


def test_the_data_reaches_the_disk_before_the_rename_and_the_rename_after_it(tmp_path, monkeypatch):
    # a crash after the rename must not leave an empty file under the name (the data's fsync
    # comes first), nor the old file back after a reboot (the folder's fsync comes after)
    events: list[tuple[str, int]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync folder" if stat.S_ISDIR(st.st_mode) else "fsync file", st.st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "pool.json"
    path.write_text("[]\n")  # the old file: its data must not be what is synced
    with atomic_path(path) as tmp:
        tmp.write_text("[1]\n")
        written = tmp.stat().st_ino
    assert events == [
        ("fsync file", written),
        ("replace", written),
        ("fsync folder", tmp_path.stat().st_ino),
    ]
    assert path.read_text() == "[1]\n" and path.stat().st_ino == written


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="lists open files on Linux")
def test_a_failed_write_names_the_file_it_was_for(tmp_path):
    # a full disk fails the write of an open file, whose OSError names none: the one meant
    import errno

    path = tmp_path / "table-11.csv"
    with pytest.raises(OSError) as info, atomic_path(path):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(path)
    assert not list(tmp_path.iterdir())


def test_writes_leave_no_file_open(tmp_path):
    # a job writes its records thousands of times: a descriptor left open each time runs
    # the process out of them
    def open_files():
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for i in range(3):
        atomic_write_json(tmp_path / "m.json", {"epoch": i})
    assert open_files() == before


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_written_file_has_the_mode_the_umask_gives(tmp_path, umask, mode):
    # a runs folder shared by a group: the next member rewrites Hydra's record in place
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.yaml", "a: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.yaml").stat().st_mode) == mode


def test_only_temporaries_that_atomic_path_could_have_made_are_removed(tmp_path):
    # tempfile's names use only "abcdefghijklmnopqrstuvwxyz0123456789_": anything else beside
    # a job's files is the user's own; each named file's temporaries go, not just the first's
    made = [".metrics.json.ab_4xy9z.tmp", ".pool.json.0123abcd.tmp"]
    keep = [
        ".metrics.json.BACKUP01.tmp",  # capitals: not tempfile's
        ".metrics.json.abcdefgh.tmp.tmp",  # a whole name, not its start
        ".metricsXjson.abcdefgh.tmp",  # the dot in the name is a dot
    ]
    for name in made + keep:
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path, ("metrics.json", "pool.json"))
    assert sorted(p.name for p in removed) == sorted(made)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_json_records_hold_plain_json_for_numpy_values_and_tuples(tmp_path):
    # what a job records comes from numpy (keys and values) and tuples; JSON has no NaN, so
    # each non-finite number is null wherever it sits, and the file is text ending in a newline
    path = tmp_path / "m.json"
    record = {
        np.int64(3): (math.nan, np.float32(0.5), np.float32("nan")),
        "pool": [math.inf, np.int64(7)],
        "ok": True,
    }
    atomic_write_json(path, record)
    text = path.read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == {"3": [None, 0.5, None], "pool": [None, 7], "ok": True}


def test_text_is_written_and_json_read_as_utf8_whatever_the_locale(tmp_path):
    path = tmp_path / "notes.txt"
    atomic_write_text(path, "τ = 0.5\n")
    assert path.read_bytes() == "τ = 0.5\n".encode()
    path.write_bytes('{"name": "Kendall τ"}'.encode())
    assert read_json(path) == {"name": "Kendall τ"}
    # bytes that are not UTF-8 (a damaged file) are an error, not other characters
    path.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(ValueError):
        read_json(path)


def test_a_closed_stdout_is_no_error():
    # `python -m nasheur.results show runs >&-`: sys.stdout is None, print writes nothing
    program = (
        "import sys; from nasheur.io import run_piped; sys.exit(run_piped(lambda: print('x') or 3))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -c "{program}" >&-'],
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env=env,
    )
    assert (done.returncode, done.stderr) == (3, "")


def test_a_reader_gone_before_the_output_is_flushed_is_exit_141(tmp_path):
    # output short enough to sit in stdout's buffer fails only when flushed: run_piped must
    # flush it itself, or the interpreter's flush at exit prints a traceback (and exits 120)
    program = (
        "import sys; from nasheur.io import run_piped; sys.exit(run_piped(lambda: print('x') or 0))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run(
            [sys.executable, "-c", program],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert "BrokenPipe" not in done.stderr and "Traceback" not in done.stderr
