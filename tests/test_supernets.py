"""What every super-net must do, whatever its space (parametrised over the registry)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from nasheur.spaces import get_space
from nasheur.supernet import SupernetSpec, build_supernet
from nasheur.supernet.batchnorm import SuperBatchNorm2d
from tests.conftest import TINY_SUPERNETS as TINY
from tests.conftest import tiny_supernet as tiny
from tests.conftest import two_sgd_steps


def arch_of(space: str):
    return get_space(space).sample(np.random.default_rng(3))


@pytest.mark.parametrize("space", TINY)
@pytest.mark.parametrize(
    "factors",
    [{"path_dropout": 0.5}, {"global_dropout": 0.5}, {"path_dropout": 0.2, "global_dropout": 0.2}],
)
def test_dropout_acts_in_training_only(space, factors):
    plain, dropped = tiny(space), tiny(space, **factors)
    dropped.load_state_dict(plain.state_dict())
    x, arch = torch.randn(8, 3, 8, 8), arch_of(space)
    plain.eval(), dropped.eval()
    torch.testing.assert_close(dropped(x, arch), plain(x, arch))  # evaluation is unchanged
    plain.train(), dropped.train()
    torch.manual_seed(1)
    assert not torch.allclose(dropped(x, arch), plain(x, arch))


@pytest.mark.parametrize("space", TINY)
def test_path_dropout_is_a_drop_rate(space, monkeypatch):
    """Spec section 7 (a drop rate passed as a keep probability): at path_dropout=0.2 about a
    fifth of the samples of an op output are zeroed, and the others scaled by 1 / 0.8."""
    module = importlib.import_module(f"nasheur.supernet.{space.removesuffix('_nds')}")
    real, seen = module.drop_path, []

    def recording(x, rate, training):
        y = real(x, rate, training)
        seen.append((x, y))
        return y

    monkeypatch.setattr(module, "drop_path", recording)
    net = tiny(space, path_dropout=0.2).train()
    torch.manual_seed(0)
    with torch.no_grad():
        net(torch.randn(256, 3, 8, 8), arch_of(space))
    live = dropped = 0
    for x, y in seen:
        fed = x.flatten(1).abs().amax(1) > 0  # a sample the op gave something
        gone = fed & (y.flatten(1) == 0).all(1)
        live, dropped = live + int(fed.sum()), dropped + int(gone.sum())
        kept = fed & ~gone
        torch.testing.assert_close(y[kept], x[kept] / 0.8)
    # 5 standard deviations of a binomial share of `live` samples; a keep rate of 0.2 gives 0.8
    assert live >= 500
    assert abs(dropped / live - 0.2) < 5 * (0.2 * 0.8 / live) ** 0.5, (dropped, live)


@pytest.mark.parametrize("space", TINY)
def test_bn_switches_apply_to_every_batch_norm(space):
    for affine, track in ((False, True), (True, False)):
        bns = [
            m
            for m in tiny(space, bn_affine=affine, bn_track=track, wsbn=True).modules()
            if isinstance(m, torch.nn.BatchNorm2d)
        ]
        assert bns and all(
            isinstance(m, SuperBatchNorm2d)
            and (m.weight is not None) == affine
            and m.track == track
            for m in bns
        )
    net = tiny(space, bn_affine=False, bn_track=False)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(
        isinstance(m, SuperBatchNorm2d) and m.weight is None and not m.track for m in bns
    )
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net.train()
    net(torch.randn(4, 3, 8, 8), arch_of(space))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items() if "running" in k)


@pytest.mark.parametrize("space", TINY)
def test_a_step_moves_only_parameters_that_got_a_gradient(space):
    # each space's own tests repeat this under its mapping factors (`two_sgd_steps`)
    two_sgd_steps(tiny(space), arch_of(space), weight_decay=3e-3)


@pytest.mark.parametrize("space", ["nb201", "darts_nds", "embedded"])
@pytest.mark.parametrize("factors", [{"dynamic_channels": "shuffle"}, {"subspace": 2}])
def test_fixed_width_supernets_refuse_nb101s_width_factors(space, factors):
    # NB101's factors have no meaning here: refused, not built and silently ignored
    size = TINY.get(space, TINY["nb201"])
    with pytest.raises(ValueError, match="fixed widths"):
        build_supernet(space, SupernetSpec(**size, num_classes=10, **factors))


# (affine, track, evaluation's BN mode): WSBN inert (slots compute the same) or not
WSBN_CASES = [(False, False, "batch"), (False, True, "batch"), (True, False, "batch")]
WSBN_CASES += [(False, True, "running")]


@pytest.mark.parametrize("space", TINY)
@pytest.mark.parametrize(("affine", "track", "mode"), WSBN_CASES)
def test_wsbn_changes_the_supernet_exactly_where_wsbn_inert_says(space, affine, track, mode):
    """Independent of `wsbn_inert`'s reasoning: train the same super-net with WSBN off and on
    (ops on nodes, float64, the same paths and batches) and compare what evaluation gives."""
    import torch.nn.functional as F

    from nasheur.config import wsbn_inert
    from nasheur.supernet.batchnorm import BNStats, set_bn_stats
    from nasheur.training import build_optimizer

    factors = {"bn_affine": affine, "bn_track": track}
    if "ops_on" not in TINY[space]:  # NB101's ops are on nodes anyway
        factors["ops_on"] = "node"
    nets = [tiny(space, wsbn=w, **factors).double() for w in (False, True)]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=gen)
    rng = np.random.default_rng(0)
    archs = [get_space(space).sample(rng) for _ in range(6)]  # several inputs per op set
    outputs = []
    for net in nets:
        opt = build_optimizer(net, lr=0.5, momentum=0.9, weight_decay=0.0)
        net.train()
        for arch in archs:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, arch), y).backward()
            opt.step()
        net.eval()
        set_bn_stats(net, BNStats(mode))
        with torch.no_grad():
            outputs.append(torch.stack([net(x, arch) for arch in archs]))
    same = torch.allclose(outputs[0], outputs[1], rtol=0, atol=1e-12)
    assert same == (wsbn_inert("node", affine, mode) is not None)
    assert wsbn_inert("edge", affine, mode) is not None  # one input per op set: one slot


@pytest.mark.parametrize(
    ("c_out", "c_in", "sizes"), [(16, 16, (3, 1)), (8, 1, (3, 5))], ids=["conv", "depthwise"]
)
def test_the_ofa_kernel_starts_as_the_conv_of_its_largest_size_would(c_out, c_in, sizes):
    # the OFA ablation compares sharing, not two initialisations: from the same seed the
    # shared kernel is the weight of PyTorch's own conv of the largest size (kaiming-uniform
    # with a = sqrt(5)), as each op's conv is without OFA
    from torch import nn

    from nasheur.supernet.ofa import OFAKernel

    torch.manual_seed(0)
    shared = OFAKernel(c_out, c_in, sizes).weight
    torch.manual_seed(0)
    groups = c_out if c_in == 1 else 1  # DARTS's depthwise convs: one input channel each
    conv = nn.Conv2d(c_in * groups, c_out, max(sizes), groups=groups, bias=False)
    assert torch.equal(shared, conv.weight)
