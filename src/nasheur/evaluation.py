"""Evaluation of a trained super-net: the architecture pool and its super-net accuracies.

BN at evaluation (spec section 4): ``batch`` normalises with each evaluation batch's own
statistics at the training batch size (the paper's choice), ``running`` with the tracked
running statistics, ``recalibrate`` re-estimates the running statistics on K training batches
for every architecture first. ``auto`` is ``running`` when the super-net tracks statistics and
``batch`` when it does not. Dropout is never active here: the model is in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasheur.supernet.batchnorm import BNStats, bn_buffers, set_bn_stats


def resolve_bn_mode(eval_bn: str, bn_track: bool) -> str:
    if eval_bn == "auto":
        return "running" if bn_track else "batch"
    return eval_bn


def draw_pool(keys: Sequence[str], size: int, rng: np.random.Generator) -> list[str]:
    """`size` distinct architectures with ground truth, drawn uniformly with the run's seed."""
    ordered = sorted(keys)  # independent of the GT file's row order
    if size > len(ordered):
        raise ValueError(
            f"eval.pool_size={size} exceeds the {len(ordered)} architectures that have ground truth"
        )
    return [ordered[i] for i in rng.choice(len(ordered), size=size, replace=False)]


@torch.no_grad()
def evaluate_archs(
    model: nn.Module,
    archs: Sequence[Any],
    val_loader: Any,
    *,
    bn_mode: str,
    calib_loader: Any | None = None,
    calib_batches: int = 10,
    calib_seed: int = 0,
    progress: Callable[[int], None] | None = None,
    bf16: bool = False,
) -> np.ndarray:
    """Top-1 accuracy (fraction) of each architecture on the validation share."""
    model.eval()
    device = next(model.parameters()).device
    saved = bn_buffers(model) if bn_mode == "recalibrate" else None
    hits = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for i, arch in enumerate(archs):
        if bn_mode == "recalibrate":
            set_bn_stats(model, BNStats.calibrate)
            # the same K batches for every architecture
            gen = torch.Generator(device=device).manual_seed(calib_seed)
            for b, (x, _) in enumerate(calib_loader.train_batches(gen)):
                if b >= calib_batches:
                    break
                with autocast:
                    model(x, arch)
            set_bn_stats(model, BNStats.running)
        else:
            set_bn_stats(model, BNStats(bn_mode))
        count = torch.zeros((), device=device, dtype=torch.long)
        for x, y, n_valid in val_loader.eval_batches():
            with autocast:
                pred = model(x, arch).argmax(1)
            count += (pred[:n_valid] == y[:n_valid]).sum()
        hits.append(count)
        if progress is not None:
            progress(i + 1)
    if saved is not None:
        model.load_state_dict(saved, strict=False)
    set_bn_stats(model, BNStats.running)
    return torch.stack(hits).cpu().numpy().astype(np.float64) / val_loader.num_images
