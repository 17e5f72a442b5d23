"""The fast training path keeps the plain path's semantics exactly (issue: speed without
changing what is computed), and the benchmark's counters work."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasheur.bench import OpCounter, PlainNB201SuperNet, main
from nasheur.spaces import get_space
from nasheur.spaces.nb201 import OPS
from nasheur.training import build_optimizer
from tests.conftest import nb201_supernet

SPACE = get_space("nb201")


def copy_into_fast(plain: PlainNB201SuperNet, fast) -> None:
    """Give the fast super-net the plain one's weights (edge mapping: op set e = edge e)."""
    state, fast_state = plain.state_dict(), fast.state_dict()
    for name in fast_state:
        parts = name.split(".")
        if len(parts) > 2 and parts[2] == "op_sets":
            block, e, kind, op_name, rest = parts[1], parts[3], parts[4], parts[5], parts[6:]
            op = OPS.index(op_name)
            if kind == "convs":
                fast_state[name] = state[f"blocks.{block}.{e}.{op}.1.weight"]
            else:  # bns.<op>.slots.0.<parameter or buffer>
                fast_state[name] = state[f"blocks.{block}.{e}.{op}.2.{'.'.join(rest[2:])}"]
        elif name in state:
            fast_state[name] = state[name]
    fast.load_state_dict(fast_state)


def test_fast_and_plain_paths_give_the_same_parameters():
    torch.manual_seed(0)
    plain = PlainNB201SuperNet(4, 1, zero_as_mul=False).double()
    fast = nb201_supernet(bn_track=True, bn_affine=True).double()
    copy_into_fast(plain, fast)
    opt_plain = torch.optim.SGD(
        plain.parameters(), lr=0.1, momentum=0.9, weight_decay=3e-3, foreach=False
    )
    opt_fast = build_optimizer(fast, lr=0.1, momentum=0.9, weight_decay=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        arch = SPACE.sample(rng)
        x, y = torch.randn(8, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (8,))
        for model, opt, foreach in ((plain, opt_plain, False), (fast, opt_fast, True)):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x, arch), y).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5, foreach=foreach)  # small: it clips
            opt.step()
    again = nb201_supernet(bn_track=True, bn_affine=True).double()
    copy_into_fast(plain, again)  # the plain weights, named as the fast super-net's
    for (name, a), b in zip(fast.state_dict().items(), again.state_dict().values(), strict=True):
        if not name.endswith("num_batches_tracked"):  # a counter PyTorch's BN keeps, unused here
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_the_fast_step_dispatches_at_most_half_the_plain_steps_operators():
    """The target of the speed issue, as the benchmark counts it, at NB201's depth (5 cells per
    stage; the count does not depend on the width), summed over a few sampled paths."""
    torch.manual_seed(0)
    plain, fast = PlainNB201SuperNet(4, 5), nb201_supernet(layers=5)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    totals = []
    for model, opt, foreach in (
        (
            plain,
            torch.optim.SGD(
                plain.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, foreach=False
            ),
            False,
        ),
        (fast, build_optimizer(fast, lr=0.1, momentum=0.9, weight_decay=1e-3), True),
    ):
        rng, count = np.random.default_rng(1), 0
        for i in range(12):
            arch = SPACE.sample(rng)
            counter = OpCounter()
            with counter:
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x, arch), y).backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0, foreach=foreach)
                opt.step()
            count += counter.count if i >= 2 else 0  # momentum buffers exist after the first steps
        totals.append(count)
    assert totals[1] <= 0.5 * totals[0], totals


def test_the_benchmark_writes_a_report(tmp_path):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "--device",
                "cpu",
                "--spaces",
                "nb201",
                "--steps",
                "1",
                "--eval-images",
                "64",
                "--eval-archs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    import json

    report = json.loads(out.read_text())
    nb201 = report["spaces"]["nb201"]
    assert report["device_type"] == "cpu" and nb201["train"]["images_per_s"] > 0
    assert nb201["train"]["ops_per_step"] > 0 and nb201["eval"]["archs_per_s"] > 0
