"""P_ws pieces: the schedule and checkpoints that are safe to load and refuse other configs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasheur.spaces import get_space
from nasheur.spaces.nb201 import NB201Arch
from nasheur.training import (
    CheckpointMismatch,
    TrainStep,
    UnreadableCheckpoint,
    build_optimizer,
    cosine_lr,
    load_checkpoint,
    save_checkpoint,
)
from tests.conftest import nb201_supernet


def test_cosine_schedule():
    assert cosine_lr(0, 10, 0.1, 0.0) == 0.1
    assert math.isclose(cosine_lr(5, 10, 0.1, 0.0), 0.05)
    assert math.isclose(cosine_lr(10, 10, 0.1, 0.001), 0.001)
    lrs = [cosine_lr(e, 20, 0.025, 0.0) for e in range(20)]
    assert all(a > b for a, b in itertools.pairwise(lrs))


def small_net():
    torch.manual_seed(0)
    return nb201_supernet(bn_track=True)


def test_checkpoint_round_trip(tmp_path):
    net = small_net()
    opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=1e-4)
    net(torch.randn(4, 3, 8, 8), NB201Arch((3,) * 6)).sum().backward()
    opt.step()
    history = [{"epoch": 1, "train_loss": 2.0}]
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model=net, optimizer=opt, epoch=1, history=history, config_hash="abc")
    state = load_checkpoint(path, device=torch.device("cpu"), config_hash="abc")
    assert state["epoch"] == 1 and state["history"] == history
    fresh = small_net()
    fresh.load_state_dict(state["model"])
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.state_dict().values(), net.state_dict().values(), strict=True)
    )
    assert not list(tmp_path.glob(".checkpoint.pt.*"))  # no temporary file left behind


def test_checkpoint_of_another_config_is_refused(tmp_path):
    net = small_net()
    opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=0.0)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model=net, optimizer=opt, epoch=1, history=[], config_hash="abc")
    with pytest.raises(CheckpointMismatch, match="another config"):
        load_checkpoint(path, device=torch.device("cpu"), config_hash="def")


@pytest.mark.parametrize(
    ("content", "error", "said"),
    [
        (["a", "list"], UnreadableCheckpoint, "a list, not a nasheur checkpoint; delete it"),
        ({"a": 1}, CheckpointMismatch, "unknown checkpoint format None .*; delete it"),
        ({"format": 99}, CheckpointMismatch, "unknown checkpoint format 99 .*; delete it"),
        ("truncated", UnreadableCheckpoint, "unreadable checkpoint; delete it to restart"),
    ],
    ids=["list", "no format", "format 99", "truncated"],
)
def test_a_checkpoint_that_is_not_ours_is_refused_with_advice_first(tmp_path, content, error, said):
    # the advice comes before any long quote of torch's error: a sweep's summary cuts lines
    path = tmp_path / "checkpoint.pt"
    torch.save(
        {"format": 1, "weights": torch.zeros(1000)} if content == "truncated" else content, path
    )
    if content == "truncated":  # the zip's directory gone: torch's long error
        path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(error, match=rf"checkpoint\.pt: {said}") as info:
        load_checkpoint(path, device=torch.device("cpu"), config_hash="abc")
    assert str(info.value).index("delete it") < 300


class Payload:
    def __reduce__(self):
        return (print, ("executed",))


def test_a_checkpoint_that_asks_for_code_is_not_unpickled(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "config_hash": "abc", "model": Payload()}, path)
    with pytest.raises(
        UnreadableCheckpoint, match=r"checkpoint\.pt: refused.*GLOBAL print"
    ) as info:
        load_checkpoint(path, device=torch.device("cpu"), config_hash="abc")
    assert "executed" not in capsys.readouterr().out
    assert "weights_only" not in str(info.value)  # no advice to load it unsafely


@pytest.mark.parametrize(
    "momentum, clip, fairnas",
    [(0.9, 0.5, False), (0.9, 100.0, False), (0.0, 0.5, False), (0.9, 0.5, True)],
)
def test_the_step_updates_as_pytorchs_own_optimizer_does(momentum, clip, fairnas):
    """TrainStep lists the path's parameters once for the clipping, the update and the release
    of gradients; PyTorch's `zero_grad`, `clip_grad_norm_` and `SGD.step` over every parameter
    give the same bits: parameters, momentum buffers, and parameters off the path untouched."""
    space, rng = get_space("nb201"), np.random.default_rng(0)
    ours, theirs = nb201_supernet(), nb201_supernet()
    kw = {"lr": 0.1, "momentum": momentum, "weight_decay": 3e-3}
    opt_ours, opt_theirs = build_optimizer(ours, **kw), build_optimizer(theirs, **kw)
    step = TrainStep(ours, opt_ours, grad_clip=clip)
    next(ours.parameters()).grad = torch.ones_like(next(ours.parameters()))  # stale: cleared
    ours.train(), theirs.train()
    for _ in range(3):
        archs = space.fair_paths(rng) if fairnas else [space.sample(rng)]
        x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
        step(x, y, archs)
        opt_theirs.zero_grad(set_to_none=True)
        for arch in archs:
            (F.cross_entropy(theirs(x, arch), y) / len(archs)).backward()
        nn.utils.clip_grad_norm_(theirs.parameters(), clip, foreach=True)
        opt_theirs.step()
        assert all(p.grad is None for p in ours.parameters())
    assert len(opt_ours.state) == len(opt_theirs.state)  # no state where SGD keeps none
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b), name
        if momentum:
            assert torch.equal(
                opt_ours.state[a]["momentum_buffer"], opt_theirs.state[b]["momentum_buffer"]
            ), name


def test_another_optimizer_takes_its_own_step():
    net = nb201_supernet()
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in net.named_parameters()}
    arch = NB201Arch((3, 0, 0, 0, 1, 0))  # node 1 = conv(node 0); output = node 1
    TrainStep(net, opt, grad_clip=5.0)(
        torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), [arch]
    )
    moved = {p for k, p in net.named_parameters() if not torch.equal(before[k], p)}
    assert len(moved) > 10 and moved <= set(opt.state)  # Adam's update, Adam's state
    assert len(opt.state) < len(list(net.parameters()))  # for the path only
    assert all(p.grad is None for p in net.parameters())


def test_an_optimizer_of_some_parameters_moves_only_those():
    net = nb201_supernet()
    head = list(net.classifier.parameters())
    opt = build_optimizer(net.classifier, lr=0.1, momentum=0.9, weight_decay=3e-3)
    before = {k: v.clone() for k, v in net.named_parameters()}
    arch = NB201Arch((3, 0, 0, 0, 1, 0))
    TrainStep(net, opt, grad_clip=5.0)(
        torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), [arch]
    )
    moved = {p for k, p in net.named_parameters() if not torch.equal(before[k], p)}
    assert moved == set(head)
