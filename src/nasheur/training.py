"""The super-net training protocol P_ws: SGD with momentum, cosine decay, gradient clipping,
cross-entropy, one sampled path per step, and a checkpoint at the end of every epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasheur.io import atomic_path
from nasheur.samplers import Sampler

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """The learning rate of `epoch` (0-based): cosine from `lr` towards `lr_min`."""
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs))


def build_optimizer(
    model: nn.Module, *, lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    # Parameters off the sampled path have no gradient in a step, and SGD skips them: their
    # weights, momentum buffers and weight decay stay as they were (single-path semantics).
    # foreach: one multi-tensor kernel per update instead of a few per parameter (CPU too).
    opt = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True
    )
    if momentum:
        # SGD drops to a per-parameter loop whenever a parameter of the step has no momentum
        # buffer yet, which in single-path training is most steps. A zero buffer gives the
        # same first update (0 * momentum + grad = grad, exactly) and keeps the fast kernel.
        for group in opt.param_groups:
            for p in group["params"]:
                opt.state[p]["momentum_buffer"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format
                )
    return opt


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    steps: int
    seconds: float


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Any,
    sampler: Sampler,
    *,
    rng: np.random.Generator,
    generator: torch.Generator,
    grad_clip: float,
    max_steps: int | None = None,
    bf16: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> EpochStats:
    """One pass over the training share; one optimizer step per batch.

    The step averages the gradients of the architectures the sampler returns for the batch.
    Losses and hits accumulate on the device: the host reads them once, at the end.
    ``on_step(steps done)`` follows every step (a progress display; it reads nothing back).
    """
    model.train()
    start = time.perf_counter()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    hits = torch.zeros((), device=device, dtype=torch.long)
    images = steps = 0
    for step, (x, y) in enumerate(loader.train_batches(generator)):
        if max_steps is not None and step >= max_steps:
            break
        archs = sampler.step_archs(rng)
        optimizer.zero_grad(set_to_none=True)
        for arch in archs:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x, arch)
            loss = F.cross_entropy(logits.float(), y)
            (loss / len(archs)).backward()
            loss_sum += loss.detach() * len(y)
            hits += (logits.detach().argmax(1) == y).sum()
            images += len(y)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)
        optimizer.step()
        steps += 1
        if on_step is not None:
            on_step(steps)
    loss_value, hit_value = float(loss_sum), int(hits)  # the epoch's one host sync
    return EpochStats(
        loss=loss_value / max(images, 1),
        acc=hit_value / max(images, 1),
        images=images,
        steps=steps,
        seconds=time.perf_counter() - start,
    )


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
    config_hash: str,
) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "config_hash": config_hash,
        "epoch": epoch,  # epochs completed
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class CheckpointMismatch(RuntimeError):
    pass


def load_checkpoint(path: Path, *, device: torch.device, config_hash: str) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects (``weights_only``).

    A checkpoint of another config is refused rather than mixed into this run.
    """
    state = torch.load(path, map_location=device, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(f"{path}: unknown checkpoint format {state.get('format')!r}")
    if state.get("config_hash") != config_hash:
        raise CheckpointMismatch(
            f"{path} was written by a run with another config (hash {state.get('config_hash')}, "
            f"this run {config_hash}); refusing to resume into it. Use another output folder "
            "(hydra.run.dir=...) or delete the checkpoint."
        )
    return state
