"""``python -m nasheur [overrides]``: one super-net job, configured by Hydra.

Thin on purpose: compose, validate (before torch is imported, so a bad command line fails in
about a second), then hand the typed config to :func:`nasheur.job.run_job`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from nasheur.config import ConfigError, register_configs, register_resolvers, to_config, validate
from nasheur.io import atomic_path

register_configs()
register_resolvers()
log = logging.getLogger("nasheur")


def _choices(hc) -> dict[str, str | None]:
    """The option chosen in each of nasheur's own groups (Hydra's internals left out)."""
    return {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}


def _drop_empty_run_folder(folder: Path) -> None:
    """Remove the folder Hydra made for a job that never started (only its own files in it):
    a rejected command line should leave nothing behind."""
    if not folder.is_dir() or {p.name for p in folder.iterdir()} - {".hydra", "nasheur.log"}:
        return
    logging.shutdown()  # close the log file before it goes
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):  # runs/<space>/ too, if this was its only job
        folder.parent.rmdir()


CLAIMED = "claimed"  # a copy of Hydra's record of the job that owns the folder


def _keep_hydra_record(record: Path | None) -> None:
    """Copy Hydra's record (`.hydra/*.yaml`) of the job that now owns the folder to
    `.hydra/claimed/`, which Hydra never writes."""
    if record is None or not record.is_dir():
        return
    kept = record / CLAIMED
    kept.mkdir(exist_ok=True)
    for f in record.glob("*.yaml"):
        with atomic_path(kept / f.name) as tmp:
            shutil.copyfile(f, tmp)


def _restore_hydra_record(record: Path | None) -> bool:
    """Put back the owner's record that Hydra overwrote with a refused job's, if kept."""
    kept = None if record is None else record / CLAIMED
    if kept is None or not kept.is_dir():
        return False
    for f in kept.glob("*.yaml"):
        with atomic_path(record / f.name) as tmp:
            shutil.copyfile(f, tmp)
    return True


@hydra.main(version_base="1.3", config_path="pkg://nasheur.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    config = to_config(cfg)
    try:
        validate(config)
    except ConfigError as err:
        if hc.mode == RunMode.MULTIRUN:
            raise
        print(f"nasheur: config error: {err}", file=sys.stderr)
        _drop_empty_run_folder(Path(hc.runtime.output_dir))
        raise SystemExit(2) from None
    from nasheur.job import run_job  # imports torch
    from nasheur.training import CheckpointMismatch

    out = Path(hc.runtime.output_dir)
    # Hydra has written this job's config into the folder's `.hydra/` already: if the folder
    # holds another config's job, which is refused, its own record is put back
    hydra_record = None if hc.output_subdir is None else out / hc.output_subdir
    try:
        record = run_job(
            config,
            output_dir=out,
            choices=_choices(hc),
            on_claimed=lambda: _keep_hydra_record(hydra_record),
        )
    except CheckpointMismatch as err:
        if _restore_hydra_record(hydra_record):
            log.info("%s: put back the record of the folder's own job", hydra_record)
        if hc.mode == RunMode.MULTIRUN:
            raise
        print(f"nasheur: refused: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    return record["metrics"]["sparse_kendall_tau"]


if __name__ == "__main__":
    main()
