from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the real NB201 table beside the checkout, or in $NASHEUR_SHARED_DATA (a clone elsewhere, as
# CI's); tests that need it skip where it is absent
SHARED_DATA = Path(os.environ.get("NASHEUR_SHARED_DATA") or REPO.parent / "shared" / "data")
SHARED_NB201 = SHARED_DATA / "nb201-cifar10-valid-200ep.csv"


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` are skipped where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_nb201_csv() -> Path:
    if not SHARED_NB201.is_file():
        pytest.skip(f"{SHARED_NB201} is absent")
    return SHARED_NB201


@pytest.fixture(autouse=True)
def _no_ground_truth_env(monkeypatch):
    """Tests see no NASHEUR_GT_<SPACE> of the developer's shell unless they set one."""
    for key in [k for k in os.environ if k.startswith("NASHEUR_GT_")]:
        monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _torch_backend_flags():
    """A test that runs a job or the benchmark on CUDA turns TF32 and cuDNN's autotuning on for
    the whole process (nasheur.training.allow_tf32); the next test starts from the flags as
    they were, so that no CUDA test's numbers depend on which tests ran before it."""
    import torch

    backends = torch.backends
    flags = (backends.cudnn.benchmark, backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32)
    yield
    backends.cudnn.benchmark, backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = flags


def run_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `python -m nasheur` subprocess writing under tmp_path."""
    # a developer's own NASHEUR_GT_<SPACE> must not leak into the runs a test checks
    env = {k: v for k, v in os.environ.items() if not k.startswith("NASHEUR_GT_")}
    env["NASHEUR_RUNS"] = str(tmp_path / "runs")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


PYTHON = sys.executable


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with that pid runs (or is a zombie not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def as_from_a_terminal() -> None:
    """SIGINT and SIGHUP as a terminal's shell leaves them: a test runner started in the
    background (CI, `nohup ... &`) ignores them, and a process started with a signal
    ignored keeps it so (bash cannot trap it, Python raises no KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def start_nasheur(args: list[str], env: dict[str, str], log: Path, **popen) -> subprocess.Popen:
    """`python -m nasheur ARGS` in the background (a sweep: it launches, then waits for its
    jobs), stdout and stderr into `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            [PYTHON, "-m", "nasheur", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **popen,
        )


# the keys of metrics.json's `metrics` that other tools rely on (spec section 8)
METRIC_KEYS = frozenset(
    {
        "supernet_acc_mean",
        "supernet_acc_std",
        "kendall_tau",
        "sparse_kendall_tau",
        "spearman",
        "sparse_spearman",
        "p_beat_random",
        "final_performance",
    }
)


def write_nb201_gt(path: Path, n: int = 60, seed: int = 0, bins: int | None = None) -> Path:
    """A small GT table of random NB201 cells, made by the test (no benchmark file needed).
    With `bins`, the accuracies fall in that many adjacent 0.1%-wide bins (0.500 to ...), all
    distinct, so that the sparse correlations see ties that the plain ones do not."""
    import numpy as np

    from nasheur.spaces import get_space

    space = get_space("nb201")
    rng = np.random.default_rng(seed)
    archs = space.enumerate()
    picks = rng.choice(len(archs), size=n, replace=False)
    if bins is None:
        accs = rng.uniform(0.1, 0.95, n)
    else:  # inside a bin, away from its edges: 0.5xx05 to 0.5xx95
        accs = (500 + rng.integers(0, bins, n) + rng.uniform(0.05, 0.95, n)) / 1000
    rows = [f"{space.key(archs[i])},{acc:.6f}" for i, acc in zip(picks, accs, strict=True)]
    path.write_text("# unit: fraction\nkey,accuracy\n" + "\n".join(rows) + "\n")
    return path


# a job small enough for a test: tiny images, a 4-channel super-net, a few steps per epoch
TINY_JOB = [
    "search_space=nb201",
    "dataset=synthetic",
    "dataset.num_images=160",
    "dataset.image_size=8",
    "fidelity.baseline.channels=4",  # the values follow their baseline
    "fidelity.baseline.layers=1",
    "fidelity.baseline.batch_size=16",
    "protocol.epochs=3",
    "eval.pool_size=12",
    "device=cpu",
]


def compose_job(overrides: list[str]):
    from hydra import compose, initialize_config_module

    from nasheur.config import register_configs, register_resolvers, to_config

    register_configs()
    register_resolvers()
    with initialize_config_module(version_base="1.3", config_module="nasheur.conf"):
        return to_config(compose(config_name="config", overrides=overrides))


def completed_job(overrides: list[str], folder: Path) -> dict:
    """Compose and validate a job, run it in `folder` and return the metrics.json it wrote
    (the file that tools read, not run_job's return value), checked to be completed."""
    import json

    from nasheur.config import validate
    from nasheur.job import run_job

    cfg = compose_job(overrides)
    validate(cfg)
    run_job(cfg, output_dir=folder)
    rec = json.loads((folder / "metrics.json").read_text())
    assert rec["status"] == "completed", rec.get("error")
    return rec


# the smallest size each space's macro skeleton allows (embedded: NB201's cells and skeleton)
TINY_SUPERNETS = {
    "nb101": {"channels": 8, "layers": 1, "ops_on": "node"},
    "nb201": {"channels": 4, "layers": 1},
    "darts_nds": {"channels": 4, "layers": 3},
}


def tiny_supernet(space: str, **factors):
    """The space's super-net at its smallest size, seeded, with the given factors (which may
    also change the size)."""
    import torch

    from nasheur.supernet import SupernetSpec, build_supernet

    size = TINY_SUPERNETS.get(space, TINY_SUPERNETS["nb201"])
    torch.manual_seed(0)
    return build_supernet(space, SupernetSpec(**{**size, "num_classes": 10, **factors}))


def nb201_supernet(**kw):
    """A small NB201 super-net (4 channels, 1 cell per stage) with the given factors."""
    return tiny_supernet("nb201", **kw)


def two_sgd_steps(net, arch, *, weight_decay: float, image: int = 8):
    """Two steps of SGD with momentum and weight decay on one path of `net`, then the names
    of the parameters that got a gradient, and the check that exactly those moved and that
    the others have no momentum either (an optimizer may hold zero buffers for them): the
    single-path semantics every super-net must keep. Two steps, so that momentum buffers
    exist. Returns (names with a gradient, the optimizer)."""
    import torch
    import torch.nn.functional as F

    from nasheur.training import build_optimizer

    opt = build_optimizer(net, lr=0.1, momentum=0.9, weight_decay=weight_decay)
    before = {k: v.clone() for k, v in net.named_parameters()}
    x, y = torch.randn(8, 3, image, image), torch.randint(0, 10, (8,))
    net.train()
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, arch), y).backward()
        opt.step()
    with_grad = {k for k, v in net.named_parameters() if v.grad is not None}
    changed = {k for k, v in net.named_parameters() if not torch.equal(before[k], v)}
    assert changed == with_grad
    untouched = [p for k, p in net.named_parameters() if k not in changed]
    assert untouched, "a path, not the whole super-net"
    for p in untouched:
        buf = opt.state.get(p, {}).get("momentum_buffer")
        assert buf is None or not buf.any()
    return with_grad, opt


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Test tensors are tiny: one intra-op thread is fastest, and immune to a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_fake_cifar(folder: Path, n_per_batch: int = 20):
    """A CIFAR-10 python release in miniature (5 pickled batches of random images), made here;
    returns its images and labels."""
    import pickle

    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    all_x, all_y = [], []
    for i in range(1, 6):
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n_per_batch)]
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n_per_batch)],
        }
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch, f, protocol=2)
        all_x.append(data.reshape(-1, 3, 32, 32))
        all_y.append(np.asarray(labels))
    return np.concatenate(all_x), np.concatenate(all_y)
