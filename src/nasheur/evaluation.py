"""Evaluation of a trained super-net: the architecture pool and its super-net accuracies.

BN at evaluation (spec section 4): ``batch`` normalises with each evaluation batch's own
statistics at the training batch size (the paper's choice), ``running`` with the tracked
running statistics, ``recalibrate`` re-estimates the running statistics on K training batches
for every architecture first. ``auto`` is ``running`` when the super-net tracks statistics and
``batch`` when it does not. Dropout is never active here: the model is in eval mode.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nasheur.config import ConfigError
from nasheur.supernet.batchnorm import (
    BNStats,
    SuperBatchNorm2d,
    bn_buffers,
    set_bn_groups,
    set_bn_stats,
)
from nasheur.supernet.channels import SlicedBatchNorm2d

# calibration batches beyond K that `shuffle` may take to draw every channel once (a channel
# of a layer of C_max serving C >= C_max / 5 is missed by n batches with probability 0.8^n)
MAX_EXTRA_CALIBRATION = 1000


def draw_pool(keys: Sequence[str], size: int, rng: np.random.Generator) -> list[str]:
    """`size` distinct architectures with ground truth, drawn uniformly with the run's seed
    (a job has checked the size against its spaces already: ``job.searched_archs``)."""
    ordered = sorted(keys)  # independent of the GT file's row order
    if size > len(ordered):
        raise ConfigError(
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
    streams: int = 1,
    pack: int = 1,
    capture: Callable[..., Callable[[torch.Tensor], torch.Tensor]] = CapturedForward,
) -> np.ndarray:
    """Top-1 accuracy (fraction) of each architecture on the validation share.

    ``cuda_graphs``: each architecture's validation forward is captured once and replayed
    per batch (:class:`CapturedForward`, or ``capture``); the accuracies are those of the
    plain forward. ``streams``: with CUDA graphs, that many architectures go through each
    batch at once, each replaying on its own CUDA stream, so that the small kernels of one
    architecture leave room on the GPU for another's (not under ``recalibrate``, whose
    architectures share the BN buffers they rewrite). ``pack``: that many validation batches
    go through one forward, each normalised with its own statistics under ``batch``
    (:func:`~nasheur.supernet.batchnorm.batch_stats_norm`), so the kernels run at a size that
    fills a GPU while the statistics stay those of the training batch size."""
    if streams < 1:
        raise ValueError(f"streams must be at least 1, not {streams}")
    if pack < 1:
        raise ValueError(f"pack must be at least 1, not {pack}")
    model.eval()
    device = next(model.parameters()).device
    saved = bn_buffers(model) if bn_mode == "recalibrate" else None
    # autocast's cache of cast weights cannot live across a graph's capture and replays
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=not cuda_graphs
    )
    bns = [m for m in model.modules() if isinstance(m, SuperBatchNorm2d)]  # walked once
    if bn_mode != "recalibrate":
        set_bn_stats(bns, BNStats(bn_mode))
    pack, packs = _packed_batches(val_loader, pack)  # the same for every architecture: made once
    set_bn_groups(bns, pack)
    group = streams if cuda_graphs and bn_mode != "recalibrate" else 1
    lanes = _Lanes(group, device)
    hits: list[torch.Tensor] = []
    for start in range(0, len(archs), group):
        some = archs[start : start + group]
        if bn_mode == "recalibrate":
            gen = torch.Generator(device=device).manual_seed(calib_seed)
            _recalibrate(model, bns, some[0], calib_loader, calib_batches, gen, autocast)
        predicts = [_predictor(model, arch, autocast) for arch in some]
        forwards = list(predicts)
        counts = [torch.zeros((), device=device, dtype=torch.long) for _ in some]
        for b, (x, y, valid) in enumerate(packs):
            for j, lane in enumerate(lanes.enter(len(some))):
                with lane:
                    if cuda_graphs and b == 0:
                        forwards[j] = capture(predicts[j], x)
                    predicted = forwards[j](x).view(-1, pack).t()  # (pack, batch size)
                    counts[j] += ((predicted == y) & valid).sum()
            lanes.join()
        hits.extend(counts)
        if progress is not None:
            for i in range(start, start + len(some)):
                progress(i + 1)
    if saved is not None:
        model.load_state_dict(saved, strict=False)
    set_bn_stats(bns, None)  # each BN's own default again (batch statistics where untracked)
    set_bn_groups(bns, 1)
    return torch.stack(hits).cpu().numpy().astype(np.float64) / val_loader.num_images


def _packed_batches(
    val_loader: Any, pack: int
) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """The validation batches, at most `pack` at a time, as evenly as that allows (20 batches
    at most 16 a pack make 2 packs of 10, not 16 and 4): the pack size, and per pack
    ``(x, y, valid)`` with x the batches interleaved row by row (row ``i * pack + g`` is row i
    of batch g, as :func:`~nasheur.supernet.batchnorm.batch_stats_norm` reads them), y and
    ``valid`` (the rows to count) of shape ``(pack, batch size)``. A last pack that lacks
    batches repeats one, uncounted."""
    batches = list(val_loader.eval_batches())
    n_packs = -(-len(batches) // pack)
    pack = -(-len(batches) // n_packs)
    out = []
    for start in range(0, len(batches), pack):
        some = batches[start : start + pack]
        counted = [n_valid for _, _, n_valid in some] + [0] * (pack - len(some))
        some += [some[-1]] * (pack - len(some))
        x = some[0][0] if pack == 1 else torch.stack([b[0] for b in some], 1).flatten(0, 1)
        y = torch.stack([b[1] for b in some])
        rows = torch.arange(y.shape[1], device=y.device)
        valid = rows < torch.tensor(counted, device=y.device)[:, None]
        out.append((x, y, valid))
    return pack, out


def _predictor(model: nn.Module, arch: Any, autocast: Any) -> Callable[[torch.Tensor], Any]:
    def predict(x: torch.Tensor) -> torch.Tensor:
        with autocast:
            return model(x, arch).argmax(1)

    return predict


def _recalibrate(
    model: nn.Module,
    bns: list[SuperBatchNorm2d],
    arch: Any,
    calib_loader: Any,
    calib_batches: int,
    gen: torch.Generator,
    autocast: Any,
) -> None:
    """Re-estimate the running statistics on `arch`'s path from the K training batches that
    `gen` draws (seeded alike for every architecture: the same batches for all).

    Under ``shuffle`` dynamic channels a vertex draws a random subset of its layer's channels
    per batch, and evaluation may draw any of them: calibration goes on past the K batches
    until every channel of the path's BNs has been drawn at least once (a channel never drawn
    would keep the reset statistics, mean 0 and variance 1, and not be normalised at all)."""
    set_bn_stats(bns, BNStats.calibrate)
    first = calib_loader.train_batches(gen)
    for x, _ in itertools.islice(first, calib_batches):  # at most one pass (the job warns)
        with autocast:
            model(x, arch)
    sliced = [m for m in bns if isinstance(m, SlicedBatchNorm2d)]
    more = itertools.chain(first, _passes(calib_loader, gen))
    for extra in itertools.count():
        counts = [c for c in (m.uncalibrated() for m in sliced) if c is not None]
        left = int(torch.stack(counts).sum()) if counts else 0  # one host sync per batch
        if not left:
            break
        x = next(more, (None,))[0]
        if x is None or extra >= MAX_EXTRA_CALIBRATION:
            raise RuntimeError(
                f"recalibrating {arch}: {left} BN channel(s) drawn by no batch after "
                f"{calib_batches + extra} batches"
            )
        with autocast:
            model(x, arch)
    set_bn_stats(bns, BNStats.running)


def _passes(loader: Any, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's training batches, pass after pass (until a pass yields none)."""
    while True:
        empty = True
        for batch in loader.train_batches(gen):
            empty = False
            yield batch
        if empty:
            return


class _Lanes:
    """Where the architectures of a group run: on CUDA with a group of several, one side
    stream each, which starts after the work already queued (the batch) and which the main
    stream waits for before the next batch; otherwise in line, on the current stream."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.streams = (
            [torch.cuda.Stream(device) for _ in range(size)]
            if size > 1 and device.type == "cuda"
            else []
        )

    def enter(self, n: int) -> list[Any]:
        if not self.streams:
            return [contextlib.nullcontext()] * n
        main = torch.cuda.current_stream()
        for s in self.streams[:n]:
            s.wait_stream(main)
        return [torch.cuda.stream(s) for s in self.streams[:n]]

    def join(self) -> None:
        if self.streams:
            main = torch.cuda.current_stream()
            for s in self.streams:
                main.wait_stream(s)
