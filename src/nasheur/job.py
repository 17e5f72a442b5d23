"""One super-net job: wiring only. Build the parts from the config, train, evaluate, record.

Lifecycle in the job's output folder: ``job.lock`` held while it runs (a second copy of the
job refuses at once; :mod:`nasheur.jobguard`), ``pool.json`` (the evaluated architectures),
``checkpoint.pt`` after every epoch, and ``metrics.json`` at the end, ``completed`` or
``failed`` with the error, or ``interrupted`` (Ctrl-C, SIGTERM, submitit's requeue).
Rerunning the same config in the same folder resumes from the checkpoint, or returns at once
if the job already completed (unless its ground-truth file changed since: then it evaluates
again from its checkpoint).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nasheur import __version__
from nasheur.config import (
    Config,
    ConfigError,
    check_batch_fits,
    config_hash,
    ground_truth_cache_dir,
    ground_truth_path,
    plain,
    resolve_bn_mode,
    training_hash,
    wsbn_unused,
)
from nasheur.io import atomic_write_json, read_json, remove_stale_temporaries
from nasheur.jobguard import (
    CHECKPOINT,
    JOB_FILES,
    LOCK,
    METRICS,
    POOL,
    FolderLocked,
    Holding,
    Terminated,
    hold_folder,
    stop_on_sigterm,
)
from nasheur.progress import EpochLog
from nasheur.results.summary import summary_table
from nasheur.reuse import TRAINED_IN, trained_in
from nasheur.training import CheckpointMismatch

log = logging.getLogger("nasheur")


class RecordWriteError(OSError):
    """A completed job's metrics.json could not be written (a full disk, a quota)."""


class FolderBusy(CheckpointMismatch, FolderLocked):
    """A running job holds the folder: refused before anything is read or written there (a
    refusal, like a folder of another config: ``python -m nasheur`` says so in one line)."""


# CUDA_VISIBLE_DEVICES values that hide every GPU on purpose
NO_GPU = ("", "-1", "NoDevFiles")


def pick_device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        named = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
        if named not in NO_GPU:
            # a GPU given to the job (SLURM sets the variable) that torch cannot use: a
            # CPU-only torch, a driver or MPS problem. Days on the CPU would be the result
            why = (
                f"torch {torch.__version__} is built without CUDA"
                if torch.version.cuda is None
                else "CUDA did not start (the driver, or an MPS daemon that cannot serve it)"
            )
            raise ConfigError(
                f"device=auto: CUDA_VISIBLE_DEVICES={named} gives this job a GPU, but torch "
                f"sees no CUDA device ({why}); fix that, or run on the CPU on purpose with "
                "device=cpu"
            )
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device=cuda but torch sees no CUDA device; use device=auto or device=cpu"
        )
    return torch.device(name)


def _out_of_memory(err: BaseException) -> bool:
    """Whether `err` says memory ran out: torch's allocator (its OutOfMemoryError on CUDA, a
    RuntimeError naming the allocation on the CPU), Python's MemoryError, or a SystemError of
    a C call that failed with one."""
    import torch

    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    if isinstance(err, SystemError):
        return isinstance(err.__cause__ or err.__context__, MemoryError)
    return "allocate" in str(err)


def pool_spaces_of(cfg: Config) -> dict[str, Any]:
    """The space trained on and searched (NB101: a sub-space or a random subset chosen by the
    config) under "", and any space where a second pool is evaluated under its name (a random
    subset's sub-space, Table 6)."""
    from nasheur.spaces import get_space

    whole = space = get_space(cfg.search_space.name.value)
    if hasattr(whole, "for_config"):
        space = whole.for_config(cfg)
    return {"": space, **(whole.extra_pools(space) if hasattr(whole, "extra_pools") else {})}


def read_ground_truth(cfg: Config, space: Any) -> tuple[str, Any]:
    """The job's ground-truth file and its table (read, or converted once and cached), every
    key checked against `space`."""
    from nasheur.groundtruth import load_ground_truth

    g = cfg.ground_truth
    gt_path = ground_truth_path(cfg)
    gt = load_ground_truth(
        gt_path,
        dataset=g.dataset,
        metric=None if g.metric is None else g.metric.value,
        column=g.column,
        unit=g.unit.value,
        validate_key=space.validate_key,
        cache_dir=ground_truth_cache_dir(cfg),
    )
    return gt_path, gt


def gt_data_differs(measured_on: Any, dataset: Any) -> str | None:
    """How the data that a builder's table says it measured on (its ``# dataset:`` line,
    ``procedural image_size=12 num_classes=10 ...``) differs from the job's `dataset` config
    (name, image size, classes), or None: the same, or a table that does not say (official
    benchmarks name their own data sets, CIFAR-10's splits and others)."""
    if not isinstance(measured_on, str) or not measured_on.strip():
        return None
    name, *pairs = measured_on.split()
    said = dict(p.partition("=")[::2] for p in pairs)
    if "image_size" not in said:  # not the builder's line
        return None
    ours = {"name": dataset.name.value, "image_size": dataset.image_size}
    ours["num_classes"] = dataset.num_classes
    theirs = {
        "name": name,
        "image_size": said.get("image_size"),
        "num_classes": said.get("num_classes"),
    }
    if ours["name"] == "cifar10":  # 32-pixel images of 10 classes, whatever the keys say
        ours.update(image_size=32, num_classes=10)
    differs = [
        f"dataset.{k}: {theirs[k]} there, {ours[k]} here"
        for k in ("name", "image_size", "num_classes")
        if theirs[k] is not None and str(theirs[k]) != str(ours[k])
    ]
    return "; ".join(differs) or None


def searched_archs(
    cfg: Config, gt_path: str, gt: Any, pool_spaces: dict[str, Any]
) -> dict[str, list[str]]:
    """Per pool, the architectures of its space that have ground truth (P>R's N counts
    them); ConfigError where a pool's space has fewer than ``eval.pool_size``."""
    searched: dict[str, list[str]] = {}
    for name, sp in pool_spaces.items():
        searched[name] = (
            [k for k in gt.keys if sp.in_space(k)] if hasattr(sp, "in_space") else list(gt.keys)
        )
        where = "the space searched" if not name else f"the space of the '{name}' pool"
        where += f" ({describe_space(sp)})"
        if not searched[name]:
            raise ConfigError(
                f"ground_truth.path={gt_path}: none of its {len(gt)} architectures is in {where}"
            )
        if len(searched[name]) < cfg.eval.pool_size:
            raise ConfigError(
                f"eval.pool_size={cfg.eval.pool_size} exceeds the {len(searched[name])} "
                f"architectures of {where} that have ground truth in {gt_path}"
            )
    return searched


def run_job(
    cfg: Config,
    *,
    output_dir: str | Path,
    choices: dict[str, Any] | None = None,
    on_claimed: Callable[[], None] | None = None,
    refused: Exception | None = None,
) -> dict[str, Any]:
    """Run (or resume) the job of `cfg` in `output_dir`; return its metrics.json record.

    `refused`: why `cfg` cannot run here (its validation failed on this node): the job ends
    with it as a failed record, under the same guards as a failure of its own.

    The job holds the folder's lock while it runs; where another running job holds it, it
    raises :class:`FolderBusy` at once and touches nothing. ``on_claimed()`` runs once the
    folder is known to be this config's (no record or checkpoint of another), before anything
    is written there; a folder of another config raises :class:`CheckpointMismatch` instead.
    SIGTERM ends the job as ``interrupted`` (:class:`~nasheur.jobguard.Terminated`, exit status
    143)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in (LOCK, *JOB_FILES):  # before any work: a job would train for
        path = out / name  # hours and then fail to write there (the lock: fail at once)
        if path.exists() and not path.is_file():
            raise CheckpointMismatch(
                f"{path}: a folder or other non-file where the job writes a file; move it "
                "away or use another output folder (hydra.run.dir=...)"
            )
    # a folder of another config is refused: its job's details stay in the lock file
    with hold_folder(out, refused=FolderBusy, not_ours=(CheckpointMismatch,)) as holding:
        return _run_held(cfg, out, choices, on_claimed, refused, holding)


def _run_held(
    cfg: Config,
    out: Path,
    choices: dict[str, Any] | None,
    on_claimed: Callable[[], None] | None,
    refused: Exception | None,
    holding: Holding | None = None,
) -> dict[str, Any]:
    resolved = plain(cfg)
    record: dict[str, Any] = {
        "status": "running",
        "config_hash": config_hash(resolved),
        "config": resolved,
        "choices": dict(choices or {}),
        "seed": cfg.seed,
        "nasheur_version": __version__,
    }
    done = out / METRICS
    reevaluated: dict[str, Any] | None = None  # a completed record, evaluated again
    # the epochs that a stopped or failed record of this job lists: those it trained, which a
    # job that fails again before it restored its checkpoint (its data, its ground truth)
    # keeps on record (the checkpoint holds them, or with run.checkpoint_every_s the first
    # of them, the rest to be trained again)
    earlier: list[dict[str, Any]] = []
    earlier_progress: dict[str, Any] = {}
    if done.is_file():
        try:
            previous = read_json(done)
        except (OSError, ValueError) as exc:  # not this project's atomic writes: left alone
            raise CheckpointMismatch(
                f"{done}: unreadable ({type(exc).__name__}: {exc}); move it away or use another "
                "output folder (hydra.run.dir=...)"
            ) from None
        if not isinstance(previous, dict):
            raise CheckpointMismatch(
                f"{done}: a JSON {type(previous).__name__}, not a job record; move it away or "
                "use another output folder (hydra.run.dir=...)"
            )
        if previous.get("config_hash") != record["config_hash"]:
            # never overwrite another config's record: that folder is not this job's
            raise CheckpointMismatch(
                f"{out} holds a job of another config (hash {previous.get('config_hash')}, this "
                f"one {record['config_hash']}); use another output folder (hydra.run.dir=...)"
            )
        if previous.get("status") in ("interrupted", "failed"):
            earlier = previous.get("history") if isinstance(previous.get("history"), list) else []
            # and how far they go, and where a resume starts: its checkpoint is untouched
            # until this run restores it
            earlier_progress = {
                k: previous[k] for k in ("epochs", "checkpoint_epoch") if k in previous
            }
        if previous.get("status") == "completed":
            from nasheur.groundtruth.convert import fingerprint_of, source_changed
            from nasheur.results.collect import record_problem

            problem = record_problem(previous)
            if problem:  # a hand-edited or damaged record: nothing can read its results
                raise CheckpointMismatch(
                    f"{done}: a completed record whose {problem}; move it away, or delete it "
                    "to evaluate the job again from its checkpoint"
                )
            recorded = fingerprint_of(previous)
            if not source_changed(recorded):
                log.info(
                    "already completed: %s (delete its folder to train it anew, or only "
                    "metrics.json to evaluate it again from its checkpoint)",
                    done,
                )
                return previous
            # the hash names the file, not its contents: evaluated again from the checkpoint
            if not (out / CHECKPOINT).is_file():  # never hours of training in its place
                raise CheckpointMismatch(
                    f"{recorded['path']} changed (or is gone) since this job completed, and "
                    f"{out / CHECKPOINT} is gone: its super-net cannot be evaluated again. "
                    f"Point ground_truth.path at the table it was evaluated with, or delete "
                    f"{done} to train it again"
                )
            log.warning(
                "%s changed since this job completed: evaluating again from its checkpoint",
                recorded["path"],
            )
            reevaluated = previous
    training = training_hash(resolved)
    if holding is not None and reevaluated is None and trained_in(out, training) is None:
        # the super-net it trains, for a sweep that would train it too (nasheur.reuse)
        holding.record(training=training)
    partial: dict[str, Any] = {}  # what _run has done so far: a stopped job records it
    with stop_on_sigterm():
        try:
            if refused is not None:
                if on_claimed is not None:
                    on_claimed()
                raise refused
            from nasheur.training import threads_kept  # imports torch, as _run does

            with threads_kept():  # a resumed job's count stays with it
                record.update(
                    _run(
                        cfg,
                        out,
                        record["config_hash"],
                        on_claimed,
                        partial,
                        note=None if holding is None else holding.note,
                        training=training,
                    )
                )
            record["status"] = "completed"
            try:
                atomic_write_json(done, record)
            except OSError as err:  # a full disk, a quota: the checkpoint stands
                raise RecordWriteError(
                    f"{done}: the results could not be written ({err.strerror or err}); the "
                    "checkpoint stands: free some space, then the same command evaluates it again"
                ) from None
        except CheckpointMismatch:
            raise  # the folder belongs to another config: leave its files alone
        except BaseException as err:  # leave a record whatever ended the job
            if record["status"] == "completed" and isinstance(err, (KeyboardInterrupt, SystemExit)):
                # stopped while the completed record was being written: the work is done, so
                # the record is written whole (a second SIGTERM is only logged), and it stands
                atomic_write_json(done, record)
                log.warning("stopped while recording the results; recorded as completed: %s", done)
                raise
            if reevaluated is not None and (
                record["status"] != "completed" or isinstance(err, RecordWriteError)
            ):
                # its results and history stand until an evaluation with the new ground
                # truth completes (the next launch tries again)
                log.warning(
                    "the evaluation with the changed ground truth did not complete; %s keeps "
                    "the results of the earlier one",
                    done,
                )
                raise
            # stopped from outside (Ctrl-C, SIGTERM, submitit's requeue on preemption): it
            # resumes later
            # submitit's last time-out (no requeue left) too: it resumes when launched again
            stopped = isinstance(err, (KeyboardInterrupt, SystemExit)) or (
                type(err).__name__ == "UncompletedJobError"
            )
            said = str(err) or ("Ctrl-C" if isinstance(err, KeyboardInterrupt) else "")
            record.update(
                status="interrupted" if stopped else "failed",
                error=f"{type(err).__name__}: {said}" if said else type(err).__name__,
                traceback=traceback.format_exc(),
            )
            # the epochs trained; none before the first. The checkpoint holds them, or with
            # run.checkpoint_every_s those up to its last write (a resume repeats the others)
            # (once this run restored its checkpoint or started afresh, its own history: a
            # restart from nothing lists none of the epochs an earlier run trained)
            record["history"] = list(partial.get("history", earlier))
            progress = partial if "epochs" in partial else earlier_progress
            record.update({k: progress[k] for k in ("epochs", "checkpoint_epoch") if k in progress})
            try:
                atomic_write_json(done, record)
            except OSError as unwritten:  # a full disk: the job's own error is the news
                log.error("%s could not be written (%s): %s", done, unwritten, record["error"])
                # for the command's last line, which would point at a record that is not there
                # (or an earlier run's)
                err.unrecorded = f"{done} could not be written: {unwritten}"  # type: ignore[union-attr]
            else:
                if isinstance(err, Terminated):
                    log.warning("recorded as interrupted: %s", done)
            release_frames(err)
            raise
    log.info("summary\n%s", summary_table(record, done))
    return record


def release_frames(err: BaseException) -> None:
    """Drop the locals of the frames that `err` (and the exceptions it chains) went through,
    those that have returned: a multirun keeps each job's exception until the sweep ends (Hydra's
    result of the job), and with it, through its traceback, the failed job's super-net,
    optimizer and images on the GPU; the next jobs of the sweep, in this process under the
    default launcher, would start short of that memory (one OOM bringing on the next). The
    traceback still prints; its record was written already."""
    import gc

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        traceback.clear_frames(err.__traceback__)  # a running frame (ours) is skipped
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    gc.collect()
    import torch

    if torch.cuda.is_initialized():  # hand the freed blocks back for other processes too
        torch.cuda.empty_cache()


def describe_space(space: Any) -> str:
    """A space as metrics.json names it: its name, or for a part of it (an NB101 sub-space or
    random subset) its repr, which says which."""
    from nasheur.spaces import get_space

    return space.name if type(space) is type(get_space(space.name)) else repr(space)


def _run(
    cfg: Config,
    out: Path,
    chash: str,
    on_claimed: Callable[[], None] | None,
    partial: dict[str, Any] | None = None,
    *,
    training: str,
    note: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """The job's work; `training`: the config's training hash; `note` records its progress
    in its lock file (Holding.note)."""
    import torch

    from nasheur import metrics
    from nasheur.data import DeviceLoader, load_image_data
    from nasheur.evaluation import draw_pool, evaluate_archs
    from nasheur.fidelity import compensation, effective_epochs
    from nasheur.groundtruth.convert import source_fingerprint
    from nasheur.groundtruth.table import GroundTruthError
    from nasheur.samplers import build_sampler
    from nasheur.seeding import derive_seed, numpy_rng
    from nasheur.supernet import build_supernet, spec_from_config
    from nasheur.training import (
        allow_tf32,
        build_optimizer,
        cosine_lr,
        load_checkpoint,
        restore,
        resume_threads,
        save_checkpoint,
        train_epoch,
    )

    wall_start = time.perf_counter()
    device = pick_device(cfg.device.value)
    allow_tf32(device)
    pool_spaces = pool_spaces_of(cfg)
    space = pool_spaces[""]

    # a checkpoint of another config in this folder: refused before anything is written here
    ckpt = out / CHECKPOINT
    # the final checkpoint of a trained twin, which a sweep linked here: this job evaluates it
    twin, state = None, None
    if ckpt.is_file():
        twin = trained_in(out, training)
        trained_as = None if twin is None else twin["config_hash"]
        state = load_checkpoint(ckpt, device=device, config_hash=chash, trained_as=trained_as)
        if state["config_hash"] == chash:
            twin = None  # its own training: resumed as any job's
        else:
            log.info("evaluating the super-net trained in %s (%s)", twin["source"], TRAINED_IN)
    if on_claimed is not None:
        on_claimed()
    # ours, under the lock: writes that were killed
    for tmp in remove_stale_temporaries(out, JOB_FILES):
        log.info("removed %s, left by a write that was stopped", tmp.name)

    # the data, the ground truth and the pool first: they catch bad input before long work
    # (the data before a benchmark file's first, slower conversion)
    d = cfg.dataset
    try:
        data = load_image_data(
            d.name.value,
            train_portion=cfg.fidelity.train_portion,
            val_portion=d.val_portion,
            split_seed=d.split_seed,
            root=d.root,
            num_images=d.num_images,
            image_size=d.image_size,
            num_classes=d.num_classes,
        )
    except ValueError as err:  # a split that leaves a share empty: the message names the key
        if type(err) is not ValueError:  # a data file's own error (unsafe, unreadable) stays
            raise
        raise ConfigError(str(err)) from None
    # validate() checked the shares it expected; these are the data's own
    batch = cfg.fidelity.batch_size
    check_batch_fits(
        batch,
        (len(data.train_y), len(data.val_y)),
        cfg.fidelity.train_portion,
        d.val_portion,
    )
    gt_path, gt = read_ground_truth(cfg, space)
    # the file as it was read, not as it is after hours of training: a table rewritten (or
    # moved) meanwhile is then found changed, and evaluated again, by the next launch
    fingerprint = source_fingerprint(gt_path, gt.meta)
    data_differs = gt_data_differs(gt.meta.get("dataset"), cfg.dataset)
    if data_differs:
        log.warning(
            "%s was measured on other data than this job trains on (%s): the super-net is "
            "ranked against accuracies of another data set",
            gt_path,
            data_differs,
        )
    # per pool: the architectures searched, those of the (sub-)space that have GT (P>R counts
    # among them), and the pool drawn from them
    searched = searched_archs(cfg, gt_path, gt, pool_spaces)
    pools: dict[str, list[str]] = {}
    # a second pool's evaluation stream carries its number (the main pool's is as it always
    # was); every pool is drawn on the run's one pool stream, so that a random subset's
    # sub-space-k pool (Table 6's train Y / test N) is the very pool that the `disabled` job
    # of sub-space k and the same seed scores (train N / test N): the two rows then differ
    # by the training alone, not by another draw of architectures as well
    stream = {name: [i] if i else [] for i, name in enumerate(pool_spaces)}
    for name, sp in pool_spaces.items():
        rng = numpy_rng(cfg.seed, "pool")
        pools[name] = draw_pool(searched[name], cfg.eval.pool_size, rng)
        for k in pools[name]:  # now, not after training: an NB101 key's check is its form only
            try:
                sp.parse(k)
            except ValueError as err:
                raise GroundTruthError(f"{gt_path}: key {k!r}: {err}") from None
    pool = pools[""]
    atomic_write_json(
        out / POOL,
        {"ground_truth": str(gt_path), "keys": pool}
        | ({"extra": {k: v for k, v in pools.items() if k}} if len(pools) > 1 else {}),
    )

    if data.val_overlaps_train:
        log.warning(
            "fidelity.train_portion + dataset.val_portion > 1: the validation share overlaps the training share"
        )
    norm = {"mean": data.mean, "std": data.std}
    train_loader = DeviceLoader(
        data.train_x.to(device),
        data.train_y.to(device),
        batch_size=batch,
        augment=d.augment,
        **norm,
    )
    val_loader = DeviceLoader(
        data.val_x.to(device), data.val_y.to(device), batch_size=batch, augment=False, **norm
    )

    torch.manual_seed(derive_seed(cfg.seed, "init"))
    try:
        model = build_supernet(space.name, spec_from_config(cfg, data.num_classes)).to(device)
    except (RuntimeError, MemoryError, SystemError) as err:  # torch.OutOfMemoryError too
        if not _out_of_memory(err):
            raise
        f = cfg.fidelity
        said = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(
            f"the super-net of fidelity.channels={f.channels} and fidelity.layers={f.layers} "
            f"does not fit in the memory of {device} ({said}); use fewer channels or layers"
        ) from None
    if cfg.run.channels_last:  # the 4-d weights NHWC; convolutions then give NHWC outputs
        model = model.to(memory_format=torch.channels_last)
    p = cfg.protocol
    epochs = effective_epochs(p.epochs, cfg.fidelity)
    if cfg.fidelity.compensate_epochs and compensation(cfg.fidelity) > 1:
        # also where the product rounds back to protocol.epochs (a few epochs, a small cut)
        log.info(
            "fidelity.compensate_epochs: %d epochs instead of %d (x%.4g, rounded)",
            epochs,
            p.epochs,
            compensation(cfg.fidelity),
        )
    inert = wsbn_unused(cfg)
    if inert:  # a note, not a warning: DARTS-NDS's paper setting (Table 14) is such a case
        log.info("supernet.wsbn=true changes nothing here: %s", inert)
    optimizer = build_optimizer(model, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    sampler = build_sampler(cfg.sampler.name.value, space)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        history, start_epoch = restore(
            state, model=model, optimizer=optimizer, epochs=epochs, path=ckpt
        )
        threads = resume_threads(state, device)
        if threads is not None:
            log.info("%d CPU threads, as the run began with (the CPU's sums depend on it)", threads)
        # the model's values were copied out of it: a second copy of the super-net on the
        # device for the whole run otherwise (the momentum buffers are the optimizer's own)
        state = None
        log.info("resuming from %s after epoch %d of %d", ckpt, start_epoch, epochs)
    if partial is not None:
        partial["history"] = history  # the same list: each epoch's entry lands there too
        # where a resume starts, which run.checkpoint_every_s can leave behind the history
        partial.update(epochs=epochs, checkpoint_epoch=start_epoch)

    n_params = sum(t.numel() for t in model.parameters())
    steps = min(train_loader.steps_per_epoch, cfg.run.max_steps_per_epoch or 1 << 62)
    log.info(
        "%s super-net: %s parameters, %d training / %d validation images, batch %d, %d steps per epoch%s, device %s",
        space.name,
        f"{n_params:,}",
        len(data.train_y),
        len(data.val_y),
        batch,
        steps,
        f" (run.max_steps_per_epoch; {train_loader.steps_per_epoch} in the share)"
        if steps < train_loader.steps_per_epoch
        else "",
        device,
    )
    progress = EpochLog(total=epochs, done=start_epoch, note=note)
    if start_epoch:  # resumed: as far as its checkpoint got, until its next epoch ends
        progress.note(epoch=start_epoch, epochs=epochs)
    # run.checkpoint_every_s: a slow checkpoint (NB101's super-net: some 450 MB) is written
    # once that many seconds passed since the last one or the start; the epochs since repeat
    # exactly on resume, each epoch drawing from streams of its own
    checkpointed, saved = time.monotonic(), start_epoch
    for epoch in range(start_epoch, epochs):
        lr = cosine_lr(epoch, epochs, p.lr, p.lr_min)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(derive_seed(cfg.seed, "torch", epoch))
        stats = train_epoch(
            model,
            optimizer,
            train_loader,
            sampler,
            rng=numpy_rng(cfg.seed, "sampler", epoch),
            generator=torch.Generator(device=device).manual_seed(
                derive_seed(cfg.seed, "data", epoch)
            ),
            grad_clip=p.grad_clip,
            max_steps=cfg.run.max_steps_per_epoch,
            bf16=cfg.run.bf16,
            on_step=progress.steps(steps, cfg.run.log_every),
        )
        entry = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": stats.loss,
            "train_acc": stats.acc,
            "images": stats.images,
            "seconds": stats.seconds,
            "images_per_s": stats.images / max(stats.seconds, 1e-9),
        }
        history.append(entry)
        if not math.isfinite(stats.loss):  # diverged: this epoch is not saved
            raise FloatingPointError(
                f"training loss is {stats.loss} in epoch {epoch + 1}; lower protocol.lr?"
            )
        if epoch + 1 == epochs or time.monotonic() - checkpointed >= cfg.run.checkpoint_every_s:
            save_checkpoint(
                ckpt,
                model=model,
                optimizer=optimizer,
                epoch=epoch + 1,
                history=history,
                config_hash=chash,
            )
            checkpointed, saved = time.monotonic(), epoch + 1
            if partial is not None:
                partial["checkpoint_epoch"] = saved
        progress.epoch(entry, checkpoint=saved)

    bn_mode = resolve_bn_mode(cfg.eval.bn.value, p.bn_track)
    calib_loader = None
    if bn_mode == "recalibrate":
        calib_loader = DeviceLoader(  # the training share already on the device, no copy
            train_loader.images,
            train_loader.labels,
            batch_size=batch,
            augment=False,
            **norm,
        )
        if cfg.eval.recalibrate_batches > calib_loader.steps_per_epoch:
            log.warning(
                "eval.recalibrate_batches=%d, but the training share holds %d batches of %d: "
                "each architecture is recalibrated on those %d",
                cfg.eval.recalibrate_batches,
                calib_loader.steps_per_epoch,
                batch,
                calib_loader.steps_per_epoch,
            )
    # `shuffle` draws a subset per forward: one batch per forward and no captured graph (no
    # draw frozen in or replayed from one), so that the eval_speed keys, which are not part
    # of a job's identity, cannot change what it measures
    random_forward = cfg.supernet.dynamic_channels.value == "shuffle"  # NB101 only (validate)
    if random_forward and (cfg.run.eval_graphs or cfg.run.eval_pack > 1):
        log.info("dynamic_channels=shuffle: evaluating one batch per forward, without CUDA graphs")
    results: dict[str, dict[str, Any]] = {}
    eval_start = time.perf_counter()
    for name, keys in pools.items():
        log.info(
            "evaluating %d architectures%s (BN: %s)",
            len(keys),
            f" of {describe_space(pool_spaces[name])}" if name else "",
            bn_mode,
        )
        # evaluation's own random stream (`shuffle` draws its channel subsets from torch's):
        # a job resumed after its last epoch evaluates as the uninterrupted one does
        torch.manual_seed(derive_seed(cfg.seed, "evaluate", *stream[name]))
        supernet_acc = evaluate_archs(
            model,
            [pool_spaces[name].parse(k) for k in keys],
            val_loader,
            bn_mode=bn_mode,
            calib_loader=calib_loader,
            calib_batches=cfg.eval.recalibrate_batches,
            # the same calibration batches for every architecture of every pool
            calib_seed=derive_seed(cfg.seed, "calibrate"),
            progress=progress.evaluation(len(keys)),
            bf16=cfg.run.bf16,
            cuda_graphs=cfg.run.eval_graphs and device.type == "cuda" and not random_forward,
            streams=cfg.run.eval_streams,
            pack=1 if random_forward else cfg.run.eval_pack,
        )
        gt_acc = gt.lookup(keys)
        summary = metrics.summarize(
            supernet_acc,
            gt_acc,
            gt.lookup(searched[name]),
            threshold=cfg.metrics.skdt_threshold,
            top_n=cfg.metrics.top_n,
        )
        results[name] = {
            "metrics": summary,
            "untrained": metrics.is_untrained(summary["supernet_acc_mean"]),
            "archs": [
                {"key": k, "supernet_acc": float(s), "gt_acc": float(g)}
                for k, s, g in zip(keys, supernet_acc, gt_acc, strict=True)
            ],
            # the space searched, and its size: P>R's N, its architectures with GT
            "searched": {
                "space": describe_space(pool_spaces[name]),
                "architectures": len(searched[name]),
            },
        }
    eval_seconds = time.perf_counter() - eval_start
    main = results.pop("")
    train_seconds = sum(h["seconds"] for h in history)
    train_images = sum(h["images"] for h in history)
    record = {
        "metrics": main["metrics"],
        "untrained": main["untrained"],
        "archs": main["archs"],
        "history": history,
        "epochs": epochs,
        "eval": {
            "bn": bn_mode,
            "pool_size": len(pool),
            "val_images": val_loader.num_images,
            "searched": main["searched"],
        },
        "ground_truth": {
            "path": str(gt_path),
            "architectures": len(gt),
            "source": gt.source,
            # the table's header: protocol, and the source's sha256 for converted benchmarks
            "header": dict(gt.meta),
            # the file's contents, which the config hash (its path) does not cover: a completed
            # job evaluated against another file at the same path runs its evaluation again
            "fingerprint": fingerprint,
            **({"data_differs": data_differs} if data_differs else {}),
        },
        "data": {
            "train_images": len(data.train_y),
            "val_images": len(data.val_y),
            "val_overlaps_train": data.val_overlaps_train,
        },
        "timing": {
            "wall_seconds": time.perf_counter() - wall_start,
            "train_seconds": train_seconds,
            "train_images_per_s": train_images / max(train_seconds, 1e-9),
            "eval_seconds": eval_seconds,
            "eval_archs_per_s": sum(map(len, pools.values())) / max(eval_seconds, 1e-9),
        },
        "environment": {
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "parameters": n_params,
        },
    }
    if twin is not None:  # its training is the trained twin's, whose checkpoint it evaluated
        record["trained_in"] = str(twin["source"])
    if results:  # the second pools: the same fields as the main one's, by name
        record["extra_pools"] = results
    return record
