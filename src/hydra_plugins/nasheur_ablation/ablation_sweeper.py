"""The one-factor-at-a-time sweeper of nasheur's experiments (``hydra/sweeper=ablation``).

An experiment (``conf/experiment/*.yaml``) names the spaces it applies to, the seeds, and
*blocks*: each block sweeps one factor (the cartesian product of its keys' values), and the
sweep is the union of the blocks, times the spaces, times the seeds; everything else stays at
the space's baseline. A block may be limited to some spaces (``_spaces``). Values of the
low-fidelity keys may be relative to the space's baseline: ``base``, ``base-1``, ``base/2``.

Each space's ground truth comes from ``ground_truth.path`` or ``$NASHEUR_GT_<SPACE>``. Where
none of the experiment's spaces has one and the command line names no space (a fresh machine),
the sweep runs on the composed default, the embedded benchmark (if the experiment applies to
NB201, whose cells it has), and says so; otherwise, or where only some spaces have one, it
stops and names the missing variables.

Before launching anything it composes and validates every job, so a bad value fails the sweep
at once. Jobs whose folder already holds a completed ``metrics.json`` of the same config are
skipped; interrupted ones resume from their checkpoint and failed ones run again, so the same
command relaunched after a bad night finishes the sweep. A failing job does not stop the
others; the sweep reports the failures at the end.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

_RELATIVE = re.compile(r"^base(?:([-/*])(\d+))?$")


@dataclass
class AblationSweeperConf:
    _target_: str = "hydra_plugins.nasheur_ablation.ablation_sweeper.AblationSweeper"
    spaces: list[str] = field(default_factory=list)  # empty: the composed search space only
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    blocks: list[Any] = field(default_factory=list)  # [{key: [values], _spaces: [...]}, ...]
    max_batch_size: int | None = None  # jobs handed to the launcher at once (None: all)
    skip_completed: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper", name="ablation", node=AblationSweeperConf, provider="nasheur"
)


def _resolve(key: str, value: Any, baseline: DictConfig) -> Any:
    """A relative low-fidelity value (`base`, `base-1`, `base/2`) of one space, else `value`."""
    match = _RELATIVE.match(str(value))
    if not match:
        return value
    name = key.rpartition(".")[2]
    base = OmegaConf.select(baseline, name)
    if base is None:
        raise HydraException(f"{key}={value}: relative values need fidelity.baseline.{name}")
    op, n = match.group(1), int(match.group(2) or 0)
    if op is None:
        return base
    result = {"-": base - n, "*": base * n, "/": base // n}[op]
    return result


def expand(
    spaces: Sequence[str],
    seeds: Sequence[Any],
    blocks: Sequence[dict[str, Any]],
    baselines: dict[str, Any],
    extra: Sequence[Sequence[str]] = ((),),
    paper_space: dict[str, str] | None = None,
) -> list[list[str]]:
    """The jobs of a sweep: for every space, the union of its blocks (each the cartesian product
    of its keys' values, relative fidelity values resolved against the space's baseline), times
    the seeds, times the command line's own sweep (`extra`). Duplicates are dropped. A block's
    ``_spaces`` also admits a space whose ``paper_space`` is listed (embedded: nb201)."""
    jobs: list[list[str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for space in spaces:
        baseline = OmegaConf.create(baselines.get(space) or {})
        for block in blocks or [{}]:
            only = block.get("_spaces")
            family = (paper_space or {}).get(space, space)
            if only is not None and space not in only and family not in only:
                continue
            keys = [k for k in block if k != "_spaces"]
            for combo in itertools.product(*(block[k] for k in keys)):
                items = [
                    f"{k}={_fmt(_resolve(k, v, baseline))}"
                    for k, v in zip(keys, combo, strict=True)
                ]
                for seed in seeds:
                    for tail in extra:
                        job = [f"search_space={space}", *items, f"seed={seed}", *tail]
                        ident = tuple(sorted(dict(i.split("=", 1) for i in job).items()))
                        if ident not in seen:
                            seen.add(ident)
                            jobs.append(job)
    return jobs


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class AblationSweeper(Sweeper):
    def __init__(
        self,
        spaces: Sequence[str],
        seeds: Sequence[int],
        blocks: Sequence[Any],
        max_batch_size: int | None = None,
        skip_completed: bool = True,
    ) -> None:
        self.spaces = list(spaces)
        self.seeds = list(seeds)
        self.blocks = [dict(b) for b in blocks]
        self.max_batch_size = max_batch_size
        self.skip_completed = skip_completed
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------------ planning

    def _command_line(
        self, arguments: list[str]
    ) -> tuple[list[list[str]], list[str] | None, list[str] | None]:
        """The command line's own sweep (cartesian), and its search_space / seed restrictions."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        dims: list[list[str]] = []
        spaces = seeds = None
        for o in parser.parse_overrides(arguments):
            key = o.get_key_element()
            values = (
                list(o.sweep_string_iterator())
                if o.is_sweep_override()
                else [o.get_value_element_as_str()]
            )
            if o.is_sweep_override() and not o.is_discrete_sweep():
                raise HydraException(f"{key}: only lists of values can be swept here")
            if key == "search_space":
                spaces = values
            elif key == "seed":
                seeds = values
            else:
                dims.append([f"{key}={v}" for v in values])
        return [list(x) for x in itertools.product(*dims)], spaces, seeds

    def plan(self, arguments: list[str]) -> list[list[str]]:
        """Every job's overrides: blocks x spaces x seeds x the command line's own sweep."""
        assert self.config is not None
        from nasheur.spaces import space_info

        extra, cli_spaces, cli_seeds = self._command_line(arguments)
        spaces = cli_spaces or self._spaces_with_ground_truth()
        # each space's baseline as its jobs see it: with the experiment and the command line's
        # fixed overrides (fidelity.baseline.channels=64 makes base/2 mean 32)
        fixed = [o for dim in zip(*extra, strict=True) if len(set(dim)) == 1 for o in dim[:1]]
        baselines = {
            space: OmegaConf.to_container(self._baseline(space, fixed)) for space in spaces
        }
        family = {s: getattr(space_info(s), "paper_space", s) for s in spaces}
        return expand(spaces, cli_seeds or self.seeds, self.blocks, baselines, extra, family)

    def _spaces_with_ground_truth(self) -> list[str]:
        """The experiment's spaces; where none has GT here, the composed default (embedded),
        if the experiment applies to the space it stands in for (nb201)."""
        from nasheur.config import ground_truth_env, resolve_ground_truth
        from nasheur.spaces import space_info

        assert self.config is not None
        name = self.config.search_space.name  # an enum member in the typed config
        default = str(getattr(name, "value", name))
        if not self.spaces:
            return [default]
        if OmegaConf.select(self.config, "ground_truth.path") is not None:
            return self.spaces  # one file for every space: validation checks it fits
        missing = [s for s in self.spaces if resolve_ground_truth(s, None) is None]
        if not missing:
            return self.spaces
        envs = ", ".join(ground_truth_env(s) for s in missing)
        family = getattr(space_info(default), "paper_space", default)
        if len(missing) < len(self.spaces) or family not in self.spaces:
            raise HydraException(
                f"no ground truth for search_space {', '.join(missing)}: set {envs} (e.g. in "
                "launch/site.env), or restrict the sweep with search_space=<space>; nothing was "
                "launched"
            )
        log.warning(
            "none of this experiment's spaces (%s) has a ground truth here (%s unset): "
            "sweeping search_space=%s, the default, instead (README, 'The embedded benchmark')",
            ", ".join(self.spaces),
            envs,
            default,
        )
        return [default]

    def _baseline(self, space: str, overrides: list[str]) -> DictConfig:
        assert self.config is not None and self.hydra_context is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(
            self.config, [*overrides, f"search_space={space}"]
        )
        return cfg.fidelity.baseline

    def _check(self, jobs: list[list[str]]) -> list[tuple[list[str], Path, str]]:
        """Compose and validate every job before any runs; its folder and config hash.

        Jobs whose configs are the same (the same folder) run once."""
        from nasheur.config import ConfigError, config_hash, plain, to_config, validate

        assert self.config is not None and self.hydra_context is not None
        checked, errors, folders = [], [], set()
        for job in jobs:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job)
            folder = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            if folder in folders:  # two rows of one config (e.g. two blocks' baselines): one job
                continue
            folders.add(folder)
            with_hydra = OmegaConf.to_container(cfg, resolve=False)
            with_hydra.pop("hydra", None)
            try:
                typed = to_config(OmegaConf.create(with_hydra))
                validate(typed)
            except ConfigError as err:
                errors.append(f"  {' '.join(job)}: {err}")
                continue
            checked.append((job, folder, config_hash(plain(typed))))
        if errors:
            raise HydraException(
                f"{len(errors)} of {len(jobs)} jobs have a bad config; nothing was launched:\n"
                + "\n".join(errors[:20])
            )
        return checked

    # ------------------------------------------------------------------ running

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        jobs = self._check(self.plan(arguments))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        todo, done = [], 0
        manifest = []
        for job, folder, chash in jobs:
            state = _state(folder, chash)
            manifest.append(
                {
                    "overrides": job,
                    "folder": str(folder),
                    "config_hash": chash,
                    "state_at_launch": state,
                }
            )
            if state == "completed" and self.skip_completed:
                done += 1
            else:
                todo.append(job)
        _write_manifest(sweep_dir, manifest)
        log.info(
            "sweep of %d jobs: %d already completed, %d to run, in %s",
            len(jobs),
            done,
            len(todo),
            sweep_dir,
        )
        size = self.max_batch_size or max(len(todo), 1)
        results: list[JobReturn] = []
        for start in range(0, len(todo), size):
            results.extend(self.launcher.launch(todo[start : start + size], initial_job_idx=start))
        failed = [r for r in results if r.status == JobStatus.FAILED]
        if failed:
            lines = [f"  {' '.join(r.overrides)}: {r._return_value!r}" for r in failed[:20]]
            raise HydraException(
                f"{len(failed)} of {len(todo)} jobs failed (their metrics.json say why; the others "
                "completed). Run the same command again to retry them:\n" + "\n".join(lines)
            )
        return [results]


def _state(folder: Path, chash: str) -> str:
    path = folder / "metrics.json"
    if not path.is_file():
        return "interrupted" if (folder / "checkpoint.pt").is_file() else "new"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "broken"
    if record.get("config_hash") != chash:
        return "other-config"
    return str(record.get("status", "unknown"))


def _write_manifest(sweep_dir: Path, manifest: list[dict[str, Any]]) -> None:
    from nasheur.io import atomic_write_json

    atomic_write_json(sweep_dir / "sweep.json", {"jobs": manifest})
