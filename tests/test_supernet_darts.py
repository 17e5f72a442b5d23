"""f_ws on DARTS-NDS: each single path computes its genotype's f_proxy, the two mappings share
what they should, and each mapping factor (OFA kernel, WSBN, dropout, BN switches) does what it
claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nasheur.samplers import build_sampler
from nasheur.spaces import get_space
from nasheur.spaces.darts_genotype import OPS, Cell, Genotype
from nasheur.spaces.darts_net import DIL_KERNEL, SEP_KERNEL
from nasheur.supernet import SupernetSpec, build_supernet
from nasheur.supernet.darts import (
    NUM_EDGES,
    SEP_PARTS,
    DartsSuperNet,
    SuperCell,
    edge_index,
    position_of,
)
from tests.conftest import two_sgd_steps
from tests.test_darts_space import DARTS_V2

SPACE = get_space("darts_nds")
RNG_GENOTYPES = [SPACE.sample(np.random.default_rng(s)) for s in range(2)]
# a node reading one input twice with the same op, and both cells' inputs at stride 2
TWICE = Genotype(
    Cell(
        (
            ("sep_conv_5x5", 1),
            ("sep_conv_5x5", 1),
            ("dil_conv_5x5", 0),
            ("avg_pool_3x3", 2),
            ("skip_connect", 3),
            ("dil_conv_3x3", 3),
            ("max_pool_3x3", 4),
            ("sep_conv_3x3", 0),
        )
    ),
    Cell(
        (
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("dil_conv_5x5", 2),
            ("avg_pool_3x3", 0),
            ("skip_connect", 3),
            ("sep_conv_5x5", 4),
            ("skip_connect", 1),
        )
    ),
)


def supernet(**kw) -> DartsSuperNet:
    """A small DARTS super-net: C=4, 3 cells (normal, reduce, reduce)."""
    spec = SupernetSpec(**{"channels": 4, "layers": 3, "num_classes": 10, **kw})
    torch.manual_seed(0)
    return build_supernet("darts_nds", spec)


def cells(net) -> list[SuperCell]:
    return list(net.cells)


def path_state(net: DartsSuperNet, g: Genotype) -> dict[str, torch.Tensor]:
    """The super-net weights of genotype `g`, named as in the stand-alone network."""
    state = {k: v for k, v in net.state_dict().items() if ".op_sets." not in k}
    for i, cell in enumerate(net.cells):
        genes = g.reduce if cell.reduction else g.normal
        for slot, (op, inp) in enumerate(genes.pairs):
            op_set = cell.op_sets[position_of(cell.ops_on, slot, inp)]
            prefix = f"cells.{i}.ops.{slot}"
            bns: list[tuple[int | str, torch.nn.Module]] = []
            if op in SEP_KERNEL:
                for idx, part in zip((1, 2, 5, 6), SEP_PARTS, strict=True):
                    state[f"{prefix}.{idx}.weight"] = op_set.weight(op, part).detach()
                bns = [(3, op_set.bn_of(op, inp, "1")), (7, op_set.bn_of(op, inp, "2"))]
            elif op in DIL_KERNEL:
                state[f"{prefix}.1.weight"] = op_set.weight(op, "dw").detach()
                state[f"{prefix}.2.weight"] = op_set.weight(op, "pw").detach()
                bns = [(3, op_set.bn_of(op, inp))]
            elif op == "skip_connect" and cell.reduction and inp < 2:
                state[f"{prefix}.conv_1.weight"] = op_set.fr_convs["conv_1"].detach()
                state[f"{prefix}.conv_2.weight"] = op_set.fr_convs["conv_2"].detach()
                bns = [("bn", op_set.bn_of(op, inp))]
            for idx, bn in bns:
                for k, v in bn.state_dict().items():
                    state[f"{prefix}.{idx}.{k}"] = v
    return state


@pytest.mark.parametrize(
    "factors",
    [
        {"ops_on": "edge"},
        {"ops_on": "node"},
        {"ops_on": "node", "wsbn": True},
        {"ops_on": "edge", "ofa_kernel": True},
    ],
    ids=["edge", "node", "node-wsbn", "edge-ofa"],
)
@pytest.mark.parametrize("g", [DARTS_V2, TWICE, *RNG_GENOTYPES])
def test_a_path_of_the_supernet_is_the_standalone_network(g, factors):
    net = supernet(bn_track=True, **factors)
    standalone = SPACE.standalone(g, channels=4, layers=3)
    missing, unexpected = standalone.load_state_dict(path_state(net, g), strict=True)
    assert not missing and not unexpected
    x = torch.randn(8, 3, 8, 8)
    net.train(), standalone.train()
    torch.testing.assert_close(net(x, g), standalone(x), rtol=1e-5, atol=1e-5)


def test_op_set_counts_and_sources_of_both_mappings():
    edge, node = supernet(ops_on="edge"), supernet(ops_on="node")
    assert NUM_EDGES == 14 and [edge_index(3, i) for i in range(5)] == [9, 10, 11, 12, 13]
    for cell in cells(edge):
        assert len(cell.op_sets) == 14
        assert [set(s.slot) for s in cell.op_sets] == [
            {i} for node in range(4) for i in range(node + 2)
        ]
    for cell in cells(node):
        assert len(cell.op_sets) == 8
        assert [set(s.slot) for s in cell.op_sets] == [set(range(s // 2 + 2)) for s in range(8)]

    def size(module, fr: bool | None = None) -> int:
        """Its weights: all, those of the stride-2 skip (fr=True) or the others (fr=False)."""
        return sum(
            p.numel()
            for n, p in module.named_parameters()
            if fr is None or n.startswith("fr_") == fr
        )

    # in a cell every op set has the same weights, plus a factorized reduce (the stride-2
    # skip) where it reads a cell input of a reduction cell: on the 8 edges from inputs 0 and
    # 1 (two per node), and in every one of the 8 slots
    for c in range(3):
        e, n = cells(edge)[c], cells(node)[c]
        unit, fr = size(n.op_sets[0], fr=False), size(n.op_sets[0], fr=True)
        assert all(size(s, fr=False) == unit for s in [*e.op_sets, *n.op_sets])
        assert (fr > 0) == e.reduction and all(size(s, fr=True) == fr for s in n.op_sets)
        assert size(n) - size(n.op_sets) == size(e) - size(e.op_sets)  # the preprocessing
        assert size(e.op_sets) == 14 * unit + 8 * fr
        assert size(n.op_sets) == 8 * unit + 8 * fr


def grads_under(net, prefix: str) -> set[str]:
    return {k for k, v in net.named_parameters() if v.grad is not None and k.startswith(prefix)}


def with_slot(g: Genotype, slot: int, pair: tuple[str, int]) -> Genotype:
    pairs = list(g.normal.pairs)
    pairs[slot] = pair
    return Genotype(Cell(tuple(pairs)), g.reduce)


def test_node_mapping_shares_a_slot_across_inputs_and_edge_mapping_does_not():
    base = RNG_GENOTYPES[0]
    # slot 6 (node 3, first term) applies sep_conv_3x3 to input 0, or to node 3
    a, b = with_slot(base, 6, ("sep_conv_3x3", 0)), with_slot(base, 6, ("sep_conv_3x3", 3))
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    used = {}
    for ops_on in ("node", "edge"):
        for name, g in (("a", a), ("b", b)):
            net = supernet(ops_on=ops_on)
            net.train()
            F.cross_entropy(net(x, g), y).backward()
            pos = position_of(ops_on, 6, g.normal.pairs[6][1])
            used[ops_on, name] = grads_under(net, f"cells.0.op_sets.{pos}.")
            assert any("sep_conv_3x3" in k for k in used[ops_on, name])
    assert used["node", "a"] == used["node", "b"]  # the same weights serve both inputs
    assert position_of("node", 6, 0) == position_of("node", 6, 3) == 6
    assert not used["edge", "a"] & used["edge", "b"]  # different edges, different weights
    assert position_of("edge", 6, 0) == 9 and position_of("edge", 6, 3) == 12


@pytest.mark.parametrize(
    "factors",
    [
        {"ops_on": "edge"},
        {"ops_on": "node"},
        {"ofa_kernel": True},
        {"ops_on": "node", "wsbn": True},
        {"ops_on": "node", "ofa_kernel": True, "wsbn": True},
    ],
)
def test_a_step_changes_only_the_sampled_path(factors):
    """SGD with momentum and weight decay moves exactly the parameters that got a gradient."""
    two_sgd_steps(supernet(**factors), TWICE, weight_decay=3e-4)


def test_the_path_of_a_step_is_the_sampled_ops():
    # normal cell: one sep_conv_3x3 on input 0, everything else parameter-free
    normal = Cell(
        (("sep_conv_3x3", 0),)
        + (("avg_pool_3x3", 1), ("max_pool_3x3", 2)) * 3
        + (("skip_connect", 3),)
    )
    reduce = Cell((("max_pool_3x3", 0), ("avg_pool_3x3", 1)) * 4)
    g = Genotype(normal, reduce)
    for ops_on in ("edge", "node"):
        net = supernet(ops_on=ops_on)
        net.train()
        F.cross_entropy(
            net(torch.randn(4, 3, 8, 8), g), torch.zeros(4, dtype=torch.long)
        ).backward()
        expected = {f"cells.0.op_sets.0.convs.sep_conv_3x3_{part}" for part in SEP_PARTS} | {
            f"cells.0.op_sets.0.bns.sep_conv_3x3_bn{i}.slots.0.{w}"
            for i in (1, 2)
            for w in ("weight", "bias")
        }
        assert grads_under(net, "cells.0.op_sets.") == expected
        assert not any(grads_under(net, f"cells.{i}.op_sets.") for i in (1, 2))
        assert grads_under(net, "cells.2.preprocess")  # preprocessing is on every path


def test_fairnas_gives_every_op_of_every_slot_one_pass_per_step():
    net = supernet(ops_on="node")
    sampler = build_sampler("fairnas", SPACE)
    paths = sampler.step_archs(np.random.default_rng(0))
    assert len(paths) == len(OPS)
    calls: dict[tuple[int, int, str], int] = {}
    for c, cell in enumerate(cells(net)):
        for pos, op_set in enumerate(cell.op_sets):

            def hook(module, args, c=c, pos=pos):
                calls[c, pos, args[1]] = calls.get((c, pos, args[1]), 0) + 1

            op_set.register_forward_pre_hook(hook)
    net.train()
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    for arch in paths:
        (F.cross_entropy(net(x, arch), y) / len(paths)).backward()
    assert calls == {(c, pos, op): 1 for c in range(3) for pos in range(8) for op in OPS}


def test_ofa_kernel_is_the_centre_crop_at_init_and_shares_gradients():
    net = supernet(ofa_kernel=True)
    op_set = cells(net)[0].op_sets[0]
    assert not hasattr(op_set, "convs")
    for small, big, parts in (
        ("sep_conv_3x3", "sep_conv_5x5", ("dw1", "dw2")),
        ("dil_conv_3x3", "dil_conv_5x5", ("dw",)),
    ):
        for part in parts:
            s, b = op_set.weight(small, part), op_set.weight(big, part)
            assert s.shape[-1] == 3 and b.shape[-1] == 5 and torch.equal(s, b[:, :, 1:4, 1:4])
        pw = "pw1" if parts[0] == "dw1" else "pw"
        assert op_set.weight(small, pw) is op_set.weight(big, pw)
    for op in ("sep_conv_3x3", "sep_conv_5x5"):
        net.zero_grad(set_to_none=True)
        g = with_slot(TWICE, 0, (op, 0))
        net.train()
        net(torch.randn(4, 3, 8, 8), g).sum().backward()
        grad = op_set.sep_dw[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0
        if op == "sep_conv_3x3":  # the 3x3 reaches only the centre of the shared 5x5 kernel
            assert grad[:, :, 0].abs().sum() == 0 and grad[:, :, 1:4, 1:4].abs().sum() > 0
            assert op_set.sep_dw[0].transforms["3"].grad is not None
        else:
            assert op_set.sep_dw[0].transforms["3"].grad is None


def test_ofa_keeps_the_two_depthwise_kernels_of_a_sep_conv_apart():
    """A sep conv stacks two depthwise convs with weights of their own: the OFA kernel shares
    one kernel across the sizes 3 and 5 of each, not one kernel across the two convs."""
    net = supernet(ofa_kernel=True)
    op_set = cells(net)[0].op_sets[0]
    first, second = (k.weight for k in op_set.sep_dw)
    assert first is not second and not torch.equal(first, second)
    for op, k in SEP_KERNEL.items():
        lo = (5 - k) // 2
        for part, kernel in (("dw1", first), ("dw2", second)):
            torch.testing.assert_close(
                op_set.weight(op, part), kernel[:, :, lo : lo + k, lo : lo + k]
            )
    net.train()
    net(torch.randn(4, 3, 8, 8), with_slot(TWICE, 0, ("sep_conv_5x5", 0))).sum().backward()
    assert first.grad.abs().sum() > 0 and second.grad.abs().sum() > 0


def test_wsbn_keeps_one_bn_per_input_in_node_mode_and_is_a_no_op_on_edges():
    net = supernet(ops_on="node", wsbn=True, bn_track=True)
    normal, reduce = cells(net)[0], cells(net)[1]
    assert len(normal.op_sets[6].bns["sep_conv_3x3_bn1"].slots) == 5  # node 3 reads 0..4
    assert len(normal.op_sets[0].bns["dil_conv_5x5_bn"].slots) == 2
    assert not hasattr(normal.op_sets[6], "fr_bn")  # no stride-2 skip in a normal cell
    assert len(reduce.op_sets[6].fr_bn.slots) == 2  # the stride-2 skip reads inputs 0, 1 only
    net.train()
    net(torch.randn(8, 3, 8, 8) * 3, with_slot(TWICE, 6, ("sep_conv_3x3", 3)))
    slots = normal.op_sets[6].bns["sep_conv_3x3_bn1"].slots
    zeros = torch.zeros(4)
    assert not torch.equal(slots[3].running_mean, zeros)  # the slot of input 3 moved
    assert all(torch.equal(slots[i].running_mean, zeros) for i in (0, 1, 2, 4))
    # with ops on edges every op set reads one input: the same parameters, the same outputs
    on, off = supernet(ops_on="edge", wsbn=True), supernet(ops_on="edge", wsbn=False)
    assert [k for k, _ in on.named_parameters()] == [k for k, _ in off.named_parameters()]
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(on(x, TWICE), off(x, TWICE))


@pytest.mark.parametrize(("layers", "size"), [(1, 8), (2, 8), (3, 9), (4, 10)])
def test_shallow_nets_odd_sizes_and_every_arch_form(layers, size):
    x = torch.randn(2, 3, size, size)
    for ops_on in ("edge", "node"):
        net = supernet(ops_on=ops_on, layers=layers, channels=3)
        net.eval()
        out = net(x, TWICE)
        assert out.shape == (2, 10)
        torch.testing.assert_close(net(x, TWICE.key()), net(x, TWICE.canonical()))
        torch.testing.assert_close(net(x, TWICE.to_nds()), out)
    assert SPACE.standalone(TWICE, channels=3, layers=layers)(x).shape == (2, 10)


def test_a_concat_of_fewer_nodes_zeroes_the_others():
    net = supernet()
    net.eval()
    fewer = Genotype(Cell(DARTS_V2.normal.pairs, (2, 3, 5)), DARTS_V2.reduce)
    assert net(torch.randn(2, 3, 8, 8), fewer).shape == (2, 10)
    # the cell keeps its 4 C channels: node 4's block is zero, the others are the nodes'
    cell, c = cells(net)[0], 4
    s0, s1 = torch.randn(2, 3 * c, 8, 8), torch.randn(2, 3 * c, 8, 8)
    full, out = cell(s0, s1, DARTS_V2.normal), cell(s0, s1, fewer.normal)
    assert out.shape == full.shape == (2, 4 * c, 8, 8)
    assert torch.equal(out[:, 2 * c : 3 * c], torch.zeros_like(out[:, :c]))
    assert full[:, 2 * c : 3 * c].abs().sum() > 0
    for block in (0, 1, 3):
        torch.testing.assert_close(
            out[:, block * c : (block + 1) * c], full[:, block * c : (block + 1) * c]
        )
