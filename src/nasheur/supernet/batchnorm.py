"""Batch norm of a super-net, with the statistics modes that evaluation needs.

The paper's BN factor is two switches: ``protocol.bn_track`` (training updates running
statistics) and ``protocol.bn_affine`` (a learned scale and shift). Every BN of a super-net is
this module, so the switches and the evaluation mode (spec section 4) hold everywhere: the
stem, the cells' ops, the reduction blocks and the head.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn


class BNStats(str, Enum):
    """What BN normalises with outside training."""

    running = "running"  # the tracked running statistics (PyTorch's eval mode)
    batch = "batch"  # each batch's own statistics; the running ones are left untouched
    calibrate = "calibrate"  # batch statistics, accumulated as an equal-weight running average


def batch_stats_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    groups: int = 1,
) -> torch.Tensor:
    """BN with the statistics of the batch itself, or, for ``groups`` > 1, of each of the
    ``groups`` batches packed into `x` interleaved (row ``i * groups + g`` is row i of batch
    g): each batch normalised as if it came alone, so that evaluation can run several batches
    in one forward without changing what batch statistics mean (spec section 4)."""
    if groups == 1:
        return F.batch_norm(x, None, None, weight, bias, True, 0.0, eps)
    n, c = x.shape[:2]
    if n % groups:
        raise ValueError(f"{n} rows do not split into {groups} packed batches")
    if x.is_contiguous():
        # batch g's channel k is channel g * c + k of this view: one BN call, no copy
        wide = x.view(n // groups, groups * c, *x.shape[2:])
        w = None if weight is None else weight.repeat(groups)
        b = None if bias is None else bias.repeat(groups)
        return F.batch_norm(wide, None, None, w, b, True, 0.0, eps).view(x.shape)
    # another layout (NHWC): the statistics of each batch, by hand, in float32 at least as
    # cuDNN's BN keeps them (bf16 statistics under autocast would be rounded off), returned
    # in the input's type as BN returns it
    per = x.unflatten(0, (n // groups, groups))  # (rows, groups, c, ...)
    per = per.to(torch.promote_types(per.dtype, torch.float32))
    dims = (0, *range(3, per.dim()))
    var, mean = torch.var_mean(per, dim=dims, keepdim=True, correction=0)
    y = (per - mean) * torch.rsqrt(var + eps)
    shape = (1, 1, c) + (1,) * (per.dim() - 3)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y.flatten(0, 1).to(x.dtype)


class SuperBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose running buffers always exist; ``track`` says whether training
    updates them. With ``track=False`` training and evaluation use batch statistics, as
    PyTorch does for ``track_running_stats=False``."""

    def __init__(self, num_features: int, *, affine: bool, track: bool) -> None:
        super().__init__(num_features, affine=affine, track_running_stats=True)
        self.track = track
        self.stats = self.default_stats
        self.groups = 1  # batches packed in an evaluation input (batch statistics only)
        self._calibrated = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if self.track:
                return F.batch_norm(
                    x,
                    self.running_mean,
                    self.running_var,
                    self.weight,
                    self.bias,
                    True,
                    self.momentum,
                    self.eps,
                )
            return batch_stats_norm(x, self.weight, self.bias, self.eps)
        if self.stats is BNStats.batch:
            return batch_stats_norm(x, self.weight, self.bias, self.eps, self.groups)
        if self.stats is BNStats.calibrate:
            self._calibrated += 1  # factor 1/k: the mean of the statistics of k batches
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                True,
                1.0 / self._calibrated,
                self.eps,
            )
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )

    @property
    def default_stats(self) -> BNStats:
        """PyTorch's eval mode for this module: running statistics where training tracks
        them, else batch statistics."""
        return BNStats.running if self.track else BNStats.batch

    def start_calibration(self) -> None:
        self.reset_running_stats()
        self._calibrated = 0
        self.stats = BNStats.calibrate


class WSBatchNorm(nn.Module):
    """WSBN (mapping factor): a shared op keeps one BN, affine parameters and statistics,
    per input it reads from ("incoming edge"); one slot without WSBN. Each slot is a `norm`
    (SuperBatchNorm2d, or NB101's SlicedBatchNorm2d), so the BN switches and evaluation modes
    hold for every slot. NB201 and DARTS-NDS op sets look up the slot of an op and input once
    (their `bn_at`) and call it directly; NB101 calls the container with the slot. Where
    the slots cannot differ, `nasheur.config.wsbn_inert` says why."""

    def __init__(
        self,
        num_features: int,
        slots: int,
        *,
        affine: bool,
        track: bool,
        norm: type[SuperBatchNorm2d] = SuperBatchNorm2d,
    ) -> None:
        super().__init__()
        self.slots = nn.ModuleList(
            norm(num_features, affine=affine, track=track) for _ in range(slots)
        )

    def forward(self, x: torch.Tensor, slot: int = 0, *args: object) -> torch.Tensor:
        return self.slots[slot](x, *args)


def slot_map(sources: Iterable[int], wsbn: bool) -> tuple[dict[int, int], int]:
    """The WSBN slot of each input of an op set, and how many slots: one per input with
    WSBN, one shared by all without."""
    sources = tuple(sources)
    if wsbn:
        return {src: i for i, src in enumerate(sources)}, len(sources)
    return dict.fromkeys(sources, 0), 1


def set_bn_stats(model: nn.Module | Iterable[nn.Module], stats: BNStats | None) -> None:
    """Choose what every super-net BN of `model` (a model, or its modules listed once by a
    caller that sets them often) normalises with outside training; None: each module's
    default (its `default_stats`), as an evaluation leaves them."""
    for m in model.modules() if isinstance(model, nn.Module) else model:
        if isinstance(m, SuperBatchNorm2d):
            if stats is BNStats.calibrate:
                m.start_calibration()
            else:
                m.stats = m.default_stats if stats is None else stats


def set_bn_groups(modules: Iterable[nn.Module], groups: int) -> None:
    """How many interleaved batches the next evaluation inputs pack (:func:`batch_stats_norm`)."""
    for m in modules:
        if isinstance(m, SuperBatchNorm2d):
            m.groups = groups


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every BN buffer, to put back after an evaluation that recalibrated them."""
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }
