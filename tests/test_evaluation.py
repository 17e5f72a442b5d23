"""Evaluation: the pool, and each BN mode computing what it names."""

from __future__ import annotations

import copy
import itertools
import types

import numpy as np
import pytest
import torch

from nasheur.config import resolve_bn_mode
from nasheur.data import DeviceLoader
from nasheur.evaluation import draw_pool, evaluate_archs
from nasheur.spaces import get_space
from nasheur.supernet.batchnorm import batch_stats_norm, bn_buffers
from tests.conftest import nb201_supernet

SPACE = get_space("nb201")
KEYS = [SPACE.key(a) for a in SPACE.enumerate()[::50]]


def test_pool_is_seeded_distinct_and_order_free():
    a = draw_pool(KEYS, 20, np.random.default_rng(1))
    assert a == draw_pool(list(reversed(KEYS)), 20, np.random.default_rng(1))
    assert len(set(a)) == 20 and set(a) <= set(KEYS)
    assert a != draw_pool(KEYS, 20, np.random.default_rng(2))
    with pytest.raises(ValueError, match="pool_size"):
        draw_pool(KEYS, len(KEYS) + 1, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("mode", "track", "expected"),
    [
        ("auto", True, "running"),
        ("auto", False, "batch"),
        ("batch", True, "batch"),
        ("recalibrate", False, "recalibrate"),
    ],
)
def test_auto_mode_is_the_papers_bn_factor(mode, track, expected):
    assert resolve_bn_mode(mode, track) == expected


def setup(track: bool):
    net = nb201_supernet(bn_track=track)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (40,), generator=g)
    loader = DeviceLoader(
        images, labels, batch_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, augment=False
    )
    net.train()
    for x, _ in loader.train_batches(torch.Generator().manual_seed(1)):  # give BN some history
        net(x, SPACE.sample(np.random.default_rng(0)))
    return net, loader, [SPACE.sample(np.random.default_rng(s)) for s in range(4)]


def manual_accuracy(net, loader, arch, train_mode: bool) -> float:
    net.train(train_mode)
    hits = 0
    with torch.no_grad():
        for x, y, n in loader.eval_batches():
            hits += int((net(x, arch).argmax(1)[:n] == y[:n]).sum())
    return hits / loader.num_images


def recalibrated_accuracy(net, loader, arch, calib_batches: int, calib_seed: int) -> float:
    """Recalibration by hand (spec section 4) on a copy: PyTorch's own BN forward with
    momentum=None (a cumulative, equal-weight average), statistics reset, then the first K
    training batches of a generator seeded with calib_seed in train mode, then eval mode."""
    twin = copy.deepcopy(net)
    for m in twin.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
            # the plain nn.BatchNorm2d forward, none of the super-net's BN modes
            m.forward = types.MethodType(torch.nn.BatchNorm2d.forward, m)
    twin.train()
    gen = torch.Generator().manual_seed(calib_seed)
    with torch.no_grad():
        for x, _ in itertools.islice(loader.train_batches(gen), calib_batches):
            twin(x, arch)
    return manual_accuracy(twin, loader, arch, train_mode=False)


def test_batch_mode_uses_each_batchs_statistics_and_keeps_running_ones():
    net, loader, archs = setup(track=True)
    saved = bn_buffers(net)
    acc = evaluate_archs(net, archs, loader, bn_mode="batch")
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in saved.items())
    # train mode of an untracked copy normalises with batch statistics too
    twin = nb201_supernet(bn_track=False)
    twin.load_state_dict(net.state_dict())
    assert list(acc) == [manual_accuracy(twin, loader, a, train_mode=True) for a in archs]


def test_running_mode_is_pytorch_eval_mode():
    net, loader, archs = setup(track=True)
    acc = evaluate_archs(net, archs, loader, bn_mode="running")
    assert list(acc) == [manual_accuracy(net, loader, a, train_mode=False) for a in archs]


def test_recalibration_restores_the_trained_statistics_afterwards():
    net, loader, archs = setup(track=False)
    saved = bn_buffers(net)
    acc = evaluate_archs(
        net, archs, loader, bn_mode="recalibrate", calib_loader=loader, calib_batches=2
    )
    assert list(acc) == [recalibrated_accuracy(net, loader, a, 2, 0) for a in archs]
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in saved.items())
    again = evaluate_archs(
        net, archs, loader, bn_mode="recalibrate", calib_loader=loader, calib_batches=2
    )
    assert np.array_equal(acc, again)  # the same K batches for every architecture, every time


def test_recalibration_re_estimates_the_statistics_of_each_path():
    # trained statistics of another path, and few batches: stale for the pool's paths, so
    # an evaluation that kept them would score as the running mode does
    net, loader, archs = setup(track=True)
    kw = {"calib_loader": loader, "calib_batches": 2, "calib_seed": 3}
    acc = evaluate_archs(net, archs, loader, bn_mode="recalibrate", **kw)
    assert list(acc) == [recalibrated_accuracy(net, loader, a, 2, 3) for a in archs]
    assert not np.array_equal(acc, evaluate_archs(net, archs, loader, bn_mode="running"))


def test_evaluation_leaves_no_module_in_training_mode():
    net, loader, archs = setup(track=False)
    evaluate_archs(net, archs[:1], loader, bn_mode="batch")
    assert not any(m.training for m in net.modules())


class ReplayOnCPU:
    """CapturedForward's contract, kept on the CPU: a static input and a static output that
    each call refreshes in place (a replay writes into the buffers of the capture)."""

    def __init__(self, predict, example):
        self.predict, self.x = predict, example.clone()
        self.out = predict(self.x)
        self.captures = 1

    def __call__(self, x):
        self.x.copy_(x)
        self.out.copy_(self.predict(self.x))
        return self.out


@pytest.mark.parametrize("streams", [1, 3])
@pytest.mark.parametrize("mode", ["batch", "running", "recalibrate"])
def test_a_captured_forward_gives_the_plain_accuracies(mode, streams):
    """40 images in batches of 16: the last batch is partial, and every arch is captured anew;
    with 3 streams, 4 architectures make a group of 3 (sharing each batch) and one of 1."""
    net, loader, archs = setup(track=True)
    kwargs = {"bn_mode": mode, "calib_loader": loader, "calib_batches": 2}
    plain = evaluate_archs(net, archs, loader, **kwargs)
    made, done = [], []

    def capture(predict, example):
        made.append(ReplayOnCPU(predict, example))
        return made[-1]

    replayed = evaluate_archs(
        net,
        archs,
        loader,
        cuda_graphs=True,
        streams=streams,
        capture=capture,
        progress=done.append,
        **kwargs,
    )
    assert np.array_equal(plain, replayed) and len(made) == len(archs)
    assert done == [1, 2, 3, 4]


def test_streams_must_be_positive():
    net, loader, archs = setup(track=False)
    with pytest.raises(ValueError, match="streams must be at least 1"):
        evaluate_archs(net, archs, loader, bn_mode="batch", streams=0)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("affine", [True, False])
def test_packed_batch_statistics_are_each_batchs_own(layout, affine):
    """Three batches interleaved row by row and normalised in one call give, batch by batch,
    what BN over each batch alone gives (PyTorch's batch_norm as the reference)."""
    g = torch.Generator().manual_seed(0)
    batches = [
        torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64) * (1 + i) for i in range(3)
    ]
    w, b = (torch.randn(3, generator=g, dtype=torch.float64) for _ in range(2))
    w, b = (w, b) if affine else (None, None)
    packed = torch.stack(batches, 1).flatten(0, 1).contiguous(memory_format=layout)
    out = batch_stats_norm(packed, w, b, 1e-5, groups=3).view(5, 3, 3, 4, 4)
    for i, x in enumerate(batches):
        ref = torch.nn.functional.batch_norm(x, None, None, w, b, True, 0.0, 1e-5)
        torch.testing.assert_close(out[:, i], ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="15 rows do not split into 2"):
        batch_stats_norm(packed, w, b, 1e-5, groups=2)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_packed_bf16_batch_statistics_are_taken_in_float32(layout):
    """Under bf16 autocast (run.bf16 with run.channels_last and packed evaluation), each
    batch's statistics are those of float32 BN of the bf16 input, whatever the layout: the
    output, in bf16 as BN returns it, is within its own rounding of the reference (statistics
    taken in bf16 were 3 to 5 times further off)."""
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, 6, 6, generator=g) * 4 + 3).bfloat16() for _ in range(3)]
    w, b = torch.randn(3, generator=g), torch.randn(3, generator=g)
    packed = torch.stack(batches, 1).flatten(0, 1).contiguous(memory_format=layout)
    out = batch_stats_norm(packed, w, b, 1e-5, groups=3)
    assert out.dtype == torch.bfloat16
    out = out.view(8, 3, 3, 6, 6)
    for i, x in enumerate(batches):
        ref = torch.nn.functional.batch_norm(x.float(), None, None, w, b, True, 0.0, 1e-5)
        # one bf16 rounding of the output: half a unit in the last place, 2^-8 relative
        torch.testing.assert_close(out[:, i].float(), ref, rtol=2**-8, atol=1e-6)


class Float64Batches:
    """A loader's batches in float64, so that packed and unpacked forwards can only differ in
    rounding far below any argmax tie."""

    def __init__(self, loader):
        self.loader, self.num_images = loader, loader.num_images

    def eval_batches(self):
        for x, y, n in self.loader.eval_batches():
            yield x.double(), y, n

    def train_batches(self, generator):
        for x, y in self.loader.train_batches(generator):
            yield x.double(), y


@pytest.mark.parametrize("pack", [2, 3, 4])
@pytest.mark.parametrize("mode", ["batch", "running", "recalibrate"])
def test_packed_evaluation_gives_the_unpacked_accuracies(mode, pack):
    """40 images in batches of 16 (the last partial): 3 batches make a pack of 2 and one
    padded with an uncounted batch, or one pack of 3 (asked for 3, or for at most 4)."""
    net, loader, archs = setup(track=True)
    net.double()
    loader = Float64Batches(loader)
    kwargs = {"bn_mode": mode, "calib_loader": loader, "calib_batches": 2}
    plain = evaluate_archs(net, archs, loader, **kwargs)
    if mode == "batch":  # architectures that differ, so a mixed-up pack would show
        assert len(set(plain)) > 1
    packed = evaluate_archs(net, archs, loader, pack=pack, **kwargs)
    np.testing.assert_array_equal(plain, packed)
    captured = evaluate_archs(
        net, archs, loader, pack=pack, cuda_graphs=True, streams=3, capture=ReplayOnCPU, **kwargs
    )
    np.testing.assert_array_equal(plain, captured)
    assert all(m.groups == 1 for m in net.modules() if hasattr(m, "groups"))


def test_pack_must_be_positive():
    net, loader, archs = setup(track=False)
    with pytest.raises(ValueError, match="pack must be at least 1"):
        evaluate_archs(net, archs, loader, bn_mode="batch", pack=0)


def test_cuda_graphs_refuse_a_cpu_batch_by_name():
    net, loader, archs = setup(track=False)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        evaluate_archs(net, archs[:1], loader, bn_mode="batch", cuda_graphs=True)


@pytest.mark.cuda
@pytest.mark.parametrize("space", ["nb201", "nb101", "darts_nds"])
@pytest.mark.parametrize(("mode", "bf16"), [("batch", False), ("running", False), ("batch", True)])
def test_cuda_graphs_give_the_eager_accuracies_on_cuda(space, mode, bf16):
    from nasheur.bench import paper_settings
    from nasheur.supernet import build_supernet

    settings = paper_settings(space)
    torch.manual_seed(0)
    net = build_supernet(space, settings.spec).cuda()
    sp = get_space(space)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=g).cuda()
    labels = torch.randint(0, 10, (300,), generator=g).cuda()
    loader = DeviceLoader(
        images, labels, batch_size=64, mean=(0.5,) * 3, std=(0.25,) * 3, augment=False
    )
    net.train()
    for x, _ in loader.train_batches(torch.Generator(device="cuda").manual_seed(1)):
        net(x, sp.sample(np.random.default_rng(0)))  # BN history for the running mode
    archs = [sp.sample(np.random.default_rng(s)) for s in range(3)]
    eager = evaluate_archs(net, archs, loader, bn_mode=mode, bf16=bf16)
    for streams in (1, 2):  # 3 archs on 2 streams: a group of 2 that share batches, then 1
        graphed = evaluate_archs(
            net, archs, loader, bn_mode=mode, bf16=bf16, cuda_graphs=True, streams=streams
        )
        np.testing.assert_array_equal(eager, graphed)
    # 5 batches packed 3 at a time (the last pack padded): larger convolutions may pick other
    # cuDNN algorithms, so allow one image of rounding at an argmax tie per architecture
    for graphs in (False, True):
        packed = evaluate_archs(
            net, archs, loader, bn_mode=mode, bf16=bf16, cuda_graphs=graphs, streams=2, pack=3
        )
        assert np.abs(packed - eager).max() <= 1 / loader.num_images, (eager, packed)


@pytest.mark.parametrize("track", [False, True])
def test_evaluation_leaves_every_bn_in_its_own_eval_mode(track):
    # afterwards a plain model.eval() forward is what it was before: batch statistics for a
    # super-net that does not track them (not the untouched 0/1 buffers), running ones else
    net, loader, archs = setup(track=track)
    x = next(iter(loader.eval_batches()))[0]
    net.eval()
    with torch.no_grad():
        before = net(x, archs[0])
    for mode in ("batch", "running", "recalibrate") if track else ("batch", "recalibrate"):
        evaluate_archs(net, archs[:1], loader, bn_mode=mode, calib_loader=loader, calib_batches=1)
        with torch.no_grad():
            assert torch.equal(net(x, archs[0]), before), mode


@pytest.mark.parametrize("mode", ["batch", "running", "recalibrate"])
def test_dropout_of_either_kind_is_off_in_every_evaluation_mode(mode):
    # spec section 7: the authors' code left path dropout on at evaluation; a super-net with
    # dropout evaluates exactly as the same weights without it
    net, loader, archs = setup(track=mode == "running")
    plain = nb201_supernet(bn_track=mode == "running")
    dropping = nb201_supernet(bn_track=mode == "running", path_dropout=0.5, global_dropout=0.5)
    plain.load_state_dict(net.state_dict())
    dropping.load_state_dict(net.state_dict())
    kw = {"bn_mode": mode, "calib_loader": loader, "calib_batches": 2}
    expected = evaluate_archs(plain, archs, loader, **kw)
    assert np.array_equal(evaluate_archs(dropping, archs, loader, **kw), expected)


def test_a_pool_may_take_every_architecture_with_ground_truth():
    """eval.pool_size equal to the number of architectures with GT is allowed (the job checks
    it against the space the same way): the pool is then all of them, each once, in the seeded
    draw's order."""
    pool = draw_pool(KEYS, len(KEYS), np.random.default_rng(0))
    assert sorted(pool) == sorted(KEYS)


class LabelReader(torch.nn.Module):
    """Predicts the class written into pixel (0, 0, 0) of each image (as ``code * 20``),
    undoing DeviceLoader's normalisation (mean 0.5, std 0.25); no BN, so every BN mode
    computes the same function."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, arch) -> torch.Tensor:
        code = torch.round((x[:, 0, 0, 0] * 0.25 + 0.5) * 255 / 20).long()
        return torch.nn.functional.one_hot(code, 10).float() + self.unused


@pytest.mark.parametrize("pack", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", ["batch", "running"])
def test_each_validation_image_is_counted_once_whatever_the_packing(mode, pack):
    """40 images in batches of 16: the last batch holds 8 new images and 8 that wrap around
    to images 0-7. Accuracy is hits over the 40 images, each counted once (spec section 4,
    top-1 on the validation share). The model is right exactly where i % 3 == 0, images 0, 3
    and 6 among the wrapped ones: counting a wrapped row would show."""
    n = 40
    codes = torch.arange(n) % 10
    right = torch.arange(n) % 3 == 0
    images = torch.zeros((n, 3, 8, 8), dtype=torch.uint8)
    images[:, 0] = (codes * 20).to(torch.uint8)[:, None, None]
    labels = torch.where(right, codes, (codes + 1) % 10)
    loader = DeviceLoader(
        images, labels, batch_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, augment=False
    )
    acc = evaluate_archs(LabelReader(), ["a", "b"], loader, bn_mode=mode, pack=pack)
    assert acc.tolist() == [int(right.sum()) / n] * 2 == [14 / 40] * 2


def test_recalibration_gives_up_after_the_k_batches_and_at_most_the_extra_cap(monkeypatch):
    # a channel that no batch draws: calibration feeds the K batches, then at most
    # MAX_EXTRA_CALIBRATION more (here 5), so K + 5 forwards in all before the error; the
    # batches beyond K go on with the K batches' own pass before another pass starts, so no
    # batch counts twice in the equal-weight mean before every batch of the pass counted once
    from contextlib import nullcontext

    from nasheur import evaluation
    from nasheur.supernet.channels import SlicedBatchNorm2d

    class NeverDrawn(SlicedBatchNorm2d):
        def uncalibrated(self) -> torch.Tensor:
            return torch.tensor(1)

    class Batches:  # passes without end; pass p holds the batches (p, 0), (p, 1), (p, 2)
        passes = 0

        def train_batches(self, gen):
            p, self.passes = self.passes, self.passes + 1
            return iter([(torch.tensor([p, i]), None) for i in range(3)])

    forwards = []
    monkeypatch.setattr(evaluation, "MAX_EXTRA_CALIBRATION", 5)
    bn = NeverDrawn(4, affine=True, track=False)
    gen = torch.Generator().manual_seed(0)

    def forward(x, arch):
        forwards.append((arch, tuple(x.tolist())))

    with pytest.raises(RuntimeError, match=r"1 BN channel\(s\) drawn by no batch after 7 batches"):
        evaluation._recalibrate(forward, [bn], "A", Batches(), 2, gen, nullcontext())
    # K = 2 batches, the third of their pass, a whole second pass and the first of a third
    batches = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    assert forwards == [("A", b) for b in batches]
