"""``make bench`` / ``python -m nasheur.bench``: how fast super-nets train and evaluate.

For each search space at its paper settings (Table 14 channels, layers and batch size), with
synthetic images already resident on the device, it measures

* training images/s of the project's single-path step (sampler, forward, backward, clipping,
  SGD), and of a plain reference step (a module list per edge, per-parameter SGD and clipping,
  `none` as a multiplication by zero) where the space has one (NB201);
* dispatched operators per training step (counted with a TorchDispatchMode) and host time per
  step (wall time of the Python that issues a step, without waiting for the device);
* evaluation: architectures/s on `--eval-images` validation images with batch statistics at
  the training batch size;
* on CUDA, the aggregate training throughput of K processes sharing the GPU (K = 1, 2, 4, 8).

It writes a JSON report (device, versions, settings, numbers). A benchmark, not a test: no
number here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from nasheur.io import atomic_write_json
from nasheur.spaces import get_space
from nasheur.supernet import SupernetSpec, build_supernet
from nasheur.training import build_optimizer

SPACES = ("nb201", "nb101", "darts_nds")


def paper_settings(name: str) -> tuple[SupernetSpec, int]:
    """The super-net spec and batch size of a space's paper defaults (conf/, Table 14)."""
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers, to_config
    from nasheur.supernet import spec_from_config

    register_configs()
    register_resolvers()
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        cfg = to_config(compose(config_name="config", overrides=[f"search_space={name}"]))
    return spec_from_config(cfg, num_classes=10), cfg.fidelity.batch_size


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


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
    ops_per_step: float
    host_ms_per_step: float
    seconds: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training(
    model: nn.Module,
    space: Any,
    batch: int,
    image: int,
    device: torch.device,
    steps: int,
    *,
    plain: bool = False,
) -> StepResult:
    model.train()
    if plain:
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-3, foreach=False
        )
    else:
        opt = build_optimizer(model, lr=0.025, momentum=0.9, weight_decay=3e-3)
    x = torch.randn(batch, 3, image, image, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    rng = np.random.default_rng(0)

    def step() -> None:
        arch = space.sample(rng)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x, arch), y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0, foreach=not plain)
        opt.step()

    for _ in range(2):  # warm-up: allocator, cuDNN algorithm choice
        step()
    counter = OpCounter()
    with counter:
        step()
    _sync(device)
    host = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        host += time.perf_counter() - t0
    _sync(device)
    seconds = time.perf_counter() - start
    return StepResult(batch * steps / seconds, counter.count, 1000 * host / steps, seconds)


@torch.no_grad()
def time_evaluation(
    model: nn.Module,
    space: Any,
    batch: int,
    image: int,
    device: torch.device,
    images: int,
    archs: int,
) -> float:
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
    evaluate_archs(model, pool[:1], loader, bn_mode="batch")  # warm-up
    _sync(device)
    start = time.perf_counter()
    evaluate_archs(model, pool, loader, bn_mode="batch")
    _sync(device)
    return archs / (time.perf_counter() - start)


def _model(name: str, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return build_supernet(name, paper_settings(name)[0]).to(device)


def _shared_worker(args: tuple[str, str, int, Any]) -> float:
    name, device_name, steps, barrier = args
    device = torch.device(device_name)
    model = _model(name, device)
    batch = paper_settings(name)[1]
    barrier.wait()
    return time_training(model, get_space(name), batch, 32, device, steps).images_per_s


def shared_gpu(
    name: str, device: torch.device, steps: int, ks: tuple[int, ...]
) -> dict[int, float]:
    """Aggregate images/s of K processes training on one GPU at once."""
    ctx = mp.get_context("spawn")
    out = {}
    for k in ks:
        barrier = ctx.Manager().Barrier(k)
        with ctx.Pool(k) as pool:
            rates = pool.map(_shared_worker, [(name, str(device), steps, barrier)] * k)
        out[k] = float(sum(rates))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "device_type": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "settings": {
            "steps": args.steps,
            "eval_images": args.eval_images,
            "eval_archs": args.eval_archs,
            "image_size": 32,
        },
        "spaces": {},
    }
    for name in args.spaces:
        try:
            space = get_space(name)
        except (KeyError, ModuleNotFoundError) as err:
            print(f"skipping {name}: {err}", file=sys.stderr)
            continue
        spec, batch = paper_settings(name)
        channels, layers = spec.channels, spec.layers
        entry: dict[str, Any] = {"spec": asdict(spec), "batch_size": batch}
        model = _model(name, device)
        entry["train"] = asdict(time_training(model, space, batch, 32, device, args.steps))
        if name == "nb201":
            torch.manual_seed(0)
            plain = PlainNB201SuperNet(channels, layers).to(device)
            entry["train_plain"] = asdict(
                time_training(plain, space, batch, 32, device, args.steps, plain=True)
            )
            entry["ops_ratio_vs_plain"] = (
                entry["train"]["ops_per_step"] / entry["train_plain"]["ops_per_step"]
            )
        rate = time_evaluation(model, space, batch, 32, device, args.eval_images, args.eval_archs)
        entry["eval"] = {
            "archs_per_s": rate,
            "seconds_per_arch": 1.0 / rate,
            "images": args.eval_images,
        }
        if device.type == "cuda" and args.shared:
            entry["shared_gpu_images_per_s"] = shared_gpu(
                name, device, args.steps, tuple(args.shared)
            )
        report["spaces"][name] = entry
        print(_line(name, entry), file=sys.stderr)
    return report


def _line(name: str, e: dict[str, Any]) -> str:
    t = e["train"]
    text = (
        f"{name}: train {t['images_per_s']:,.0f} img/s, {t['ops_per_step']:.0f} ops/step, "
        f"host {t['host_ms_per_step']:.1f} ms/step; eval {e['eval']['seconds_per_arch']:.3f} s/arch"
    )
    if "train_plain" in e:
        text += f"; plain step {e['train_plain']['ops_per_step']:.0f} ops (ratio {e['ops_ratio_vs_plain']:.2f})"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nasheur.bench", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--spaces", nargs="+", default=list(SPACES))
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed training steps (default: 50 on CUDA, 3 on CPU)",
    )
    p.add_argument(
        "--eval-images", type=int, default=None, help="default: 10,000 on CUDA, 512 on CPU"
    )
    p.add_argument("--eval-archs", type=int, default=None, help="default: 20 on CUDA, 2 on CPU")
    p.add_argument(
        "--shared",
        type=int,
        nargs="*",
        default=[1, 2, 4, 8],
        help="K processes per GPU (CUDA only)",
    )
    p.add_argument("--out", default="bench.json")
    args = p.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.steps = args.steps or (50 if cuda else 3)
    args.eval_images = args.eval_images or (10_000 if cuda else 512)
    args.eval_archs = args.eval_archs or (20 if cuda else 2)
    report = run(args)
    atomic_write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "spaces"}), file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
