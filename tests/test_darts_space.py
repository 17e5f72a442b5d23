"""DARTS-NDS space: keys, the NDS genotype form, sampling (Random-NAS, FairNAS) and f_proxy
parameter counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

from nasheur.spaces import get_space, space_names
from nasheur.spaces.darts import SLOTS, as_genotype
from nasheur.spaces.darts_genotype import NODES, OPS, Cell, Genotype, from_nds, parse_key
from nasheur.spaces.darts_net import DartsNetwork, cell_plan

SPACE = get_space("darts_nds")

DARTS_V2 = Genotype(
    Cell(
        (
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        )
    ),
    Cell(
        (
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        )
    ),
)
DARTS_V2_KEY = (
    "normal[sep_conv_3x3~0+sep_conv_3x3~1|sep_conv_3x3~0+sep_conv_3x3~1"
    "|skip_connect~0+sep_conv_3x3~1|skip_connect~0+dil_conv_3x3~2]"
    "reduce[max_pool_3x3~0+max_pool_3x3~1|max_pool_3x3~1+skip_connect~2"
    "|max_pool_3x3~0+skip_connect~2|max_pool_3x3~1+skip_connect~2]"
)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def expected_params(g: Genotype, channels: int, layers: int, num_classes: int = 10) -> int:
    """Independent count of f_proxy: stem, preprocessing (a factorized reduce has as many
    weights as a conv1x1), the ops of each cell, the classifier. The widths follow the spec:
    reductions at layers // 3 and 2 * layers // 3 double C, and a cell outputs its concat's
    nodes, len(concat) * C channels."""
    per_op = {
        "sep_conv_3x3": lambda c: 2 * (9 * c + c * c + 2 * c),
        "sep_conv_5x5": lambda c: 2 * (25 * c + c * c + 2 * c),
        "dil_conv_3x3": lambda c: 9 * c + c * c + 2 * c,
        "dil_conv_5x5": lambda c: 25 * c + c * c + 2 * c,
        "max_pool_3x3": lambda c: 0,
        "avg_pool_3x3": lambda c: 0,
    }
    total = 27 * 3 * channels + 2 * 3 * channels
    c_pp = c_p = 3 * channels
    c = channels
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        c = 2 * c if reduction else c
        cell = g.reduce if reduction else g.normal
        total += c_pp * c + 2 * c + c_p * c + 2 * c
        for op, inp in cell.pairs:
            if op == "skip_connect":
                total += c * c + 2 * c if reduction and inp < 2 else 0
            else:
                total += per_op[op](c)
        c_pp, c_p = c_p, len(cell.concat) * c
    return total + c_p * num_classes + num_classes


def test_registry_and_class_attributes():
    assert "darts_nds" in space_names() and SPACE.name == "darts_nds"
    assert SPACE.ops_on == ("edge", "node") and SPACE.dynamic_channels == ("fixed",)
    assert SPACE.samplers == ("random_nas", "fairnas")  # the paper runs no Random-A here
    assert not hasattr(SPACE, "enumerate") and not hasattr(SPACE, "sample_unique")
    assert "none" not in OPS and len(OPS) == 7


def test_key_of_darts_v2_and_round_trips():
    assert SPACE.key(DARTS_V2) == DARTS_V2_KEY == DARTS_V2.key()
    assert SPACE.unique_key(DARTS_V2) == DARTS_V2_KEY
    canonical = SPACE.parse(DARTS_V2_KEY)
    assert canonical == DARTS_V2.canonical() and canonical.key() == DARTS_V2_KEY
    nds = DARTS_V2.to_nds()
    assert nds["normal"][7] == ["dil_conv_3x3", 2] and nds["reduce_concat"] == [2, 3, 4, 5]
    assert from_nds(nds) == DARTS_V2
    # every form the space accepts gives the same key
    for form in (DARTS_V2, DARTS_V2_KEY, nds):
        assert SPACE.key(form) == DARTS_V2_KEY
    SPACE.validate_key(DARTS_V2_KEY)


def _swap_terms(cell: Cell, node: int) -> Cell:
    pairs = list(cell.pairs)
    pairs[2 * node], pairs[2 * node + 1] = pairs[2 * node + 1], pairs[2 * node]
    return Cell(tuple(pairs), cell.concat)


def _set(cell: Cell, slot: int, pair: tuple[str, int]) -> Cell:
    pairs = list(cell.pairs)
    pairs[slot] = pair
    return Cell(tuple(pairs), cell.concat)


def test_swapped_terms_are_the_same_network_and_key():
    for node in range(NODES):
        swapped = Genotype(_swap_terms(DARTS_V2.normal, node), _swap_terms(DARTS_V2.reduce, node))
        assert swapped != DARTS_V2 and SPACE.key(swapped) == DARTS_V2_KEY
        assert SPACE.key(swapped.to_nds()) == DARTS_V2_KEY  # through the NDS form too


def test_the_reduce_cell_and_the_op_input_pairing_are_part_of_the_key():
    other_reduce = Genotype(DARTS_V2.normal, _set(DARTS_V2.reduce, 0, ("avg_pool_3x3", 0)))
    assert SPACE.key(other_reduce) != DARTS_V2_KEY  # the authors' hash ignored the reduce cell
    # node 2 of the normal cell: sep3x3<-1, skip<-0; pairing the ops the other way round
    pairs = list(DARTS_V2.normal.pairs)
    pairs[4], pairs[5] = ("sep_conv_3x3", 0), ("skip_connect", 1)
    repaired = Genotype(Cell(tuple(pairs)), DARTS_V2.reduce)
    same_multisets = sorted(op for op, _ in repaired.normal.pairs) == sorted(
        op for op, _ in DARTS_V2.normal.pairs
    ) and sorted(i for _, i in repaired.normal.pairs) == sorted(i for _, i in DARTS_V2.normal.pairs)
    assert same_multisets and SPACE.key(repaired) != DARTS_V2_KEY
    concat = Genotype(Cell(DARTS_V2.normal.pairs, (2, 3, 5)), DARTS_V2.reduce)
    assert (
        SPACE.key(concat) != DARTS_V2_KEY and SPACE.parse(SPACE.key(concat)) == concat.canonical()
    )


@pytest.mark.parametrize("concat", [(2, 2, 3), (1, 2, 3, 4, 5), (0, 2), (2, 6), ()])
def test_a_concat_that_repeats_a_node_or_names_no_intermediate_node_is_refused(concat):
    # the cell concatenates intermediate nodes 2..5: (2, 2, 3) names node 2 twice, 0 and 1
    # are the cell's inputs, 6 lies past the 4 nodes, () outputs nothing; refused as a value
    # and as a key
    with pytest.raises(ValueError, match="concat"):
        Cell(DARTS_V2.normal.pairs, concat)
    normal = DARTS_V2_KEY[: DARTS_V2_KEY.index("]")]
    key = f"{normal}|concat={','.join(map(str, concat))}{DARTS_V2_KEY[DARTS_V2_KEY.index(']') :]}"
    with pytest.raises(ValueError, match="DARTS genotype key"):
        SPACE.validate_key(key)
    ordered = key.replace("concat=" + ",".join(map(str, concat)), "concat=2,3,5")
    assert SPACE.parse(ordered).normal.concat == (2, 3, 5)  # the same key, well formed


@pytest.mark.parametrize("n_pairs", [7, 9])
def test_a_cell_has_two_terms_for_each_of_its_four_nodes(n_pairs):
    pairs = (DARTS_V2.normal.pairs * 2)[:n_pairs]
    with pytest.raises(ValueError, match=r"a DARTS cell has 8 \(op, input\) pairs, got"):
        Cell(pairs)
    nds = {**DARTS_V2.to_nds(), "normal": [list(p) for p in pairs]}
    with pytest.raises(ValueError, match="8 \\(op, input\\) pairs"):
        from_nds(nds)


@pytest.mark.parametrize("inp", [1.0, "1"])
def test_a_cell_input_that_is_not_an_int_is_refused(inp):
    # 1.0 would pass the range check 0 <= inp < 2 and give the key "sep_conv_3x3~1.0"
    with pytest.raises(ValueError, match=r"slot 0 \(node 0\) reads input"):
        _set(DARTS_V2.normal, 0, ("sep_conv_3x3", inp))


def test_a_bool_or_float_in_a_cell_is_refused_as_it_would_change_the_key():
    # True == 1 and 2.0 == 2, so such a cell compares (and hashes) equal to the int one, but
    # its key would read "sep_conv_3x3~True" or "concat=2.0,3", which parse_key refuses
    with pytest.raises(ValueError, match=r"slot 1 \(node 0\) reads input True"):
        _set(DARTS_V2.normal, 1, ("sep_conv_3x3", True))
    with pytest.raises(ValueError, match=r"concat \(2\.0, 3\) must name distinct nodes"):
        Cell(DARTS_V2.normal.pairs, (2.0, 3))


def test_terms_that_read_the_same_input_have_one_key_in_either_order():
    # NDS may give both terms of a node the same input; the sum does not depend on their
    # order, so ordering the terms by input alone would leave two keys for one network
    a = _set(_set(DARTS_V2.normal, 0, ("sep_conv_3x3", 0)), 1, ("max_pool_3x3", 0))
    b = _swap_terms(a, 0)
    assert a != b and a.key() == b.key()
    assert Genotype(a, DARTS_V2.reduce).key() == Genotype(b, DARTS_V2.reduce).key()


def test_the_concat_order_does_not_change_the_key():
    # another order of the concat only permutes the cell's output channels (module doc)
    shuffled = Genotype(Cell(DARTS_V2.normal.pairs, (5, 3, 2)), DARTS_V2.reduce)
    ordered = Genotype(Cell(DARTS_V2.normal.pairs, (2, 3, 5)), DARTS_V2.reduce)
    assert shuffled != ordered and SPACE.key(shuffled) == SPACE.key(ordered)
    assert SPACE.key(shuffled.to_nds()) == SPACE.key(ordered)
    assert SPACE.parse(SPACE.key(shuffled)).normal.concat == (2, 3, 5)


def test_the_nds_form_keeps_each_cells_own_concat():
    # two different concats, one of them not sorted: to_nds and from_nds must neither swap
    # the cells' concats nor reorder them (the order is the channel order of the output)
    g = Genotype(Cell(DARTS_V2.normal.pairs, (5, 2)), Cell(DARTS_V2.reduce.pairs, (3, 4, 5)))
    nds = g.to_nds()
    assert nds["normal_concat"] == [5, 2] and nds["reduce_concat"] == [3, 4, 5]
    assert from_nds(nds) == g


def _nds_with(field: str, slot: int | None, value):
    nds = DARTS_V2.to_nds()
    if slot is None:
        nds[field] = value
    else:
        nds[field][slot] = value
    return nds


@pytest.mark.parametrize(
    ("field", "slot", "value", "said"),
    [
        ("normal", None, "sep_conv_3x3~0", r"normal must be a list of \[op, input\] pairs"),
        ("normal", None, 42, r"normal must be a list of \[op, input\] pairs"),
        ("normal", 0, ["sep_conv_3x3", 0, 1], r"normal: \['sep_conv_3x3', 0, 1\] is not an \["),
        ("normal", 0, 7, r"normal: 7 is not an \[op, input\] pair"),
        # a bool is an int to Python, but not a node number
        ("reduce", 0, ["max_pool_3x3", True], r"reduce: input True of 'max_pool_3x3' is not an"),
        ("reduce", 0, ["max_pool_3x3", "0"], r"reduce: input '0' of 'max_pool_3x3' is not an"),
        ("normal_concat", None, 5, r"normal_concat 5 must be a list of node numbers"),
        ("normal_concat", None, "2345", r"normal_concat '2345' must be a list of node numbers"),
        ("reduce_concat", None, ["2", "3"], r"reduce_concat: '2' is not an integer node number"),
        # the error names the key of the NDS form, not only the cell's concat
        ("reduce_concat", None, [], r"reduce_concat \[\] must name distinct nodes among 2..5"),
        ("reduce_concat", None, [1, 2], r"reduce_concat \[1, 2\] must name distinct nodes"),
    ],
    ids=[
        "ops as a string",
        "ops as a number",
        "a triple",
        "a number as a pair",
        "a bool input",
        "a string input",
        "concat as a number",
        "concat as a string",
        "concat of strings",
        "empty concat",
        "concat with an input",
    ],
)
def test_a_malformed_nds_genotype_names_the_field(field, slot, value, said):
    with pytest.raises(ValueError, match=said):
        from_nds(_nds_with(field, slot, value))


def test_keys_are_collision_free_over_many_samples():
    rng = np.random.default_rng(0)
    samples = [SPACE.sample(rng) for _ in range(3000)]
    canon = {g.canonical() for g in samples}
    keys = {SPACE.key(g) for g in samples}
    assert len(keys) == len(canon)
    for g in samples[:300]:
        assert SPACE.parse(SPACE.key(g)) == g.canonical()
        assert SPACE.key(from_nds(g.to_nds())) == SPACE.key(g)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "normal[]reduce[]",
        DARTS_V2_KEY.replace("sep_conv_3x3~0+sep_conv_3x3~1", "sep_conv_3x3~1+sep_conv_3x3~0", 1),
        DARTS_V2_KEY.replace("dil_conv_3x3~2", "dil_conv_3x3~5"),
        DARTS_V2_KEY.replace("max_pool_3x3~0+max_pool_3x3~1", "none~0+max_pool_3x3~1"),
    ],
)
def test_malformed_or_non_canonical_keys_are_rejected(bad):
    with pytest.raises(ValueError, match="DARTS genotype key"):
        SPACE.validate_key(bad)


def test_as_genotype_rejects_other_types():
    with pytest.raises(TypeError, match="DARTS architecture"):
        as_genotype(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs 'normal' and 'reduce'"):
        as_genotype({"normal": DARTS_V2.to_nds()["normal"]})
    misspelt = {**DARTS_V2.to_nds(), "normal_concta": [2, 3]}
    with pytest.raises(ValueError, match="not normal_concta"):  # not the default concat
        as_genotype(misspelt)


def test_known_parameter_counts_of_darts_v2():
    assert n_params(SPACE.standalone(DARTS_V2)) == 3_349_342
    assert n_params(SPACE.standalone(DARTS_V2, auxiliary=True)) == 3_825_768
    assert expected_params(DARTS_V2, 36, 20) == 3_349_342  # the independent count agrees
    small = n_params(SPACE.standalone(DARTS_V2, channels=4, layers=3))
    for form in (DARTS_V2.to_nds(), DARTS_V2_KEY):  # every form builds the same network
        assert n_params(SPACE.standalone(form, channels=4, layers=3)) == small


def test_parameter_counts_of_sampled_genotypes():
    rng = np.random.default_rng(1)
    for _ in range(6):
        g = SPACE.sample(rng)
        assert n_params(SPACE.standalone(g, channels=8, layers=5)) == expected_params(g, 8, 5)


def test_standalone_forward_macro_settings_and_auxiliary_head():
    rng = np.random.default_rng(2)
    net = SPACE.standalone(SPACE.sample(rng), channels=4, layers=3, num_classes=7)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 7)
    aux_net = SPACE.standalone(DARTS_V2, channels=4, layers=6, auxiliary=True)
    aux_net.train()
    logits, aux = aux_net.forward_aux(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    aux_net.eval()
    assert aux_net.forward_aux(torch.randn(2, 3, 32, 32))[1] is None
    with pytest.raises(TypeError, match="unknown darts_nds macro"):
        SPACE.standalone(DARTS_V2, depth=3)
    assert dict(SPACE.macro_defaults) == {
        "channels": 36,
        "layers": 20,
        "auxiliary": False,
        "num_classes": 10,
    }


def test_reductions_sit_at_a_third_and_two_thirds():
    plan = cell_plan(36, 20)
    assert [i for i, p in enumerate(plan) if p[3]] == [6, 13]
    assert [i for i, p in enumerate(cell_plan(36, 12)) if p[3]] == [4, 8]
    assert [p[2] for p in plan[:7]] == [36] * 6 + [72]


def test_sampling_is_seeded_uniform_and_returns_new_specs():
    a = [SPACE.sample(np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1] and a[0] is not a[1]
    rng = np.random.default_rng(0)
    draws = [SPACE.sample(rng) for _ in range(4000)]
    last_node_inputs = Counter(inp for g in draws for _, inp in g.normal.pairs[6:8])
    assert set(last_node_inputs) == {0, 1, 2, 3, 4}
    assert all(abs(n / 8000 - 0.2) < 0.03 for n in last_node_inputs.values())
    ops = Counter(op for g in draws for op, _ in g.reduce.pairs)
    assert set(ops) == set(OPS) and all(abs(n / 32000 - 1 / 7) < 0.02 for n in ops.values())
    # the two inputs of a node may coincide, as in NDS (node 0: probability 1/2)
    same = sum(g.normal.pairs[0][1] == g.normal.pairs[1][1] for g in draws) / len(draws)
    assert abs(same - 0.5) < 0.05
    with pytest.raises(AttributeError):
        draws[0].normal = draws[1].normal  # frozen: a sampler never edits a stored spec


def test_fairnas_paths_share_a_topology_and_cover_every_op_once_per_slot():
    paths = SPACE.fair_paths(np.random.default_rng(3))
    assert len(paths) == len(OPS)
    for cell in ("normal", "reduce"):
        cells = [getattr(p, cell) for p in paths]
        assert len({tuple(i for _, i in c.pairs) for c in cells}) == 1  # one topology
        for slot in range(SLOTS):
            assert sorted(c.pairs[slot][0] for c in cells) == sorted(OPS)
    again = SPACE.fair_paths(np.random.default_rng(3))
    assert again == paths and again[0] is not paths[0]
    assert SPACE.fair_paths(np.random.default_rng(4)) != paths


def test_fairnas_draws_the_order_of_the_ops_at_random():
    # a fixed order (path k takes op k everywhere) would make every path a single-op genotype
    rng = np.random.default_rng(0)
    first = Counter()  # (cell, slot, op) of path 0
    for _ in range(200):
        paths = SPACE.fair_paths(rng)
        for cell in ("normal", "reduce"):
            first.update((cell, s, op) for s, (op, _) in enumerate(getattr(paths[0], cell).pairs))
        # 16 slots on one op: 7 * (1/7)^16 per path
        assert all(len({op for c in (p.normal, p.reduce) for op, _ in c.pairs}) > 1 for p in paths)
    for cell in ("normal", "reduce"):
        for s in range(SLOTS):
            counts = [first[cell, s, op] for op in OPS]
            assert stats.chisquare(counts).pvalue > 1e-3, (cell, s, counts)


def test_parse_key_is_the_genotype_module_parser():
    assert parse_key(DARTS_V2_KEY) == SPACE.parse(DARTS_V2_KEY)


def test_a_sampler_the_space_does_not_offer_is_refused_when_built():
    from nasheur.samplers import build_sampler

    assert "random_a" not in SPACE.samplers
    with pytest.raises(ValueError, match="'random_a' is not offered in the darts_nds space"):
        build_sampler("random_a", SPACE)


def test_fairnas_draws_the_two_cells_on_their_own():
    """FairNAS draws one topology as Random-NAS does (each cell's inputs independently) and a
    permutation per op slot of each cell: 16 slots, so the normal and reduction cells of a
    path neither share their inputs nor their ops (equal by chance 1 in 14,400, 1 in 7^8)."""
    same_inputs = same_ops = 0
    for seed in range(20):
        path = SPACE.fair_paths(np.random.default_rng(seed))[0]
        same_inputs += [i for _, i in path.normal.pairs] == [i for _, i in path.reduce.pairs]
        same_ops += [op for op, _ in path.normal.pairs] == [op for op, _ in path.reduce.pairs]
    assert same_inputs <= 1 and same_ops <= 1, (same_inputs, same_ops)


@pytest.mark.parametrize(("size", "width"), [(6, 6), (5, 5), (5, 6), (6, 5)])
def test_factorized_reduce_reads_the_input_and_the_input_shifted_by_a_pixel(size, width):
    """DARTS's FactorizedReduce: ReLU, then conv1x1 at stride 2 on x and on x[:, :, 1:, 1:]
    (an odd side zero-padded at the end first, each side on its own), concatenated: with 0/1
    kernels that pick channels, the two halves are the even and the odd pixels of ReLU(x)."""
    import torch.nn.functional as F
    from torch import nn

    from nasheur.spaces.darts_net import FactorizedReduce

    fr = FactorizedReduce(2, 4, lambda c: nn.Identity())
    with torch.no_grad():
        fr.conv_1.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
        fr.conv_2.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    x = torch.randn(3, 2, size, width)
    r = F.pad(F.relu(x), (0, width % 2, 0, size % 2))
    expected = torch.cat([r[:, :, 0:size:2, 0:width:2], r[:, :, 1::2, 1::2]], dim=1)
    torch.testing.assert_close(fr(x), expected)


@pytest.mark.parametrize(("name", "reach"), [("dil_conv_3x3", 2), ("dil_conv_5x5", 4)])
def test_dilated_convs_have_dilation_2(name, reach):
    """DARTS's dil_conv_kxk: a depthwise k x k conv of dilation 2 (padding 2 (k // 2)), so a
    single pixel reaches every second pixel up to `reach` = 2 (k // 2) away, same size out."""
    from torch import nn

    from nasheur.spaces.darts_net import make_op

    op = make_op(name, 1, 1, lambda c: nn.Identity())
    with torch.no_grad():
        for p in op.parameters():
            p.fill_(1.0)
    x = torch.zeros(1, 1, 13, 13)
    x[0, 0, 6, 6] = 1.0
    y = op(x)[0, 0]
    assert y.shape == (13, 13)
    hit = {(i - 6, j - 6) for i, j in (y != 0).nonzero().tolist()}
    steps = range(-reach, reach + 1, 2)
    assert hit == {(a, b) for a in steps for b in steps}


def test_an_odd_factorized_reduce_gives_the_extra_channel_to_the_shifted_half():
    # NAS-Bench-201's (AutoDL's) FactorizedReduce: C_outs = [C_out // 2, C_out - C_out // 2]
    from torch import nn

    from nasheur.spaces.darts_net import FactorizedReduce

    fr = FactorizedReduce(3, 5, lambda c: nn.Identity())
    assert (fr.conv_1.out_channels, fr.conv_2.out_channels) == (2, 3)
    assert fr(torch.randn(1, 3, 4, 4)).shape == (1, 5, 2, 2)


def test_a_cell_input_is_preprocessed_by_relu_conv1x1_bn():
    """ReLU-conv1x1-BN: with an identity kernel (and BN left out) it is ReLU(x)."""
    import torch.nn.functional as F
    from torch import nn

    from nasheur.spaces.darts_net import relu_conv_bn

    pre = relu_conv_bn(2, 2, lambda c: nn.Identity())
    (conv,) = [m for m in pre.modules() if isinstance(m, nn.Conv2d)]
    assert conv.kernel_size == (1, 1) and conv.bias is None
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    x = torch.randn(3, 2, 5, 5)
    torch.testing.assert_close(pre(x), F.relu(x))


def test_the_auxiliary_head_is_the_darts_head():
    """DARTS's AuxiliaryHeadCIFAR on 8x8 maps, written here with torch.nn.functional from the
    head's own weights: ReLU, 5x5 average pool of stride 3 without padding (2x2 out), conv1x1
    to 128, BN, ReLU, conv2x2 to 768 (1x1 out), BN, ReLU, linear."""
    import torch.nn.functional as F
    from torch import nn

    from nasheur.spaces.darts_net import AuxiliaryHead

    torch.manual_seed(0)
    head = AuxiliaryHead(6, 7)
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in head.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in convs] == [
        (6, 128, (1, 1)),
        (128, 768, (2, 2)),
    ]
    with torch.no_grad():  # BN statistics and affine that are not the identity
        for bn in bns:
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    head.eval()

    def bn(y, m):
        return F.batch_norm(y, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    x = torch.randn(3, 6, 8, 8)
    y = F.avg_pool2d(F.relu(x), 5, stride=3)
    assert y.shape == (3, 6, 2, 2)
    y = F.relu(bn(F.conv2d(y, convs[0].weight), bns[0]))
    y = F.relu(bn(F.conv2d(y, convs[1].weight), bns[1]))
    expected = F.linear(y.flatten(1), head.classifier.weight, head.classifier.bias)
    torch.testing.assert_close(head(x), expected)


def test_the_auxiliary_head_reads_the_cell_at_two_thirds():
    # 6 cells: reductions at 2 and 4, the head on cell 2 * 6 // 3 = 4 (cell 5 has its shape)
    net = SPACE.standalone(DARTS_V2, channels=4, layers=6, auxiliary=True)
    net.train()
    outputs, read = {}, []
    for i, cell in enumerate(net.cells):
        cell.register_forward_hook(lambda m, args, out, i=i: outputs.__setitem__(i, out))
    net.aux_head.register_forward_hook(lambda m, args, out: read.append(args[0]))
    net.forward_aux(torch.randn(2, 3, 32, 32))
    assert len(read) == 1 and outputs[4].shape == outputs[5].shape
    assert torch.equal(read[0], outputs[4]) and not torch.equal(read[0], outputs[5])


def test_a_concat_of_fewer_nodes_makes_a_narrower_standalone_cell():
    # a normal cell that outputs nodes 0, 1 and 3 only: 3 C channels to the next cells
    g = Genotype(Cell(DARTS_V2.normal.pairs, (2, 3, 5)), DARTS_V2.reduce)
    net = SPACE.standalone(g, channels=4, layers=4)
    assert n_params(net) == expected_params(g, 4, 4)
    assert n_params(net) != expected_params(DARTS_V2, 4, 4)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("macro", [{"layers": 0}, {"channels": 0}])
def test_a_network_without_cells_or_channels_is_refused(macro):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        SPACE.standalone(DARTS_V2, **macro)
    with pytest.raises(ValueError, match="must be >= 1"):  # the network itself too
        DartsNetwork(as_genotype(DARTS_V2), **{"channels": 4, "layers": 3, **macro})
