"""The host-work counter (`python -m nasheur.host_instructions`): its parsing, its errors
before any long work, and, under valgrind, counts that repeat."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

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


@pytest.mark.parametrize("missing", ["valgrind", "callgrind_control"])
def test_either_tool_missing_is_said_before_any_work(monkeypatch, capsys, missing):
    # the count needs both: valgrind runs the child, which calls callgrind_control to turn
    # collection on and off; without the second the run would fail minutes later
    monkeypatch.setattr(host_instructions.subprocess, "run", _no_valgrind_run)
    monkeypatch.setattr(
        host_instructions.shutil, "which", lambda name: None if name == missing else f"/x/{name}"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["--spaces", "embedded"])
    assert exit_info.value.code == 2
    assert "callgrind_control on PATH" in capsys.readouterr().err


def test_a_report_path_that_cannot_be_written_fails_before_valgrind(monkeypatch, capsys, tmp_path):
    # the report is first written after a space's count (about a minute under valgrind)
    monkeypatch.setattr(host_instructions.subprocess, "run", _no_valgrind_run)
    with pytest.raises(SystemExit) as exit_info:
        main(["--spaces", "embedded", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"argument --out: {tmp_path} is a folder, not a file" in capsys.readouterr().err


def test_warm_up_steps_are_at_least_one(monkeypatch, capsys):
    # the first step does one-off work (allocations, lazy set-up) that a count must not hold
    monkeypatch.setattr(host_instructions.subprocess, "run", _no_valgrind_run)
    with pytest.raises(SystemExit):
        main(["--warmup", "0"])
    assert "argument --warmup: must be >= 1, got 0" in capsys.readouterr().err


class FakeCallgrind:
    """Stands in for `valgrind --tool=callgrind`: writes an output file whose totals line is
    `totals` (unless not `writes`) and exits with `exit_code`; the run of the space
    `fail_for` exits 1 without writing one."""

    def __init__(self, totals: int = 1000):
        self.totals, self.fail_for, self.exit_code, self.writes = totals, None, 0, True
        self.commands: list[list[str]] = []

    def __call__(self, command, **kwargs):
        import subprocess

        self.commands.append(command)
        job = json.loads(command[-1])
        if job["space"] == self.fail_for:
            return subprocess.CompletedProcess(command, 1, "", "valgrind: boom")
        (out,) = [a.partition("=")[2] for a in command if a.startswith("--callgrind-out-file=")]
        if self.writes:
            with open(out, "w") as f:
                f.write(CALLGRIND_OUT.replace("963054058", str(self.totals)))
        return subprocess.CompletedProcess(command, self.exit_code, "", "")


@pytest.fixture
def fake_callgrind(monkeypatch):
    from nasheur.bench import Settings
    from nasheur.config import RunConfig
    from nasheur.supernet import SupernetSpec

    fake = FakeCallgrind()
    monkeypatch.setattr(host_instructions.subprocess, "run", fake)
    monkeypatch.setattr(host_instructions.shutil, "which", lambda name: f"/x/{name}")
    # a space's defaults at 16 channels (no Hydra composition): the count shrinks them
    spec = SupernetSpec(channels=16, layers=5, num_classes=10)
    monkeypatch.setattr(
        host_instructions, "paper_settings", lambda space: Settings(spec, 128, 32, RunConfig())
    )
    return fake


@pytest.mark.parametrize(("space", "channels"), [("nb201", 2), ("darts_nds", 2), ("nb101", 5)])
def test_a_count_is_the_collected_total_per_counted_step(fake_callgrind, space, channels):
    # README: 2 channels, batches of two 8-pixel images; NB101 takes 5, one per vertex of a
    # cell (its output channels split over up to 5 vertices)
    fake_callgrind.totals = 1000
    entry = host_instructions.count(space, steps=4, warmup=3)
    assert entry["instructions_per_step"] == 1000 / 4  # the warm-up steps are not collected
    assert (entry["steps"], entry["warmup"]) == (4, 3)
    assert entry["spec"]["channels"] == channels and entry["spec"]["layers"] == 5
    assert (entry["batch_size"], entry["image_size"]) == (2, 8)
    (command,) = fake_callgrind.commands
    assert command[0] == "/x/valgrind" and "--tool=callgrind" in command
    # collection starts off: the child turns it on after its warm-up steps
    assert "--instr-atstart=no" in command
    child = json.loads(command[-1])
    assert command[-2] == "--child" and (child["steps"], child["warmup"]) == (4, 3)
    assert child["space"] == space and child["spec"] == entry["spec"]


@pytest.mark.parametrize(
    ("exit_code", "writes"), [(1, True), (0, False)], ids=["exit 1", "no output file"]
)
def test_a_failed_callgrind_run_is_an_error_not_a_count(fake_callgrind, exit_code, writes):
    # a run that exited badly may have left a partial file: its totals are not the steps'
    fake_callgrind.exit_code, fake_callgrind.writes = exit_code, writes
    with pytest.raises(RuntimeError, match="callgrind run for nb201 failed"):
        host_instructions.count("nb201", steps=2, warmup=1)


def test_the_report_holds_every_space_and_is_written_after_each(fake_callgrind, tmp_path):
    out = tmp_path / "report.json"
    argv = ["--spaces", "nb201", "embedded", "--steps", "4", "--warmup", "3", "--out", str(out)]
    assert main(argv) == 0
    spaces = json.loads(out.read_text())["spaces"]
    assert list(spaces) == ["nb201", "embedded"]
    assert all(e["steps"] == 4 and e["warmup"] == 3 for e in spaces.values())
    assert all(e["instructions_per_step"] == 1000 / 4 for e in spaces.values())
    # a later space that fails loses none of the minutes spent on the earlier ones
    out.unlink()
    fake_callgrind.fail_for = "embedded"
    with pytest.raises(RuntimeError, match="callgrind run for embedded failed"):
        main(argv)
    assert list(json.loads(out.read_text())["spaces"]) == ["nb201"]


def test_collection_is_switched_in_this_process(monkeypatch):
    # callgrind_control -i on|off <pid>: collection of the child itself, none other's
    import os
    import subprocess

    calls = []
    monkeypatch.setattr(
        host_instructions.subprocess,
        "run",
        lambda command, **kw: calls.append(command) or subprocess.CompletedProcess(command, 0),
    )
    host_instructions._collect("/x/callgrind_control", True)
    host_instructions._collect("/x/callgrind_control", False)
    pid = str(os.getpid())
    assert calls == [["/x/callgrind_control", "-i", s, pid] for s in ("on", "off")]


def test_the_child_collects_only_the_counted_steps_after_the_warm_up(monkeypatch):
    # what valgrind runs (`--child JOB`), its super-net and step replaced by recorders: the
    # warm-up steps, then collection on, the counted steps, collection off
    import torch

    from nasheur.supernet import SupernetSpec

    events: list[tuple] = []
    model = torch.nn.Linear(1, 1)
    model.eval()  # the child must put it in training mode itself

    def step_of(net):
        def step(x, y, archs):
            assert net is model and net.training
            assert tuple(x.shape) == (2, 3, 8, 8) and tuple(y.shape) == (2,) and len(archs) == 1
            events.append(("step", archs[0]))

        return step

    monkeypatch.setattr(host_instructions.shutil, "which", lambda name: f"/x/{name}")
    monkeypatch.setattr(host_instructions, "seeded_supernet", lambda space, spec, device: model)
    monkeypatch.setattr(host_instructions, "fast_step", step_of)
    monkeypatch.setattr(host_instructions, "_collect", lambda control, on: events.append((on,)))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: events.append(("threads", n)))
    spec = SupernetSpec(channels=2, layers=1, num_classes=10)
    job = {"space": "embedded", "spec": asdict(spec), "steps": 3, "warmup": 2}
    assert main(["--child", json.dumps(job)]) == 0
    # one host thread (the count of one thread's work), 2 warm-up steps, 3 counted ones
    assert events[0] == ("threads", 1)
    assert [e[0] for e in events[1:]] == ["step", "step", True, "step", "step", "step", False]
