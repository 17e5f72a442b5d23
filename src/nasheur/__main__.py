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

register_configs()
register_resolvers()


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

    record = run_job(config, output_dir=hc.runtime.output_dir, choices=_choices(hc))
    return record["metrics"]["sparse_kendall_tau"]


if __name__ == "__main__":
    main()
