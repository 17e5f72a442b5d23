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

from nasheur.supernet.batchnorm import BNStats, SuperBatchNorm2d, bn_buffers, set_bn_stats


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


class CapturedForward:
    """``predict(x)`` of one architecture, captured once in a CUDA graph and replayed per
    batch: one launch per batch instead of the hundreds of operators that Python would issue,
    so the host no longer bounds evaluation.

    Inputs go through a static buffer; the returned predictions are a static buffer too, which
    the next call overwrites (stream order makes reading them before that call safe). The
    evaluation of one architecture has static shapes (``eval_batches`` always yields full
    batches) and changes no state in a forward pass, which is what a replay needs.
    """

    def __init__(self, predict: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor):
        if example.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; the batches are on {example.device}")
        self.x = example.clone()
        # warm-up and capture on one side stream: cuDNN chooses its algorithms, and the
        # per-stream library handles (cuBLAS) are made, outside the capture
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            predict(self.x)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=side):
            self.out = predict(self.x)
        torch.cuda.current_stream().wait_stream(side)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.x.copy_(x)
        self.graph.replay()
        return self.out


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
    cuda_graphs: bool = False,
    capture: Callable[..., Callable[[torch.Tensor], torch.Tensor]] = CapturedForward,
) -> np.ndarray:
    """Top-1 accuracy (fraction) of each architecture on the validation share.

    ``cuda_graphs``: each architecture's validation forward is captured once and replayed
    per batch (:class:`CapturedForward`, or ``capture``); the accuracies are those of the
    plain forward."""
    model.eval()
    device = next(model.parameters()).device
    saved = bn_buffers(model) if bn_mode == "recalibrate" else None
    hits = []
    # autocast's cache of cast weights cannot live across a graph's capture and replays
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=not cuda_graphs
    )
    bns = [m for m in model.modules() if isinstance(m, SuperBatchNorm2d)]  # walked once
    if bn_mode != "recalibrate":
        set_bn_stats(bns, BNStats(bn_mode))
    for i, arch in enumerate(archs):
        if bn_mode == "recalibrate":
            set_bn_stats(bns, BNStats.calibrate)
            # the same K batches for every architecture
            gen = torch.Generator(device=device).manual_seed(calib_seed)
            for b, (x, _) in enumerate(calib_loader.train_batches(gen)):
                if b >= calib_batches:
                    break
                with autocast:
                    model(x, arch)
            set_bn_stats(bns, BNStats.running)
        count = torch.zeros((), device=device, dtype=torch.long)

        def predict(x: torch.Tensor, arch: Any = arch) -> torch.Tensor:
            with autocast:
                return model(x, arch).argmax(1)

        forward = predict
        for b, (x, y, n_valid) in enumerate(val_loader.eval_batches()):
            if cuda_graphs and b == 0:
                forward = capture(predict, x)
            pred = forward(x)
            count += (pred[:n_valid] == y[:n_valid]).sum()
        hits.append(count)
        if progress is not None:
            progress(i + 1)
    if saved is not None:
        model.load_state_dict(saved, strict=False)
    set_bn_stats(bns, BNStats.running)
    return torch.stack(hits).cpu().numpy().astype(np.float64) / val_loader.num_images
