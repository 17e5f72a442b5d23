"""f_ws on NB101: a single path computes its cell's f_proxy; each dynamic-channel strategy
gives every vertex its NB101 width and shares the weights it claims to; the other mapping
factors (OFA kernel, WSBN, dropout, BN switches) and FairNAS do what they claim."""

from __future__ import annotations

import logging
import math
from collections import Counter
from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasheur.samplers import build_sampler
from nasheur.spaces import get_space
from nasheur.spaces.nb101 import (
    CONV1X1,
    CONV3X3,
    INPUT,
    MAXPOOL3X3,
    OPS,
    OUTPUT,
    NB101Spec,
    make_spec,
    random_spec,
    vertex_widths,
)
from nasheur.supernet import SupernetSpec, build_supernet
from nasheur.supernet.batchnorm import BNStats, WSBatchNorm, set_bn_stats
from nasheur.supernet.channels import InterpolateChannels, SlicedBatchNorm2d, SubsetChannels
from nasheur.supernet.nb101 import SuperCell
from nasheur.training import build_optimizer
from tests.conftest import two_sgd_steps

SPACE = get_space("nb101")
C3, C1, MP = CONV3X3, CONV1X1, MAXPOOL3X3

# V=4: input feeds vertices 1 and 2, both feed the output (k=2): widths c_out/2
TWO = make_spec([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, C3, C1, OUTPUT])
# k=1: a chain with a max-pool and input -> output (every vertex at full width)
ONE = make_spec(
    [[0, 1, 0, 0, 1], [0, 0, 1, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    [INPUT, C3, MP, C1, OUTPUT],
)
# k=3 with inner vertices and an edge input -> output; at c_out 8 the widths are
# 3, 2, 3, 3, 2 (vertex 1 feeds vertex 2 truncated to 2 channels)
THREE = make_spec(
    [
        [0, 1, 0, 1, 0, 0, 1],
        [0, 0, 1, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    [INPUT, C3, C1, MP, C3, C1, OUTPUT],
)


def supernet(**kw):
    spec = SupernetSpec(
        **{
            "channels": 8,
            "layers": 1,
            "num_classes": 10,
            "ops_on": "node",
            "dynamic_channels": "fixed",
            **kw,
        }
    )
    torch.manual_seed(0)
    return build_supernet("nb101", spec)


def cells(net) -> list[SuperCell]:
    return [b for b in net.blocks if isinstance(b, SuperCell)]


def path_state(net, arch: NB101Spec) -> dict[str, torch.Tensor]:
    """The super-net weights of `arch` under fixed slicing, named as in f_proxy."""
    state = {k: v for k, v in net.state_dict().items() if k.startswith(("stem.", "classifier."))}
    n = arch.num_vertices

    def put(prefix: str, conv: torch.Tensor, bn, width: int | None) -> None:
        state[f"{prefix}.0.weight"] = conv[:width].detach()
        for name, t in bn.state_dict().items():
            state[f"{prefix}.1.{name}"] = t[:width] if t.dim() else t

    for i, block in enumerate(net.blocks):
        if not isinstance(block, SuperCell):
            continue
        widths = vertex_widths(arch.matrix, block.c_in, block.c_out)
        for v in range(1, n):
            if not arch.matrix[0][v]:
                continue
            if v == n - 1:
                put(f"blocks.{i}.proj.{v}", block.out_proj[0].weight, block.out_proj[1], None)
            else:
                pos = block.positions[v - 1]
                put(f"blocks.{i}.proj.{v}", pos.proj, pos.proj_bn.slots[0], widths[v])
        for v in range(1, n - 1):
            op = arch.ops[v]
            if op == MP:
                continue
            pos, w = block.positions[v - 1], widths[v]
            preds = [u for u in range(v) if arch.matrix[u][v]]
            put(
                f"blocks.{i}.ops.{v}",
                pos.weight(op)[:, :w],
                pos.bns[op].slots[pos.slot(preds)],
                w,
            )
    return state


@pytest.mark.parametrize(
    ("arch", "factors"),
    [
        (TWO, {}),
        (THREE, {}),
        (THREE, {"wsbn": True, "ofa_kernel": True}),
        (TWO, {"dynamic_channels": "disabled", "subspace": 2}),
        (THREE, {"dynamic_channels": "disabled", "subspace": 3}),
        (ONE, {"dynamic_channels": "interpolate"}),  # full width: no resampling
        (ONE, {"dynamic_channels": "shuffle"}),  # full width: the whole layer in order
    ],
    ids=["fixed-k2", "fixed-k3", "fixed-ofa-wsbn", "disabled-k2", "disabled-k3", "interp", "shuf"],
)
def test_a_path_of_the_supernet_is_the_standalone_cell(arch, factors):
    net = supernet(bn_track=True, **factors)
    standalone = SPACE.standalone(arch, channels=8, layers=1)
    result = standalone.load_state_dict(path_state(net, arch), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(6, 3, 8, 8)
    net.train(), standalone.train()
    torch.testing.assert_close(net(x, arch), standalone(x), rtol=1e-5, atol=1e-5)
    # with the running statistics that forward left in both (the same BN momentum)
    net.eval(), standalone.eval()
    torch.testing.assert_close(net(x, arch), standalone(x), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# dynamic channels


def record_widths(net):
    """Wrap the strategy: record (c_max, width) of every vertex and the width of every op
    output."""
    strategy = net.strategy
    drawn, outs = [], []
    draw, conv = strategy.draw, strategy.conv_bn_relu

    def draw_(c_max, c, device):
        drawn.append((c_max, c))
        return draw(c_max, c, device)

    def conv_(x, *args):
        y = conv(x, *args)
        outs.append((x.shape[1], y.shape[1]))
        return y

    strategy.draw, strategy.conv_bn_relu = draw_, conv_
    return drawn, outs


@pytest.mark.parametrize(
    ("mode", "subspace", "arch"),
    [
        ("fixed", None, THREE),
        ("shuffle", None, THREE),
        ("interpolate", None, THREE),
        ("disabled", 3, THREE),
        ("disabled", 2, TWO),
    ],
)
def test_every_vertex_gets_its_nb101_width(mode, subspace, arch):
    net = supernet(channels=12, dynamic_channels=mode, subspace=subspace)
    drawn, outs = record_widths(net)
    net.train()
    assert net(torch.randn(4, 3, 8, 8), arch).shape == (4, 10)
    want, want_out = [], []
    for cell in cells(net):
        widths = vertex_widths(arch.matrix, cell.c_in, cell.c_out)
        c_max = cell.c_out if subspace is None else math.ceil(cell.c_out / subspace)
        for v in range(1, arch.num_vertices - 1):
            want.append((c_max, widths[v]))
            assert cell.positions[v - 1].c_max == c_max
            if arch.ops[v] != MP:
                want_out.append((widths[v], widths[v]))
    assert drawn == want and outs == want_out


def one_step(net, arch, seed=0, lr=0.1):
    """One SGD step without momentum or weight decay; the parameters before it."""
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    opt = build_optimizer(net, lr=lr, momentum=0.0, weight_decay=0.0)
    torch.manual_seed(seed)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    net.train()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(x, arch), y).backward()
    opt.step()
    return before


def changed_rows_cols(before, after):
    diff = (before != after).reshape(before.shape[0], before.shape[1], -1).any(-1)
    return sorted(set(diff.any(1).nonzero().flatten().tolist())), sorted(
        set(diff.any(0).nonzero().flatten().tolist())
    )


def test_fixed_trains_exactly_the_first_channels():
    net = supernet()
    before = one_step(net, TWO)  # stack 1: c_out 8, vertices 1 and 2 at width 4 of 8
    p = dict(net.named_parameters())
    cell = "blocks.0.positions"
    for pos, op in ((0, C3), (1, C1)):
        rows, cols = changed_rows_cols(
            before[f"{cell}.{pos}.convs.{op}"], p[f"{cell}.{pos}.convs.{op}"]
        )
        assert rows == cols == [0, 1, 2, 3]  # the first 4 output (and input) channels only
        proj_rows, _ = changed_rows_cols(before[f"{cell}.{pos}.proj"], p[f"{cell}.{pos}.proj"])
        assert proj_rows == [0, 1, 2, 3]
        bn = p[f"{cell}.{pos}.bns.{op}.slots.0.weight"]
        assert (
            bn != before[f"{cell}.{pos}.bns.{op}.slots.0.weight"]
        ).nonzero().flatten().tolist() == [0, 1, 2, 3]
    # stack 3 (c_out 32): width 16 of 32
    rows, _ = changed_rows_cols(
        before["blocks.4.positions.0.convs." + C3], p["blocks.4.positions.0.convs." + C3]
    )
    assert rows == list(range(16))
    # nothing else of those positions, nothing of the unused ones
    assert torch.equal(before[f"{cell}.0.convs.{C1}"], p[f"{cell}.0.convs.{C1}"])
    for pos in (2, 3, 4):
        assert all(
            torch.equal(before[k], v) for k, v in p.items() if k.startswith(f"{cell}.{pos}.")
        )


def test_shuffle_trains_a_random_subset_drawn_with_the_global_rng():
    subsets = []
    for seed in range(6):
        net = supernet(dynamic_channels="shuffle")
        before = one_step(net, TWO, seed=seed)
        key = f"blocks.0.positions.0.convs.{C3}"
        rows, cols = changed_rows_cols(before[key], dict(net.named_parameters())[key])
        assert len(rows) == 4 and rows == cols  # one subset for both channel axes
        # the vertex's input projection and its BN take the same subset
        p = dict(net.named_parameters())
        proj_rows, _ = changed_rows_cols(
            before["blocks.0.positions.0.proj"], p["blocks.0.positions.0.proj"]
        )
        bn = "blocks.0.positions.0.proj_bn.slots.0.weight"
        assert proj_rows == (before[bn] != p[bn]).nonzero().flatten().tolist() == rows
        subsets.append(tuple(rows))
    assert len(set(subsets)) > 1 and any(s != (0, 1, 2, 3) for s in subsets)
    # the same RNG state draws the same subsets: a resumed run repeats the uninterrupted one
    net = supernet(dynamic_channels="shuffle")
    x = torch.randn(4, 3, 8, 8)
    torch.manual_seed(7)
    a = net(x, TWO)
    torch.manual_seed(7)
    torch.testing.assert_close(net(x, TWO), a)


def test_interpolate_trains_every_channel_and_resamples_linearly():
    net = supernet(dynamic_channels="interpolate")
    before = one_step(net, TWO)
    key = f"blocks.0.positions.0.convs.{C3}"
    rows, cols = changed_rows_cols(before[key], dict(net.named_parameters())[key])
    assert rows == cols == list(range(8))  # a width-4 vertex reaches all 8 channels
    s = InterpolateChannels()
    like = torch.zeros(())
    torch.testing.assert_close(s.matrix(8, 8, like), torch.eye(8))
    down = s.matrix(8, 4, like)
    assert down.shape == (4, 8) and (down >= 0).all()
    torch.testing.assert_close(down.sum(1), torch.ones(4))  # weighted means of neighbours
    # 8 -> 4 is the mean of channel pairs weighted by a triangle window
    assert (down[1, :2] < down[1, 2:4].min()).all() and down[1, 6:].sum() == 0
    up = s.matrix(4, 8, like)
    ramp = torch.arange(4.0)
    torch.testing.assert_close(up @ ramp, torch.tensor([0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]))
    x = torch.randn(2, 8, 3, 3)
    assert s.resample(x, 3).shape == (2, 3, 3, 3) and s.resample(x, 8) is x


def test_shuffle_draws_a_random_subset_used_in_channel_order():
    # a subset "used in channel order": sorted indices, so that a vertex's channel i is
    # the i-th smallest channel of its subset on every axis (kernels, projections, BN)
    s = SubsetChannels("shuffle")
    torch.manual_seed(0)
    draws = [s.draw(8, 4, torch.device("cpu"))[1] for _ in range(20)]
    for sel in draws:
        assert sel.tolist() == sorted(set(sel.tolist())) and len(sel) == 4
        assert int(sel.min()) >= 0 and int(sel.max()) < 8
    assert len({tuple(sel.tolist()) for sel in draws}) > 5
    assert s.draw(8, 8, torch.device("cpu"))[1] is None  # full width: the layer unchanged


def triangle_resampling(c_from: int, c_to: int) -> torch.Tensor:
    """The (c_to, c_from) matrix of an antialiased linear resampling, derived by hand: channel
    j sits at j + 1/2; output channel i at s (i + 1/2), s = c_from / c_to, averages the input
    channels with a triangle window of half-width max(s, 1), normalised to sum 1 (going up,
    half-width 1 is plain linear interpolation, clamped at the ends)."""
    s = c_from / c_to
    half = max(s, 1.0)
    m = torch.zeros(c_to, c_from, dtype=torch.float64)
    for i in range(c_to):
        for j in range(c_from):
            m[i, j] = max(0.0, 1 - abs(j + 0.5 - s * (i + 0.5)) / half)
    return m / m.sum(1, keepdim=True)


@pytest.mark.parametrize(
    ("c_from", "c_to"), [(8, 4), (8, 3), (8, 5), (6, 4), (7, 2), (4, 8), (3, 8), (5, 7), (8, 8)]
)
def test_interpolate_is_a_triangle_weighted_moving_average(c_from, c_to):
    """Paper 4.5.1: going down, each channel is a triangle-weighted average of its
    neighbours (antialiased), not the two nearest channels of plain linear interpolation."""
    got = InterpolateChannels().matrix(c_from, c_to, torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(got, triangle_resampling(c_from, c_to))


def test_interpolate_resamples_the_output_of_the_full_width_op():
    """conv-BN-ReLU at C_max between resamplings: the C-channel input up to C_max, the op
    with its whole kernel and BN, and its ReLU output down to C (ReLU before the average);
    the input projection likewise."""
    torch.manual_seed(0)
    s, c, c_max, c_in = InterpolateChannels(), 3, 8, 5
    bn = WSBatchNorm(c_max, 1, affine=True, track=False)
    with torch.no_grad():
        bn.slots[0].weight.normal_()
        bn.slots[0].bias.normal_()
    up, down = triangle_resampling(c, c_max).float(), triangle_resampling(c_max, c).float()

    def bn_relu(y):
        norm = bn.slots[0]
        mean = y.mean((0, 2, 3), keepdim=True)
        var = y.var((0, 2, 3), unbiased=False, keepdim=True)
        z = (y - mean) / torch.sqrt(var + norm.eps)
        return F.relu(z * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1))

    x = torch.randn(6, c, 5, 5)
    weight = torch.randn(c_max, c_max, 3, 3)
    got = s.conv_bn_relu(x, weight, bn, 0, s.draw(c_max, c, x.device))
    full = bn_relu(F.conv2d(torch.einsum("oc,nchw->nohw", up, x), weight, padding=1))
    torch.testing.assert_close(got, torch.einsum("co,nohw->nchw", down, full))
    x = torch.randn(6, c_in, 5, 5)
    weight = torch.randn(c_max, c_in, 1, 1)
    got = s.project(x, weight, bn, s.draw(c_max, c, x.device))
    full = bn_relu(F.conv2d(x, weight))
    torch.testing.assert_close(got, torch.einsum("co,nohw->nchw", down, full))


def test_disabled_builds_one_supernet_per_subspace(caplog):
    full, two = supernet(), supernet(dynamic_channels="disabled", subspace=2)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(two) < n(full)
    assert [c.positions[0].c_max for c in cells(two)] == [4, 8, 16]
    with pytest.raises(ValueError, match="sub-space 2 got an architecture with 3"):
        two(torch.randn(2, 3, 8, 8), THREE)
    with caplog.at_level(logging.WARNING, logger="nasheur"):
        three = supernet(channels=8, dynamic_channels="disabled", subspace=3)
    assert "not divisible by 3" in caplog.text
    assert [c.positions[0].c_max for c in cells(three)] == [3, 6, 11]
    three.train()
    assert three(torch.randn(2, 3, 8, 8), THREE).shape == (2, 10)
    with pytest.raises(ValueError, match=r"needs supernet\.subspace"):
        supernet(dynamic_channels="disabled")


def test_sliced_batch_norm_updates_exactly_its_channels():
    bn = SlicedBatchNorm2d(6, affine=True, track=True)
    bn.train()
    x = torch.randn(8, 2, 4, 4) * 3 + 5
    bn(x, torch.tensor([1, 4]))
    moved = (bn.running_mean != 0).nonzero().flatten().tolist()
    assert moved == [1, 4]
    bn(x, slice(0, 2))
    assert (bn.running_mean != 0).nonzero().flatten().tolist() == [0, 1, 4]
    set_bn_stats(bn, BNStats.calibrate)
    bn.eval()
    bn(x, torch.tensor([2, 3]))
    torch.testing.assert_close(bn.running_mean[2:4], x.mean((0, 2, 3)))
    assert torch.equal(bn.running_mean[[0, 1, 4, 5]], torch.zeros(4))  # reset, not touched


@pytest.mark.parametrize("sel", [slice(0, 3), torch.tensor([1, 3, 5])], ids=["slice", "subset"])
def test_running_mode_normalises_a_narrower_vertex_with_its_channels_running_statistics(sel):
    # `running` is eval mode on every path: a vertex narrower than its layer (`fixed`,
    # `shuffle`) uses its own channels' tracked statistics and affine parameters, never the
    # batch's, and leaves the statistics as they are
    bn = SlicedBatchNorm2d(6, affine=True, track=True)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([1.0, -2.0, 3.0, 0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0, 9.0, 2.0, 0.5]))
        bn.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5, 3.0, 1.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -2.0, 0.25, 0.5, -1.0]))
    bn.eval()
    assert bn.stats is BNStats.running  # a tracking BN's mode outside training
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 5 + 7  # batch statistics far from the running ones
    picked = [0, 1, 2] if isinstance(sel, slice) else sel.tolist()

    def of(t: torch.Tensor) -> torch.Tensor:  # the picked channels, shaped to broadcast
        return t.detach()[picked].view(1, 3, 1, 1)

    expected = (x - of(mean)) / torch.sqrt(of(var) + bn.eps) * of(bn.weight) + of(bn.bias)
    with torch.no_grad():
        torch.testing.assert_close(bn(x, sel), expected)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)


# ---------------------------------------------------------------------------------------------
# single path and the other factors


@pytest.mark.parametrize(
    "factors",
    [
        {},
        {"dynamic_channels": "shuffle"},
        {"dynamic_channels": "interpolate"},
        {"dynamic_channels": "disabled", "subspace": 3},
        {"ofa_kernel": True},
        {"wsbn": True},
    ],
)
def test_a_step_changes_only_the_sampled_path(factors):
    """SGD with momentum and weight decay moves exactly the parameters that got a gradient."""
    with_grad, _ = two_sgd_steps(supernet(**factors), THREE, weight_decay=1e-3)
    # THREE's vertex 3 (position 2) is a max-pool: only its input projection trains
    assert {k for k in with_grad if k.startswith("blocks.0.positions.2.")} == {
        "blocks.0.positions.2.proj",
        *(f"blocks.0.positions.2.proj_bn.slots.0.{p}" for p in ("weight", "bias")),
    }
    assert "blocks.0.positions.0.convs." + C1 not in with_grad  # vertex 1 is a conv3x3


def test_ofa_kernel_is_the_centre_crop_at_init_and_shares_gradients():
    net = supernet(ofa_kernel=True)
    pos = cells(net)[0].positions[0]
    big, small = pos.weight(C3), pos.weight(C1)
    assert small.shape[-1] == 1 and torch.equal(small, big[:, :, 1:2, 1:2])
    assert not hasattr(pos, "convs")
    for op in (C1, C3):
        net.zero_grad(set_to_none=True)
        arch = make_spec(TWO.matrix, [INPUT, op, C1, OUTPUT])
        net.train()
        net(torch.randn(4, 3, 8, 8), arch).sum().backward()
        grad = pos.kernel.weight.grad
        assert grad is not None and grad.abs().sum() > 0
        if op == C1:  # the 1x1 reaches only the centre of the shared kernel
            assert grad[:, :, 0, 0].abs().sum() == 0 and grad[:, :, 1, 1].abs().sum() > 0


def test_wsbn_keeps_one_bn_per_set_of_incoming_vertices():
    net = supernet(wsbn=True, bn_track=True)
    cell = cells(net)[0]
    assert [len(p.bns[C3].slots) for p in cell.positions] == [1, 3, 7, 15, 31]
    assert len(cells(supernet())[0].positions[4].bns[C3].slots) == 1  # without WSBN
    # vertex 2 reads vertices {0, 1} in A and {1} in B: slots 0b11 - 1 = 2 and 0b10 - 1 = 1
    a = make_spec([[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, MP, C3, OUTPUT])
    b = make_spec([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [INPUT, MP, C3, OUTPUT])
    slots = cell.positions[1].bns[C3].slots
    net.train()
    x = torch.randn(8, 3, 8, 8) * 3
    net(x, a)
    moved = [i for i, s in enumerate(slots) if not torch.equal(s.running_mean, torch.zeros(8))]
    assert moved == [2]
    net(x, b)
    moved = [i for i, s in enumerate(slots) if not torch.equal(s.running_mean, torch.zeros(8))]
    assert moved == [1, 2]


@pytest.mark.parametrize(
    "arch",
    [TWO, ONE, THREE, make_spec([[0, 1], [0, 0]], [INPUT, OUTPUT])],
    ids=["k2", "k1", "k3", "input-output"],
)
def test_path_dropout_acts_on_every_edge_of_the_cell(arch, monkeypatch):
    """Path dropout drops every edge term: each input of a vertex (projected input or
    truncated vertex) and each edge into the output, so a cell calls it once per edge of
    its matrix (counted here from the matrix itself)."""
    import nasheur.supernet.nb101 as module

    real, calls = module.drop_path, []

    def recording(x, rate, training):
        calls.append((rate, training))
        return real(x, rate, training)

    monkeypatch.setattr(module, "drop_path", recording)
    net = supernet(path_dropout=0.2)
    net.train()
    net(torch.randn(2, 3, 8, 8), arch)
    edges = sum(map(sum, arch.matrix))
    assert calls == [(0.2, True)] * (edges * len(cells(net)))


def test_fairnas_gives_every_op_of_every_position_one_pass_per_step():
    net = supernet()
    paths = build_sampler("fairnas", SPACE).step_archs(np.random.default_rng(5))
    assert len(paths) == len(OPS)
    cell = cells(net)[0]
    owner = {id(p.bns[op]): (i, op) for i, p in enumerate(cell.positions) for op in (C3, C1)}
    calls: Counter = Counter()
    conv = net.strategy.conv_bn_relu

    def conv_(x, weight, bn, *rest):
        if id(bn) in owner:
            calls[owner[id(bn)]] += 1
        return conv(x, weight, bn, *rest)

    net.strategy.conv_bn_relu = conv_
    for i, p in enumerate(cell.positions):
        p.pool.register_forward_hook(lambda *_, i=i: calls.update([(i, MP)]))
    net.train()
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    for arch in paths:
        (F.cross_entropy(net(x, arch), y) / len(paths)).backward()
    used = range(paths[0].num_vertices - 2)
    assert calls == {(i, op): 1 for i in used for op in OPS}


def test_random_specs_run_under_every_strategy():
    rng = np.random.default_rng(0)
    archs = [random_spec(rng) for _ in range(6)]
    for mode in ("fixed", "shuffle", "interpolate"):
        net = supernet(dynamic_channels=mode)
        net.train()
        for arch in archs:
            assert net(torch.randn(2, 3, 8, 8), arch).shape == (2, 10)
    with pytest.raises(ValueError, match="ops on nodes only"):
        supernet(ops_on="edge")


def test_recalibration_under_shuffle_estimates_every_channel_evaluation_may_draw():
    # evaluation draws a new subset per batch, so any channel of a narrower vertex's layer
    # may be used: one calibration batch draws only some, and calibration goes on until
    # every channel has statistics (else it would keep the reset mean 0 and variance 1)
    from nasheur.data import DeviceLoader
    from nasheur.evaluation import _recalibrate

    net = supernet(dynamic_channels="shuffle", bn_track=False)
    net.eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8, generator=g)
    loader = DeviceLoader(
        images,
        torch.zeros(64, dtype=torch.long),
        batch_size=8,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        augment=False,
    )
    bns = [m for m in net.modules() if isinstance(m, SlicedBatchNorm2d)]
    torch.manual_seed(0)
    _recalibrate(net, bns, THREE, loader, 1, torch.Generator().manual_seed(1), nullcontext())
    drawn = [m for m in bns if m._channel_counts is not None]
    assert drawn and all(int(m.uncalibrated()) == 0 for m in drawn)
    assert max(int(m._channel_counts.max()) for m in drawn) > 1  # more than the one batch
    for m in drawn:  # every channel was estimated: none left at the reset values
        assert not ((m.running_mean == 0) & (m.running_var == 1)).any()
