"""Super-net BN: the track/affine switches and the statistics modes of evaluation."""

from __future__ import annotations

import torch
from torch import nn

from nasheur.supernet.batchnorm import (
    BNStats,
    SuperBatchNorm2d,
    bn_buffers,
    set_bn_groups,
    set_bn_stats,
)


def batch_normalised(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def test_tracking_updates_running_stats_like_pytorch():
    torch.manual_seed(0)
    ours, ref = SuperBatchNorm2d(3, affine=True, track=True), nn.BatchNorm2d(3)
    for _ in range(3):
        x = torch.randn(8, 3, 4, 4) * 2 + 1
        torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    x = torch.randn(8, 3, 4, 4)
    torch.testing.assert_close(ours(x), ref(x))  # running mode is PyTorch's eval mode


def test_without_tracking_batch_statistics_everywhere_and_buffers_untouched():
    bn = SuperBatchNorm2d(3, affine=False, track=False)
    x = torch.randn(8, 3, 4, 4) * 3 - 2
    torch.testing.assert_close(bn(x), batch_normalised(x), rtol=1e-4, atol=1e-4)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(
        bn.running_var, torch.ones(3)
    )
    bn.eval()
    assert bn.stats is BNStats.batch
    torch.testing.assert_close(bn(x), batch_normalised(x), rtol=1e-4, atol=1e-4)
    assert bn.weight is None and bn.bias is None


def test_batch_mode_leaves_tracked_statistics_alone():
    bn = SuperBatchNorm2d(3, affine=True, track=True)
    bn(torch.randn(8, 3, 4, 4) + 5)
    saved = bn_buffers(bn)
    set_bn_stats(bn, BNStats.batch)
    bn.eval()
    x = torch.randn(8, 3, 4, 4)
    torch.testing.assert_close(bn(x), batch_normalised(x), rtol=1e-4, atol=1e-4)
    assert all(torch.equal(v, bn.state_dict()[k]) for k, v in saved.items())


def test_recalibration_is_the_plain_mean_of_the_batches_statistics():
    bn = SuperBatchNorm2d(2, affine=True, track=True)
    bn(torch.randn(8, 2, 4, 4) * 5)  # stale statistics that recalibration must forget
    bn.eval()
    set_bn_stats(bn, BNStats.calibrate)
    batches = [torch.randn(6, 2, 3, 3) * (k + 1) + k for k in range(4)]
    for b in batches:
        bn(b)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    variances = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, means)
    torch.testing.assert_close(bn.running_var, variances)
    set_bn_stats(bn, BNStats.running)
    x = torch.randn(5, 2, 3, 3)
    expected = (x - means.view(1, 2, 1, 1)) / torch.sqrt(variances.view(1, 2, 1, 1) + bn.eps)
    torch.testing.assert_close(bn(x), expected, rtol=1e-4, atol=1e-4)


def test_recalibration_on_random_subsets_averages_each_channel_over_its_own_batches():
    # `shuffle` hands each batch another subset of the channels: a channel's statistics are
    # the mean over the batches that used it, whatever batch it first appeared in
    from nasheur.supernet.channels import SlicedBatchNorm2d

    bn = SlicedBatchNorm2d(6, affine=True, track=True)
    bn(torch.randn(8, 6, 4, 4) * 5)  # stale statistics that recalibration must forget
    bn.eval()
    set_bn_stats(bn, BNStats.calibrate)
    subsets = [[0, 1, 2], [2, 3, 4], [1, 2, 5], [0, 4, 5]]
    used: dict[int, list[torch.Tensor]] = {c: [] for c in range(6)}
    for k, subset in enumerate(subsets):
        x = torch.randn(6, 3, 3, 3, dtype=torch.float32) * (k + 2) + 3 * k
        bn(x, torch.tensor(subset))
        for j, c in enumerate(subset):
            used[c].append(x[:, j])
    for c, parts in used.items():
        mean = torch.stack([p.mean() for p in parts]).mean()
        var = torch.stack([p.var(unbiased=True) for p in parts]).mean()
        torch.testing.assert_close(bn.running_mean[c], mean)
        torch.testing.assert_close(bn.running_var[c], var)
    # a new calibration forgets the counts of the last one
    set_bn_stats(bn, BNStats.calibrate)
    x = torch.randn(6, 2, 3, 3)
    bn(x, torch.tensor([3, 5]))
    torch.testing.assert_close(bn.running_mean[[3, 5]], x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_mean[[0, 1, 2, 4]], torch.zeros(4))


def test_recalibration_of_the_first_channels_is_the_plain_mean_of_their_batches():
    # `fixed` and `disabled` hand a narrower vertex the slice [:C] of its layer's BN: its
    # channels get the equal-weight mean of the batches, the others keep the reset values
    from nasheur.supernet.channels import SlicedBatchNorm2d

    bn = SlicedBatchNorm2d(5, affine=True, track=True)
    bn(torch.randn(8, 5, 4, 4) * 5)  # stale statistics that recalibration must forget
    bn.eval()
    set_bn_stats(bn, BNStats.calibrate)
    batches = [torch.randn(6, 3, 3, 3) * (k + 1) + 2 * k for k in range(4)]
    for b in batches:
        bn(b, slice(0, 3))
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    variances = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean[:3], means)
    torch.testing.assert_close(bn.running_var[:3], variances)
    assert torch.equal(bn.running_mean[3:], torch.zeros(2))
    assert torch.equal(bn.running_var[3:], torch.ones(2))


def test_packed_batches_of_a_channel_selection_are_each_normalised_alone():
    # packed evaluation (spec section 4) hands every BN several interleaved batches; NB101's
    # narrower vertices normalise a selection of their layer's channels, and each batch must
    # still get its own statistics there (with the selected affine parameters)
    from nasheur.supernet.channels import SlicedBatchNorm2d

    torch.manual_seed(0)
    bn = SlicedBatchNorm2d(6, affine=True, track=False)
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
    bn.eval()
    set_bn_stats(bn, BNStats.batch)
    set_bn_groups([bn], 3)
    for sel, width in ((slice(0, 3), 3), (torch.tensor([1, 3, 5]), 3), (None, 6)):
        batches = [torch.randn(4, width, 3, 3) * (i + 1) + 2 * i for i in range(3)]
        packed = torch.stack(batches, 1).flatten(0, 1)  # row i * 3 + g is row i of batch g
        out = bn(packed, sel).view(4, 3, width, 3, 3)
        keep = slice(None) if sel is None else sel
        w, b = bn.weight[keep].view(1, -1, 1, 1), bn.bias[keep].view(1, -1, 1, 1)
        for g, x in enumerate(batches):
            expected = batch_normalised(x) * w + b
            torch.testing.assert_close(out[:, g], expected, rtol=1e-4, atol=1e-4)
