"""The super-net training protocol P_ws: SGD with momentum, cosine decay, gradient clipping,
cross-entropy, one step per batch (one sampled path, or FairNAS's passes averaged), and a
checkpoint at the end of every epoch."""

from __future__ import annotations

import collections
import contextlib
import errno
import gc
import math
import pickle
import reprlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.sgd import sgd as sgd_update

from nasheur.io import atomic_path
from nasheur.jobguard import usable_cpus
from nasheur.safe_pickle import (
    Deferred,
    UnsafePickleError,
    torch_refusal,
    torch_save_objects,
    zip_damage,
    zip_inflation,
)
from nasheur.samplers import Sampler

CHECKPOINT_FORMAT = 1


def cosine_lr(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """The learning rate of `epoch` (0-based): cosine from `lr` towards `lr_min`."""
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs))


def allow_tf32(device: torch.device) -> None:
    """On CUDA, TF32 matrix units (the speed of mixed precision, float32 range) and cuDNN
    autotuning; nothing elsewhere."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def build_optimizer(
    model: nn.Module, *, lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    # Parameters off the sampled path have no gradient in a step, and SGD skips them: their
    # weights, momentum buffers and weight decay stay as they were (single-path semantics).
    # A tensor of which the path uses a slice (NB101's vertex widths) is updated whole.
    # foreach: one multi-tensor kernel per update instead of a few per parameter (CPU too).
    opt = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True
    )
    if momentum:
        # SGD drops to a per-parameter loop whenever a parameter of the step has no momentum
        # buffer yet, which in single-path training is most steps. A zero buffer gives the
        # same first update (0 * momentum + grad = grad, exactly) and keeps the fast kernel.
        for group in opt.param_groups:
            for p in group["params"]:
                opt.state[p]["momentum_buffer"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format
                )
    return opt


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    steps: int
    seconds: float


class TrainStep:
    """One optimizer step of P_ws, the code that jobs run and `make bench` times.

    The step averages the gradients of the architectures the sampler returns for the batch
    (one for single-path sampling, several for FairNAS), clips their norm and updates. It
    reads nothing back to the host: the loss (times the batch size) and the hits it returns
    stay on the device. It leaves every gradient None, as it found them.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        grad_clip: float,
        bf16: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.bf16 = bf16
        # model.parameters() walks every module on each call: thousands of Python calls per
        # step with a super-net's hundreds of modules, host time that a GPU step cannot hide
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._clean = False  # whether every gradient is None (the first step makes sure)
        self._update_path = updates_path(optimizer, self.params)

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, archs: list[Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._clean:
            self.optimizer.zero_grad(set_to_none=True)
        self._clean = False
        loss_sum: torch.Tensor | None = None
        hits: torch.Tensor | None = None
        for arch in archs:
            logits, loss = forward_loss(self.model, x, y, arch, bf16=self.bf16)
            # FairNAS averages its passes; one path's loss is divided by nothing (the same
            # gradient, exactly, without a division and its backward on the GPU's queue)
            (loss / len(archs) if len(archs) > 1 else loss).backward()
            step_loss = loss.detach() * len(y)
            step_hits = (logits.detach().argmax(1) == y).sum()
            loss_sum = step_loss if loss_sum is None else loss_sum + step_loss
            hits = step_hits if hits is None else hits + step_hits
        # the sampled path's parameters: those with a gradient, listed once for the clipping,
        # the update and the release, where each of `clip_grad_norm_`, `SGD.step` and
        # `zero_grad` would walk all of the super-net's parameters again
        path = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in path]
        clip_grad_norm(grads, self.grad_clip)
        if self._update_path:
            sgd_step(self.optimizer, path, grads)
        else:
            self.optimizer.step()
        for p in path:
            p.grad = None
        self._clean = True
        assert loss_sum is not None and hits is not None, "a step needs an architecture"
        return loss_sum, hits


def forward_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, arch: Any, *, bf16: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The super-net's logits for `arch` and their cross-entropy loss, the forward under bf16
    autocast if `bf16`. Without it no autocast context at all: a disabled one still costs
    some 25 Python calls per step."""
    if bf16:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            logits = model(x, arch)
    else:
        logits = model(x, arch)
    # the loss in float32 at least (bf16 logits are cast up; float64 stays)
    return logits, F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y)


@torch.no_grad()
def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> None:
    """Scale `grads` in place so that their joint L2 norm is at most `max_norm`: the
    arithmetic of ``torch.nn.utils.clip_grad_norm_(foreach=True)`` on one device (the norm of
    the per-tensor norms; factor ``min(1, max_norm / (norm + 1e-6))``), without a host sync."""
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


def updates_path(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> bool:
    """Whether :func:`sgd_step` can stand for ``optimizer.step()``: a plain (not fused, not
    differentiable) SGD of one group that holds exactly `params` (else the optimizer's own
    step decides what moves)."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    held = {id(p) for p in group["params"]}
    return not (group.get("fused") or group.get("differentiable")) and held == set(map(id, params))


@torch.no_grad()
def sgd_step(
    optimizer: torch.optim.Optimizer, params: list[torch.Tensor], grads: list[torch.Tensor]
) -> None:
    """The update of ``torch.optim.SGD.step`` (its own functional form, so the same
    arithmetic) on `params` alone (see :func:`updates_path`)."""
    if not params:
        return
    group = optimizer.param_groups[0]
    state = optimizer.state
    # as SGD.step: buffers only with momentum (no empty state entries without)
    bufs = [state[p].get("momentum_buffer") for p in params] if group["momentum"] else []
    sgd_update(
        params,
        grads,
        bufs,
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        lr=group["lr"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        maximize=group["maximize"],
        foreach=group["foreach"],
        has_sparse_grad=False,
    )
    if bufs:  # buffers that the first update made (build_optimizer primes them)
        for p, buf in zip(params, bufs, strict=True):
            state[p]["momentum_buffer"] = buf


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Any,
    sampler: Sampler,
    *,
    rng: np.random.Generator,
    generator: torch.Generator,
    grad_clip: float,
    max_steps: int | None = None,
    bf16: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> EpochStats:
    """One pass over the training share; one :class:`TrainStep` per batch.

    Losses and hits accumulate on the device: the host reads them once, at the end.
    ``on_step(steps done)`` follows every step (a progress display; it reads nothing back).
    """
    model.train()
    start = time.perf_counter()
    step_fn = TrainStep(model, optimizer, grad_clip=grad_clip, bf16=bf16)
    loss_sum = torch.zeros((), device=step_fn.params[0].device)
    hits = torch.zeros((), device=loss_sum.device, dtype=torch.long)
    images = steps = 0
    for step, (x, y) in enumerate(loader.train_batches(generator)):
        if max_steps is not None and step >= max_steps:
            break
        archs = sampler.step_archs(rng)
        step_loss, step_hits = step_fn(x, y, archs)
        loss_sum += step_loss
        hits += step_hits
        images += len(y) * len(archs)
        steps += 1
        if on_step is not None:
            on_step(steps)
    loss_value, hit_value = float(loss_sum), int(hits)  # the epoch's one host sync
    return EpochStats(
        loss=loss_value / max(images, 1),
        acc=hit_value / max(images, 1),
        images=images,
        steps=steps,
        seconds=time.perf_counter() - start,
    )


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
    config_hash: str,
) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "config_hash": config_hash,
        "epoch": epoch,  # epochs completed
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": history,
        # CPU kernels split their sums by thread: a resumed run takes the count it began with
        THREADS: torch.get_num_threads(),
    }
    failed = None
    try:
        # torch's writer of a path: no Python runs while it writes, so a Ctrl-C waits for
        # the write to end (one through a Python file would break it off as a failed write)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as exc:  # torch says RuntimeError for a failed write
        failed = _write_failure(exc, path)
    if failed is not None:
        # raised out here, without the write's exception: its frames hold torch's writer and
        # with it the failed temporary, removed but open, and a full disk full; gone now
        gc.collect()
        raise CheckpointWriteError(failed)


def _write_failure(exc: BaseException, path: Path) -> str:
    """What a failed checkpoint write says: the file and the error, and where the error is
    that of a full disk, a quota or a file size limit (torch's words for them: "unexpected
    pos"), the free space."""
    said = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    said = said.strip().splitlines()[0] if said.strip() else "?"
    code = exc.errno if isinstance(exc, OSError) else None
    if code in (errno.ENOSPC, errno.EDQUOT):
        question = "is the disk full or over quota?"
    elif code == errno.EFBIG:  # the process's file size limit (ulimit -f), or the file system's
        question = "is the file over a size limit (ulimit -f)?"
    elif code is None and "unexpected pos" in str(exc):  # torch's words for any of them
        question = "is the disk full or over quota, or the file over a size limit (ulimit -f)?"
    else:
        question = ""
    hint = ""
    if question:
        try:
            free = f"{shutil.disk_usage(path.parent).free:,} bytes free there; "
        except OSError:
            free = ""
        hint = f"; {free}{question}"
    return (
        f"{path}: the checkpoint could not be written ({type(exc).__name__}: {said}){hint}"
        " An earlier checkpoint, if any, stands"
    )


# the checkpoint's record of torch's CPU threads (absent in checkpoints of earlier versions)
THREADS = "threads"


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a quota, a file size limit)."""


def resume_threads(state: dict[str, Any], device: torch.device) -> int | None:
    """On the CPU, set torch's threads to the count the checkpointed run used, where it
    recorded one and it differs: the sums of CPU kernels depend on it, and a resumed run must
    give the numbers of one that was never stopped. At most the CPUs this process may use
    (a checkpoint moved to a smaller allocation). The count set (None: nothing changed);
    :func:`threads_kept` puts the count back when the job ends."""
    threads = state.get(THREADS)
    if device.type != "cpu" or isinstance(threads, bool) or not isinstance(threads, int):
        return None
    threads = min(threads, usable_cpus())
    if threads < 1 or threads == torch.get_num_threads():
        return None
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def threads_kept() -> Iterator[None]:
    """torch's thread count as it was before the block, after it: one job's resumed count
    (:func:`resume_threads`) must not carry over to the next job of a sweep in this process."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class CheckpointMismatch(RuntimeError):
    """The folder's checkpoint belongs to another config: its files are left alone."""


class UnreadableCheckpoint(RuntimeError):
    """The folder's checkpoint is damaged or not a nasheur checkpoint (the job fails)."""


# the one global of a checkpoint's pickle besides torch's (a state dict's class)
_CHECKPOINT_GLOBALS = {("collections", "OrderedDict"): collections.OrderedDict}


def _refused(path: Path, reason: str) -> UnreadableCheckpoint:
    return UnreadableCheckpoint(
        f"{path}: refused, damaged or holding what a checkpoint of nasheur never holds "
        f"(nothing in it was run: {reason}); delete it to restart the job"
    )


def load_checkpoint(
    path: Path, *, device: torch.device, config_hash: str, trained_as: str | None = None
) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects (``weights_only``).

    A checkpoint of another config is refused rather than mixed into this run, except that of
    `trained_as`: a trained twin's config hash, whose training this job's is, step for step
    (:func:`nasheur.reuse.trained_in`).
    """
    packed = zip_inflation(path)
    if packed:
        raise UnreadableCheckpoint(
            f"{path}: refused, not as torch.save writes it ({packed}); nothing in it was read. "
            "Delete it to restart the job from its first epoch"
        )
    damaged = zip_damage(path)
    if damaged:
        raise UnreadableCheckpoint(
            f"{path}: damaged, its bytes are not those written ({damaged}); delete it to "
            "restart the job from its first epoch"
        )
    try:
        # through the allow-list first, torch's globals as placeholders: torch.load's own list
        # takes more (bytearray(n) allocates n bytes the file does not hold), and a file the
        # allow-list cannot read through is not left to torch's other reader
        torch_save_objects(path, _CHECKPOINT_GLOBALS, defer=Deferred("torch"))
        state = torch.load(path, map_location=device, weights_only=True)
    except UnsafePickleError as exc:  # a global off the allow-list; out of memory
        said = str(exc).removeprefix(f"{path}: ")
        raise _refused(
            path, f"the global {'.'.join(exc.refused)}" if exc.refused else said
        ) from None
    except pickle.UnpicklingError as exc:  # torch's refusal, or bytes no pickle has
        raise _refused(path, torch_refusal(exc)) from None
    except Exception as exc:  # a truncated or damaged file (torch says RuntimeError, EOFError)
        # the advice first: a sweep's summary cuts a long line, and torch's can run long
        said = (str(exc).strip().splitlines() or [""])[0]
        said = said if len(said) <= 200 else said[:200] + "..."
        raise UnreadableCheckpoint(
            f"{path}: unreadable checkpoint; delete it to restart the job from its first epoch "
            f"({type(exc).__name__}: {said})"
        ) from None
    if not isinstance(state, dict):
        raise UnreadableCheckpoint(
            f"{path}: a {type(state).__name__}, not a nasheur checkpoint; delete it to restart "
            "the job from its first epoch"
        )
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(
            f"{path}: unknown checkpoint format {state.get('format')!r} (this nasheur writes "
            f"format {CHECKPOINT_FORMAT}): not a checkpoint of this version; delete it, or move "
            "it aside, to restart the job from its first epoch"
        )
    if state.get("config_hash") not in (config_hash, trained_as):
        raise CheckpointMismatch(
            f"{path} was written by a run with another config (hash {state.get('config_hash')}, "
            f"this run {config_hash}); refusing to resume into it. Use another output folder "
            "(hydra.run.dir=...) or delete the checkpoint."
        )
    parts = {"model": dict, "optimizer": dict, "history": list, "epoch": int}
    wrong = [k for k, kind in parts.items() if not isinstance(state.get(k), kind)]
    if wrong:
        raise UnreadableCheckpoint(
            f"{path}: no valid {', '.join(wrong)} in it; delete it to restart the job from "
            "its first epoch"
        )
    return state


# what a checkpoint's history entry always holds (job.py writes it; the record sums them)
HISTORY_KEYS = ("epoch", "images", "seconds")


def restore(
    state: dict[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    path: Path,
) -> tuple[list[dict[str, Any]], int]:
    """Put a checkpoint read by :func:`load_checkpoint` into `model` and `optimizer`, and
    return its history and the number of epochs it completed.

    Its config hash matched, so whatever does not fit (another super-net's tensors, an epoch
    count outside 0..`epochs`, a history that is not one entry per epoch) is a damaged file:
    refused before any training, with the advice of the other refusals."""

    def refuse(what: str) -> UnreadableCheckpoint:
        return UnreadableCheckpoint(
            f"{path}: {what}; delete it to restart the job from its first epoch"
        )

    done, history = state["epoch"], state["history"]
    if isinstance(done, bool) or not 0 <= done <= epochs:
        raise refuse(f"epoch {done!r} is not a count of this job's {epochs} epochs")
    wrong = [
        i
        for i, h in enumerate(history, 1)
        if not isinstance(h, dict)
        or h.get("epoch") != i
        or any(not isinstance(h.get(k), (int, float)) for k in HISTORY_KEYS)
    ]
    if len(history) != done or wrong:
        raise refuse(
            f"its history does not list epochs 1..{done} (entry {wrong[0]})"
            if wrong
            else f"its history has {len(history)} entries for {done} epochs"
        )
    for name, tensor in state["model"].items():  # a job never saves a diverged epoch
        floating = isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
        if floating and not bool(torch.isfinite(tensor).all()):
            raise refuse(f"its tensor {name} holds NaN or infinity")
    # the optimizer was built from this config: a checkpoint of the same hash restores its
    # buffers, never other settings (the schedule sets the lr of each epoch)
    settings = [_settings(g) for g in optimizer.param_groups]
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        # (AttributeError: an optimizer state that is no dict of dicts, read by torch's loader)
        first = str(exc).strip().splitlines()[:2]
        raise refuse(f"its tensors do not fit this super-net ({' '.join(first)})") from None
    # the settings both name: another torch version may add or drop a key
    changed = sorted(
        k
        for a, b in zip((_settings(g) for g in optimizer.param_groups), settings, strict=True)
        for k in a.keys() & b.keys()
        if a[k] != b[k]
    )
    if changed:
        raise refuse(f"its optimizer's {', '.join(changed)} differ from this config's")
    names = {p: n for n, p in model.named_parameters()}
    for p, buffers in optimizer.state.items():
        if p not in names:  # torch keeps a state whose key is no parameter index as it is
            raise refuse(f"its optimizer holds a state for {reprlib.repr(p)}, no parameter of it")
        if not isinstance(buffers, dict):
            raise refuse(
                f"the optimizer state of {names[p]} is {reprlib.repr(buffers)}, no buffers"
            )
        for key, buf in buffers.items():
            if not isinstance(buf, torch.Tensor) or not buf.is_floating_point():
                continue
            if key == "momentum_buffer" and buf.shape != p.shape:
                raise refuse(
                    f"the momentum buffer of {names.get(p, '?')} has shape {tuple(buf.shape)}, "
                    f"its parameter {tuple(p.shape)}"
                )
            if not bool(torch.isfinite(buf).all()):
                raise refuse(f"the {key} of {names.get(p, '?')} holds NaN or infinity")
    return list(history), done


def _settings(group: dict[str, Any]) -> dict[str, Any]:
    """A parameter group's settings, without its parameters and the scheduled lr."""
    return {k: v for k, v in group.items() if k not in ("params", "lr", "initial_lr")}
