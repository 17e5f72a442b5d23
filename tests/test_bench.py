"""The fast training path keeps the plain path's semantics exactly (issue: speed without
changing what is computed), and the benchmark's counters work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasheur import bench
from nasheur.bench import (
    OpCounter,
    PlainNB201SuperNet,
    aggregate_rate,
    count_python_calls,
    device_time_per_step,
    fast_step,
    host_phases,
    main,
    plain_step,
    seeded_supernet,
    shared_gpu,
    time_evaluation,
)
from nasheur.spaces import get_space
from nasheur.spaces.nb201 import OPS
from nasheur.supernet import SupernetSpec
from nasheur.training import TrainStep, build_optimizer
from tests.conftest import nb201_supernet

SPACE = get_space("nb201")


def copy_into_fast(plain: PlainNB201SuperNet, fast) -> None:
    """Give the fast super-net the plain one's weights (edge mapping: op set e = edge e)."""
    state, fast_state = plain.state_dict(), fast.state_dict()
    for name in fast_state:
        parts = name.split(".")
        if len(parts) > 2 and parts[2] == "op_sets":
            block, e, kind, op_name, rest = parts[1], parts[3], parts[4], parts[5], parts[6:]
            op = OPS.index(op_name)
            if kind == "convs":
                fast_state[name] = state[f"blocks.{block}.{e}.{op}.1.weight"]
            else:  # bns.<op>.slots.0.<parameter or buffer>
                fast_state[name] = state[f"blocks.{block}.{e}.{op}.2.{'.'.join(rest[2:])}"]
        elif name in state:
            fast_state[name] = state[name]
    fast.load_state_dict(fast_state)


def test_fast_and_plain_paths_give_the_same_parameters():
    """The job's step (TrainStep: shared ReLUs, foreach SGD with primed buffers, foreach
    clipping over a cached parameter list) against the plain per-edge, per-parameter one."""
    torch.manual_seed(0)
    plain = PlainNB201SuperNet(4, 1, zero_as_mul=False).double()
    fast = nb201_supernet(bn_track=True, bn_affine=True).double()
    copy_into_fast(plain, fast)
    opt_plain = torch.optim.SGD(
        plain.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-3, foreach=False
    )
    opt_fast = build_optimizer(fast, lr=0.1, momentum=0.9, weight_decay=3e-3)
    fast_step = TrainStep(fast, opt_fast, grad_clip=0.5)  # small: it clips
    rng = np.random.default_rng(0)
    for _ in range(4):
        arch = SPACE.sample(rng)
        x, y = torch.randn(8, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
        opt_plain.zero_grad(set_to_none=True)
        F.cross_entropy(plain(x, arch), y).backward()
        nn.utils.clip_grad_norm_(plain.parameters(), 0.5, foreach=False)
        opt_plain.step()
        fast_step(x, y, [arch])
    again = nb201_supernet(bn_track=True, bn_affine=True).double()
    copy_into_fast(plain, again)  # the plain weights, named as the fast super-net's
    for (name, a), b in zip(fast.state_dict().items(), again.state_dict().values(), strict=True):
        if not name.endswith("num_batches_tracked"):  # a counter PyTorch's BN keeps, unused here
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_the_plain_reference_computes_none_as_zero_either_way():
    """`none` contributes nothing (spec section 1): multiplied by zero (zero_as_mul=True, as
    public code does) or skipped, the plain super-net gives the same logits, also on a cell
    whose nodes are fed by `none` alone."""
    torch.manual_seed(0)
    mul, skip = PlainNB201SuperNet(4, 1), PlainNB201SuperNet(4, 1, zero_as_mul=False)
    skip.load_state_dict(mul.state_dict())
    x = torch.randn(4, 3, 8, 8)
    keys = [
        "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
        "|none~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    ]
    for key in keys:
        arch = SPACE.parse(key)
        torch.testing.assert_close(mul(x, arch), skip(x, arch), rtol=0, atol=0)


def _counts(step, model, x, y, rng) -> tuple[int, int]:
    """Operators other than autograd's detaches (how many of those the engine dispatches
    changes with torch's version) and Python calls of ten steps on the paths `rng` samples,
    after two."""
    ops = calls = 0
    for i in range(12):
        archs = [SPACE.sample(rng)]
        if i < 2:  # momentum buffers exist after the first steps
            step(x, y, archs)
            continue
        counter = OpCounter()
        with counter:
            step(x, y, archs)
        ops += counter.others
        calls += count_python_calls(lambda archs=archs: step(x, y, archs))
    return ops, calls


def test_the_fast_step_dispatches_at_most_half_the_plain_steps_operators_and_calls():
    """The target of the speed issue, as the benchmark counts it, at NB201's depth (5 cells per
    stage; the count does not depend on the width), summed over a few sampled paths; and the
    Python calls, the host work a GPU cannot hide (the plain step walks every module twice).
    Operators other than detach: with all of them the step is 0.47 of the plain step's with
    torch 2.13 but 0.51 with torch 2.6, whose autograd engine dispatches more detaches (which
    launch no kernel) in both steps; the others are 0.39 with either."""
    torch.manual_seed(0)
    plain, fast = PlainNB201SuperNet(4, 5), nb201_supernet(layers=5)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    plain_ops, plain_calls = _counts(plain_step(plain), plain, x, y, np.random.default_rng(1))
    ops, calls = _counts(fast_step(fast), fast, x, y, np.random.default_rng(1))
    assert ops <= 0.5 * plain_ops, (ops, plain_ops)
    assert calls <= 0.5 * plain_calls, (calls, plain_calls)


@pytest.mark.slow  # spawns torch processes or runs the whole benchmark
def test_the_benchmark_writes_a_report(tmp_path):
    out = tmp_path / "bench.json"
    args = ["--device", "cpu", "--spaces", "nb201", "embedded", "--steps", "1", "--batch-size", "8"]
    args += ["--eval-images", "64", "--eval-archs", "1", "--out", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["device_type"] == "cpu" and set(report["spaces"]) == {"nb201", "embedded"}
    for name, entry in report["spaces"].items():
        train, evaluation = entry["train"], entry["eval"]
        assert train["images_per_s"] > 0 and evaluation["archs_per_s"] > 0, name
        assert train["ops_per_step"] > evaluation["ops_per_batch"] > 0, name
        assert train["python_calls_per_step"] > 0 and evaluation["python_calls_per_batch"] > 0
    # each space at its own images: the paper's 32 pixels, the embedded benchmark's 12
    assert report["spaces"]["nb201"]["image_size"] == 32
    assert report["spaces"]["embedded"]["image_size"] == 12
    assert report["spaces"]["nb201"]["other_ops_per_step_vs_plain"] <= 0.5
    # autograd's detaches are some of a step's operators, not all of them
    train = report["spaces"]["nb201"]["train"]
    assert 0 < train["other_ops_per_step"] < train["ops_per_step"]
    assert {"cuda", "cudnn", "mps", "nasheur", "commit"} <= set(report)
    # where the host's time goes: the forward and the backward timed apart, the rest the update
    phases = train["host_ms_by_phase"]
    assert set(phases) == {"forward", "backward", "rest"}
    assert phases["forward"] > 0 and phases["backward"] > 0
    # --quick counts nothing, and says so with null, not with 0
    assert main([*args, "--quick"]) == 0
    quick = json.loads(out.read_text())["spaces"]["embedded"]
    assert quick["train"]["ops_per_step"] is None and quick["eval"]["ops_per_batch"] is None


def test_a_benchmark_cut_off_during_evaluation_keeps_its_training_numbers(tmp_path, monkeypatch):
    # a GPU check's stage has a time limit: what was measured before it struck is written
    # (and said) at once, not only once the space's evaluation has ended
    out = tmp_path / "bench.json"
    rate = bench.StepResult(1234.0, None, None, None, 5.0, 1.0)
    monkeypatch.setattr(bench, "time_training", lambda *a, **k: rate)

    def cut_off(*args, **kwargs):
        raise KeyboardInterrupt  # as `timeout` ends the stage

    monkeypatch.setattr(bench, "time_evaluation", cut_off)
    args = ["--device", "cpu", "--spaces", "embedded", "--quick", "--out", str(out)]
    with pytest.raises(KeyboardInterrupt):
        main(args)
    entry = json.loads(out.read_text())["spaces"]["embedded"]
    assert entry["train"]["images_per_s"] == 1234.0 and "eval" not in entry


def test_timing_the_phases_of_a_step_changes_no_parameter():
    # forward and backward only: the super-net the benchmark times next is the one it built
    space = get_space("nb201")
    model = seeded_supernet("nb201", SupernetSpec(2, 1, 10), torch.device("cpu"))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    rng = np.random.default_rng(0)
    phases = host_phases(model, [space.sample(rng) for _ in range(3)], x, y)
    assert set(phases) == {"forward", "backward"} and min(phases.values()) > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_the_op_counter_counts_detaches_apart():
    x = torch.ones(3, requires_grad=True)
    counter = OpCounter()
    with counter:
        y = (x * 2).detach()
        y.add_(1)
    # a mul and an add_; torch 2.6 dispatches the one detach as two, torch 2.13 as one
    assert counter.others == 2 and counter.detaches >= 1
    assert counter.count == counter.others + counter.detaches


def test_the_profiler_splits_a_steps_host_time_by_operator():
    """Without CUDA no kernel time, and the host's time per call by operator, in ms."""
    a = torch.randn(64, 64)
    calls = []
    kernels, top, host = device_time_per_step(lambda: calls.append(a @ a), 3)
    assert len(calls) == 3
    if not torch.cuda.is_available():
        assert kernels == 0 and top == {}
    assert "aten::mm" in host and 0 < host["aten::mm"] < 1000


@pytest.mark.cuda
def test_the_benchmark_times_the_gpus_kernels(tmp_path):
    """On CUDA the report holds the profiler's kernel time per step and per architecture, in
    milliseconds and seconds: a step's kernels fit in its wall time (other sampled paths than
    the timed ones, so with slack; a unit slip would be a factor of 1000)."""
    out = tmp_path / "bench.json"
    args = ["--device", "cuda", "--spaces", "nb201", "--steps", "5", "--shared"]
    assert main([*args, "--eval-images", "512", "--eval-archs", "2", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["spaces"]["nb201"]
    train = entry["train"]
    wall_ms = 1000 * entry["batch_size"] / train["images_per_s"]
    assert 0 < train["device_ms_per_step"] <= 3 * wall_ms
    assert train["top_kernels_ms_per_step"] and entry["train_plain"]["device_ms_per_step"] > 0
    # which convolution operator tops the host's list varies (cudnn_convolution, its backward)
    assert any("convolution" in op for op in train["top_host_ops_ms_per_step"])
    assert 0 < entry["eval"]["device_s_per_arch"] < entry["eval"]["seconds_per_arch"] * 3
    assert entry["eval"]["top_kernels_ms_per_arch"]


@pytest.mark.slow  # spawns torch processes or runs the whole benchmark
def test_k_processes_share_a_device():
    """The several-jobs-per-GPU measure, run on the CPU: K spawned trainers, one rate for all."""
    said: list = []
    rates = shared_gpu(
        "embedded",
        torch.device("cpu"),
        batch=8,
        steps=1,
        ks=(2,),
        bf16=False,
        each=lambda k, r: said.append((k, r)),
    )
    assert list(rates) == [2] and rates[2] > 0 and said == [(2, rates[2])]


def _time_three_steps(step_fn, space, **kwargs) -> None:
    """time_training of a step that computes nothing: three timed steps on tiny images."""
    device = torch.device("cpu")
    module = torch.nn.Linear(1, 1)
    bench.time_training(step_fn, module, space, 2, 4, device, 3, profile=False, **kwargs)


def test_the_timed_window_starts_after_the_warm_up():
    """K sharing processes meet at `ready` once warmed up, so their timed windows coincide."""
    calls, at_ready = [], []
    space = type("Space", (), {"sample": staticmethod(lambda rng: None)})()
    _time_three_steps(
        lambda x, y, archs: calls.append(1),
        space,
        count=False,
        ready=lambda: at_ready.append(len(calls)),
    )
    # the warm-up of a counted run (two steps, then the counted ones), then the three timed
    warm_up = 2 + 2 * bench.COUNTED_STEPS
    assert at_ready == [warm_up] and len(calls) == warm_up + 3


def test_quick_runs_time_the_paths_of_a_counted_run_after_as_long_a_warm_up(monkeypatch):
    """--quick (and each of K sharing processes) counts nothing: after two warm-up steps
    alone its timed steps met paths, and on CUDA conv shapes for cuDNN to tune, that a
    counted run's warm-up had met; both time the same draws after the same ones."""
    monkeypatch.setattr(bench, "host_phases", lambda *a, **k: {"forward": 0, "backward": 0})
    timed = {}
    for count in (True, False):
        draws = iter(range(1000))
        space = type("Space", (), {"sample": staticmethod(lambda rng, d=draws: next(d))})()
        stepped, ready = [], []
        _time_three_steps(
            lambda x, y, archs, s=stepped: s.append(archs[0]),
            space,
            count=count,
            ready=lambda s=stepped, r=ready: r.append(len(s)),
        )
        timed[count] = stepped[ready[0] :]
    warm_up = 2 + 2 * bench.COUNTED_STEPS
    assert timed[False] == timed[True] == [warm_up, warm_up + 1, warm_up + 2]


def test_a_quick_evaluation_times_its_pool_after_the_warm_up_of_a_counted_one(monkeypatch):
    # as for training: architectures first met in the timed pool (on CUDA, conv shapes for
    # cuDNN to tune) would be tuned inside the timing of --quick and the K processes
    import nasheur.evaluation

    seen: list[list[int]] = []
    monkeypatch.setattr(
        nasheur.evaluation, "evaluate_archs", lambda m, some, *a, **k: seen.append(list(some))
    )
    met = {}
    for count in (True, False):
        seen.clear()
        draws = iter(range(1000))
        space = type("Space", (), {"sample": staticmethod(lambda rng, d=draws: next(d))})()
        time_evaluation(None, space, 8, 4, torch.device("cpu"), 16, 3, count=count)
        *before, timed = seen
        met[count] = ({a for some in before for a in some}, timed)
    assert met[False] == met[True] == (set(range(1 + 3 + bench.MARGINAL)) - {1, 2}, [0, 1, 2])


def test_the_phases_are_timed_on_the_paths_the_timed_steps_drew(monkeypatch):
    """On a CPU a path's arithmetic varies a lot between paths: the forward and the backward
    timed on other draws than the timed steps' gave a negative rest."""
    draws = iter(range(1000))
    space = type("Space", (), {"sample": staticmethod(lambda rng: next(draws))})()
    stepped, phased = [], []
    monkeypatch.setattr(bench, "count_python_calls", lambda fn: 0)
    monkeypatch.setattr(
        bench,
        "host_phases",
        lambda m, archs, x, y, bf16: phased.extend(archs) or {"forward": 0, "backward": 0},
    )
    _time_three_steps(lambda x, y, archs: stepped.append(archs[0]), space)
    assert len(stepped) == 2 + bench.COUNTED_STEPS + 3  # warm-up, counted, timed
    assert phased == stepped[-3:]


def test_kernel_names_cut_alike_add_up():
    long = "void at::native::vectorized_elementwise_kernel<4, at::native::BinaryFunctor<float"
    rows = [(long + ", A>", 900.0), (long + ", B>", 10.0), ("relu", 100.0)]
    per_step = bench._per_step(rows, steps=10)
    assert per_step == {long[:79] + "~": pytest.approx(0.091), "relu": pytest.approx(0.01)}


@pytest.mark.slow  # spawns torch processes or runs the whole benchmark
def test_a_k_whose_workers_fail_is_reported_and_the_others_still_run():
    """A failed K leaves its error in the report, not a traceback that loses the report."""
    rates = shared_gpu("nosuch", torch.device("cpu"), batch=8, steps=1, ks=(1,), bf16=False)
    assert list(rates) == [1] and "nosuch" in rates[1]


def test_a_worker_that_fails_before_the_barrier_breaks_it_for_the_others():
    # the others stop waiting at once, so the K records this worker's error, not a time-out
    import threading

    from nasheur.bench import _shared_worker

    barrier = threading.Barrier(2, timeout=60)
    with pytest.raises(Exception, match="nosuch"):
        _shared_worker(("nosuch", "cpu", 8, 1, False, False, barrier))
    assert barrier.broken


def test_a_ks_error_is_the_failed_workers_not_the_broken_barrier_it_left():
    # the workers' errors arrive in any order: the one that failed names the K's error
    import threading

    from nasheur.bench import _all_results

    class Ended:
        def __init__(self, result):
            self.result = result

        def get(self, timeout):
            if isinstance(self.result, BaseException):
                raise self.result
            return self.result

    broken, real = threading.BrokenBarrierError(), RuntimeError("CUDA out of memory")
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        _all_results([Ended(broken), Ended(real), Ended(broken)], 1e18, 60)
    with pytest.raises(threading.BrokenBarrierError):  # a start slower than the barrier
        _all_results([Ended(broken), Ended((8, 0.0, 1.0))], 1e18, 60)
    assert _all_results([Ended((8, 0.0, 1.0))] * 2, 1e18, 60) == [(8, 0.0, 1.0)] * 2


def test_the_aggregate_rate_spans_all_runs():
    """Two runs of 100 images in 1 s each, the second starting half a second late: 200 images
    in 1.5 s, not the 200 images/s that adding their rates would claim."""
    assert aggregate_rate([(100, 10.0, 11.0), (100, 10.5, 11.5)]) == pytest.approx(200 / 1.5)
    assert aggregate_rate([(128, 3.0, 5.0)]) == 64.0


def test_the_gpu_check_says_plainly_when_there_is_no_gpu(tmp_path):
    import subprocess

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check would run in earnest")
    script = Path(__file__).resolve().parents[1] / "launch" / "gpu_check.sh"
    done = subprocess.run(
        ["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "torch sees no CUDA device" in done.stderr
    assert not (tmp_path / "out").exists()  # no empty report folder left behind
    bad = [*done.args[:3], "bench", "nhcw"]  # a misspelt stage: named, before any work
    done = subprocess.run(bad, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no stage nhcw" in done.stderr
    known = [*done.args[:3], "targets", "tests"]  # stages it knows: only the GPU is missing
    done = subprocess.run(known, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "torch sees no CUDA device" in done.stderr


def test_an_out_that_is_a_folder_is_refused_before_anything_is_timed(tmp_path, capsys):
    # the report is written after each space: a folder would fail after the first
    with pytest.raises(SystemExit) as refused:
        bench.main(["--spaces", "embedded", "--quick", "--out", str(tmp_path)])
    assert refused.value.code == 2
    assert f"argument --out: {tmp_path} is a folder, not a file" in capsys.readouterr().err


def test_an_out_that_cannot_be_written_is_said_before_anything_is_timed(monkeypatch, capsys):
    # a read-only folder (or a full disk): said in one line before the first space's
    # training, not a traceback once it has been timed
    def refuse(path, obj):
        raise PermissionError(13, "Permission denied", f"{path}.tmp")

    def timed(*args, **kwargs):
        raise AssertionError("timed before the report was first written")

    monkeypatch.setattr(bench, "atomic_write_json", refuse)
    monkeypatch.setattr(bench, "time_training", timed)
    args = ["--device", "cpu", "--spaces", "embedded", "--quick", "--out", "/ro/bench.json"]
    assert bench.main(args) == 2
    err = capsys.readouterr().err
    assert "error: cannot write /ro/bench.json (/ro/bench.json.tmp): Permission denied" in err


@pytest.mark.parametrize("module", ["nasheur.bench", "nasheur.host_instructions"])
def test_the_help_is_said_under_python_oo(module):
    # -OO drops the docstrings that the descriptions are cut from
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-OO", "-m", module, "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where torch sees no GPU")
def test_device_cuda_without_one_is_refused_before_anything_is_timed(tmp_path, capsys):
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as refused:
        bench.main(["--device", "cuda", "--spaces", "embedded", "--quick", "--out", str(out)])
    assert refused.value.code == 2
    said = capsys.readouterr().err
    assert "--device cuda: torch sees no CUDA device here" in said and "Traceback" not in said
    assert not out.exists()  # nothing timed, nothing written


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--shared", "2"], "--shared needs CUDA"),  # else silently no K on a CPU
        (["--batch-size", "1"], "--batch-size"),  # a job refuses it too: BN needs a batch
    ],
)
def test_benchmark_options_that_cannot_run_here_are_refused(tmp_path, capsys, extra, said):
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as refused:
        bench.main(["--device", "cpu", "--spaces", "embedded", "--out", str(out), *extra])
    assert refused.value.code == 2 and said in capsys.readouterr().err
    assert not out.exists()
