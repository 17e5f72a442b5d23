"""The host-work counter (`python -m nasheur.host_instructions`): its parsing, its errors
before any long work, and, under valgrind, counts that repeat."""

from __future__ import annotations

import json
import shutil

import pytest

from nasheur import host_instructions
from nasheur.host_instructions import callgrind_totals, main

CALLGRIND_OUT = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  python -m nasheur.host_instructions --child {}
events: Ir
summary: 0

fn=(1) main
0 12
totals: 963054058
"""


def test_the_count_is_the_totals_line():
    # `summary:` is 0 when collection starts off; `totals:` holds what was collected
    assert callgrind_totals(CALLGRIND_OUT) == 963054058


def test_an_incomplete_output_file_is_refused():
    with pytest.raises(ValueError, match="totals"):
        callgrind_totals(CALLGRIND_OUT.replace("totals: 963054058\n", ""))


def _no_valgrind_run(*args, **kwargs):
    raise AssertionError("valgrind was started")


def test_an_unknown_space_fails_before_valgrind(monkeypatch, capsys):
    monkeypatch.setattr(host_instructions.subprocess, "run", _no_valgrind_run)
    with pytest.raises(SystemExit) as exit_info:
        main(["--spaces", "nb201", "nb301"])
    assert exit_info.value.code == 2
    assert "nb301" in capsys.readouterr().err


def test_bad_step_counts_fail_before_valgrind(monkeypatch, capsys):
    monkeypatch.setattr(host_instructions.subprocess, "run", _no_valgrind_run)
    with pytest.raises(SystemExit):
        main(["--steps", "0"])
    assert "argument --steps: must be >= 1, got 0" in capsys.readouterr().err


def test_without_valgrind_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(host_instructions.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit):
        main(["--spaces", "embedded"])
    assert "valgrind" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("valgrind") is None or shutil.which("callgrind_control") is None,
    reason="needs valgrind",
)
def test_counts_repeat_whatever_else_the_machine_runs(tmp_path):
    """The tool's promise: two runs of the same steps count the same instructions (well
    within 1%, where wall time on a busy 2-core machine varies by tens of percent), and only
    the counted steps are collected: a framework step is millions of instructions, the
    whole process (importing torch) billions."""
    counts = []
    for i in range(2):
        out = tmp_path / f"run{i}.json"
        assert (
            main(["--spaces", "embedded", "--steps", "2", "--warmup", "1", "--out", str(out)]) == 0
        )
        entry = json.loads(out.read_text())["spaces"]["embedded"]
        assert entry["steps"] == 2 and entry["spec"]["channels"] == 2
        counts.append(entry["instructions_per_step"])
    assert 1e6 < counts[0] < 1e9, counts
    assert abs(counts[0] - counts[1]) <= 0.01 * counts[0], counts
