"""NAS-Bench-201 space: encodings, the official uniqueness rule, f_proxy parameter counts."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
from scipy import stats

from nasheur.samplers import build_sampler
from nasheur.spaces import get_space, space_names
from nasheur.spaces.nb201 import (
    EDGES,
    NUM_ARCHS,
    OPS,
    NB201Arch,
    has_path,
    live_nodes,
    parse,
    to_str,
    unique_str,
)

SPACE = get_space("nb201")
ALL = SPACE.enumerate()


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def expected_params(arch: NB201Arch, channels: int = 16, layers: int = 5) -> int:
    """Independent count: the all-`none` network (spec: 73,306 at C=16, N=5) plus, for every
    cell, ReLU-Conv-BN ops of k*k*C*C conv weights and 2C BN parameters."""
    assert (channels, layers) == (16, 5)
    total = 73_306
    for width in (16, 32, 64):
        for op in arch.op_names():
            k = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}.get(op)
            if k:
                total += layers * (k * k * width * width + 2 * width)
    return total


def test_registry_names_the_space():
    assert "nb201" in space_names()
    assert SPACE.name == "nb201"


def test_enumeration_and_string_round_trip():
    assert len(ALL) == NUM_ARCHS == 15_625
    keys = [to_str(a) for a in ALL]
    assert len(set(keys)) == NUM_ARCHS
    assert all(parse(k) == a for k, a in zip(keys, ALL, strict=True))


def test_official_string_layout():
    arch = NB201Arch((3, 0, 1, 1, 3, 4))
    assert (
        str(arch)
        == "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    )
    assert EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|",
        "|conv~0|+|none~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
        "|nor_conv_3x3~1|+|none~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    ],
)
def test_malformed_strings_are_rejected(bad):
    with pytest.raises(ValueError, match="not an NB201 arch string"):
        parse(bad)


def test_unique_count_and_disconnected_cells():
    assert len({unique_str(a) for a in ALL}) == 6_466
    assert SPACE.num_unique() == 6_466
    assert sum(not has_path(a) for a in ALL) == 341


def test_live_nodes_counts():
    """Node 2 reaches the output only through 3<-2: dead in 5^5 cells. Node 1 is dead when
    3<-1 is `none` and 2<-1 is `none` or node 2 dead: 5^6 * 1/5 * (1/5 + 4/5 * 1/5) cells.
    Node 0 is dead exactly in the 341 cells without an input-to-output path."""
    live = [live_nodes(a) for a in ALL]
    assert all(n[3] for n in live)
    assert sum(not n[2] for n in live) == 5**5
    assert sum(not n[1] for n in live) == 5**6 * 9 // 125 == 1_125
    assert all(n[0] == has_path(a) for n, a in zip(live, ALL, strict=True))
    assert live_nodes(
        parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|")
    ) == (True, True, True, True)
    assert live_nodes(parse("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")) == (
        True,
        False,
        False,
        True,
    )


def test_uniqueness_rule_on_hand_made_cases():
    # a skip from node 0 to 1 then conv 1->3 equals conv 0->3 when everything else is none
    via_skip = parse("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    direct = parse("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert unique_str(via_skip) == unique_str(direct)
    # ops on a zero node are zero: conv on node 1 fed only by `none` adds nothing
    dead = parse("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|")
    assert unique_str(dead) == unique_str(direct)
    assert unique_str(direct) != unique_str(
        parse("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|")
    )


def test_shared_table_reproduces_the_known_facts(shared_nb201_csv):
    with open(shared_nb201_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    archs = [parse(r["arch_str"]) for r in rows]
    assert len(set(archs)) == 15_625
    assert len({unique_str(a) for a in archs}) == 6_466
    no_path = [r for r, a in zip(rows, archs, strict=True) if not has_path(a)]
    assert len(no_path) == 341
    assert {float(r["test_acc"]) for r in no_path} == {10.0}


def test_the_real_table_loads_with_key_checks_and_covers_every_enumerated_cell(
    shared_nb201_csv, tmp_path
):
    from nasheur.groundtruth.convert import load_ground_truth

    gt = load_ground_truth(shared_nb201_csv, validate_key=SPACE.validate_key, cache_dir=tmp_path)
    keys = [SPACE.key(a) for a in ALL]
    assert len(gt) == len(set(keys)) == 15_625
    assert all(k in gt for k in keys)
    acc = gt.lookup(keys)
    assert np.all((acc > 0.0) & (acc < 1.0))  # fractions: the table's percent were converted


def test_known_parameter_counts():
    conv3 = parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    none = parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert n_params(SPACE.standalone(conv3)) == 1_531_546
    assert n_params(SPACE.standalone(none)) == 73_306


def test_parameter_counts_of_many_cells():
    rng = np.random.default_rng(0)
    picks = [ALL[i] for i in rng.choice(len(ALL), size=60, replace=False)]
    picks += [NB201Arch((o,) * 6) for o in range(len(OPS))]
    for arch in picks:
        assert n_params(SPACE.standalone(arch)) == expected_params(arch), str(arch)


def test_standalone_forward_and_macro_overrides():
    import torch

    net = SPACE.standalone(str(ALL[1234]), channels=8, layers=1, num_classes=7)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    with pytest.raises(TypeError, match="unknown nb201 macro"):
        SPACE.standalone(ALL[0], depth=3)


def test_sampling_is_seeded_and_returns_new_specs():
    a = [SPACE.sample(np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    draws = {SPACE.sample(np.random.default_rng(s)) for s in range(50)}
    assert len(draws) > 40
    arch = draws.pop()
    with pytest.raises(AttributeError):
        arch.ops = (0,) * 6  # frozen: a sampler can never edit a stored spec


def test_random_a_is_uniform_over_unique_cells():
    rng = np.random.default_rng(0)
    n = 20_000
    classes = [unique_str(SPACE.sample_unique(rng)) for _ in range(n)]
    # Random-NAS gives the all-disconnected class (hundreds of encodings) far more weight
    dead = unique_str(NB201Arch((0,) * 6))
    share_a = classes.count(dead) / n
    share_nas = sum(unique_str(a) == dead for a in ALL) / len(ALL)
    assert share_a < 5 / 6_466  # about 1/6,466 expected
    assert share_nas > 0.01
    assert len(set(classes)) > 5_000  # 20,000 uniform draws over 6,466 classes cover ~95%


# spec section 1: 341 of the 15,625 cells have no input-to-output path (a zero output)
NO_PATH_SHARE = 341 / 15_625
# 5.8 standard deviations of that share over 20,000 draws
NO_PATH_TOL = 0.006


def test_random_nas_draws_each_op_uniformly_on_every_edge():
    rng = np.random.default_rng(0)
    n = 20_000
    ops = np.array([SPACE.sample(rng).ops for _ in range(n)])
    for e in range(len(EDGES)):
        counts = np.bincount(ops[:, e], minlength=len(OPS))
        assert stats.chisquare(counts).pvalue > 1e-3, (e, counts)
    # `none` included: a cell is cut off as often as the enumeration says
    no_path = sum(not has_path(NB201Arch(tuple(int(o) for o in row))) for row in ops) / n
    assert abs(no_path - NO_PATH_SHARE) < NO_PATH_TOL, no_path


def test_the_random_a_sampler_is_not_random_nas():
    # the official rule marks a node zero only when its string is '#' ('#+#' is not), so the
    # 341 cells without a path make 5 of the 6,466 unique cells: Random-A meets them about
    # 15 times in 20,000 steps, Random-NAS about 436 times
    n = 20_000
    shares = {}
    for name in ("random_a", "random_nas"):
        sampler, rng = build_sampler(name, SPACE), np.random.default_rng(1)
        steps = [sampler.step_archs(rng) for _ in range(n)]
        assert all(len(s) == 1 for s in steps)
        shares[name] = sum(not has_path(s[0]) for s in steps) / n
    assert len({unique_str(a) for a in ALL if not has_path(a)}) == 5
    assert shares["random_a"] < 0.005, shares  # 100 draws: 20 Poisson sds above 15.5
    assert abs(shares["random_nas"] - NO_PATH_SHARE) < NO_PATH_TOL, shares


def test_every_cell_key_is_distinct_from_its_siblings():
    for ops in itertools.islice(itertools.product(range(5), repeat=6), 0, 15_625, 997):
        arch = NB201Arch(ops)
        assert SPACE.key(arch) == str(arch) and SPACE.parse(SPACE.key(arch)) == arch


def test_random_a_draws_an_encoding_of_its_class_uniformly():
    """Random-A: a uniform class, then one of its encodings uniformly (so that no encoding's
    path of the super-net is favoured). The share of draws that are their class's first
    encoding, brute-forced from the enumeration, is the mean of 1/|class|, not 1."""
    members: dict[str, list[NB201Arch]] = {}
    for arch in ALL:
        members.setdefault(unique_str(arch), []).append(arch)
    rng = np.random.default_rng(0)
    draws = [SPACE.sample_unique(rng) for _ in range(3_000)]
    shared = [members[unique_str(a)] for a in draws if len(members[unique_str(a)]) > 1]
    first = [a == members[unique_str(a)][0] for a in draws if len(members[unique_str(a)]) > 1]
    expected = float(np.mean([1 / len(m) for m in shared]))
    sd = (expected * (1 - expected) / len(first)) ** 0.5
    assert abs(np.mean(first) - expected) < 5 * sd, (np.mean(first), expected)
    assert len(set(draws)) > len({unique_str(a) for a in draws})


def test_the_reduction_block_is_a_residual_block_with_an_avg_pool_shortcut():
    """Spec section 1: stride 2, avg-pool + conv1x1 shortcut. With the conv branch's last BN
    zeroed, the block is its shortcut: a 2x2 mean of each input channel (picked here by a
    0/1 conv1x1), computed by hand."""
    import torch
    from torch import nn

    from nasheur.spaces.nb201_net import ResidualReduction

    block = ResidualReduction(2, 4, nn.BatchNorm2d)
    with torch.no_grad():
        block.conv_b[2].weight.zero_()
        block.conv_b[2].bias.zero_()
        pick = torch.zeros(4, 2, 1, 1)
        for o in range(4):
            pick[o, o % 2] = 1
        block.shortcut[1].weight.copy_(pick)
    x = torch.randn(3, 2, 6, 6)
    means = x.reshape(3, 2, 3, 2, 3, 2).mean((3, 5))
    expected = torch.cat([means, means], dim=1)  # output channel o reads input o % 2
    torch.testing.assert_close(block(x), expected)
    with torch.no_grad():
        block.conv_b[2].weight.fill_(1.0)  # the conv branch adds to the shortcut
    assert not torch.allclose(block(x), expected)


def test_the_reduction_block_adds_both_branches_as_nas_bench_201_does():
    """NB201's ResNetBasicblock at stride 2: ReLU-conv3x3(stride 2)-BN, then ReLU-conv3x3-BN,
    added to avg-pool2x2 + conv1x1 of the input. Every weight and BN affine random (so a sign
    or a scale would show), recomputed here with torch.nn.functional, batch statistics."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from nasheur.spaces.nb201_net import ResidualReduction

    torch.manual_seed(0)
    block = ResidualReduction(3, 6, nn.BatchNorm2d).double()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.5)

    def relu_conv_bn(x, branch, stride):
        conv = next(m for m in branch if isinstance(m, nn.Conv2d))
        bn = next(m for m in branch if isinstance(m, nn.BatchNorm2d))
        y = F.conv2d(F.relu(x), conv.weight, stride=stride, padding=1)
        return F.batch_norm(y, None, None, bn.weight, bn.bias, training=True, eps=1e-5)

    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    branch = relu_conv_bn(relu_conv_bn(x, block.conv_a, 2), block.conv_b, 1)
    conv1x1 = next(m for m in block.shortcut if isinstance(m, nn.Conv2d))
    shortcut = F.conv2d(F.avg_pool2d(x, 2), conv1x1.weight)
    torch.testing.assert_close(block.train()(x), shortcut + branch)


def test_the_average_pool_leaves_the_padding_out():
    """NB201's avg_pool_3x3 (count_include_pad=False): a border pixel averages only the
    pixels inside the image."""
    import torch

    from nasheur.spaces.nb201_net import avg_pool_3x3, make_op

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    for pool in (avg_pool_3x3(), make_op("avg_pool_3x3", 1, None)):
        y = pool(x)
        torch.testing.assert_close(pool(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
        assert y[0, 0, 0, 0] == (0 + 1 + 4 + 5) / 4
        assert y[0, 0, 1, 1] == x[0, 0, :3, :3].mean()


@pytest.mark.parametrize("bad", [len(OPS), -1])
def test_an_op_index_outside_the_five_ops_is_refused_when_the_cell_is_made(bad):
    # 5 ops, indices 0..4: 5 or -1 names no op (-1 would silently be the last in Python)
    with pytest.raises(ValueError, match="op indices"):
        NB201Arch((bad, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="op indices"):
        SPACE.key([0, 0, 0, 0, 0, bad])
    assert NB201Arch((4,) * 6).op_names() == ("avg_pool_3x3",) * 6  # the last index is an op


@pytest.mark.parametrize("bad", [1.7, 0.9, True, "2"])
def test_an_op_index_that_is_not_an_integer_is_refused_not_truncated(bad):
    # int() would read 1.7 as 1 (skip_connect) and True as 1: a silent wrong cell
    with pytest.raises(ValueError, match="op indices must be integers"):
        SPACE.key([0, 0, 0, 0, 0, bad])
    assert SPACE.key([0, 0, 0, 0, 0, np.int64(3)]) == SPACE.key([0, 0, 0, 0, 0, 3])
