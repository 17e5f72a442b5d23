"""No host-device synchronisation inside a training epoch or inside an architecture's
evaluation (issue 8: "no host-device synchronisation in the step", "without a host sync per
batch").

On a GPU each such point makes the host wait until the device has run everything queued, so
that it cannot issue the next step while the device runs this one. On the CPU nothing waits,
but the operators that would wait are dispatched all the same, and a dispatch mode sees them:
a read of a value (``item``, ``bool``, ``int``, ``float``: ``aten._local_scalar_dense``), an
operator whose output size depends on values (``nonzero``, ``masked_select``, boolean
indexing, ``unique``), a tensor made from host data (``lift_fresh``, a copy from pageable host
memory on CUDA) and a copy between devices (seen on CUDA only). Python-level reads that
dispatch nothing on the CPU (``tolist``, ``numpy``, ``cpu``) are counted by wrapping them.
The same tests run on CUDA where there is one (`make test-cuda`).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nasheur.data.loader import DeviceLoader
from nasheur.evaluation import evaluate_archs
from nasheur.samplers import build_sampler
from nasheur.spaces import get_space
from nasheur.training import build_optimizer, train_epoch
from tests.conftest import tiny_supernet

aten = torch.ops.aten
WAITS = {  # a read of a value, a tensor from host data, and outputs sized by values
    aten._local_scalar_dense.default,
    aten.lift_fresh.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten._unique2.default,
    aten.unique_consecutive.default,
    aten.unique_dim.default,
    aten.repeat_interleave.Tensor,
}
PYTHON_READS = ("tolist", "numpy", "cpu")


def _device_of(t: object) -> torch.device | None:
    return t.device if isinstance(t, torch.Tensor) else None


class HostSyncs(TorchDispatchMode):
    """Records, in order, each operator that makes the host wait for a CUDA device."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._waits(func, args, kwargs):
            self.seen.append(str(func))
        return func(*args, **kwargs)

    @staticmethod
    def _waits(func, args, kwargs) -> bool:
        if func in WAITS:
            return True
        if func is aten.index.Tensor:  # a boolean mask: the result's size is the mask's count
            return any(
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                for i in args[1]
            )
        if func is aten._to_copy.default and kwargs.get("device") is not None:
            return torch.device(kwargs["device"]) != _device_of(args[0])
        if func is aten.copy_.default:
            return _device_of(args[0]) != _device_of(args[1])
        return False


@pytest.fixture
def host_syncs(monkeypatch):
    """A function that runs a callable and returns the host syncs it made, in order."""
    reads: list[str] = []
    for name in PYTHON_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            reads.append(f"Tensor.{_name}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def run(fn) -> list[str]:
        reads.clear()
        with HostSyncs() as mode:
            fn()
        return mode.seen + reads

    return run


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
IMAGE, BATCH = 8, 8


def _loader(images: int, device: str, *, seed: int = 0) -> DeviceLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (images, 3, IMAGE, IMAGE), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (images,), generator=g)
    return DeviceLoader(
        x.to(device), y.to(device), batch_size=BATCH, mean=[0.5] * 3, std=[0.25] * 3, augment=True
    )


# every way the step's code differs: each space, FairNAS, dropout, WSBN, tracked BN, OFA
# kernels, the dynamic-channel strategies, ops on nodes, bf16 autocast
TRAINED = [
    ("nb201", "random_nas", {}),
    ("nb201", "fairnas", {"path_dropout": 0.2, "global_dropout": 0.2, "wsbn": True}),
    ("nb201", "random_a", {"bn_track": True, "ops_on": "node"}),
    ("embedded", "random_nas", {"bf16": True}),
    ("nb101", "random_nas", {"ops_on": "node", "dynamic_channels": "shuffle"}),
    ("nb101", "fairnas", {"ops_on": "node", "dynamic_channels": "interpolate", "ofa_kernel": True}),
    ("darts_nds", "random_nas", {"wsbn": True}),
    ("darts_nds", "fairnas", {"ops_on": "node", "path_dropout": 0.2}),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("space", "sampler", "factors"), TRAINED)
def test_an_epoch_reads_the_device_once_at_its_end(host_syncs, device, space, sampler, factors):
    factors = dict(factors)
    bf16 = factors.pop("bf16", False)
    model = tiny_supernet(space, **factors).to(device)
    opt = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = _loader(4 * BATCH, device)

    def epoch() -> None:
        train_epoch(
            model,
            opt,
            loader,
            build_sampler(sampler, get_space(space)),
            rng=np.random.default_rng(0),
            generator=torch.Generator(device=device).manual_seed(0),
            grad_clip=5.0,
            bf16=bf16,
        )

    # four steps, then the two reads of the epoch's loss and hits: none inside a step
    assert host_syncs(epoch) == ["aten._local_scalar_dense.default"] * 2


EVALUATED = [
    ("nb201", {}, "batch"),
    ("nb201", {"bn_track": True}, "running"),
    ("nb201", {"bn_track": True}, "recalibrate"),
    ("nb101", {"ops_on": "node", "dynamic_channels": "interpolate"}, "batch"),
    ("darts_nds", {}, "batch"),
    ("embedded", {}, "batch"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pack", [1, 4])
@pytest.mark.parametrize(("space", "factors", "bn"), EVALUATED)
def test_an_architectures_evaluation_waits_for_the_device_at_no_batch(
    host_syncs, device, pack, space, factors, bn
):
    model = tiny_supernet(space, **factors).to(device)
    val = _loader(4 * BATCH, device, seed=1)
    archs = [get_space(space).sample(np.random.default_rng(i)) for i in range(3)]

    def evaluate(some) -> None:
        evaluate_archs(
            model,
            some,
            val,
            bn_mode=bn,
            calib_loader=_loader(4 * BATCH, device, seed=2),
            calib_batches=2,
            calib_seed=0,
            pack=pack,
        )

    one = host_syncs(lambda: evaluate(archs[:1]))
    three = host_syncs(lambda: evaluate(archs))
    # what the pool's set-up and its one read of the hits cost, the same for any number of
    # architectures: nothing per architecture, so nothing per batch
    assert three == one
    assert one.count("aten._local_scalar_dense.default") == 0


def test_the_watch_sees_each_kind_of_host_sync(host_syncs):
    """The checks above could not fail if the watch missed what they look for."""
    t = torch.arange(6.0)
    cases = {
        "item": lambda: t.sum().item(),
        "bool": lambda: bool(t.sum() > 0),
        "float": lambda: float(t.sum()),
        "nonzero": lambda: t.nonzero(),
        "mask": lambda: t[t > 2],
        "masked_select": lambda: t.masked_select(t > 2),
        "unique": lambda: torch.unique(t),
        "host data": lambda: torch.tensor([1.0, 2.0]),
        "tolist": lambda: t.tolist(),
        "numpy": lambda: t.numpy(),
        "cpu": lambda: t.cpu(),
    }
    for name, fn in cases.items():
        assert host_syncs(fn), name
    # what a step does all the time is no sync
    w = torch.randn(3, 3, requires_grad=True)
    quiet = host_syncs(lambda: (w.relu() * 2).sum().backward())
    assert quiet == []


# each factor that changes what a forward runs, one at a time from the space's tiny super-net
FACTORS_ON_META = [
    ("nb201", {}),
    ("nb201", {"ops_on": "node", "wsbn": True}),
    ("nb201", {"ofa_kernel": True}),
    ("nb201", {"path_dropout": 0.2, "global_dropout": 0.3}),
    ("nb201", {"bn_track": True, "bn_affine": False}),
    ("darts_nds", {}),
    ("darts_nds", {"ops_on": "node", "wsbn": True}),
    ("darts_nds", {"ofa_kernel": True, "path_dropout": 0.2, "bn_track": True}),
    ("nb101", {"ops_on": "node"}),
    ("nb101", {"ops_on": "node", "dynamic_channels": "shuffle", "wsbn": True}),
    ("nb101", {"ops_on": "node", "dynamic_channels": "interpolate", "ofa_kernel": True}),
    ("nb101", {"ops_on": "node", "dynamic_channels": "disabled", "subspace": 2}),
    ("embedded", {"ops_on": "node", "wsbn": True, "path_dropout": 0.2}),
]


@pytest.mark.parametrize(("space", "factors"), FACTORS_ON_META)
def test_a_forward_and_backward_copy_nothing_from_another_device(space, factors, monkeypatch):
    """A copy between devices counts on CUDA only, where these tests run too; here `meta`
    stands in for the GPU, so that a tensor made on the host and moved inside a forward or
    backward (NB101's `interpolate` matrices once were, per pair of widths) is seen on the CPU
    too, and so is a host tensor meeting a device one (an error)."""
    autocast_on = torch.is_autocast_enabled  # which knows no `meta` device
    monkeypatch.setattr(
        torch, "is_autocast_enabled", lambda *a: False if a[:1] == ("meta",) else autocast_on(*a)
    )
    sp = get_space(space)
    model = tiny_supernet(space, **factors).to("meta")
    x = torch.empty(IMAGE, 3, IMAGE, IMAGE, device="meta")
    y = torch.zeros(IMAGE, dtype=torch.long, device="meta")
    archs = (sp.sample(np.random.default_rng(seed)) for seed in range(200))
    if factors.get("subspace"):  # the sub-space's architectures only
        archs = (a for a in archs if a.output_inputs() == factors["subspace"])
    for arch in itertools.islice(archs, 3):
        with HostSyncs() as mode:
            torch.nn.functional.cross_entropy(model.train()(x, arch), y).backward()
            with torch.no_grad():
                model.eval()(x, arch)
        assert mode.seen == [], (arch, mode.seen)
