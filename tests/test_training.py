"""P_ws pieces: the schedule and checkpoints that are safe to load and refuse other configs."""

from __future__ import annotations

import itertools
import math
import random

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
        UnreadableCheckpoint,
        match=r"checkpoint\.pt: refused.*the global (builtins|__builtin__)\.print",
    ) as info:
        load_checkpoint(path, device=torch.device("cpu"), config_hash="abc")
    assert "executed" not in capsys.readouterr().out
    assert "weights_only" not in str(info.value)  # no advice to load it unsafely


class ByteBomb:
    def __reduce__(self):
        return (bytearray, (1 << 20,))


def test_a_global_torch_load_would_take_is_refused_before_torch_load_runs(tmp_path, monkeypatch):
    # torch's own list takes bytearray: bytearray(n) in a 1 kB file allocates n bytes
    net = small_net()
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "model": net.state_dict(), "x": ByteBomb()}, path)

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load ran on a checkpoint the allow-list refuses")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(
        UnreadableCheckpoint,
        match=r"checkpoint\.pt: refused.*the global (builtins|__builtin__)\.bytearray",
    ):
        load_checkpoint(path, device=torch.device("cpu"), config_hash="abc")


def test_a_checkpoint_of_random_bytes_may_be_damaged(tmp_path):
    # bytes that the safe unpickler reads as an opcode it refuses are as likely damage as a
    # crafted file: the refusal says both
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(UnreadableCheckpoint, match=r"refused, damaged or holding.*; delete it"):
        load_checkpoint(path, device=torch.device("cpu"), config_hash="abc")


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


@pytest.mark.parametrize("bf16", [False, True])
def test_the_step_runs_the_forward_under_bf16_autocast_only_when_asked(bf16):
    class Probe(nn.Module):  # a super-net of one linear layer that records its output dtype
        def __init__(self):
            super().__init__()
            self.fc, self.seen = nn.Linear(3 * 4 * 4, 10), []

        def forward(self, x, arch):
            out = self.fc(x.flatten(1))
            self.seen.append(out.dtype)
            return out

    net = Probe()
    opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=0.0)
    loss, _ = TrainStep(net, opt, grad_clip=5.0, bf16=bf16)(
        torch.randn(4, 3, 4, 4), torch.zeros(4, dtype=torch.long), [None, None]
    )
    assert net.seen == [torch.bfloat16 if bf16 else torch.float32] * 2
    assert loss.dtype == torch.float32  # the loss itself in float32 either way


@pytest.mark.parametrize("bf16", [False, True])
def test_a_step_without_bf16_enters_no_autocast_context(bf16, monkeypatch):
    # a disabled autocast context costs some 25 Python calls per step (README's counts): the
    # step and the benchmark's phases make none at all without bf16, one per path with it
    from nasheur import bench

    made = []
    real = torch.autocast

    def counted(*args, **kwargs):
        made.append(kwargs.get("enabled", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", counted)
    net = nb201_supernet()
    opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=0.0)
    archs = [NB201Arch((3,) * 6), NB201Arch((3, 0, 0, 0, 1, 0))]
    x, y = torch.randn(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)
    TrainStep(net, opt, grad_clip=5.0, bf16=bf16)(x, y, archs)
    bench.host_phases(net, archs, x, y, bf16=bf16)
    assert made == ([True] * 4 if bf16 else [])


def test_the_cosine_starts_at_lr_and_ends_at_lr_min_whatever_lr_min():
    # lr_e = lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2 (README: "Cosine per epoch from
    # protocol.lr to protocol.lr_min"): at e = 0 the full lr, half way their mean
    assert math.isclose(cosine_lr(0, 10, 0.1, 0.01), 0.1)
    assert math.isclose(cosine_lr(5, 10, 0.1, 0.01), 0.055)
    assert math.isclose(cosine_lr(10, 10, 0.1, 0.01), 0.01)


class TwoPaths(nn.Module):
    """A super-net of two bias-free linear paths; an architecture names the one it takes."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3, bias=False), nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(torch.tensor([[0.5, -1.0], [1.5, 0.25], [-0.5, 2.0]]))
            self.b.weight.copy_(torch.tensor([[1.0, 1.0], [-2.0, 0.5], [0.0, -1.0]]))
        self.modes: list[bool] = []  # the training flag of every forward pass

    def forward(self, x, arch):
        self.modes.append(self.training)
        return (self.a if arch == "a" else self.b)(x)


X = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.5], [2.0, 0.0]])
Y = torch.tensor([0, 2, 1, 2])


def ce_grad(w: np.ndarray) -> np.ndarray:
    """d mean CE / dW of logits X W^T, by hand: (softmax - onehot)^T X / N."""
    x, y = X.double().numpy(), Y.numpy()
    z = x @ w.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p.T @ x / len(y)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_two_steps_follow_sgd_by_hand_on_the_path_alone(momentum):
    """d_t = g_t + wd W_t; buffer b_t = momentum b_{t-1} + d_t (b_0 = d_0); W_{t+1} = W_t - lr
    b_t. With momentum 0 the second step forgets the first; the path not taken keeps its
    weights, untouched by weight decay."""
    net = TwoPaths()
    b_before = net.b.weight.detach().clone()
    lr, wd = 0.1, 0.01
    step = TrainStep(
        net, build_optimizer(net, lr=lr, momentum=momentum, weight_decay=wd), grad_clip=1e9
    )
    w = net.a.weight.detach().double().numpy().copy()
    buf = np.zeros_like(w)
    for _ in range(2):
        step(X, Y, ["a"])
        d = ce_grad(w) + wd * w
        buf = momentum * buf + d
        w = w - lr * buf
        np.testing.assert_allclose(net.a.weight.detach().double().numpy(), w, rtol=0, atol=1e-6)
    assert torch.equal(net.b.weight, b_before)


@pytest.mark.parametrize("archs", [["a"], ["a", "a"]])
@pytest.mark.parametrize("ratio", [0.1, 10.0])
def test_the_clipping_scales_the_gradient_before_weight_decay(ratio, archs):
    # README: protocol.grad_clip bounds the global norm of the step's gradient (FairNAS: of
    # the passes' average, here g again): above it g * clip / (||g|| + 1e-6), below it g as
    # it is; then SGD adds wd W
    net = TwoPaths()
    w = net.a.weight.detach().double().numpy().copy()
    g = ce_grad(w)
    clip, lr, wd = ratio * np.linalg.norm(g), 0.5, 0.01
    opt = build_optimizer(net, lr=lr, momentum=0.9, weight_decay=wd)
    TrainStep(net, opt, grad_clip=float(clip))(X, Y, archs)
    scale = min(1.0, clip / (np.linalg.norm(g) + 1e-6))
    want = w - lr * (g * scale + wd * w)
    np.testing.assert_allclose(net.a.weight.detach().double().numpy(), want, rtol=0, atol=1e-6)


def test_fairnas_passes_are_averaged_not_summed():
    # two passes of one path on one batch: the average of two equal gradients is one of them
    net = TwoPaths()
    w = net.a.weight.detach().double().numpy().copy()
    opt = build_optimizer(net, lr=0.1, momentum=0.0, weight_decay=0.0)
    TrainStep(net, opt, grad_clip=1e9)(X, Y, ["a", "a"])
    want = w - 0.1 * ce_grad(w)
    np.testing.assert_allclose(net.a.weight.detach().double().numpy(), want, rtol=0, atol=1e-6)


class Batches:
    """A loader of five copies of the batch (X, Y)."""

    def train_batches(self, generator):
        return iter([(X, Y)] * 5)


class Passes:
    def __init__(self, archs):
        self.archs = archs

    def step_archs(self, rng):
        return list(self.archs)


@pytest.mark.parametrize("archs", [["a"], ["a", "b"]])
def test_an_epoch_reports_the_mean_loss_and_accuracy_per_image_and_path(archs):
    """With lr 0 the weights stay, so every step sees the same logits: the epoch's loss is the
    mean CE per (image, path) and its accuracy the hits over images x paths (README: an image
    counts once per path it trains); at most max_steps steps, in training mode."""
    from nasheur.training import train_epoch

    net = TwoPaths()
    net.eval()  # the epoch puts it in training mode
    opt = build_optimizer(net, lr=0.0, momentum=0.9, weight_decay=0.0)
    stats = train_epoch(
        net,
        opt,
        Batches(),
        Passes(archs),
        rng=np.random.default_rng(0),
        generator=torch.Generator(),
        grad_clip=5.0,
        max_steps=2,
    )
    x, y = X.double().numpy(), Y.numpy()
    losses, hits = [], 0
    for arch in archs:
        z = x @ getattr(net, arch).weight.detach().double().numpy().T
        logp = z - z.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        losses.append(-logp[np.arange(len(y)), y].mean())
        hits += int((z.argmax(1) == y).sum())
    assert stats.steps == 2 and stats.images == 2 * len(Y) * len(archs)
    assert stats.loss == pytest.approx(np.mean(losses), abs=1e-6)
    assert stats.acc == pytest.approx(hits / (len(Y) * len(archs)))
    assert net.modes == [True] * (2 * len(archs))


def test_the_step_takes_the_lr_that_the_schedule_set_for_the_epoch():
    # the job writes each epoch's cosine lr into the optimizer's group; the update uses it,
    # not the lr the optimizer was built with: W - 0.025 g
    net = TwoPaths()
    w = net.a.weight.detach().double().numpy().copy()
    opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=0.0)
    for group in opt.param_groups:
        group["lr"] = 0.025
    TrainStep(net, opt, grad_clip=1e9)(X, Y, ["a"])
    want = w - 0.025 * ce_grad(w)
    np.testing.assert_allclose(net.a.weight.detach().double().numpy(), want, rtol=0, atol=1e-6)
