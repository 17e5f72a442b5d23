"""P_ws pieces: the schedule and checkpoints that are safe to load and refuse other configs."""

from __future__ import annotations

import itertools
import math
import pickle

import pytest
import torch

from nasheur.spaces.nb201 import NB201Arch
from nasheur.training import (
    CheckpointMismatch,
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


class Payload:
    def __reduce__(self):
        return (print, ("executed",))


def test_a_checkpoint_that_asks_for_code_is_not_unpickled(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "config_hash": "abc", "model": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path, device=torch.device("cpu"), config_hash="abc")
    assert "executed" not in capsys.readouterr().out
