"""Build a ground-truth table by stand-alone training (f_proxy under P_proxy).

For a search space whose class can ``sample_unique`` and ``standalone``, draw a seeded sample
of unique architectures, train each one's stand-alone network on a generated image set for
several seeds, and record its top-1 accuracy on a held-out test set generated separately (with
another seed) from the training images. The GT of an architecture is the mean over seeds.

P_proxy: SGD with momentum 0.9 (Nesterov), learning rate 0.1 decayed by a per-step cosine to
zero, weight decay 5e-4, cross-entropy, the space's own macro settings; BN in training mode
while training and with its running statistics at test time. The defaults (:class:`BuildSettings`)
are those of the shipped embedded table: 2 epochs over 1,200 procedural 12x12 images at batch
32 without augmentation, tested on 1,000 images of another seed, one CPU thread.

The build is resumable. Every finished (architecture, seed) result is appended as one JSON line
to a progress file (``<stem>.progress.jsonl`` beside ``<stem>.csv``, or ``--progress``) and
fsync'ed; the file opens with the build's settings. Running the same build again skips the
results already there (a half-written last line from a crash is dropped), and a build with
other settings refuses to reuse the file. At the end it writes:

* ``<stem>.csv``: the table (:func:`nasheur.groundtruth.table.write_table`), mean accuracy
  over seeds, with header lines for the data, the protocol, the seed-to-seed Kendall tau (mean
  over pairs of seeds), the p90 - p10 spread in accuracy points, the Python, torch and numpy
  versions that built it and the command that regenerates it;
* ``<stem>.per-seed.csv``: ``key,seed,accuracy`` for every result.

Every result depends only on (settings, architecture, seed), never on the order of the work,
so an interrupted and resumed build writes the same table as an uninterrupted one (CPU, the
same number of threads).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import shlex
import signal
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nasheur.cli_args import at_least, file_path, learning_rate, rate
from nasheur.io import atomic_path, flush_stdout
from nasheur.jobguard import FolderLocked, describe_holder, hold_folder

__all__ = [
    "PROGRESS_FORMAT",
    "BuildMismatchError",
    "BuildResult",
    "BuildSettings",
    "build",
    "build_main",
    "mean_pairwise_kendall",
    "per_seed_path",
    "progress_path",
    "sample_architectures",
    "spread_points",
    "train_standalone",
]

PROGRESS_FORMAT = 1
DATASETS = ("procedural", "synthetic")


class BuildMismatchError(RuntimeError):
    """The progress file was written by a build with other settings."""


@dataclass(frozen=True)
class BuildSettings:
    """Everything that determines the table (and nothing that does not)."""

    space: str = "embedded"
    archs: int = 300  # unique architectures
    seeds: tuple[int, ...] = (0, 1)
    arch_seed: int = 0  # the sample of architectures
    # data: stand-alone training images and a held-out test set generated with another seed
    dataset: str = "procedural"
    train_images: int = 1200
    test_images: int = 1000
    image_size: int = 12
    num_classes: int = 10
    data_seed: int = 0  # the training images (the super-net's data set has this seed too, but
    # draws 3,000 images where this draws 1,200, and the images differ with the count)
    test_seed: int = 1  # the held-out test images
    # P_proxy
    epochs: int = 2
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augment: bool = False  # random crop (pad 4) + horizontal flip
    # f_proxy macro settings beyond the space's defaults (num_classes follows the data)
    macro: tuple[tuple[str, Any], ...] = ()
    threads: int = 1  # torch CPU threads (results are reproducible at a fixed count)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; allowed: {', '.join(DATASETS)}")
        for name in ("archs", "train_images", "test_images", "epochs", "batch_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        for name in ("arch_seed", "data_seed", "test_seed"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if min(int(s) for s in self.seeds) < 0:
            raise ValueError(f"seeds must be >= 0, got {self.seeds}")
        if self.dataset == "procedural" and self.data_seed == self.test_seed:
            raise ValueError("data_seed and test_seed must differ (the test set is held out)")
        from nasheur.spaces import space_info  # cheap: no space is built

        multiple = getattr(space_info(self.space), "image_multiple", 1)
        if self.image_size % multiple:
            raise ValueError(
                f"image_size={self.image_size} does not fit search space {self.space}'s networks:"
                f" expected a multiple of {multiple} (dataset.image_size in a job's config)"
            )
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        names = [str(k) for k, _ in self.macro]
        twice = sorted({k for k in names if names.count(k) > 1})
        if twice:
            raise ValueError(f"--macro {', '.join(twice)} given more than once")
        macro = sorted(((str(k), v) for k, v in self.macro), key=lambda kv: kv[0])
        object.__setattr__(self, "macro", tuple(macro))

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        d["macro"] = {k: v for k, v in self.macro}
        return d

    def protocol_text(self) -> str:
        return (
            f"SGD momentum {self.momentum}{' nesterov' if self.nesterov else ''}, lr {self.lr} "
            f"per-step cosine to 0, weight decay {self.weight_decay}, batch {self.batch_size}, "
            f"{self.epochs} epochs, "
            + ("random crop (pad 4) + horizontal flip" if self.augment else "no augmentation")
        )


@dataclass(frozen=True)
class BuildResult:
    table: Path
    per_seed: Path
    keys: tuple[str, ...]
    accuracy: np.ndarray  # mean over seeds (fraction)
    per_seed_acc: np.ndarray  # (archs, seeds)
    meta: Mapping[str, str]
    trained: int  # results trained by this call (the others came from the progress file)


def _stem(out: str | os.PathLike[str]) -> Path:
    path = Path(out)
    return path.with_suffix("") if path.suffix.lower() == ".csv" else path


def progress_path(out: str | os.PathLike[str]) -> Path:
    """``table.csv`` -> ``table.progress.jsonl`` (beside the table)."""
    stem = _stem(out)
    return stem.with_name(stem.name + ".progress.jsonl")


def per_seed_path(out: str | os.PathLike[str]) -> Path:
    """``table.csv`` -> ``table.per-seed.csv``: ``key,seed,accuracy`` of every result."""
    stem = _stem(out)
    return stem.with_name(stem.name + ".per-seed.csv")


# --------------------------------------------------------------------------------------------
# the space and its sample


def sample_architectures(space: Any, count: int, seed: int) -> list[str]:
    """``count`` keys of distinct unique architectures, drawn with ``sample_unique``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xA5C4]))
    keys: list[str] = []
    seen: set[str] = set()
    tries = 0
    while len(keys) < count:
        tries += 1
        if tries > 50 * count + 1000:
            raise ValueError(f"could not draw {count} distinct architectures of {space.name}")
        arch = space.sample_unique(rng)
        u = space.unique_key(arch)
        if u in seen:
            continue
        seen.add(u)
        keys.append(space.key(arch))
    return keys


# --------------------------------------------------------------------------------------------
# data and training


@dataclass(frozen=True, eq=False)
class _Data:
    train_x: Any
    train_y: Any
    test_x: Any
    test_y: Any
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _make_data(s: BuildSettings) -> _Data:
    import torch

    from nasheur.data import GENERATED

    make, mean, std = GENERATED[s.dataset]
    try:
        if s.dataset == "procedural":  # the test images are drawn with their own seed
            tx, ty = make(s.train_images, s.image_size, s.num_classes, s.data_seed)
            vx, vy = make(s.test_images, s.image_size, s.num_classes, s.test_seed)
        else:  # synthetic: the seed also draws the classes, so split one generated set
            x, y = make(s.train_images + s.test_images, s.image_size, s.num_classes, s.data_seed)
            n = s.train_images
            tx, ty, vx, vy = x[:n], y[:n], x[n:], y[n:]
    except MemoryError:  # numpy's refusal of one large array: said with the options
        raise ValueError(
            f"--train-images {s.train_images} and --test-images {s.test_images} of "
            f"--image-size {s.image_size}: generating the {s.dataset} images ran out of "
            "memory; use fewer or smaller images"
        ) from None

    def t(a: np.ndarray) -> Any:
        return torch.from_numpy(np.ascontiguousarray(a))

    return _Data(t(tx), t(ty), t(vx), t(vy), tuple(mean), tuple(std))


def _seed_for(seed: int, key: str, *more: int) -> int:
    state = np.random.SeedSequence([int(seed), zlib.crc32(key.encode()), *more])
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))


def _standalone(space: Any, key: str, s: BuildSettings) -> Any:
    """f_proxy of ``key`` at the build's macro settings."""
    macro = dict(s.macro)
    if "num_classes" in getattr(space, "macro_defaults", {}):
        macro.setdefault("num_classes", s.num_classes)
    return space.standalone(space.parse(key) if hasattr(space, "parse") else key, **macro)


# what a space's class needs for a build: a sample of unique cells and their stand-alone nets
BUILD_NEEDS = ("sample_unique", "standalone", "unique_key", "key")


def buildable_spaces() -> tuple[str, ...]:
    """The search spaces a build can sample and train (``--space``'s choices)."""
    from nasheur.spaces import space_info, space_names

    return tuple(
        n for n in space_names() if all(hasattr(space_info(n), need) for need in BUILD_NEEDS)
    )


def check_build(settings: BuildSettings) -> tuple[Any, list[str]]:
    """The space and the sample of architectures a build trains, once the settings are known
    to work together (ValueError or TypeError naming the option otherwise): said before any
    progress file exists or any network trains."""
    from nasheur.spaces import get_space

    space = get_space(settings.space)
    for need in BUILD_NEEDS:
        if not hasattr(space, need):
            raise TypeError(f"search space {settings.space!r} has no {need}(): cannot build GT")
    _check_macro(space, settings)
    if hasattr(space, "num_unique") and settings.archs > space.num_unique():
        raise ValueError(
            f"--archs {settings.archs}: {settings.space} has {space.num_unique():,} unique "
            "architectures"
        )
    if settings.batch_size > settings.train_images:
        raise ValueError(
            f"--batch-size {settings.batch_size}: larger than the {settings.train_images} "
            "training images (--train-images)"
        )
    keys = sample_architectures(space, settings.archs, settings.arch_seed)
    try:  # a macro setting f_proxy does not take fails here, before a progress file exists
        _standalone(space, keys[0], settings)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"--macro {dict(settings.macro)}: {exc}") from None
    return space, keys


def _check_macro(space: Any, s: BuildSettings) -> None:
    """Each ``--macro`` value of the type of the space's default (counts >= 1), and its
    ``num_classes`` that of the data: said before any progress file exists (ValueError)."""
    defaults = getattr(space, "macro_defaults", {})
    for name, value in s.macro:
        if name == "num_classes" and value != s.num_classes:
            raise ValueError(
                f"--macro num_classes={value} contradicts --num-classes {s.num_classes} "
                "(the classes of the data; give --num-classes alone)"
            )
        if name not in defaults:
            continue  # the network says whether it takes the key
        default = defaults[name]
        if isinstance(default, bool):
            ok, want = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            want = "an integer >= 1"
        else:
            ok, want = True, ""
        if not ok:
            raise ValueError(f"--macro {name}={value}: expects {want} (default {default})")


def train_standalone(space: Any, key: str, seed: int, s: BuildSettings, data: _Data) -> float:
    """Train f_proxy of ``key`` under P_proxy with ``seed``; its top-1 test accuracy (fraction)."""
    import torch
    import torch.nn.functional as F

    from nasheur.data.loader import DeviceLoader

    torch.manual_seed(_seed_for(seed, key, 0))
    net = _standalone(space, key, s)
    opt = torch.optim.SGD(
        net.parameters(),
        lr=s.lr,
        momentum=s.momentum,
        nesterov=s.nesterov,
        weight_decay=s.weight_decay,
    )
    norm = {"mean": data.mean, "std": data.std}
    train = DeviceLoader(
        data.train_x, data.train_y, batch_size=s.batch_size, augment=s.augment, **norm
    )
    test = DeviceLoader(data.test_x, data.test_y, batch_size=256, augment=False, **norm)
    total = s.epochs * train.steps_per_epoch
    step = 0
    net.train()
    for epoch in range(s.epochs):
        gen = torch.Generator().manual_seed(_seed_for(seed, key, 1, epoch))
        finite = torch.ones((), dtype=torch.bool, device=data.train_x.device)
        for x, y in train.train_batches(gen):
            for group in opt.param_groups:
                group["lr"] = 0.5 * s.lr * (1.0 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(net(x), y)
            finite &= torch.isfinite(loss.detach())  # every batch, without a sync per batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if not bool(finite):
            raise FloatingPointError(
                f"{key} seed {seed}: the training loss was not finite in epoch {epoch + 1} "
                f"(the results so far are kept; a smaller --lr may train it)"
            )
    net.eval()
    hits = 0
    with torch.no_grad():
        for x, y, n_valid in test.eval_batches():
            hits += int((net(x)[:n_valid].argmax(1) == y[:n_valid]).sum())
    return hits / test.num_images


# --------------------------------------------------------------------------------------------
# statistics


def mean_pairwise_kendall(per_seed: np.ndarray) -> float:
    """Mean Kendall tau-b between the columns (seeds) of an (archs, seeds) accuracy matrix."""
    from nasheur.metrics import kendall_tau

    cols = range(per_seed.shape[1])
    taus = [kendall_tau(per_seed[:, a], per_seed[:, b]) for a, b in itertools.combinations(cols, 2)]
    return float(np.mean(taus)) if taus else float("nan")


def spread_points(acc: np.ndarray) -> float:
    """90th minus 10th percentile (numpy's linear interpolation), in accuracy points."""
    return float(100.0 * (np.percentile(acc, 90) - np.percentile(acc, 10)))


# --------------------------------------------------------------------------------------------
# the progress file


def _read_progress(path: Path, settings: BuildSettings) -> dict[tuple[str, int], float]:
    """Results already in ``path`` (creating it with the settings line if absent)."""
    header = {"format": PROGRESS_FORMAT, "settings": settings.as_json()}
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(header, sort_keys=True) + "\n", encoding="utf-8")
        return {}
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    if tail:  # a line cut short by a crash: drop it before appending more
        with open(path, "r+b") as f:
            f.truncate(len(raw) - len(tail))
            f.flush()
            os.fsync(f.fileno())
    if not complete:
        raise BuildMismatchError(f"{path}: no settings line; delete it to start over")
    try:
        first = json.loads(complete[0])
    except ValueError:  # not JSON, or not UTF-8 text
        raise BuildMismatchError(f"{path}: unreadable settings line; delete it") from None
    if first != json.loads(json.dumps(header, sort_keys=True)):
        same_format = isinstance(first, dict) and first.get("format") == PROGRESS_FORMAT
        if same_format and not any(line.strip() for line in complete[1:]):
            # no result yet (the first training of an earlier build failed: it diverged, or
            # ran out of memory): nothing to mix, so the corrected settings start it over
            path.unlink()
            return _read_progress(path, settings)
        old = first.get("settings", {}) if isinstance(first, dict) else {}
        new = header["settings"]
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise BuildMismatchError(
            f"{path} belongs to a build with other settings (differing: {', '.join(diff) or 'format'}); "
            "refusing to mix results. Use the same settings, another --out, or delete the file."
        )
    done: dict[tuple[str, int], float] = {}
    for n, line in enumerate(complete[1:], 2):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key, seed, acc = rec["key"], rec["seed"], float(rec["accuracy"])
            # the build writes its seeds as ints: int() would file 0.5 (or true) under seed 0
            # (or 1), and raise OverflowError for 1e400
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError(f"seed {seed!r} of key {key!r}")
            if not isinstance(key, str) or not math.isfinite(acc) or not 0 <= acc <= 1:
                raise ValueError(f"accuracy {acc!r} of key {key!r}")
        # JSONDecodeError is a ValueError; OverflowError: an accuracy past float's range
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise BuildMismatchError(
                f"{path}:{n}: not a result line ({what}); remove the line (or the file) and run "
                "again"
            ) from None
        done[(key, seed)] = acc
    return done


def _append(path: Path, record: Mapping[str, Any]) -> None:
    data = (json.dumps(dict(record), sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# the build


@dataclass
class _Progress:
    total: int
    done: int
    start: float = field(default_factory=time.perf_counter)
    trained: int = 0

    def line(self, key: str, seed: int, acc: float, seconds: float) -> str:
        rate = (time.perf_counter() - self.start) / max(self.trained, 1)
        left = (self.total - self.done) * rate
        return (
            f"[{self.done}/{self.total}] seed {seed} acc {100 * acc:.2f}% ({seconds:.1f} s) "
            f"{key}  eta {left / 60:.1f} min"
        )


def build(
    out: str | os.PathLike[str],
    settings: BuildSettings,
    *,
    limit: int | None = None,
    command: str | None = None,
    progress: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = print,
    checked: tuple[Any, list[str]] | None = None,
) -> BuildResult | None:
    """Run (or continue) the build of ``settings`` into ``out``.

    ``checked``: what :func:`check_build` returned for ``settings``, where the caller ran it
    already (else the build runs it).

    ``limit`` stops after training that many new results (returning None if the build is not
    complete yet); rerun to continue. ``command`` is recorded as the table's ``regenerate``
    line. ``progress`` puts the progress file elsewhere than beside ``out``. Returns the
    finished table's contents.
    """
    out = Path(out)
    space, keys = checked if checked is not None else check_build(settings)
    progress = Path(progress) if progress is not None else progress_path(out)
    progress.parent.mkdir(parents=True, exist_ok=True)
    # one build at a time on a progress file: a second would train the same results again
    with hold_folder(progress.parent, refused=BuildLocked, lock=f"{progress.name}.lock"):
        return _build(out, settings, space, keys, progress, limit, command, log)


class BuildLocked(FolderLocked):
    """Another build writes the same progress file."""

    def __init__(self, folder: str | Path, holder: dict[str, Any] | None = None) -> None:
        super().__init__(folder, holder)
        self.args = (
            f"another build ({describe_holder(self.holder)}) writes its progress in {folder}; "
            "wait for it to end (or stop it), then run the same command again to continue",
        )


def _build(
    out: Path,
    settings: BuildSettings,
    space: Any,
    keys: list[str],
    progress: Path,
    limit: int | None,
    command: str | None,
    log: Callable[[str], None] | None,
) -> BuildResult | None:
    import torch

    # the data before the progress file: settings its generator refuses (too many classes,
    # more images than memory holds) leave no progress file that a corrected build would
    # then refuse as another build's
    data = _make_data(settings)
    done = _read_progress(progress, settings)
    unknown = {k for k, _ in done} - set(keys)
    if unknown:
        raise BuildMismatchError(f"{progress}: results for architectures outside this build")
    # a seed outside it would count towards the total: the table then written lacks a result
    other_seeds = {s for _, s in done} - set(settings.seeds)
    if other_seeds:
        raise BuildMismatchError(
            f"{progress}: results for seeds outside this build ({sorted(other_seeds)})"
        )
    todo = [(k, s) for k in keys for s in settings.seeds if (k, s) not in done]
    state = _Progress(total=len(keys) * len(settings.seeds), done=len(done))
    if todo and (limit is None or limit > 0):
        threads = torch.get_num_threads()
        torch.set_num_threads(settings.threads)
        try:
            for key, seed in todo:
                if limit is not None and state.trained >= limit:
                    break
                t0 = time.perf_counter()
                acc = train_standalone(space, key, seed, settings, data)
                seconds = time.perf_counter() - t0
                _append(progress, {"key": key, "seed": seed, "accuracy": acc, "seconds": seconds})
                done[(key, seed)] = acc
                state.done += 1
                state.trained += 1
                if log is not None:
                    log(state.line(key, seed, acc, seconds))
        finally:
            torch.set_num_threads(threads)
    if len(done) < state.total:
        return None
    return _write_outputs(out, settings, keys, done, command, trained=state.trained)


def _software() -> str:
    import platform

    import torch

    return (
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {np.__version__}, {platform.machine() or 'unknown machine'}"
    )


def _write_outputs(
    out: Path,
    s: BuildSettings,
    keys: list[str],
    done: Mapping[tuple[str, int], float],
    command: str | None,
    *,
    trained: int,
) -> BuildResult:
    from nasheur.groundtruth.table import write_table

    per_seed = np.array([[done[(k, seed)] for seed in s.seeds] for k in keys], dtype=np.float64)
    acc = per_seed.mean(axis=1)
    side = per_seed_path(out)
    tau = mean_pairwise_kendall(per_seed) if len(s.seeds) > 1 else float("nan")
    macro = {k: v for k, v in s.macro}
    meta = {
        "source": "nasheur.groundtruth.builder (stand-alone training, P_proxy)",
        "space": s.space,
        "archs": str(len(keys)),
        "seeds": " ".join(str(x) for x in s.seeds),
        "accuracy": f"mean over seeds of top-1 on {s.test_images} held-out test images",
        "per_seed": side.name,
        "seed_kendall_tau": f"{tau:.4f}",
        "spread_p90_p10": f"{spread_points(acc):.2f}",
        "dataset": (
            f"{s.dataset} image_size={s.image_size} num_classes={s.num_classes} "
            f"train_images={s.train_images} data_seed={s.data_seed} "
            f"test_images={s.test_images} "
            # synthetic: the test images are the last ones of the data_seed set (_make_data);
            # test_seed draws nothing there, so the header must not name it
            + (f"test_seed={s.test_seed}" if s.dataset == "procedural" else "test_from=data_seed")
        ),
        "macro": " ".join(f"{k}={v}" for k, v in macro.items()) or "space defaults",
        "epochs": str(s.epochs),
        "protocol": s.protocol_text(),
        "arch_seed": str(s.arch_seed),
        "threads": str(s.threads),
        # results are reproducible on the same software at the same thread count
        "software": _software(),
        "regenerate": command or "python -m nasheur.groundtruth build " + _cli_args(s, out),
    }
    with atomic_path(side) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["key", "seed", "accuracy"])
        for k, row in zip(keys, per_seed, strict=True):
            for seed, a in zip(s.seeds, row, strict=True):
                writer.writerow([k, seed, repr(float(a))])
    write_table(out, keys, acc, meta=meta)
    return BuildResult(
        table=out,
        per_seed=side,
        keys=tuple(keys),
        accuracy=acc,
        per_seed_acc=per_seed,
        meta=meta,
        trained=trained,
    )


# --------------------------------------------------------------------------------------------
# command line


def _cli_args(s: BuildSettings, out: Path | str) -> str:
    args: list[str] = [f"--space {s.space}"]
    pairs = [
        ("archs", s.archs),
        ("seeds", ",".join(str(x) for x in s.seeds)),
        ("arch-seed", s.arch_seed),
        ("dataset", s.dataset),
        ("train-images", s.train_images),
        ("test-images", s.test_images),
        ("image-size", s.image_size),
        ("num-classes", s.num_classes),
        ("data-seed", s.data_seed),
        ("test-seed", s.test_seed),
        ("epochs", s.epochs),
        ("batch-size", s.batch_size),
        ("lr", s.lr),
        ("weight-decay", s.weight_decay),
        ("threads", s.threads),
    ]
    # quoted: the line is run by a shell (a macro's text value may hold a space)
    args += [f"--{name} {shlex.quote(str(value))}" for name, value in pairs]
    if s.augment:
        args.append("--augment")
    args += [f"--macro {shlex.quote(f'{k}={v}')}" for k, v in s.macro]
    args.append(f"--out {shlex.quote(str(out))}")
    return " ".join(args)


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2``: distinct integers (argparse names the option in its error)."""
    try:
        seeds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expects comma-separated integers, got {text!r}"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expects distinct seeds, at least one, got {text!r}")
    if min(seeds) < 0:  # numpy's and torch's seeds are non-negative
        raise argparse.ArgumentTypeError(f"expects seeds >= 0, got {text!r}")
    return seeds


def _macro(text: str) -> tuple[str, Any]:
    """``--macro KEY=VALUE``: the pair, its value a bool, int or float where it reads as one."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, got {text!r}")
    return name.strip(), _parse_value(value.strip())


def _parser() -> argparse.ArgumentParser:
    d = BuildSettings()
    p = argparse.ArgumentParser(
        prog="python -m nasheur.groundtruth build",
        description=(
            "Build a ground-truth table by stand-alone training of a seeded sample of unique "
            "architectures over several seeds (resumable: rerun the same command to continue)."
        ),
    )
    p.add_argument("--out", type=file_path, required=True, help="the table to write (CSV)")
    p.add_argument(
        "--space",
        choices=buildable_spaces(),
        default=d.space,
        help="search space (default: %(default)s)",
    )
    p.add_argument("--archs", type=at_least(1), default=d.archs, help="unique architectures")
    p.add_argument(
        "--seeds",
        type=_seeds,
        default=",".join(map(str, d.seeds)),
        help="training seeds, comma-separated",
    )
    p.add_argument("--arch-seed", type=at_least(0), default=d.arch_seed, help="seed of the sample")
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    p.add_argument("--train-images", type=at_least(1), default=d.train_images)
    p.add_argument("--test-images", type=at_least(1), default=d.test_images)
    p.add_argument("--image-size", type=at_least(1), default=d.image_size)
    p.add_argument("--num-classes", type=at_least(2), default=d.num_classes)
    p.add_argument("--data-seed", type=at_least(0), default=d.data_seed)
    p.add_argument("--test-seed", type=at_least(0), default=d.test_seed)
    p.add_argument("--epochs", type=at_least(1), default=d.epochs)
    p.add_argument("--batch-size", type=at_least(1), default=d.batch_size)
    p.add_argument("--lr", type=learning_rate, default=d.lr)
    p.add_argument("--weight-decay", type=rate, default=d.weight_decay)
    p.add_argument("--augment", action="store_true", help="train with random crop (pad 4) and flip")
    p.add_argument(
        "--macro",
        type=_macro,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="f_proxy macro setting over the space's default (repeatable), e.g. channels=8",
    )
    p.add_argument("--threads", type=at_least(1), default=d.threads, help="torch CPU threads")
    p.add_argument(
        "--limit",
        type=at_least(0),
        default=None,
        help="stop after this many new results (resume later)",
    )
    p.add_argument(
        "--progress",
        type=file_path,
        help="the progress file (default: <out stem>.progress.jsonl beside --out)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-result lines")
    return p


# the smallest image each generated data set draws (nasheur.data.procedural, .synthetic)
MIN_IMAGE_SIZE = {"procedural": 8, "synthetic": 4}


def _check_args(args: argparse.Namespace) -> None:
    """What the options must satisfy together, said with the options' names (ValueError),
    before any data or network is made."""
    from nasheur.data.procedural import MAX_CLASSES
    from nasheur.spaces import space_info

    if args.dataset == "procedural" and args.data_seed == args.test_seed:
        raise ValueError(
            f"--data-seed and --test-seed must differ (the test set is held out), "
            f"both are {args.data_seed}"
        )
    if args.dataset == "procedural" and args.num_classes > MAX_CLASSES:
        raise ValueError(
            f"--num-classes {args.num_classes}: procedural data has at most {MAX_CLASSES} classes"
        )
    smallest = MIN_IMAGE_SIZE[args.dataset]
    if args.image_size < smallest:
        raise ValueError(f"--image-size {args.image_size}: {args.dataset} images are >= {smallest}")
    multiple = getattr(space_info(args.space), "image_multiple", 1)
    if args.image_size % multiple:
        raise ValueError(
            f"--image-size {args.image_size}: search space {args.space}'s networks take a "
            f"multiple of {multiple}"
        )


def settings_from_args(args: argparse.Namespace) -> BuildSettings:
    macro = [_macro(item) if isinstance(item, str) else item for item in args.macro]
    seeds = _seeds(args.seeds) if isinstance(args.seeds, str) else args.seeds
    _check_args(args)
    return BuildSettings(
        space=args.space,
        archs=args.archs,
        seeds=tuple(seeds),
        arch_seed=args.arch_seed,
        dataset=args.dataset,
        train_images=args.train_images,
        test_images=args.test_images,
        image_size=args.image_size,
        num_classes=args.num_classes,
        data_seed=args.data_seed,
        test_seed=args.test_seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        augment=args.augment,
        macro=tuple(macro),
        threads=args.threads,
    )


def build_main(argv: Sequence[str] | None = None) -> int:
    """``python -m nasheur.groundtruth build ...``: 0 when the table is written, 3 when
    ``--limit`` stopped the build early (rerun to continue), 1 on an error, 130 or 143 when
    Ctrl-C or SIGTERM stopped it (rerun to continue)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:  # a bad combination of options: status 2 with the options' names, as argparse says
        settings = settings_from_args(args)
        checked = check_build(settings)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    from nasheur.jobguard import Terminated, stop_on_sigterm

    try:
        command = "python -m nasheur.groundtruth build " + _cli_args(settings, args.out)
        start = time.perf_counter()
        with stop_on_sigterm("the build"):
            result = build(
                args.out,
                settings,
                limit=args.limit,
                command=command,
                progress=args.progress,
                log=None if args.quiet else lambda m: print(m, flush=True),
                checked=checked,
            )
    except (
        BuildMismatchError,
        BuildLocked,
        ValueError,
        TypeError,
        KeyError,
        OSError,
        FloatingPointError,  # a diverged training: its message names the architecture
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as exc:  # every finished result is in the progress
        flush_stdout()
        how = signal.Signals(exc.signum).name if isinstance(exc, Terminated) else "Ctrl-C"
        print(
            f"stopped by {how}; the results so far are kept: rerun the same command to continue",
            file=sys.stderr,
        )
        return exc.code if isinstance(exc, Terminated) else 130
    if result is None:
        print(f"stopped after --limit {args.limit} results; rerun the same command to continue")
        return 3
    m = result.meta
    print(
        f"wrote {len(result.keys)} architectures x {len(settings.seeds)} seeds to {result.table} "
        f"(+ {result.per_seed.name}); seed Kendall tau {m['seed_kendall_tau']}, "
        f"p90-p10 spread {m['spread_p90_p10']} points; {result.trained} trained in "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(build_main())
