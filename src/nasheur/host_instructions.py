"""``python -m nasheur.host_instructions``: the host's work per training step, counted in
instructions on a CPU.

On a GPU the step is bound by the host, which issues it (Python, PyTorch's dispatcher,
autograd). Wall time on a CPU mixes that work with the arithmetic and with whatever else the
machine runs, and the benchmark's operator count is only a proxy (a `detach` counts like a
convolution and launches no kernel). Instructions executed are exact: callgrind counts them,
and other processes do not change the count.

For each space it builds the super-net of the space's defaults with a few channels, trains a
few warm-up steps on tiny images, then counts the instructions of ``--steps`` more steps of
the same sampled paths (:class:`nasheur.training.TrainStep`, the job's step), with callgrind
collecting only around those steps. With so little arithmetic the count is mostly the
framework's work. Two versions of the code compare by running this in each.

Needs valgrind (``callgrind`` and ``callgrind_control`` on PATH). Everything runs some 50
times slower under it: about a minute per space with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasheur.bench import fast_step, paper_settings, seeded_supernet
from nasheur.cli_args import at_least, file_path
from nasheur.io import atomic_write_json
from nasheur.spaces import get_space
from nasheur.supernet import SupernetSpec

CHANNELS = 2  # few channels, tiny images: little arithmetic next to the framework's work
# but enough for every vertex of an NB101 cell, whose output channels split over up to 5
CHANNELS_AT_LEAST = {"nb101": 5}
IMAGE = 8  # pixels; two reductions leave 2 x 2
BATCH = 2
_TOTALS = re.compile(r"^totals:\s*(\d+)", re.MULTILINE)


def callgrind_totals(text: str) -> int:
    """The instruction count of a callgrind output file (its ``totals:`` line)."""
    match = _TOTALS.search(text)
    if match is None:
        raise ValueError("no 'totals:' line: not a complete callgrind output file")
    return int(match.group(1))


def tools() -> tuple[str, str]:
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise RuntimeError(
            "counting instructions needs valgrind's callgrind and callgrind_control on PATH "
            "(Debian: apt install valgrind)"
        )
    return valgrind, control


def count(space: str, steps: int, warmup: int) -> dict[str, Any]:
    """Instructions per training step of `space`'s super-net (a child under callgrind)."""
    valgrind, _ = tools()
    spec = replace(
        paper_settings(space).spec, channels=max(CHANNELS, CHANNELS_AT_LEAST.get(space, 0))
    )
    with tempfile.TemporaryDirectory(prefix="nasheur-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",  # the child turns collection on around its counted steps
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "nasheur.host_instructions",
            "--child",
            json.dumps({"space": space, "spec": asdict(spec), "steps": steps, "warmup": warmup}),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"callgrind run for {space} failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        total = callgrind_totals(out.read_text())
    return {
        "instructions_per_step": total / steps,
        "steps": steps,
        "warmup": warmup,
        "spec": asdict(spec),
        "batch_size": BATCH,
        "image_size": IMAGE,
    }


def _collect(control: str, on: bool) -> None:
    subprocess.run(
        [control, "-i", "on" if on else "off", str(os.getpid())], check=True, capture_output=True
    )


def _child(job: dict[str, Any]) -> None:
    """Runs under callgrind: warm-up steps uncounted, then the counted ones."""
    _, control = tools()
    torch.set_num_threads(1)  # one thread: the count of one host thread's work
    space = get_space(job["space"])
    model = seeded_supernet(job["space"], SupernetSpec(**job["spec"]), torch.device("cpu"))
    model.train()
    step = fast_step(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=generator)
    y = torch.randint(0, 10, (BATCH,), generator=generator)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(job["warmup"] + job["steps"])]
    for arch in archs[: job["warmup"]]:
        step(x, y, [arch])
    _collect(control, True)
    for arch in archs[job["warmup"] :]:
        step(x, y, [arch])
    _collect(control, False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nasheur.host_instructions", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--spaces", nargs="+", default=["nb201"])
    p.add_argument(
        "--steps", type=at_least(1), default=20, help="counted steps (default: %(default)s)"
    )
    p.add_argument("--warmup", type=at_least(1), default=10, help="uncounted first steps")
    p.add_argument("--out", type=file_path, default="host_instructions.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return 0
    for name in args.spaces:
        try:  # an unknown name fails here, before minutes under valgrind
            get_space(name)
        except KeyError as err:
            p.error(str(err))
    try:
        tools()
    except RuntimeError as err:
        p.error(str(err))
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "spaces": {},
    }
    for name in args.spaces:
        entry = count(name, args.steps, args.warmup)
        report["spaces"][name] = entry
        atomic_write_json(args.out, report)  # after each space: a later failure loses none
        print(
            f"{name}: {entry['instructions_per_step'] / 1e6:.2f} M instructions per step "
            f"({args.steps} steps; {entry['spec']['channels']} channels, batch {BATCH} of "
            f"{IMAGE}-pixel images)",
            file=sys.stderr,
        )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
