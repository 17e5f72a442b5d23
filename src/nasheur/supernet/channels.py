"""Dynamic channels (mapping factor, paper 4.5.1): how a super-net layer of C_max channels
serves a vertex of C <= C_max channels.

In NB101 a vertex's width depends on the architecture (how many vertices feed the output), so
one super-net vertex must serve several widths. The strategies (``supernet.dynamic_channels``):

``fixed``
    the first C of the C_max channels: a square kernel's ``[:C, :C]``, a projection's ``[:C]``,
    BN's ``[:C]`` (affine parameters and running statistics).
``shuffle``
    a random subset of C of the C_max channels, used in channel order (so a vertex at full
    width uses the whole layer unchanged), drawn anew for every vertex at every forward pass
    with torch's global RNG (seeded per epoch and for the evaluation by the job, so a resumed
    run draws the same subsets); kernels, projections and BN take the same subset. BN
    recalibration counts each channel's batches on its own. Evaluation draws anew per batch
    too, so an architecture's super-net accuracy is an average over subsets (the authors'
    code drew per forward as well). A term from another vertex, truncated to C as in f_proxy,
    is added position by position: its channels are that vertex's subset, not this one's.
``interpolate``
    the C_max channels resampled linearly to C, on the *activations*: the vertex's C-channel
    input is resampled to C_max channels, the op runs at full width (its whole C_max x C_max
    kernel and its C_max-channel BN), and its C_max output channels are resampled to C; an
    input projection runs at full width and is resampled to C. Resampling is
    ``F.interpolate`` along the channel axis, linear with antialiasing (``bilinear``,
    ``antialias=True`` on a 1 x channels grid, ``align_corners=False``): going down, each of
    the C channels is a triangle-weighted moving average of neighbouring channels (the
    paper's description), going up, plain linear interpolation; at C = C_max the identity.
    BN thereby always normalises the C_max channels it was built for, so its running
    statistics mean the same thing on every path.
``disabled``
    no sharing across widths: each sub-space of NB101 gets its own super-net whose layers are
    as wide as the sub-space needs (see :mod:`nasheur.supernet.nb101`); the NB101 rule's
    remainder can still make a vertex one channel narrower than its layer, and that vertex
    uses the first channels, as ``fixed``.

Parameter-free ops (the 3x3 max-pool) act on the C channels directly under every strategy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nasheur.supernet.batchnorm import BNStats, SuperBatchNorm2d, WSBatchNorm, batch_stats_norm

STRATEGIES = ("fixed", "shuffle", "interpolate", "disabled")

# a channel selection: None (all C_max channels in order), a slice [:C], or sorted indices
Selection = slice | torch.Tensor | None


def take(w: torch.Tensor, sel: Selection, dim: int) -> torch.Tensor:
    if sel is None:
        return w
    if isinstance(sel, slice):
        return w.narrow(dim, 0, sel.stop)
    return w.index_select(dim, sel)


class SlicedBatchNorm2d(SuperBatchNorm2d):
    """A SuperBatchNorm2d (so the BN switches and evaluation modes hold) that can normalise
    a selection of its channels with their own affine parameters and statistics; updates of
    the running statistics land in exactly those channels."""

    _channel_counts: torch.Tensor | None = None  # per channel, while calibrating a subset

    def forward(self, x: torch.Tensor, sel: Selection = None) -> torch.Tensor:
        if sel is None:
            return super().forward(x)
        weight = None if self.weight is None else take(self.weight, sel, 0)
        bias = None if self.bias is None else take(self.bias, sel, 0)
        # views for a slice (updated in place), copies for indices (written back below)
        mean, var = take(self.running_mean, sel, 0), take(self.running_var, sel, 0)
        if self.training:
            if not self.track:
                return batch_stats_norm(x, weight, bias, self.eps)
            out = F.batch_norm(x, mean, var, weight, bias, True, self.momentum, self.eps)
            self._write_back(sel, mean, var)
            return out
        if self.stats is BNStats.batch:
            return batch_stats_norm(x, weight, bias, self.eps, self.groups)
        if self.stats is BNStats.calibrate:
            if isinstance(sel, torch.Tensor):
                return self._calibrate_subset(x, sel, weight, bias)
            # a slice is the same [:C] in every batch of one architecture: the module's count
            # of batches is each of its channels' count
            self._calibrated += 1
            out = F.batch_norm(x, mean, var, weight, bias, True, 1.0 / self._calibrated, self.eps)
            self._write_back(sel, mean, var)
            return out
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, self.eps)

    def _calibrate_subset(
        self,
        x: torch.Tensor,
        sel: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        """Calibration on a random subset (``shuffle``): each channel's statistics are the
        equal-weight mean over the batches that used it, so a channel is counted on its own
        (a count per module would weigh a channel's first batch against the reset values)."""
        if self._channel_counts is None or self._channel_counts.device != x.device:
            self._channel_counts = torch.zeros(self.num_features, device=x.device)
        # this batch's statistics (mean, unbiased variance, as BN's running update uses)
        batch_mean = torch.zeros(len(sel), device=x.device, dtype=self.running_mean.dtype)
        batch_var = torch.ones_like(batch_mean)
        out = F.batch_norm(x, batch_mean, batch_var, weight, bias, True, 1.0, self.eps)
        with torch.no_grad():
            counts = self._channel_counts[sel] + 1
            self._channel_counts[sel] = counts
            mean, var = self.running_mean[sel], self.running_var[sel]
            self.running_mean[sel] = mean + (batch_mean - mean) / counts
            self.running_var[sel] = var + (batch_var - var) / counts
        return out

    def start_calibration(self) -> None:
        super().start_calibration()
        self._channel_counts = None

    def uncalibrated(self) -> torch.Tensor | None:
        """How many channels no calibration batch has drawn yet (a 0-d tensor on the module's
        device, read by the caller once for all modules), where calibration drew subsets
        (``shuffle``); None otherwise. Evaluation draws any channel: each needs an estimate."""
        counts = self._channel_counts
        return None if counts is None else (counts == 0).sum()

    @torch.no_grad()
    def _write_back(self, sel: Selection, mean: torch.Tensor, var: torch.Tensor) -> None:
        if isinstance(sel, torch.Tensor):
            self.running_mean[sel] = mean
            self.running_var[sel] = var


# ---------------------------------------------------------------------------------------------
# strategies


class SubsetChannels:
    """``fixed`` and ``disabled`` (the first C channels) and ``shuffle`` (a random subset)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.random = name == "shuffle"

    def draw(self, c_max: int, c: int, device: torch.device) -> tuple[int, Selection]:
        """The channels a vertex of width c uses this forward pass (once per vertex)."""
        if not 1 <= c <= c_max:
            raise ValueError(f"a vertex of {c} channels in a layer of {c_max}")
        if c == c_max:
            return c, None
        if self.random:
            return c, torch.randperm(c_max, device=device)[:c].sort().values
        return c, slice(0, c)

    def conv_bn_relu(
        self,
        x: torch.Tensor,
        weight: torch.Tensor,
        bn: WSBatchNorm,
        slot: int,
        pick: tuple[int, Selection],
    ) -> torch.Tensor:
        """A square conv-BN-ReLU of the pick's C channels (x has C channels)."""
        sel = pick[1]
        w = take(take(weight, sel, 0), sel, 1)
        y = F.conv2d(x, w, padding=weight.shape[-1] // 2)
        return F.relu(bn(y, slot, sel))

    def project(
        self, x: torch.Tensor, weight: torch.Tensor, bn: WSBatchNorm, pick: tuple[int, Selection]
    ) -> torch.Tensor:
        """The conv1x1-BN-ReLU projection of the cell input to the pick's C channels."""
        sel = pick[1]
        return F.relu(bn(F.conv2d(x, take(weight, sel, 0)), 0, sel))


class InterpolateChannels:
    """``interpolate``: full-width ops between linear resamplings of the channel axis."""

    name = "interpolate"

    def __init__(self) -> None:
        self._matrices: dict[tuple[Any, ...], torch.Tensor] = {}

    def draw(self, c_max: int, c: int, device: torch.device) -> tuple[int, int]:
        if not 1 <= c <= c_max:
            raise ValueError(f"a vertex of {c} channels in a layer of {c_max}")
        return c, c_max

    def matrix(self, c_from: int, c_to: int, like: torch.Tensor) -> torch.Tensor:
        """The (c_to, c_from) matrix of the resampling, built by F.interpolate itself, once
        per pair of widths, device and dtype, on the device itself: a copy from the host
        would make a GPU's host wait in the first steps that meet a pair."""
        key = (c_from, c_to, like.device, like.dtype)
        m = self._matrices.get(key)
        if m is None:
            # the channels on the last axis of a 1 x C grid: with torch 2.13 on CPU the
            # antialiased kernel gives wrong weights when the resampled axis is H and W = 1
            eye = torch.eye(c_from, dtype=torch.float64, device=like.device)
            out = F.interpolate(
                eye.reshape(c_from, 1, 1, c_from),
                size=(1, c_to),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            m = out.reshape(c_from, c_to).t().contiguous().to(like.dtype)
            self._matrices[key] = m
        return m

    def resample(self, x: torch.Tensor, c: int) -> torch.Tensor:
        """x (N, C', H, W) with its channels resampled to c."""
        if x.shape[1] == c:
            return x
        return F.conv2d(x, self.matrix(x.shape[1], c, x)[:, :, None, None])

    def conv_bn_relu(
        self,
        x: torch.Tensor,
        weight: torch.Tensor,
        bn: WSBatchNorm,
        slot: int,
        pick: tuple[int, int],
    ) -> torch.Tensor:
        c, c_max = pick
        y = F.conv2d(self.resample(x, c_max), weight, padding=weight.shape[-1] // 2)
        return self.resample(F.relu(bn(y, slot)), c)

    def project(
        self, x: torch.Tensor, weight: torch.Tensor, bn: WSBatchNorm, pick: tuple[int, int]
    ) -> torch.Tensor:
        return self.resample(F.relu(bn(F.conv2d(x, weight), 0)), pick[0])


def make_strategy(name: str) -> SubsetChannels | InterpolateChannels:
    if name not in STRATEGIES:
        raise ValueError(
            f"unknown dynamic-channel strategy {name!r}; known: {', '.join(STRATEGIES)}"
        )
    return InterpolateChannels() if name == "interpolate" else SubsetChannels(name)
