"""``make bench`` / ``python -m nasheur.bench``: how fast super-nets train and evaluate.

For each search space at its defaults (for the three benchmarks the paper's Table 14 channels,
layers and batch size, on 32-pixel images; `embedded` at its own), with synthetic images
already resident on the device, it measures

* training images/s of the step that jobs run (:class:`nasheur.training.TrainStep`: sampler,
  forward, backward, clipping, SGD), and of a plain reference step (a module list per edge,
  per-parameter SGD and clipping, `none` as a multiplication by zero) where the space has one
  (NB201);
* per training step, averaged over a few sampled paths: dispatched operators (counted with a
  TorchDispatchMode; all, and those other than autograd's detaches, whose number changes with
  torch's version) and Python calls (counted with a profile hook), the host work that bounds
  a GPU step and that no kernel speed hides; both mean the same on a CPU-only machine;
* host time per step (wall time of the Python that issues a step, without waiting for the
  device; on a CPU it includes the arithmetic), and how much of it the forward and the
  backward take (timed apart; the rest is mostly the update);
* evaluation: architectures/s on `--eval-images` validation images with batch statistics at
  the training batch size, and the operators and Python calls per batch;
* on CUDA, the aggregate training throughput of K processes sharing the GPU (K = 1, 2, 4, 8).

It writes a JSON report (device, versions, settings, numbers). A benchmark, not a test: no
number here is asserted anywhere (tests/test_bench.py asserts the counts' ratios only).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from nasheur import __version__
from nasheur.cli_args import at_least, file_path
from nasheur.config import RunConfig
from nasheur.io import atomic_write_json
from nasheur.spaces import get_space
from nasheur.supernet import SupernetSpec, build_supernet
from nasheur.training import TrainStep, allow_tf32, build_optimizer, forward_loss

SPACES = ("nb201", "nb101", "darts_nds", "embedded")
COUNTED_STEPS = 8  # steps whose operators and Python calls are counted (then averaged)
MARGINAL = 4  # architectures whose evaluation's operators and Python calls are counted


@dataclass(frozen=True)
class Settings:
    spec: SupernetSpec
    batch_size: int
    image_size: int
    run: RunConfig  # how the space's jobs run (its eval_speed)


def paper_settings(name: str) -> Settings:
    """The super-net spec, batch size and image size of a space's defaults (conf/; for the
    three benchmarks the paper's, Table 14)."""
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers, to_config
    from nasheur.supernet import spec_from_config

    register_configs()
    register_resolvers()
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        cfg = to_config(compose(config_name="config", overrides=[f"search_space={name}"]))
    image = 32 if cfg.dataset.name == "cifar10" else cfg.dataset.image_size
    return Settings(spec_from_config(cfg, num_classes=10), cfg.fidelity.batch_size, image, cfg.run)


_DETACH = torch.ops.aten.detach.default


class OpCounter(TorchDispatchMode):
    """Counts the operators dispatched, and among them autograd's ``detach``es: those launch
    no kernel, and how many the engine dispatches changes with torch's version (per NB201
    step of the job 204 with torch 2.13, 340 with torch 2.6, the other operators the same)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.detaches = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        self.detaches += func is _DETACH
        return func(*args, **(kwargs or {}))

    @property
    def others(self) -> int:
        """The operators other than ``detach``."""
        return self.count - self.detaches


class PlainNB201SuperNet(nn.Module):
    """The straightforward reference: a module list of all five ops per edge, Python dispatch
    per op, BN modules of PyTorch, and `none` computed as a multiplication by zero as public
    code does (which gives dead branches zero gradients, so weight decay moves them). With
    ``zero_as_mul=False`` `none` is skipped instead, and the reference keeps the exact
    single-path semantics: the plain path that tests compare the fast one with."""

    def __init__(
        self, channels: int, layers: int, num_classes: int = 10, zero_as_mul: bool = True
    ) -> None:
        super().__init__()
        from nasheur.spaces.nb201 import EDGES, OPS
        from nasheur.spaces.nb201_net import ResidualReduction, make_op, stage_widths

        self.edges = EDGES
        self.zero_as_mul = zero_as_mul
        bn = nn.BatchNorm2d
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), bn(channels))
        blocks = []
        for item in stage_widths(channels, layers):
            if isinstance(item, tuple):
                blocks.append(ResidualReduction(*item, bn))
            else:
                blocks.append(
                    nn.ModuleList(
                        nn.ModuleList(make_op(name, item, bn) or _Zero() for name in OPS)
                        for _ in EDGES
                    )
                )
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            bn(4 * channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.classifier = nn.Linear(4 * channels, num_classes)

    def forward(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            if isinstance(block, nn.ModuleList):
                nodes = [x]
                for node in range(1, 4):
                    terms = [
                        block[e][op](nodes[src])
                        for e, ((dst, src), op) in enumerate(zip(self.edges, arch.ops, strict=True))
                        if dst == node and (op != 0 or self.zero_as_mul)
                    ]
                    nodes.append(sum(terms) if terms else torch.zeros_like(x))
                x = nodes[-1]
            else:
                x = block(x)
        return self.classifier(self.head(x))


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


@dataclass
class StepResult:
    images_per_s: float
    ops_per_step: float | None  # None: not counted (--quick)
    # of those, the ones other than autograd's detaches (OpCounter), which torch versions vary
    other_ops_per_step: float | None
    python_calls_per_step: float | None
    host_ms_per_step: float
    seconds: float
    # wall-clock (time.time) start and end of the timed steps: comparable across processes
    window: tuple[float, float] = (0.0, 0.0)
    # CUDA only: kernel time per step (the GPU's busy time; a step bound by the host shows
    # wall time per step well above it) and the kernels that take most of it
    device_ms_per_step: float | None = None
    top_kernels_ms_per_step: dict[str, float] | None = None
    top_host_ops_ms_per_step: dict[str, float] | None = None  # under the profiler
    # the host's time per step in the forward (with the loss) and in the backward, timed
    # apart (host_phases); the rest of host_ms_per_step is the sampling, the step's loss and
    # hits, and the update
    host_ms_by_phase: dict[str, float] | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


PROFILED_STEPS = 10  # steps whose kernels the profiler times (CUDA)


def device_time_per_step(
    fn: Callable[[], object], steps: int, top: int = 12
) -> tuple[float, dict[str, float], dict[str, float]]:
    """Milliseconds per call of `fn`, from torch.profiler: device (kernel) time in all and
    for the `top` kernels (what the device does for a step, apart from any time it waits for
    the host), and the host's own time in its `top` operators (profiled, so inflated alike:
    read them as shares, to see which operators cost the host most)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    # kernels only: a CPU operator's "self device time" repeats its kernels' time
    rows = [(e.key, e.self_device_time_total) for e in events if e.device_type != DeviceType.CPU]
    rows = sorted((r for r in rows if r[1] > 0), key=lambda r: -r[1])
    total = sum(t for _, t in rows) / 1000 / steps  # profiler times are microseconds
    host = sorted(((e.key, e.self_cpu_time_total) for e in events), key=lambda r: -r[1])
    return total, _per_step(rows[:top], steps), _per_step(host[:top], steps)


def _per_step(rows: list[tuple[str, float]], steps: int) -> dict[str, float]:
    """Milliseconds per step by name, names cut to 80 characters: kernels of one template
    share long prefixes, so those whose cut names coincide are added up, not overwritten."""
    out: dict[str, float] = {}
    for key, microseconds in rows:
        name = key if len(key) <= 80 else key[:79] + "~"
        out[name] = out.get(name, 0.0) + microseconds / 1000 / steps
    return out


def count_python_calls(fn: Callable[[], object]) -> int:
    """Python and builtin function calls made while `fn` runs: the host work of a step that
    no kernel speed hides, and a count that, like the operator count, means the same on any
    machine."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def host_phases(
    model: nn.Module,
    archs: list,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    bf16: bool = False,
) -> dict[str, float]:
    """The host's milliseconds per step in the forward (the loss included) and in the
    backward of the paths `archs`, each timed on its own without waiting for the device:
    where a step's host time goes. Given the paths the timed steps drew, the rest of their
    host time is the step's other work (on a CPU a path's arithmetic varies too much between
    paths for other draws to compare). On a GPU the backward's operators are issued by
    autograd's device thread while the caller waits, so its time is host time too. The
    model's parameters do not change (no update); every gradient is None afterwards."""
    params = [p for p in model.parameters() if p.requires_grad]
    forward = backward = 0.0
    for arch in archs:
        t0 = time.perf_counter()
        _, loss = forward_loss(model, x, y, arch, bf16=bf16)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        forward, backward = forward + t1 - t0, backward + t2 - t1
        for p in params:
            p.grad = None
    return {"forward": 1000 * forward / len(archs), "backward": 1000 * backward / len(archs)}


def plain_step(
    model: nn.Module, clip: float = 5.0
) -> Callable[[torch.Tensor, torch.Tensor, list], Any]:
    """The reference's step: SGD and clipping over ``model.parameters()`` as public code
    writes them, with PyTorch's defaults (multi-tensor kernels on CUDA, per parameter on the
    CPU)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-3)

    def step(x: torch.Tensor, y: torch.Tensor, archs: list) -> None:
        opt.zero_grad(set_to_none=True)
        for arch in archs:
            F.cross_entropy(model(x, arch), y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    return step


def fast_step(model: nn.Module, clip: float = 5.0, bf16: bool = False) -> TrainStep:
    """The project's step, as jobs run it (:class:`nasheur.training.TrainStep`)."""
    opt = build_optimizer(model, lr=0.025, momentum=0.9, weight_decay=3e-3)
    return TrainStep(model, opt, grad_clip=clip, bf16=bf16)


def time_training(
    step_fn: Callable[[torch.Tensor, torch.Tensor, list], Any],
    model: nn.Module,
    space: Any,
    batch: int,
    image: int,
    device: torch.device,
    steps: int,
    *,
    count: bool = True,
    profile: bool = True,
    ready: Callable[[], object] | None = None,
) -> StepResult:
    model.train()
    x = torch.randn(batch, 3, image, image, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    rng = np.random.default_rng(0)
    drawn: list = []  # the paths of the steps, for host_phases to time the same ones

    def step() -> None:
        drawn.append(space.sample(rng))
        step_fn(x, y, drawn[-1:])

    for _ in range(2):  # warm-up: allocator, cuDNN algorithm choice, momentum buffers
        step()
    counter, calls = OpCounter(), 0
    if count:  # averaged over a few paths: a step's count depends on its architecture
        with counter:
            for _ in range(COUNTED_STEPS):
                step()
        calls = count_python_calls(lambda: [step() for _ in range(COUNTED_STEPS)])
    else:
        # the counted steps' paths as more warm-up: cuDNN tunes each conv shape as a path
        # first meets it, which two paths leave to the timed steps; so --quick and the K
        # processes time after the same warm-up, and on the same paths, as a counted run
        for _ in range(2 * COUNTED_STEPS):
            step()
    _sync(device)
    if ready is not None:  # warmed up: K processes sharing a GPU start timing together
        ready()
    host = 0.0
    drawn.clear()
    wall_start, start = time.time(), time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        host += time.perf_counter() - t0
    _sync(device)
    seconds = time.perf_counter() - start
    result = StepResult(
        batch * steps / seconds,
        counter.count / COUNTED_STEPS if count else None,
        counter.others / COUNTED_STEPS if count else None,
        calls / COUNTED_STEPS if count else None,
        1000 * host / steps,
        seconds,
        (wall_start, wall_start + seconds),
    )
    if count:
        phases = host_phases(model, drawn, x, y, bf16=getattr(step_fn, "bf16", False))
        phases["rest"] = result.host_ms_per_step - phases["forward"] - phases["backward"]
        result.host_ms_by_phase = phases
    if profile and device.type == "cuda":
        try:  # a measure to read, not one to die for: a profiler that fails leaves a note
            (
                result.device_ms_per_step,
                result.top_kernels_ms_per_step,
                result.top_host_ops_ms_per_step,
            ) = device_time_per_step(step, PROFILED_STEPS)
        except Exception as err:
            print(f"profiler: {type(err).__name__}: {err}", file=sys.stderr)
    return result


@dataclass
class EvalResult:
    archs_per_s: float
    seconds_per_arch: float
    images: int
    ops_per_batch: float | None  # None: not counted (--quick)
    python_calls_per_batch: float | None
    device_s_per_arch: float | None = None  # CUDA: kernel time, as for training
    top_kernels_ms_per_arch: dict[str, float] | None = None


@torch.no_grad()
def time_evaluation(
    model: nn.Module,
    space: Any,
    batch: int,
    image: int,
    device: torch.device,
    images: int,
    archs: int,
    bf16: bool = False,
    cuda_graphs: bool = False,
    streams: int = 1,
    pack: int = 1,
    count: bool = True,
) -> EvalResult:
    """The job's evaluation (batch statistics at the training batch size) of `archs` sampled
    architectures on `images` random validation images."""
    from nasheur.data import DeviceLoader
    from nasheur.evaluation import evaluate_archs

    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (images, 3, image, image), dtype=torch.uint8, generator=g).to(
        device
    )
    labels = torch.randint(0, 10, (images,), generator=g).to(device)
    loader = DeviceLoader(
        data, labels, batch_size=batch, mean=(0.5,) * 3, std=(0.25,) * 3, augment=False
    )
    rng = np.random.default_rng(0)
    pool = [space.sample(rng) for _ in range(archs)]

    def evaluate(some: list) -> None:
        evaluate_archs(
            model,
            some,
            loader,
            bn_mode="batch",
            bf16=bf16,
            cuda_graphs=cuda_graphs,
            streams=streams,
            pack=pack,
        )

    evaluate(pool[:1])  # warm-up
    # per batch, the work that one more architecture adds, averaged over MARGINAL of them (a
    # job evaluates its whole pool in one call, whose own set-up hundreds of archs share)
    extra = [space.sample(rng) for _ in range(1 + MARGINAL)]
    per = MARGINAL * -(-images // batch)
    ops = calls = None
    if count:
        counters = [OpCounter(), OpCounter()]
        for some, counter in zip((extra[:1], extra), counters, strict=True):
            with counter:
                evaluate(some)
        ops = (counters[1].count - counters[0].count) / per
        calls = (
            count_python_calls(lambda: evaluate(extra))
            - count_python_calls(lambda: evaluate(extra[:1]))
        ) / per
    else:  # the counted run's architectures as warm-up: the timed pool after the same ones
        evaluate(extra)
    _sync(device)
    start = time.perf_counter()
    evaluate(pool)
    _sync(device)
    rate = archs / (time.perf_counter() - start)
    result = EvalResult(rate, 1.0 / rate, images, ops, calls)
    if device.type == "cuda":
        try:
            timed = pool[:2]
            ms, top, _ = device_time_per_step(lambda: evaluate(timed), 1)
            result.device_s_per_arch = ms / 1000 / len(timed)
            result.top_kernels_ms_per_arch = {k: v / len(timed) for k, v in top.items()}
        except Exception as err:
            print(f"profiler: {type(err).__name__}: {err}", file=sys.stderr)
    return result


def eval_settings(args: argparse.Namespace, run: RunConfig, device: torch.device) -> dict[str, Any]:
    """How to evaluate a space: the command line's choices, else the space's own (the
    eval_speed its jobs run with); CUDA graphs only on CUDA."""
    graphs = run.eval_graphs if args.eval_graphs is None else args.eval_graphs
    return {
        "cuda_graphs": graphs and device.type == "cuda",
        "streams": args.eval_streams or run.eval_streams,
        "pack": args.eval_pack or run.eval_pack,
    }


def seeded_supernet(
    name: str, spec: SupernetSpec, device: torch.device, channels_last: bool = False
) -> nn.Module:
    """Space `name`'s super-net of `spec`, initialised from seed 0 (the same weights in every
    process that times it)."""
    torch.manual_seed(0)
    model = build_supernet(name, spec).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _shared_worker(args: tuple[str, str, int, int, bool, bool, Any]) -> tuple[int, float, float]:
    """One of K trainers: the images it trained and the wall-clock window it took."""
    name, device_name, batch, steps, bf16, channels_last, barrier = args
    try:
        device = torch.device(device_name)
        allow_tf32(device)
        settings = paper_settings(name)
        model = seeded_supernet(name, settings.spec, device, channels_last)
        image = settings.image_size
        step_fn = fast_step(model, bf16=bf16)
        space = get_space(name)
        # the barrier after each one's warm-up (cuDNN's autotuning, lazy module loading), so
        # that the timed windows coincide
        result = time_training(
            step_fn,
            model,
            space,
            batch,
            image,
            device,
            steps,
            count=False,
            profile=False,
            ready=barrier.wait,
        )
    except BaseException:
        # the others waiting at the barrier stop now (BrokenBarrierError), so that the K's
        # result is this error, not a time-out once they have waited out theirs
        barrier.abort()
        raise
    return batch * steps, *result.window


def shared_gpu(
    name: str,
    device: torch.device,
    batch: int,
    steps: int,
    ks: tuple[int, ...],
    bf16: bool,
    channels_last: bool = False,
    each: Callable[[int, float | str], object] | None = None,
) -> dict[int, float | str]:
    """Aggregate images/s of K processes training on one GPU at once: all their images over
    the wall-clock span from the first start to the last end (not the sum of each one's rate,
    which would count a process's solo tail, after others stopped, as shared throughput).
    `each(k, result)` is called as each K ends, so that a run cut off later keeps it."""
    ctx = mp.get_context("spawn")
    out: dict[int, float | str] = {}
    for k in ks:
        try:
            with ctx.Manager() as manager, ctx.Pool(k) as pool:
                # all K set up, then start stepping together; a worker that fails before it
                # gets there, or dies, must not leave the others (and the report) waiting
                barrier = manager.Barrier(k, timeout=SHARED_SETUP_S)
                work = (name, str(device), batch, steps, bf16, channels_last, barrier)
                runs = [pool.apply_async(_shared_worker, (work,)) for _ in range(k)]
                limit = SHARED_SETUP_S + SHARED_STEP_S * steps
                out[k] = aggregate_rate(_all_results(runs, time.monotonic() + limit, limit))
        except Exception as err:  # this K's error in the report; the other Ks still run
            out[k] = f"{type(err).__name__}: {err}"
        if each is not None:
            each(k, out[k])
    return out


def _all_results(runs: list[Any], deadline: float, limit: float) -> list[Any]:
    """Every worker's result; else the error of one that failed, not the broken barrier that
    its failure left the others (whichever of them ended first)."""
    results, broken = [], None
    for run in runs:
        try:
            results.append(run.get(max(deadline - time.monotonic(), 0.0)))
        except mp.TimeoutError:
            raise TimeoutError(f"no result within {limit:.0f} s") from None
        except threading.BrokenBarrierError as err:  # another's failure, or a slow start
            broken = broken or err
    if broken is not None:
        raise broken
    return results


SHARED_SETUP_S = 120.0  # seconds for K processes to start CUDA, build and warm up super-nets
SHARED_STEP_S = 0.5  # and per training step of theirs, at the most (some 0.1 s at K = 8)


def aggregate_rate(runs: list[tuple[int, float, float]]) -> float:
    """Images per second of runs ``(images, start, end)`` taken together: every image over
    the span from the first start to the last end."""
    span = max(end for _, _, end in runs) - min(start for _, start, _ in runs)
    return float(sum(n for n, _, _ in runs) / span)


def run(args: argparse.Namespace, out: str | None = None) -> dict[str, Any]:
    """The report of `args`, written to `out` (when given) after each space."""
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    allow_tf32(device)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        # launch/with_mps.sh sets the pipe folder of the MPS daemon it started
        "mps": bool(os.environ.get("CUDA_MPS_PIPE_DIRECTORY")),
        "python": platform.python_version(),
        "nasheur": __version__,
        "commit": _commit(),
        "threads": torch.get_num_threads(),
        "settings": {
            "steps": args.steps,
            "eval_images": args.eval_images,
            "eval_archs": args.eval_archs,
            "bf16": args.bf16,
            # evaluation: null takes each space's own (its eval_speed; entry "eval_settings")
            "eval_cuda_graphs": args.eval_graphs,
            "eval_streams": args.eval_streams,
            "eval_pack": args.eval_pack,
            "channels_last": args.channels_last,
            "quick": args.quick,
            "shared": list(args.shared) if device.type == "cuda" else [],
            "counted_steps": COUNTED_STEPS,
            "marginal_archs": MARGINAL,
        },
        "spaces": {},
    }

    def save() -> None:  # after each part: a run cut off later (a time limit) keeps the rest
        if out is not None:
            write_report(out, report)

    save()  # first before any timing: an --out that cannot be written fails at once
    for name in args.spaces:
        try:
            space = get_space(name)
        except (KeyError, ModuleNotFoundError) as err:
            print(f"skipping {name}: {err}", file=sys.stderr)
            continue
        settings = paper_settings(name)
        spec, image = settings.spec, settings.image_size
        batch = args.batch_size or settings.batch_size
        entry: dict[str, Any] = {"spec": asdict(spec), "batch_size": batch, "image_size": image}
        model = seeded_supernet(name, spec, device, args.channels_last)
        count = not args.quick
        entry["train"] = asdict(
            time_training(
                fast_step(model, bf16=args.bf16),
                model,
                space,
                batch,
                image,
                device,
                args.steps,
                count=count,
            )
        )
        report["spaces"][name] = entry
        save()
        print(f"{name}: train {entry['train']['images_per_s']:,.0f} img/s", file=sys.stderr)
        if name == "nb201" and count:
            torch.manual_seed(0)
            plain = PlainNB201SuperNet(spec.channels, spec.layers).to(device)
            entry["train_plain"] = asdict(
                time_training(plain_step(plain), plain, space, batch, image, device, args.steps)
            )
            for key in ("ops_per_step", "other_ops_per_step", "python_calls_per_step"):
                entry[f"{key}_vs_plain"] = entry["train"][key] / entry["train_plain"][key]
            save()
        evaluation = eval_settings(args, settings.run, device)
        entry["eval_settings"] = evaluation
        entry["eval"] = asdict(
            time_evaluation(
                model,
                space,
                batch,
                image,
                device,
                args.eval_images,
                args.eval_archs,
                args.bf16,
                **evaluation,
                count=count,
            )
        )
        save()
        print(_line(name, entry), file=sys.stderr)
        if device.type == "cuda" and args.shared:
            entry["shared_gpu_images_per_s"] = {}

            def each(k: int, result: float | str, name: str = name, entry: dict = entry) -> None:
                entry["shared_gpu_images_per_s"][k] = result
                save()
                print(f"{name}: shared GPU {_shared({k: result})}", file=sys.stderr)

            shared = shared_gpu(
                name,
                device,
                batch,
                args.steps,
                tuple(args.shared),
                args.bf16,
                args.channels_last,
                each=each,
            )
            print(f"{name}: shared GPU {_shared(shared)}", file=sys.stderr)
    return report


class ReportNotWritten(Exception):
    """The report's file cannot be written (a read-only folder, a full disk, a quota)."""


def write_report(out: str, report: dict[str, Any]) -> None:
    try:
        atomic_write_json(out, report)
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(out) else ""
        raise ReportNotWritten(f"cannot write {out}{where}: {err.strerror or err}") from None


def _commit() -> str | None:
    """The commit of the checkout the benchmark runs from, if it is one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _shared(rates: dict[int, Any]) -> str:
    return ", ".join(
        f"K={k}: {v:,.0f}" if isinstance(v, float) else f"K={k}: {v}" for k, v in rates.items()
    )


def _line(name: str, e: dict[str, Any]) -> str:
    t = e["train"]
    ev = e["eval"]
    counted = t["ops_per_step"] is not None  # not under --quick
    text = (
        f"{name}: train {t['images_per_s']:,.0f} img/s, "
        + (
            f"{t['ops_per_step']:.0f} ops/step, {t['python_calls_per_step']:,.0f} Python "
            "calls/step, "
            if counted
            else ""
        )
        + f"host {t['host_ms_per_step']:.1f} ms/step{_phases(t)}{_device_ms(t)}; "
        f"eval {ev['seconds_per_arch']:.3f} s/arch{_device_s(e)}"
        + (
            f", {ev['ops_per_batch']:.0f} ops and {ev['python_calls_per_batch']:,.0f} Python "
            "calls per batch"
            if counted
            else ""
        )
    )
    if "train_plain" in e:
        p = e["train_plain"]
        text += (
            f"; plain step {p['images_per_s']:,.0f} img/s{_device_ms(p)}, "
            f"{p['ops_per_step']:.0f} ops "
            f"(x{e['ops_per_step_vs_plain']:.2f}; other than detach "
            f"x{e['other_ops_per_step_vs_plain']:.2f}), {p['python_calls_per_step']:,.0f} Python "
            f"calls (x{e['python_calls_per_step_vs_plain']:.2f})"
        )
    return text


def _phases(t: dict[str, Any]) -> str:
    ms = t.get("host_ms_by_phase")
    return "" if not ms else " (" + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()) + ")"


def _device_ms(t: dict[str, Any]) -> str:
    ms = t.get("device_ms_per_step")
    return "" if ms is None else f", GPU busy {ms:.2f} ms/step"


def _device_s(e: dict[str, Any]) -> str:
    s = e["eval"].get("device_s_per_arch")
    return "" if s is None else f" (GPU busy {s:.3f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nasheur.bench", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--spaces",
        nargs="+",
        default=list(SPACES),
        choices=list(SPACES),
        help="the search spaces to time, each at its paper settings (default: all)",
    )
    p.add_argument(
        "--steps",
        type=at_least(1),
        default=None,
        help="timed training steps (default: 50 on CUDA, 3 on CPU)",
    )
    p.add_argument(
        "--eval-images", type=at_least(1), default=None, help="default: 10,000 on CUDA, 512 on CPU"
    )
    p.add_argument(
        "--eval-archs", type=at_least(1), default=None, help="default: 20 on CUDA, 2 on CPU"
    )
    p.add_argument(
        "--shared",
        type=at_least(1),
        nargs="*",
        default=None,
        help="K processes per GPU (CUDA only; default: 1 2 4 8 on CUDA; none: no K)",
    )
    p.add_argument(
        "--batch-size",
        type=at_least(2),  # as a job's: BN needs a batch
        default=None,
        help="default: each space's (paper) batch size",
    )
    p.add_argument("--bf16", action="store_true", help="train under bf16 autocast (run.bf16)")
    job = RunConfig()  # the job's defaults, so that the benchmark times what jobs run
    p.add_argument(
        "--eval-graphs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="replay a CUDA graph of each architecture's evaluation forward (run.eval_graphs; "
        "default: each space's, on CUDA, where alone it works)",
    )
    p.add_argument(
        "--eval-streams",
        type=at_least(1),
        default=None,
        help="with CUDA graphs: architectures evaluated at once, a CUDA stream each "
        "(run.eval_streams; default: each space's)",
    )
    p.add_argument(
        "--eval-pack",
        type=at_least(1),
        default=None,
        help="validation batches per forward, each with its own BN statistics "
        "(run.eval_pack; default: each space's)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=job.channels_last,
        help="NHWC super-nets (run.channels_last; default: %(default)s)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="rates and GPU kernel times only: no operator or Python-call counts, no plain step",
    )
    p.add_argument(
        "--out", type=file_path, default="bench.json", help="the JSON report (default: %(default)s)"
    )
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        # else torch's own AssertionError, with its stack, once the report asks for the name
        p.error(
            "--device cuda: torch sees no CUDA device here (a CPU-only torch, or no GPU "
            "visible); use --device cpu or auto"
        )
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if args.eval_graphs and not cuda:
        p.error("--eval-graphs needs CUDA")
    if args.shared and not cuda:  # else nothing would say that no K ran
        p.error("--shared needs CUDA: K processes sharing one GPU")
    args.shared = [1, 2, 4, 8] if args.shared is None else args.shared
    args.steps = args.steps or (50 if cuda else 3)
    args.eval_images = args.eval_images or (10_000 if cuda else 512)
    args.eval_archs = args.eval_archs or (20 if cuda else 2)
    try:
        report = run(args, args.out)
        write_report(args.out, report)
    except ReportNotWritten as err:  # said in one line, as argparse says a bad --out
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in report.items() if k != "spaces"}), file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
