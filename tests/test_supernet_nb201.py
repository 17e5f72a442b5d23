"""f_ws on NB201: each single path computes its cell's f_proxy, shares what it should, and each
mapping factor (ops on node/edge, OFA kernel, WSBN, dropout, BN switches) does what it claims."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasheur.bench import OpCounter
from nasheur.samplers import build_sampler
from nasheur.spaces import get_space
from nasheur.spaces.nb201 import EDGES, OPS, NB201Arch, parse
from nasheur.supernet.batchnorm import BNStats, SuperBatchNorm2d, set_bn_stats
from nasheur.supernet.nb201 import CONV_KERNEL, POSITION_OF_EDGE, SuperCell
from tests.conftest import nb201_supernet, two_sgd_steps

SPACE = get_space("nb201")
# four pools, of two nodes
POOLS = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
MIXED = parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|")


def cells(net) -> list[SuperCell]:
    return [b for b in net.blocks if isinstance(b, SuperCell)]


def path_state(net, arch: NB201Arch, ops_on: str) -> dict[str, torch.Tensor]:
    """The super-net weights of `arch`, named as in the stand-alone network."""
    state = {k: v for k, v in net.state_dict().items() if "op_sets" not in k}
    for i, block in enumerate(net.blocks):
        if not isinstance(block, SuperCell):
            continue
        for e, (_, src) in enumerate(EDGES):
            name = OPS[arch.ops[e]]
            if name not in CONV_KERNEL:
                continue
            op_set = block.op_sets[POSITION_OF_EDGE[ops_on][e]]
            state[f"blocks.{i}.edges.{e}.1.weight"] = op_set.weight(name).detach()
            bn = op_set.bns[name].slots[op_set.slot[src]]
            for k, v in bn.state_dict().items():
                state[f"blocks.{i}.edges.{e}.2.{k}"] = v
    return state


@pytest.mark.parametrize("ops_on", ["edge", "node"])
@pytest.mark.parametrize(
    "key",
    [
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
        "|none~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_3x3~1|skip_connect~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|none~2|",
        POOLS,
    ],
)
def test_a_path_of_the_supernet_is_the_standalone_cell(key, ops_on):
    arch = parse(key)
    net = nb201_supernet(ops_on=ops_on, bn_track=True)
    standalone = SPACE.standalone(arch, channels=4, layers=1)
    missing, unexpected = standalone.load_state_dict(path_state(net, arch, ops_on), strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    x = torch.randn(8, 3, 16, 16)
    net.train(), standalone.train()
    torch.testing.assert_close(net(x, arch), standalone(x), rtol=1e-5, atol=1e-5)
    # with the running statistics that forward left in both (the last key's node 2 reaches
    # nothing, which evaluation skips)
    net.eval(), standalone.eval()
    torch.testing.assert_close(net(x, arch), standalone(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "key",
    [
        # node 2 reaches nothing (3<-2 is none); node 1 feeds only node 2
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|none~2|",
        # node 1 reaches nothing, node 2 does
        "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
    ],
)
def test_nodes_that_reach_nothing_are_skipped_without_changing_a_step(key):
    """Without running statistics to update, a forward skips the ops of nodes from which no
    path reaches the output; the output and every gradient are those of the full cell."""
    arch = parse(key)
    full, lean = nb201_supernet(bn_track=True), nb201_supernet(bn_track=False)
    lean.load_state_dict(full.state_dict())
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    counted = []
    for net in (full, lean):
        net.train()
        counter = OpCounter()
        with counter:
            F.cross_entropy(net(x, arch), y).backward()
        counted.append(counter.count)
    torch.testing.assert_close(lean(x, arch), full(x, arch), rtol=0, atol=0)
    grads = lambda net: {k: p.grad for k, p in net.named_parameters() if p.grad is not None}  # noqa: E731
    g_full, g_lean = grads(full), grads(lean)
    assert g_full.keys() == g_lean.keys()
    for k in g_full:
        torch.testing.assert_close(g_lean[k], g_full[k], rtol=0, atol=0)
    assert counted[1] < counted[0]


# all-zero nodes: node 1 (its only input is `none`), with a conv and a pool reading it
ZERO_1 = "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
# nodes 1 and 2 zero (2 skips 1), node 3 only a conv of node 2 and a pool of node 1: the cell
# gives the BN's bias everywhere
ZERO_12 = "|none~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
# the output node zero, and so every later cell's input
ZERO_OUT = "|none~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"


def randomised(net):
    """`net` with every parameter (the BN biases, zero at init, too) drawn at random."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.5)
    return net


@pytest.mark.parametrize("key", [ZERO_1, ZERO_12, ZERO_OUT])
@pytest.mark.parametrize(
    "factors",
    [{}, {"ops_on": "node", "wsbn": True}, {"bn_affine": False}, {"bn_track": True}],
)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_evaluation_skips_the_ops_that_read_all_zero_nodes_bit_for_bit(key, factors, layout):
    """With batch statistics an op of an all-zero node gives nothing (skip, pool) or its BN's
    bias (conv): evaluation takes those shortcuts, and its logits are bit for bit those of
    the full forward (the training-mode forward, which runs every op, with the same batch
    statistics), with fewer operators."""
    arch = parse(key)
    net = randomised(nb201_supernet(**factors)).double().to(memory_format=layout)
    x = torch.randn(8, 3, 16, 16, dtype=torch.float64).to(memory_format=layout)
    full = copy.deepcopy(net)  # training mode would move a tracking net's running statistics
    counters = [OpCounter(), OpCounter()]
    with torch.no_grad():
        with counters[0]:
            expected = full.train()(x, arch)
        net.eval()
        set_bn_stats(net, BNStats.batch)
        with counters[1]:
            got = net(x, arch)
    assert torch.equal(got, expected)
    assert counters[1].count < counters[0].count


@pytest.mark.parametrize("key", [ZERO_1, ZERO_12, ZERO_OUT])
@pytest.mark.parametrize("mode", [BNStats.batch, BNStats.running])
def test_evaluation_of_all_zero_nodes_is_the_standalone_cells(key, mode):
    """Against f_proxy with the path's weights, in float64: with batch statistics and with
    running ones (where a conv of a zero node runs, on zeros made for it)."""
    arch = parse(key)
    net = randomised(nb201_supernet(bn_track=True)).double()
    x = torch.randn(8, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(3):  # running statistics of every op of every edge
            for ops in ((2, 2, 2, 2, 2, 2), (3, 3, 3, 3, 3, 3)):
                net.train()(x, NB201Arch(ops))
    standalone = SPACE.standalone(arch, channels=4, layers=1).double()
    standalone.load_state_dict(path_state(net, arch, "edge"), strict=False)
    net.eval()
    set_bn_stats(net, mode)
    with torch.no_grad():
        expected = (standalone.train() if mode is BNStats.batch else standalone.eval())(x)
        torch.testing.assert_close(net(x, arch), expected, rtol=1e-12, atol=1e-12)


def test_a_node_is_pooled_once_for_all_its_pool_edges():
    net = nb201_supernet()
    calls = []
    for cell in cells(net):
        for op_set in cell.op_sets:
            op_set.pool.register_forward_hook(lambda *args: calls.append(1))
    net.train()
    net(torch.randn(4, 3, 8, 8), parse(POOLS)).sum().backward()
    assert len(calls) == 2 * len(cells(net))  # node 0 (3 pool edges) and node 1 (1)


def test_node_mapping_shares_one_op_set_per_destination_node():
    edge, node = nb201_supernet(ops_on="edge"), nb201_supernet(ops_on="node")
    assert len(cells(edge)[0].op_sets) == 6 and len(cells(node)[0].op_sets) == 3
    n = lambda c: sum(p.numel() for p in c.parameters())  # noqa: E731
    assert n(cells(edge)[0]) == 2 * n(cells(node)[0])
    # conv on 3<-0 and conv on 3<-1 (node 1 a skip of node 0) read the same input: node
    # mapping gives them one kernel and one BN, edge mapping two of each
    arch_a, arch_b = NB201Arch((0, 0, 0, 3, 0, 0)), NB201Arch((1, 0, 0, 0, 3, 0))
    x = torch.randn(4, 3, 16, 16)
    node.train(), edge.train()
    torch.testing.assert_close(node(x, arch_a), node(x, arch_b))
    assert not torch.allclose(edge(x, arch_a), edge(x, arch_b))


@pytest.mark.parametrize(
    "factors",
    [
        {"ops_on": "edge"},
        {"ops_on": "node"},
        {"ofa_kernel": True},
        {"ops_on": "node", "wsbn": True},
    ],
)
def test_a_step_changes_only_the_sampled_path(factors):
    """SGD with momentum and weight decay moves exactly the parameters that got a gradient."""
    two_sgd_steps(nb201_supernet(**factors), MIXED, weight_decay=3e-3, image=16)


def test_the_path_of_a_step_is_the_sampled_ops():
    net = nb201_supernet(ops_on="edge")
    x, y = torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)
    F.cross_entropy(net(x, MIXED), y).backward()
    got = [
        k
        for k, v in net.named_parameters()
        if v.grad is not None and k.startswith("blocks.0.op_sets.")
    ]
    # MIXED: nor_conv_3x3 on edge 0, nor_conv_1x1 on edge 5; everything else is parameter-free
    assert sorted(got) == sorted(
        [
            "blocks.0.op_sets.0.convs.nor_conv_3x3",
            "blocks.0.op_sets.0.bns.nor_conv_3x3.slots.0.weight",
            "blocks.0.op_sets.0.bns.nor_conv_3x3.slots.0.bias",
            "blocks.0.op_sets.5.convs.nor_conv_1x1",
            "blocks.0.op_sets.5.bns.nor_conv_1x1.slots.0.weight",
            "blocks.0.op_sets.5.bns.nor_conv_1x1.slots.0.bias",
        ]
    )


def test_ofa_kernel_is_the_centre_crop_at_init_and_shares_gradients():
    net = nb201_supernet(ofa_kernel=True)
    op_set = cells(net)[0].op_sets[0]
    big, small = op_set.weight("nor_conv_3x3"), op_set.weight("nor_conv_1x1")
    assert small.shape[-1] == 1 and torch.equal(small, big[:, :, 1:2, 1:2])
    assert not hasattr(op_set, "convs")
    for op in (2, 3):  # a path through the 1x1 only, then the 3x3 only
        net.zero_grad(set_to_none=True)
        arch = NB201Arch((op, 0, 0, 1, 0, 0))  # edge 1<-0 carries the conv; node 3 skips node 0
        arch = NB201Arch((op, 0, 0, 0, 1, 0))
        net.train()
        net(torch.randn(4, 3, 8, 8), arch).sum().backward()
        grad = op_set.kernel.weight.grad
        assert grad is not None and grad.abs().sum() > 0
        if op == 2:  # the 1x1 reaches only the centre of the shared kernel
            assert grad[:, :, 0, 0].abs().sum() == 0 and grad[:, :, 1, 1].abs().sum() > 0


def test_wsbn_keeps_one_bn_per_input_node():
    net = nb201_supernet(ops_on="node", wsbn=True, bn_track=True)
    node3 = cells(net)[0].op_sets[2]  # node 3 reads nodes 0, 1 and 2
    assert (
        len(node3.bns["nor_conv_3x3"].slots) == 3
        and len(cells(net)[0].op_sets[0].bns["nor_conv_3x3"].slots) == 1
    )
    net.train()
    net(torch.randn(8, 3, 8, 8) * 3, NB201Arch((1, 0, 0, 0, 3, 0)))  # conv 3<-1 only
    slots = node3.bns["nor_conv_3x3"].slots
    assert not torch.equal(slots[1].running_mean, torch.zeros(4))  # the slot of input 1 moved
    assert torch.equal(slots[0].running_mean, torch.zeros(4)) and torch.equal(
        slots[2].running_mean, torch.zeros(4)
    )
    untracked = nb201_supernet(ops_on="node", wsbn=True, bn_track=False)
    assert all(not m.track for m in untracked.modules() if isinstance(m, SuperBatchNorm2d))
    untracked.train()
    untracked(torch.randn(8, 3, 8, 8) * 3, NB201Arch((1, 0, 0, 0, 3, 0)))
    assert all(
        torch.equal(m.running_mean, torch.zeros(4))
        for m in untracked.modules()
        if isinstance(m, SuperBatchNorm2d) and m.num_features == 4
    )


def test_path_dropout_is_per_sample_and_rescaled():
    from nasheur.supernet.dropout import drop_path

    torch.manual_seed(0)
    x = torch.ones(10_000, 2, 2, 2)
    y = drop_path(x, 0.2, training=True)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1.25).all(1)).all()  # whole samples, 1/keep
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.2) < 0.02  # the rate drops
    assert torch.equal(drop_path(x, 0.2, training=False), x)


def reaches_output(arch: NB201Arch, node: int) -> bool:
    """Whether a path of ops other than `none` leads from `node` to the output (node 3)."""
    return node == 3 or any(
        reaches_output(arch, dst)
        for e, (dst, src) in enumerate(EDGES)
        if src == node and OPS[arch.ops[e]] != "none"
    )


@pytest.mark.parametrize("bn_track", [True, False])
def test_fairnas_runs_every_op_of_every_position_once_per_step(bn_track):
    net = nb201_supernet(bn_track=bn_track)
    sampler = build_sampler("fairnas", SPACE)
    rng = np.random.default_rng(0)
    paths = sampler.step_archs(rng)
    assert len(paths) == len(OPS)
    for e in range(len(EDGES)):
        assert sorted(p.ops[e] for p in paths) == list(range(len(OPS)))
    calls: dict[tuple[int, str], int] = {}
    for pos, op_set in enumerate(cells(net)[0].op_sets):

        def hook(module, args, pos=pos):
            name = OPS[args[1]]
            calls[(pos, name)] = calls.get((pos, name), 0) + 1

        op_set.register_forward_pre_hook(hook)
    net.train()
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    for arch in paths:  # the training step: one pass per path, gradients averaged
        (F.cross_entropy(net(x, arch), y) / len(paths)).backward()
    # every op except `none` (which never runs) on every edge: once, except that without
    # running statistics to update an op whose output reaches nothing is skipped
    expected = {
        (e, OPS[arch.ops[e]]): 1
        for arch in paths
        for e, (dst, _) in enumerate(EDGES)
        if arch.ops[e] != 0 and (bn_track or reaches_output(arch, dst))
    }
    assert calls == expected
    assert (len(expected) == 6 * 4) == bn_track  # this draw has a path with a dead node
    again = sampler.step_archs(np.random.default_rng(0))
    assert again == paths and paths[0] is not again[0]  # new specs each time, same draw


def test_an_unknown_ops_on_is_a_value_error_as_in_darts():
    from nasheur.supernet import SupernetSpec, build_supernet

    with pytest.raises(ValueError, match="ops_on='nodes'"):
        build_supernet("nb201", SupernetSpec(channels=4, layers=1, num_classes=10, ops_on="nodes"))
