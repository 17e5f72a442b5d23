"""f_ws on NB201: each single path computes its cell's f_proxy, and shares what it should."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasheur.spaces import get_space
from nasheur.spaces.nb201 import EDGES, OPS, NB201Arch, parse
from nasheur.supernet.nb201 import POSITION_OF_EDGE, NB201SuperNet, SuperCell
from nasheur.training import build_optimizer

SPACE = get_space("nb201")


def supernet(ops_on="edge", affine=True, track=True, channels=4, layers=2):
    torch.manual_seed(0)
    return NB201SuperNet(
        channels=channels,
        layers=layers,
        num_classes=10,
        ops_on=ops_on,
        bn_affine=affine,
        bn_track=track,
    )


def path_state(net: NB201SuperNet, arch: NB201Arch) -> dict[str, torch.Tensor]:
    """The super-net weights of `arch`, named as in the stand-alone network."""
    state = {}
    for name, value in net.state_dict().items():
        parts = name.split(".")
        if parts[0] == "blocks" and parts[2] == "op_sets":
            block, pos, op, rest = parts[1], int(parts[3]), int(parts[4]), parts[5:]
            for e in range(len(EDGES)):
                if POSITION_OF_EDGE[net_mode(net)][e] == pos and arch.ops[e] == op:
                    state[".".join(["blocks", block, "edges", str(e), *rest])] = value
        else:
            state[name] = value
    return state


def net_mode(net: NB201SuperNet) -> str:
    cell = next(b for b in net.blocks if isinstance(b, SuperCell))
    return "edge" if len(cell.op_sets) == 6 else "node"


@pytest.mark.parametrize(
    "key",
    [
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
        "|none~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_3x3~1|skip_connect~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    ],
)
def test_a_path_of_the_edge_supernet_is_the_standalone_cell(key):
    arch = parse(key)
    net = supernet()
    standalone = SPACE.standalone(arch, channels=4, layers=2)
    missing, unexpected = standalone.load_state_dict(path_state(net, arch), strict=False)
    assert not unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing)
    x = torch.randn(8, 3, 16, 16)
    net.train()
    standalone.train()
    torch.testing.assert_close(net(x, arch), standalone(x), rtol=1e-5, atol=1e-5)


def test_node_mapping_shares_one_op_set_per_destination_node():
    edge, node = supernet("edge"), supernet("node")
    cell_e = next(b for b in edge.blocks if isinstance(b, SuperCell))
    cell_n = next(b for b in node.blocks if isinstance(b, SuperCell))
    assert len(cell_e.op_sets) == 6 and len(cell_n.op_sets) == 3
    per_conv = lambda c: sum(p.numel() for p in c.parameters())  # noqa: E731
    assert per_conv(cell_e) == 2 * per_conv(cell_n)
    # edges 3<-0 and 3<-1 use the same conv in node mode: same weights, same output
    arch_a = NB201Arch((0, 0, 0, 3, 0, 0))
    arch_b = NB201Arch((1, 0, 0, 0, 3, 0))  # node1 = skip(node0), then conv on 3<-1
    x = torch.randn(4, 3, 16, 16)
    node.eval()
    torch.testing.assert_close(node(x, arch_a), node(x, arch_b))
    edge.eval()
    assert not torch.allclose(edge(x, arch_a), edge(x, arch_b))


@pytest.mark.parametrize("ops_on", ["edge", "node"])
def test_a_step_changes_only_the_sampled_path(ops_on):
    net = supernet(ops_on, track=False)
    opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=3e-3)
    arch = parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    for _ in range(2):  # two steps: momentum buffers exist from the second on
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x, arch), y).backward()
        opt.step()
    after = dict(net.named_parameters())
    used = {POSITION_OF_EDGE[ops_on][e] * 10 + o for e, o in enumerate(arch.ops)}
    for name, value in after.items():
        parts = name.split(".")
        if parts[0] == "blocks" and parts[2] == "op_sets":
            on_path = int(parts[3]) * 10 + int(parts[4]) in used
            assert on_path != torch.equal(before[name], value), name
    # off the path nothing moved at all, buffers included
    for name, value in net.state_dict().items():
        parts = name.split(".")
        if (
            parts[0] == "blocks"
            and parts[2] == "op_sets"
            and int(parts[3]) * 10 + int(parts[4]) not in used
        ):
            assert torch.equal(before[name], value), name
    untouched = [p for name, p in net.named_parameters() if "op_sets" in name and p.grad is None]
    assert untouched and all(p not in opt.state for p in untouched)


def test_bn_settings_apply_to_every_batch_norm():
    from nasheur.supernet.batchnorm import SuperBatchNorm2d

    net = supernet(affine=False, track=False)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(
        isinstance(m, SuperBatchNorm2d) and m.weight is None and not m.track for m in bns
    )
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    net.train()
    net(torch.randn(4, 3, 16, 16), SPACE.sample(np.random.default_rng(0)))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items() if "running" in k)


def test_all_ops_of_the_op_set_exist_in_every_position():
    net = supernet("edge")
    cell = next(b for b in net.blocks if isinstance(b, SuperCell))
    assert all(len(ops) == len(OPS) for ops in cell.op_sets)
