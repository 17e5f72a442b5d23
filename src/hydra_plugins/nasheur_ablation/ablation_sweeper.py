"""The one-factor-at-a-time sweeper of nasheur's experiments (``hydra/sweeper=ablation``).

An experiment (``conf/experiment/*.yaml``) names the spaces it applies to, the seeds, and
*blocks*: each block sweeps one factor (the cartesian product of its keys' values), and the
sweep is the union of the blocks, times the spaces, times the seeds; everything else stays at
the space's baseline. A block may be limited to some spaces (``_spaces``). Values of the
low-fidelity keys may be relative to the space's baseline: ``base``, ``base-1``, ``base/2``;
on the command line too, written as a sweep (``fidelity.channels=base/2,base``, or
``choice(base/2)`` for one: Hydra checks a plain value against the schema before the sweeper
sees it). One sweep runs one experiment: ``+experiment=a,b`` is refused.
It is the default sweeper (``conf/config.yaml``): without an experiment (no blocks, no spaces,
no seeds) a sweep is the command line's own, at the composed space and seed unless
``search_space=`` or ``seed=`` list others.

Each space's ground truth comes from ``ground_truth.path`` or ``$NASHEUR_GT_<SPACE>``. Where
none of the experiment's spaces has one and the command line names no space (a fresh machine),
a sweep run here runs on the composed default, the embedded benchmark (if the experiment
applies to NB201, whose cells it has), and says so; otherwise (a sweep sent to SLURM too), or
where only some spaces have one, it stops and names the missing variables.

Values that the command line gives for a key that a block sweeps restrict the sweep when the
experiment lists them all (``+experiment=bn_ablation protocol.bn_track=true`` runs the two
``bn_track=true`` rows, each job listed with its one value; a block or space without them
runs nothing), as ``search_space=`` and ``seed=`` restrict the spaces and seeds; a value off
the experiment's list replaces the key's values in every block (:func:`expand`). A key inside
a swept group (``sampler.name`` where blocks sweep ``sampler``) is refused: the group's option
names it.

Before launching anything it composes and validates every job, so a bad value fails the sweep
at once, and reads what the jobs to run would read first (their data, ground truth and pool
size; their device where they run here), so bad input does too. Jobs whose folder already
holds a completed ``metrics.json`` of the same config are skipped (the job would return at once anyway; deleting its folder runs it again), and jobs
whose folder a running job holds (``job.lock``: another launch's copy) are left to it;
interrupted ones resume from their checkpoint and failed ones run again, so the same command
relaunched after a bad night finishes the sweep. A job that a sibling sweep
(another experiment) completed is copied, not trained again (:mod:`nasheur.reuse`).
``sweep.json`` merges the jobs of every launch into the sweep folder (keyed by folder, the
latest launch's state wins). A failing job does not stop the others; the sweep ends with a
summary (what completed, what failed, where the results are and how to read them). The
sweeper's own errors end it with one message and exit status 2 (a bad plan, nothing launched)
or 1 (jobs that did not complete).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.nasheur_ablation.submitit_arrays import map_array_wrapped
from nasheur.fidelity import LEVEL, resolve_level
from nasheur.io import atomic_path, atomic_write_json, read_json
from nasheur.jobguard import (
    CHECKPOINT,
    METRICS,
    FolderLocked,
    NoResult,
    Terminated,
    describe_holder,
    exclusive,
    folder_holder,
    stop_on_sigterm,
)
from nasheur.results.settings import natural_key
from nasheur.reuse import (
    LEFT,
    MANIFEST,
    SUBMITTED,
    Claims,
    TrainedTwins,
    adopt,
    adopt_training,
    completed_twin,
    listed_jobs,
    manifest_key,
    running_twin,
    stuck_reason,
    trained_elsewhere_now,
)

log = logging.getLogger(__name__)

MANIFEST_LOCK = ".sweep.json.lock"
RUNNING = "running"  # the state of a job whose folder a running job holds


class SweepError(HydraException):
    """An error of the sweep itself: ``sweep`` prints it as one message and exits with
    `status` (2: the plan is wrong and nothing was launched; 1: jobs did not complete)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


# the SLURM profile's whole-number options, the site variable of each, and their least value
SLURM_COUNTS = (
    ("gpus_per_node", "NASHEUR_SLURM_GPUS", 1),
    ("cpus_per_task", "NASHEUR_SLURM_CPUS", 1),
    ("mem_gb", "NASHEUR_SLURM_MEM_GB", 1),
    ("timeout_min", "NASHEUR_SLURM_TIME_MIN", 1),
    ("array_parallelism", "NASHEUR_SLURM_ARRAY_PARALLELISM", 1),
    ("max_num_timeout", "NASHEUR_SLURM_MAX_NUM_TIMEOUT", 0),
)


@dataclass
class AblationSweeperConf:
    _target_: str = "hydra_plugins.nasheur_ablation.ablation_sweeper.AblationSweeper"
    spaces: list[str] = field(default_factory=list)  # empty: the composed search space only
    seeds: list[int] | None = None  # None: the composed seed (seed=0,1 on the command line wins)
    blocks: list[Any] = field(default_factory=list)  # [{key: [values], _spaces: [...]}, ...]
    max_batch_size: int | None = None  # jobs handed to the launcher at once (None: all)
    reuse: bool = True  # copy a job that another sweep completed instead of training it again
    # look at each job's CIFAR-10, ground truth (and pool size) and, run here, device before
    # launching (false: files only on the compute nodes)
    check_data: bool = True
    # print the checked plan (each job, its folder and what a launch would do) and stop
    dry_run: bool = False


ConfigStore.instance().store(
    group="hydra/sweeper", name="ablation", node=AblationSweeperConf, provider="nasheur"
)


def _resolve(key: str, value: Any, baseline: DictConfig) -> Any:
    """A level relative to one space's baseline (`base`, `base-1`, `base/2`:
    :func:`nasheur.fidelity.resolve_level`) as its value, else `value`."""
    if not (isinstance(value, str) and LEVEL.fullmatch(value)):
        return value
    name = key.rpartition(".")[2]
    base = OmegaConf.select(baseline, name)
    if base is None:
        raise SweepError(f"{key}={value}: relative values need fidelity.baseline.{name}")
    try:
        return resolve_level(value, base)
    except ValueError as err:
        raise SweepError(f"{key}={value}: {err}") from None


def block_applies(block: dict[str, Any], space: str, family: str) -> bool:
    """Whether an experiment's block sweeps `space`: it names no ``_spaces``, or names the
    space or the paper space it stands in for (`family`: nb201 for embedded)."""
    only = block.get("_spaces")
    return only is None or space in only or family in only


def expand(
    spaces: Sequence[str],
    seeds: Sequence[Any],
    blocks: Sequence[dict[str, Any]],
    baselines: dict[str, Any],
    extra: Sequence[Sequence[str]] = ((),),
    paper_space: dict[str, str] | None = None,
    pinned: dict[str, Sequence[Any]] | None = None,
) -> list[list[str]]:
    """The jobs of a sweep: for every space, the union of its blocks (each the cartesian product
    of its keys' values, relative fidelity values resolved against the space's baseline), times
    the seeds, times the command line's own sweep (`extra`). Duplicates are dropped. A block's
    ``_spaces`` also admits a space whose ``paper_space`` is listed (embedded: nb201).

    `pinned` holds the command line's values of keys that blocks sweep. Where every one of them
    is a value the experiment lists (in some block of some space, levels resolved), they
    restrict the sweep, as ``search_space=`` and ``seed=`` do: each block keeps its own values
    among them, and a block (or space) with none of them runs nothing. Otherwise (a value off
    the experiment's list) they replace every block's values of the key, and a block without
    the key sweeps them too, so that every job names each key once."""
    jobs: list[list[str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    baseline_of = {s: OmegaConf.create(baselines.get(s) or {}) for s in spaces}

    def applies(block: dict[str, Any], space: str) -> bool:
        return block_applies(block, space, (paper_space or {}).get(space, space))

    def held(block: dict[str, Any], space: str, key: str, values: Sequence[Any]) -> list[Any]:
        """The block's values of `key` that the command line names (as the jobs spell them)."""
        wanted = {_fmt(_resolve(key, v, baseline_of[space])) for v in values}
        return [
            v for v in block.get(key, []) if _fmt(_resolve(key, v, baseline_of[space])) in wanted
        ]

    every = [(b, s) for s in spaces for b in blocks or [{}] if applies(b, s)]
    restricts = {
        key: all(any(held(b, s, key, [v]) for b, s in every) for v in values)
        for key, values in (pinned or {}).items()
    }
    for space in spaces:
        baseline = baseline_of[space]
        for block in blocks or [{}]:
            if not applies(block, space):
                continue
            block = dict(block)
            for key, values in (pinned or {}).items():
                block[key] = held(block, space, key, values) if restricts[key] else list(values)
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
    """A value as Hydra's override grammar reads it back."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _names_levels(o: Override) -> bool:
    """Whether the command line gives a low-fidelity key levels (``fidelity.channels=base/2,
    base``), which only the sweeper can resolve, against each space's baseline."""
    key = o.key_or_group
    if not key.startswith("fidelity.") or key.startswith("fidelity.baseline.") or o.is_delete():
        return False
    values = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
    return any(isinstance(v, str) and LEVEL.fullmatch(v) for v in values)


def _said(err: BaseException) -> str:
    from nasheur.config import composition_said  # nasheur.config imports this module

    return composition_said(err)


class AblationSweeper(Sweeper):
    def __init__(
        self,
        spaces: Sequence[str],
        seeds: Sequence[int] | None,
        blocks: Sequence[Any],
        max_batch_size: int | None = None,
        reuse: bool = True,
        check_data: bool = True,
        dry_run: bool = False,
    ) -> None:
        self.spaces = list(spaces)
        self.seeds = None if seeds is None else list(seeds)  # None: the composed seed
        self.blocks = [dict(b) for b in blocks]
        self.max_batch_size = max_batch_size
        self.reuse = reuse
        self.check_data = check_data
        self.dry_run = dry_run
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        from nasheur.config import composed

        composed()  # no job process inherits the command's HYDRA_FULL_ERROR
        self.config = config
        self.hydra_context = hydra_context
        try:
            self.launcher = Plugins.instance().instantiate_launcher(
                hydra_context=hydra_context, task_function=task_function, config=config
            )
        except Exception as err:  # a bad NASHEUR_SLURM_* value: the variable, in one line
            cause: BaseException | None = err
            while cause is not None and not str(cause).startswith("NASHEUR_"):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            sys.stdout.flush()
            print(f"nasheur: config error: {cause}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    # ------------------------------------------------------------------ planning

    def _swept_keys(self) -> set[str]:
        return {k for block in self.blocks for k in block if k != "_spaces"}

    def _command_line(
        self, arguments: list[str]
    ) -> tuple[list[list[str]], list[str] | None, list[str] | None, dict[str, list[Any]]]:
        """The command line's own sweep (cartesian), its search_space / seed restrictions, and
        its values of the keys that the experiment's blocks sweep, or that name levels
        (``fidelity.channels=base/2,base``: resolved per space, as the blocks' are), typed, in
        order."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        swept = self._swept_keys()
        dims: dict[str, list[str]] = {}  # a key given twice: the last value, as Hydra applies it
        pinned: dict[str, list[Any]] = {}
        spaces = seeds = None
        for o in parser.parse_overrides(arguments):
            key = o.get_key_element()
            if o.is_sweep_override() and not o.is_discrete_sweep():
                raise SweepError(f"{key}: only lists of values can be swept here")
            if o.key_or_group == "experiment" and o.is_sweep_override():
                # Hydra composes the sweeper (blocks, spaces, seeds) without a swept experiment:
                # each job would run its baseline alone, outside this sweep's folder
                names = list(o.sweep_string_iterator())
                if len(names) == 1:
                    raise SweepError(f"{key}: an experiment is not swept: write {key}={names[0]}")
                raise SweepError(
                    f"{key}={','.join(names)}: a sweep runs one experiment; "
                    "sweep them one at a time (+experiment=<name> ... -m), each in its own "
                    "folder (make sweep-<table> runs a table's experiments); nothing was launched"
                )
            if o.is_delete() and o.key_or_group == "seed":
                raise SweepError(f"{key}: every job needs a seed; it cannot be deleted")
            values = (
                list(o.sweep_string_iterator())
                if o.is_sweep_override()
                else [o.get_value_element_as_str()]
            )
            if key == "search_space":
                spaces = values
            elif key == "seed":
                seeds = values
            elif (o.key_or_group in swept or _names_levels(o)) and o.package is None:
                if o.is_delete():
                    raise SweepError(f"{key}: the experiment sweeps this key; it cannot be deleted")
                pinned[o.key_or_group] = (
                    list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
                )
            else:
                group = next((s for s in swept if o.key_or_group.startswith(f"{s}.")), None)
                if group is not None:  # sampler.name=fairnas: each block's sampler=... wins
                    raise SweepError(
                        f"{key}: the experiment sweeps {group}; choose among its options with "
                        f"{group}={','.join(values)} (which keeps only their jobs); nothing was "
                        "launched"
                    )
                if key.startswith("fidelity.baseline.") and len(set(values)) > 1:
                    # the experiment's relative levels (base/2, base-1) resolve against one
                    # baseline per space, not one per value of this sweep
                    raise SweepError(
                        f"{key}: a sweep takes one baseline; run one sweep per value "
                        f"({', '.join(values)}), each in its own hydra.sweep.dir"
                    )
                dims.pop(key, None)
                dims[key] = [f"{key}={v}" for v in values]
        return [list(x) for x in itertools.product(*dims.values())], spaces, seeds, pinned

    def plan(self, arguments: list[str]) -> list[list[str]]:
        """Every job's overrides: blocks x spaces x seeds x the command line's own sweep."""
        assert self.config is not None
        from nasheur.spaces import space_info

        self._check_space_names()
        extra, cli_spaces, cli_seeds, pinned = self._command_line(arguments)
        for key, values in pinned.items():
            if key not in self._swept_keys():  # levels of a key no block sweeps
                continue
            ours = sorted(
                {_fmt(v) for b in self.blocks if key in b for v in b[key]}, key=natural_key
            )
            log.info(
                "%s: the command line names %s (the experiment's values: %s; one it does not "
                "list replaces them, else they restrict them)",
                key,
                ", ".join(_fmt(v) for v in values),
                ", ".join(ours),
            )
        spaces = cli_spaces or self._spaces_with_ground_truth()
        # each space's baseline as its jobs see it: with the experiment and the command line's
        # fixed overrides (fidelity.baseline.channels=64 makes base/2 mean 32)
        fixed = [o for dim in zip(*extra, strict=True) if len(set(dim)) == 1 for o in dim[:1]]
        baselines = {
            space: OmegaConf.to_container(self._baseline(space, fixed)) for space in spaces
        }
        family = {s: getattr(space_info(s), "paper_space", s) for s in spaces}
        seeds = cli_seeds or self.seeds or [OmegaConf.select(self.config, "seed")]
        jobs = expand(spaces, seeds, self.blocks, baselines, extra, family, pinned)
        idle = [s for s in spaces if f"search_space={s}" not in {j[0] for j in jobs}]
        if pinned and idle:  # final_search eval.pool_size=100: NB201's value only
            log.info(
                "search_space %s: no job has the command line's %s, so it runs nothing",
                ", ".join(idle),
                ", ".join(f"{k}={','.join(_fmt(v) for v in vs)}" for k, vs in pinned.items()),
            )
        return jobs

    def _check_space_names(self) -> None:
        """The spaces an experiment names (``spaces``, each block's ``_spaces``) are lists of
        known spaces: a misspelt one would leave its block out of the sweep without a word."""
        from nasheur.spaces import space_names

        named = [("hydra.sweeper.spaces", self.spaces)] + [
            (f"hydra.sweeper.blocks[{i}]._spaces", b["_spaces"])
            for i, b in enumerate(self.blocks)
            if b.get("_spaces") is not None
        ]
        for key, names in named:
            if isinstance(names, str) or not isinstance(names, Sequence):
                raise SweepError(f"{key}={names!r}: expected a list of search spaces")
            unknown = [str(n) for n in names if n not in space_names()]
            if unknown:
                raise SweepError(
                    f"{key}: unknown search space {', '.join(unknown)} (known: "
                    f"{', '.join(space_names())}); nothing was launched"
                )

    def _spaces_with_ground_truth(self) -> list[str]:
        """The experiment's spaces; where none has GT here, the composed default (embedded),
        if the experiment applies to the space it stands in for (nb201)."""
        from nasheur.config import ground_truth_env, resolve_ground_truth, site_env_file
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
            others = [s for s in self.spaces if s not in missing]
            raise SweepError(
                f"no ground truth for search_space {', '.join(missing)}: set {envs} (e.g. in "
                f"{site_env_file()})"
                + (
                    f", or restrict the sweep to the others (search_space={','.join(others)})"
                    if others
                    else ""
                )
                + "; nothing was launched"
            )
        if _submits(self.launcher):  # a site.env without its NASHEUR_GT_* lines, surely
            raise SweepError(
                f"no ground truth for search_space {', '.join(missing)}: set {envs} (e.g. in "
                f"{site_env_file()}); a sweep sent to a scheduler does not fall back to the "
                f"embedded benchmark (search_space={default} sweeps it on purpose); nothing "
                "was launched"
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
        job = [*overrides, f"search_space={space}"]
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job)
            return cfg.fidelity.baseline
        except (HydraException, OmegaConfBaseException) as err:
            raise SweepError(
                f"{_said(err)} (composing the baseline of search_space={space}); nothing was "
                "launched"
            ) from None

    def _check(self, jobs: list[list[str]]) -> list[_Planned]:
        """Compose and validate every job before any runs; its folder, config hash, resolved
        ``experiment`` node, what it reads that a launch looks at first (:class:`_Reads`) and
        its training hash.

        Jobs whose configs are the same (the same folder) run once."""
        from nasheur.config import (
            ConfigError,
            check_groups,
            config_hash,
            plain,
            to_config,
            training_hash,
            validate,
            wsbn_unused,
        )

        assert self.config is not None and self.hydra_context is not None
        checked, folders = [], set()
        inert: dict[str, str] = {}  # space -> why WSBN, a factor of the sweep, changes nothing
        errors: dict[str, list[list[str]]] = {}  # each message, and the jobs that got it
        for job in jobs:
            # a value of the wrong type, a key it does not know, a missing value that the
            # folder's name (an interpolation) needs
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, job)
                folder = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            except (HydraException, OmegaConfBaseException) as err:
                errors.setdefault(_said(err), []).append(job)
                continue
            if folder in folders:  # two rows of one config (e.g. two blocks' baselines): one job
                continue
            folders.add(folder)
            with_hydra = OmegaConf.to_container(cfg, resolve=False)
            with_hydra.pop("hydra", None)
            try:
                check_groups(cfg.hydra.runtime.choices)
                typed = to_config(OmegaConf.create(with_hydra))
                validate(typed)
            except ConfigError as err:
                errors.setdefault(str(err), []).append(job)
                continue
            why = wsbn_unused(typed)
            if why and "supernet.wsbn" in typed.experiment.factors:
                inert.setdefault(typed.search_space.name.value, why)
            resolved = plain(typed)
            data = resolved["dataset"]
            root = str(data["root"]) if self.check_data and data["name"] == "cifar10" else None
            reads = _Reads(root, typed if self.check_data else None)
            checked.append(
                _Planned(
                    job,
                    folder,
                    config_hash(resolved),
                    resolved["experiment"],
                    reads,
                    training_hash(resolved),
                )
            )
        for space, why in inert.items():  # before the GPU hours: such a row repeats wsbn=false
            log.info(
                "search_space=%s: supernet.wsbn=true changes nothing there (%s); its runs will "
                "equal those with supernet.wsbn=false",
                space,
                why,
            )
        if errors:
            n = sum(len(bad) for bad in errors.values())
            raise SweepError(
                f"{n} of {len(jobs)} jobs have a bad config; nothing was launched:\n"
                + _grouped(errors)
            )
        return checked

    # ------------------------------------------------------------------ running

    def _check_scheduler(self) -> None:
        """A launcher that would run no job at once or per task, and a SLURM launcher where
        SLURM's commands are missing or whose time limit falls within the requeue signal, fail
        here, before sweep.json lists its jobs as submitted (submitit would fail at the first
        batch, in a traceback)."""
        import shutil

        assert self.config is not None
        batch = self.max_batch_size
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise SweepError(
                f"hydra.sweeper.max_batch_size={batch}: jobs handed to the launcher at once, "
                "at least 1 (null: all); nothing was launched"
            )
        for key, what in (
            ("jobs_at_once", "at least one job runs at once"),
            ("jobs_per_task", "a task runs at least one job"),
        ):
            count = OmegaConf.select(self.config.hydra.launcher, key, default=1)
            if not isinstance(count, int) or count < 1:
                env = " (NASHEUR_SLURM_JOBS_PER_TASK)" if key == "jobs_per_task" else ""
                raise SweepError(f"hydra.launcher.{key}={count}{env}: {what}; nothing was launched")
        if getattr(self.launcher, "_EXECUTOR", None) != "slurm":
            return
        # sbatch would refuse a negative count only when the first batch is submitted
        for key, env, least in SLURM_COUNTS:
            try:
                count = OmegaConf.select(self.config.hydra.launcher, key, default=None)
            except OmegaConfBaseException as err:
                raise SweepError(f"{_said(err)}; nothing was launched") from None
            if count is not None and (
                isinstance(count, bool) or not isinstance(count, int) or count < least
            ):
                raise SweepError(
                    f"hydra.launcher.{key}={count} ({env}): expected a whole number >= {least}"
                    "; nothing was launched"
                )
        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if missing and not self.dry_run:  # a plan may be looked at anywhere
            raise SweepError(
                f"hydra/launcher=slurm: SLURM is not available here ({', '.join(missing)} not "
                "on PATH): launch the sweep on a machine of the cluster, or without "
                "hydra/launcher=slurm to run its jobs here; nothing was launched"
            )
        # submitit's warning signal comes signal_delay_s before the time limit: a limit no
        # longer than that stops every run at once, a requeue loop that trains nothing
        try:
            minutes = self.config.hydra.launcher.timeout_min
            delay = self.config.hydra.launcher.signal_delay_s
        except OmegaConfBaseException as err:
            raise SweepError(f"{_said(err)}; nothing was launched") from None
        if minutes is not None and delay is not None and minutes * 60 <= delay:
            raise SweepError(
                f"hydra.launcher.timeout_min={minutes} (NASHEUR_SLURM_TIME_MIN): each run would "
                f"be stopped at once, since submitit's requeue signal comes {delay} s "
                "(hydra.launcher.signal_delay_s) before the time limit; ask for more than "
                f"{delay // 60} minutes; nothing was launched"
            )

    def sweep(self, arguments: list[str]) -> Any:
        """Plan, check, launch, report. The sweep's own errors end it with one message on
        stderr and exit status 2 (nothing launched) or 1 (jobs that did not complete), not
        with Hydra's traceback."""
        try:
            return self._sweep(arguments)
        except SweepError as err:
            sys.stdout.flush()
            kind = "config error: " if err.status == 2 else ""
            print(f"nasheur: {kind}{err}", file=sys.stderr, flush=True)
            raise SystemExit(err.status) from None

    def _sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        from nasheur.config import ConfigError, check_groups

        try:
            check_groups(self.config.hydra.runtime.choices, spaces=False)  # each job's: _check
        except ConfigError as err:
            raise SweepError(f"{err}; nothing was launched") from None
        self._check_scheduler()
        try:
            jobs = self._check(self.plan(arguments))
        except SweepError:
            raise
        except (HydraException, OmegaConfBaseException) as err:  # the composed config's own
            raise SweepError(f"{_said(err)}; nothing was launched") from None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        if self.dry_run:
            sys.stdout.flush()
            lines = _dry_run_lines(sweep_dir, jobs, self.reuse, local=not _submits(self.launcher))
            print("\n".join(lines), flush=True)
            return []
        made = not sweep_dir.exists()
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(sweep_dir / "multirun.yaml") as tmp:  # launches side by side too
                OmegaConf.save(self.config, tmp)
        except OSError as err:
            raise SweepError(
                f"cannot make the sweep's folder {err.filename or sweep_dir}: "
                f"{err.strerror or err} (sweeps go under $NASHEUR_RUNS/sweeps, default runs/; "
                "hydra.sweep.dir= names another folder); nothing was launched"
            ) from None
        claims = Claims(sweep_dir) if self.reuse else None
        try:
            return self._launch(sweep_dir, jobs, made, claims)
        finally:
            if claims is not None:
                claims.release()

    def _launch(
        self, sweep_dir: Path, jobs: list[_Planned], made: bool, claims: Claims | None
    ) -> Any:
        """Copy, claim and check the jobs, launch those to run, wait for those left to other
        sweeps, report."""
        assert self.launcher is not None
        outcomes: list[_Outcome] = []
        todo: list[_Outcome] = []
        left: list[_Outcome] = []  # to another launch that holds their claim (nasheur.reuse)
        experiment_of: dict[Path, dict[str, Any]] = {}
        # a job this sweep listed before whose folder is gone was deleted to run it again;
        # one it listed but never ran (sbatch refused it, the sweep stopped first) was not
        listed = listed_jobs(sweep_dir, started_only=True) if self.reuse else None
        data_of: dict[Path, _Reads] = {}
        trained = TrainedTwins(sweep_dir.parent) if self.reuse else None
        for job, folder, chash, experiment, data, training in jobs:
            data_of[folder], experiment_of[folder] = data, experiment
            state, holder, source = _at_launch(folder, chash, sweep_dir, listed)
            outcome = _Outcome(job, folder, chash, before=state)
            outcomes.append(outcome)
            if source is not None and adopt(source, folder, experiment):
                outcome.copied(source)
                continue
            if state == RUNNING:
                outcome.after = "running elsewhere"
                outcome.detail = describe_holder(holder or {})
            elif state == "completed":  # the job would not run again either (run_job)
                outcome.after = "completed"
            else:
                trainer = None if claims is None else claims.take(folder, chash)
                if claims is not None and _copyable(state, folder, listed):
                    if trainer is None:  # claimed: a twin may have completed since the look
                        source = completed_twin(folder, chash, sweep_dir)
                        if source is not None and adopt(source, folder, experiment):
                            claims.drop(folder, chash)
                            outcome.copied(source)
                            continue
                        trainer = _twin_on_its_own(claims, folder, chash, sweep_dir)
                        if trainer is not None:
                            claims.drop(folder, chash)
                    if _of_another_sweep(trainer, sweep_dir):
                        outcome.after = LEFT
                        outcome.detail = _trained_by(trainer)
                        left.append(outcome)
                        continue
                if trained is not None and _copyable(state, folder, listed):
                    # a completed job (of this sweep or another) trained its super-net: it
                    # evaluates that one
                    source = trained.find(folder, training)
                    if source is not None and adopt_training(source, folder):
                        outcome.trained_in = str(source)
                    elif (now := trained.training_now(folder, training)) is not None:
                        log.warning("%s: %s", folder, trained_elsewhere_now(now))
                outcome.launched = True
                todo.append(outcome)
        # the data and ground truth of the jobs to run (completed ones need none): each
        # would fail without them, on the cluster after its wait in the queue
        reads = [(o.overrides, data_of[o.folder]) for o in todo]
        missing = _missing_data({r.cifar for _, r in reads if r.cifar is not None})
        bad = {} if missing else _bad_inputs(reads, local=not _submits(self.launcher))
        if missing or bad:
            if made:  # a refused first launch leaves no folder behind (copies it made stay)
                (sweep_dir / "multirun.yaml").unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    sweep_dir.rmdir()
            if missing:
                raise SweepError(
                    "no CIFAR-10 for the jobs to run; nothing was launched:\n" + "\n".join(missing)
                )
            n = sum(len(jobs_) for jobs_ in bad.values())
            raise SweepError(
                f"{n} of the {len(todo)} jobs to run would fail on their input; nothing was "
                "launched:\n" + _grouped(bad)
            )
        merge_manifest(sweep_dir, [o.entry() for o in outcomes])
        elsewhere = [o for o in outcomes if o.before == RUNNING]
        copied = sum(bool(o.reused) for o in outcomes)
        evaluate_only = sum(bool(o.trained_in) for o in todo)
        log.info(
            "sweep of %d job%s: %d already completed%s, %d to run%s%s%s, in %s",
            len(jobs),
            "" if len(jobs) == 1 else "s",
            sum(o.before == "completed" and not o.launched for o in outcomes),
            f" ({copied} of them copied from other sweeps)" if copied else "",
            len(todo),
            f" ({evaluate_only} only to evaluate: their super-nets trained already)"
            if evaluate_only
            else "",
            _side_by_side(self.launcher, len(todo), self.max_batch_size),
            (f", {len(elsewhere)} running elsewhere (left to them)" if elsewhere else "")
            + (f", {len(left)} left to other sweeps, which train them" if left else ""),
            sweep_dir,
        )
        for o in elsewhere[:20]:
            log.info("  running elsewhere: %s (%s)", o.folder, o.detail)
        size = self.max_batch_size or max(len(todo), 1)  # None: all at once
        results: list[JobReturn] = []
        stopped: str | None = None
        refused = False  # the scheduler refused a submission (sbatch's error)
        try:
            # SIGTERM to this process (kill, a session's end) ends the sweep with its summary
            # like Ctrl-C; a job run here sets its own handler while it runs
            submitted = _note_submitted(todo, claims)
            with stop_on_sigterm("the sweep (its summary follows)"), _each_job_settled(submitted):
                for start in range(0, len(todo), size):
                    batch = [o.overrides for o in todo[start : start + size]]
                    results.extend(self.launcher.launch(batch, initial_job_idx=start))
                if left and claims is not None:
                    claims.release()  # first: two sweeps may each wait on the other's claims
                    _wait_and_copy(left, claims, sweep_dir, experiment_of)
        except _uncompleted_errors() as err:  # a launcher that gave up at its first such job
            if _refused_submission(err):  # sbatch said no: nothing of this batch is queued
                refused = True
                said = [line for line in str(err).splitlines() if line.strip()] or [repr(err)]
                stopped = f"the scheduler refused the jobs ({said[0]})"
            else:
                stopped = _uncompleted_line(err)
        except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C, SIGTERM (jobs in this process)
            # a cluster launcher submitted them all already: they may be queued or running
            queued = _submits(self.launcher)
            _settle(todo, results, pending="not finished" if queued else "not run")
            _record_after(sweep_dir, outcomes)
            what = (
                "Ctrl-C"
                if isinstance(err, KeyboardInterrupt)
                else signal.Signals(err.signum).name
                if isinstance(err, Terminated)
                else f"exit status {err.code}"
            )
            lines = _summary(self.config, sweep_dir, outcomes, todo, stopped=f"stopped by {what}")
            if queued:
                lines.append(
                    "the jobs already submitted may still be queued or running in SLURM "
                    "(squeue; scancel to stop them); once they end, the same command resumes "
                    "the sweep"
                )
            else:
                lines.append("the same command resumes the sweep")
            sys.stdout.flush()
            print("\n".join(lines), file=sys.stderr, flush=True)
            # said in full above: no traceback; 130 for Ctrl-C as a shell reports it
            raise SystemExit(130 if isinstance(err, KeyboardInterrupt) else err.code) from None
        _settle(todo, results, pending="not run" if refused else "not finished")
        _record_after(sweep_dir, outcomes)
        sys.stdout.flush()
        print("\n".join(_summary(self.config, sweep_dir, outcomes, todo, stopped)), flush=True)
        message = _failure_message(todo, stopped, submitted=not refused)
        unrun = sum(o.after == "not run" for o in left)  # their other launch did not complete
        if unrun:
            them = "it" if unrun == 1 else "them"
            said = (
                f"{unrun} job{'s' if unrun != 1 else ''} left to other sweeps did not complete "
                f"there; the same command trains {them} here"
            )
            message = f"{message} {said[0].upper()}{said[1:]}." if message else said
        if message:
            raise SweepError(message, status=1)
        return [results]


def _at_launch(
    folder: Path, chash: str, sweep_dir: Path, listed: set[str] | None
) -> tuple[str, dict[str, Any] | None, Path | None]:
    """A job's state as a launch finds it, the process holding its folder (if one does), and
    for a new job the completed twin of a sibling sweep to copy; `listed`: the jobs this sweep
    started before (a deleted one is trained again), None where nothing is copied."""
    holder = folder_holder(folder)
    state = RUNNING if holder is not None else _state(folder, chash)
    source = None
    if state == "new" and listed is not None and manifest_key(folder) not in listed:
        source = completed_twin(folder, chash, sweep_dir)
    return state, holder, source


def _copyable(state: str, folder: Path, listed: set[str] | None) -> bool:
    """Whether a job could be copied from a sibling sweep (as :func:`_at_launch` looks for
    one): new, and never started by this sweep (one deleted to run it again is trained)."""
    return state == "new" and listed is not None and manifest_key(folder) not in listed


def _of_another_sweep(trainer: dict[str, Any] | None, sweep_dir: Path) -> bool:
    """Whether `trainer` (a claim's or a running twin's details) is another sweep's launch: a
    second launch of this sweep is left to the folder lock of each job, as before claims."""
    return trainer is not None and trainer.get("sweep") != str(sweep_dir.resolve())


def _trained_by(holder: dict[str, Any]) -> str:
    # a SLURM job: its launch stopped waiting, and SLURM has it still
    how = _slurm_twin(holder) if holder.get("slurm_state") else describe_holder(holder)
    return f"the sweep in {holder.get('sweep', '?')} trains it ({how})"


def _slurm_twin(holder: dict[str, Any]) -> str:
    """``SLURM job 552_4, pending``, and where SLURM keeps it waiting until someone acts,
    why and what to do."""
    job = str(holder.get(SUBMITTED))
    said = f"SLURM job {job}, {str(holder['slurm_state']).lower()}"
    stuck = stuck_reason(job, str(holder.get("slurm_reason", "")))
    if stuck is not None:
        said += (
            f": {stuck}; it will not start by itself (after `scancel {job}` the same command "
            "trains the job here)"
        )
    return said


def _twin_on_its_own(
    claims: Claims, folder: Path, chash: str, sweep_dir: Path
) -> dict[str, Any] | None:
    """The twin of another sweep that goes on after its launch stopped waiting for it (Ctrl-C,
    a lost login session): running (its folder held), or still listed by SLURM under the job
    named in its claim; None where there is none."""
    running = running_twin(folder, chash, sweep_dir)
    return running if running is not None else claims.queued_twin(folder, chash)


def _note_submitted(todo: list[_Outcome], claims: Claims | None) -> Any:
    """What :func:`_each_job_settled` calls with each job's overrides and the SLURM job that
    runs it: the job's claim records that SLURM job (:meth:`Claims.note_submitted`). None
    without claims."""
    if claims is None:
        return None
    of = {tuple(o.overrides): o for o in todo}

    def note(overrides: Sequence[str], slurm_job: str) -> None:
        o = of.get(tuple(overrides))
        if o is not None:
            claims.note_submitted(o.folder, o.config_hash, slurm_job)

    return note


RUNNING_TWIN_POLL_S = 30.0  # how often a sweep looks whether a twin left to it still runs


def _wait_and_copy(
    left: list[_Outcome],
    claims: Claims,
    sweep_dir: Path,
    experiment_of: dict[Path, dict[str, Any]],
) -> None:
    """Wait until the launches that hold the claims of the `left` jobs have ended, then copy
    each job they completed; the others are `not run` (the same command runs them)."""
    sweeps = sorted({o.detail for o in left})
    log.info(
        "waiting for %d job%s that other sweeps train, to copy %s: %s",
        len(left),
        "" if len(left) == 1 else "s",
        "it" if len(left) == 1 else "them",
        "; ".join(sweeps[:3]) + (f" and {len(sweeps) - 3} more" if len(sweeps) > 3 else ""),
    )
    for o in left:
        said = f"waiting for {o.folder.name}: {o.detail}"  # as the line above said it
        while True:
            try:
                claims.wait(o.folder, o.config_hash)
            except OSError as err:  # a lock the file system lost (NFS): look at the twin now
                log.warning("could not wait for the claim of %s (%s)", o.folder, err)
            # its launch stopped waiting while the twin's job goes on (Ctrl-C, a lost session)
            twin = _twin_on_its_own(claims, o.folder, o.config_hash, sweep_dir)
            if twin is None:
                break
            if twin.get("slurm_state"):  # said again when SLURM's state or reason changes
                now = f"waiting for {o.folder.name}: {_trained_by(twin)}"
                if now != said:
                    stuck = stuck_reason(str(twin.get(SUBMITTED)), str(twin.get("slurm_reason")))
                    log.log(logging.WARNING if stuck else logging.INFO, "%s", now)
                    said = now
            time.sleep(RUNNING_TWIN_POLL_S)
        # another launch of this sweep, meanwhile: completed it, or runs it now
        if _recorded(o.folder, o.config_hash) == "completed":
            o.after, o.detail = "completed", ""
            continue
        holder = folder_holder(o.folder)
        if holder is not None:
            o.after, o.detail = "running elsewhere", describe_holder(holder)
            continue
        source = completed_twin(o.folder, o.config_hash, sweep_dir)
        if source is not None and adopt(source, o.folder, experiment_of[o.folder]):
            o.copied(source, before=o.before)
        else:
            o.after = "not run"
            o.detail = (
                "left to another sweep, which ended without completing it; the same command "
                "runs it here"
            )


# what a launch would do with a job in each state (_state; RUNNING: a process holds it)
_DRY_RUN = {
    "new": ("run", ""),
    "completed": ("skip", "completed"),
    "interrupted": ("resume", "from its checkpoint"),
    "failed": ("run again", "failed"),
    "ground truth changed": ("evaluate again", "ground truth changed"),
    RUNNING: ("leave", "running elsewhere"),
}


def _dry_run_lines(sweep_dir: Path, jobs: list[_Planned], reuse: bool, local: bool) -> list[str]:
    """The plan as a launch would carry it out, read without writing anything."""
    listed = listed_jobs(sweep_dir, started_only=True) if reuse else None
    lines, counts, reads = [], {}, []
    trained = TrainedTwins(sweep_dir.parent) if reuse else None
    for job, folder, chash, _experiment, data, training in jobs:
        state, _, source = _at_launch(folder, chash, sweep_dir, listed)
        verb, detail = _DRY_RUN.get(state, ("run again", state))
        trainer = None
        if source is None and _copyable(state, folder, listed) and reuse:
            claims = Claims(sweep_dir)
            trainer = claims.holder(folder, chash)
            if trainer is None:
                trainer = _twin_on_its_own(claims, folder, chash, sweep_dir)
            trainer = trainer if _of_another_sweep(trainer, sweep_dir) else None
        twin = now = None
        new = verb == "run" and _copyable(state, folder, listed)
        if source is None and trainer is None and trained is not None and new:
            twin = trained.find(folder, training)
            now = None if twin is not None else trained.training_now(folder, training)
        if source is not None:
            verb, detail = "copy", f"completed in {source}"
        elif trainer is not None:
            verb, detail = "leave", _trained_by(trainer) + "; copied once it completed"
        elif twin is not None:
            verb, detail = "evaluate", f"its super-net, trained in {twin}"
        elif now is not None:
            detail = trained_elsewhere_now(now)
        if verb not in ("skip", "leave", "copy"):
            reads.append((job, data))  # the jobs that would read their data
        counts[verb] = counts.get(verb, 0) + 1
        said = f"{verb} ({detail})" if detail else verb
        lines.append(f"  {said}: {' '.join(job)}\n    in {folder}")
    summary = ", ".join(f"{n} to {verb}" for verb, n in counts.items())
    jobs_ = f"{len(jobs)} job" + ("s" if len(jobs) != 1 else "")
    head = f"dry run: {jobs_} in {sweep_dir} ({summary}); nothing was launched or written"
    missing = _missing_data({r.cifar for _, r in reads if r.cifar is not None})
    bad = _grouped(_bad_inputs(reads, local, convert=False))
    return [
        head,
        *lines,
        *(["no CIFAR-10 for the jobs to run:", *missing] if missing else []),
        *(["jobs to run that would fail on their input:", bad] if bad else []),
    ]


class _Planned(NamedTuple):
    """A job as a launch plans it (:meth:`AblationSweeper._check`)."""

    overrides: list[str]
    folder: Path
    config_hash: str
    experiment: dict[str, Any]  # the resolved ``experiment`` node
    reads: _Reads
    training: str  # its training hash (nasheur.config.training_hash)


@dataclass(frozen=True)
class _Reads:
    """What a job reads that a launch can look at before it launches: its CIFAR-10 folder
    (None: other data) and its config, for its ground truth and device (None: neither is
    looked at; ``hydra.sweeper.check_data=false``)."""

    cifar: str | None
    config: Any = None  # nasheur.config.Config


def _grouped(errors: dict[str, list[list[str]]], most: int = 20) -> str:
    """One line per message, with the jobs that got it (a bad value on the command line is
    every job's error)."""
    lines = [
        f"  {' '.join(bad[0])}: {said}"
        if len(bad) == 1
        else f"  {said} ({len(bad)} jobs, e.g. {' '.join(bad[0])})"
        for said, bad in errors.items()
    ]
    more = [f"  ... and {len(lines) - most} more"] if len(lines) > most else []
    return "\n".join(lines[:most] + more)


def _side_by_side(launcher: Any, jobs: int, batch: int | None = None) -> str:
    """How a launcher that runs several jobs at once runs `jobs` (handed to it `batch` at a
    time): `` (2 SLURM tasks of up to 4 jobs each)``, `` (3 at a time)``; "" for one at a
    time."""
    per_task = getattr(launcher, "jobs_per_task", 1)
    at_once = getattr(launcher, "jobs_at_once", 1)
    if jobs > 1 and per_task > 1:
        batch = batch or jobs  # each batch is packed on its own
        tasks = sum(-(-min(batch, jobs - i) // per_task) for i in range(0, jobs, batch))
        return f" ({tasks} SLURM task{'s' if tasks != 1 else ''} of up to {per_task} jobs each)"
    if jobs > 1 and at_once > 1:
        return f" ({min(at_once, jobs)} at a time)"
    return ""


def _missing_data(roots: set[str]) -> list[str]:
    """A line for each CIFAR-10 root that lacks the data set: every job reading it would
    fail in its first seconds, on the cluster as here."""
    if not roots:
        return []
    from nasheur.data.cifar10 import find_cifar10

    lines = []
    for root in sorted(roots):
        try:
            find_cifar10(root)
        except OSError as err:  # DatasetNotFoundError; or a folder it may not look into
            lines.append(
                f"  dataset.root={root}: {err} Data only on the compute nodes: "
                "hydra.sweeper.check_data=false"
            )
    return lines


def _bad_inputs(
    jobs: list[tuple[list[str], _Reads]], local: bool, convert: bool = True
) -> dict[str, list[list[str]]]:
    """Each error the jobs' own first checks would raise, with the jobs that would raise it:
    their ground truth (each file read once, as the job reads it: a benchmark file's first
    conversion, cached, happens here instead of in every job; without `convert`, as a dry
    run writes nothing, such a file is left to the jobs) against their spaces and
    ``eval.pool_size``, and where the jobs run here (`local`) their device."""
    from nasheur.config import ConfigError, ground_truth_path
    from nasheur.groundtruth.convert import cached_table, detect_format
    from nasheur.job import pick_device, pool_spaces_of, read_ground_truth, searched_archs

    configs = [(job, r.config) for job, r in jobs if r.config is not None]
    unusable: dict[str, str] = {}  # device -> why the jobs here cannot use it
    for name in {cfg.device.value for _, cfg in configs} - {"cpu"} if local else ():
        try:
            pick_device(name)
        except ConfigError as err:
            unusable[name] = str(err)
    read: dict[tuple[Any, ...], Any] = {}  # a file's table, or the error reading it gave
    errors: dict[str, list[list[str]]] = {}
    for job, cfg in configs:
        if cfg.device.value in unusable:
            errors.setdefault(unusable[cfg.device.value], []).append(job)
            continue
        try:
            spaces = pool_spaces_of(cfg)
            g = cfg.ground_truth
            key = (ground_truth_path(cfg), g.dataset, g.metric, g.column, g.unit, g.cache_dir)
            key += (cfg.search_space.name,)
            if key not in read:
                try:
                    if not convert and detect_format(key[0]) != "table":
                        metric = None if g.metric is None else g.metric.value
                        cached = cached_table(
                            key[0], dataset=g.dataset, metric=metric, cache_dir=g.cache_dir
                        )
                        if cached is None:
                            read[key] = None  # its conversion writes a cache: the jobs' to do
                            continue
                    read[key] = read_ground_truth(cfg, spaces[""])
                except (ValueError, OSError, MemoryError) as err:
                    read[key] = err
            if isinstance(read[key], BaseException):
                raise read[key]
            if read[key] is not None:
                searched_archs(cfg, *read[key], spaces)
        except (ValueError, OSError, MemoryError) as err:  # ConfigError, GroundTruthError ...
            errors.setdefault(str(err) or type(err).__name__, []).append(job)
    return errors


def _submits(launcher: Any) -> bool:
    """Whether `launcher` hands jobs to a scheduler (submitit's), which runs them whatever
    becomes of this process."""
    # by the module of its classes, not isinstance: Hydra's scan of `hydra_plugins` runs a
    # plugin module again, which makes new classes of the same names
    submitit = "hydra_plugins.hydra_submitit_launcher.submitit_launcher"
    return any(c.__module__ == submitit for c in type(launcher).__mro__)


@dataclass
class _Outcome:
    """One job of the sweep: its state at launch and, once the launch returned, after it."""

    overrides: list[str]
    folder: Path
    config_hash: str
    before: str
    after: str = ""  # one of _ORDER
    detail: str = ""  # the error's first line, a SLURM state, who holds the folder
    launched: bool = False  # by this launch
    reused: str = ""  # the folder of another sweep's completed job copied into this one
    trained_in: str = ""  # the folder of a trained twin whose super-net this job evaluates

    def copied(self, source: Path, before: str = "completed") -> None:
        """The job was copied from `source`, another sweep's completed twin."""
        self.before, self.after, self.detail, self.reused = before, "completed", "", str(source)
        log.info("reused %s: completed in %s", self.folder, source)

    def entry(self) -> dict[str, Any]:
        """Its line in sweep.json: written before the launch, and again with ``after`` once
        the launch returned (a relaunch tells a job that never ran from a deleted one)."""
        return {
            "overrides": self.overrides,
            "folder": str(self.folder),
            "config_hash": self.config_hash,
            "state_at_launch": self.before,
            **({"after": self.after} if self.after else {}),
            **({"reused_from": self.reused} if self.reused else {}),
            **({"trained_in": self.trained_in} if self.trained_in else {}),
        }


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _settle(
    todo: list[_Outcome], results: Sequence[JobReturn], pending: str = "not finished"
) -> None:
    """Each launched job's state after the launch: its JobReturn (in launch order) and its
    folder's metrics.json; `pending` for a job without a result and without a record."""
    for i, o in enumerate(todo):
        r = results[i] if i < len(results) else None
        recorded = _recorded(o.folder, o.config_hash)
        value = None if r is None else r._return_value
        if isinstance(value, FolderLocked):  # another copy started first: left to it
            o.after, o.detail = "running elsewhere", describe_holder(value.holder)
        elif isinstance(value, NoResult):  # its record, if written since the launch, stands
            o.after = (
                recorded if recorded in ("completed", "interrupted", "failed") else "no record"
            )
            o.detail = "" if o.after == "completed" else str(value)
        elif r is not None and r.status == JobStatus.COMPLETED:
            o.after = "completed"
        elif r is not None:
            o.after = "interrupted" if recorded == "interrupted" else "failed"
            o.detail = _first_line(value) if isinstance(value, BaseException) else repr(value)
        else:  # the launch stopped before this job's result: what its folder says
            holder = folder_holder(o.folder)
            if holder is not None:  # running now (a resubmission): its old record is stale
                o.after, o.detail = "not finished", f"running, {describe_holder(holder)}"
            else:
                o.after = recorded if recorded in ("completed", "interrupted") else pending


# a job's state after the launch (`no record`: its cluster ended it without a metrics.json;
# `not finished`: the launcher stopped waiting before its result, and it may still run in
# SLURM; `not run`: the sweep was stopped before it)
_ORDER = (
    "completed",
    "failed",
    "interrupted",
    "no record",
    "running elsewhere",
    LEFT,
    "not finished",
    "not run",
)


def _refresh_elsewhere(outcomes: list[_Outcome]) -> None:
    """A job left to another launch may have ended while this one ran (completed, scancel-ed):
    its folder's record says how, not the state it had at launch."""
    for o in outcomes:
        if o.after != "running elsewhere":
            continue
        holder = folder_holder(o.folder)
        if holder is not None:  # perhaps another copy by now: name the one that holds it
            o.detail = describe_holder(holder)
            continue
        recorded = _recorded(o.folder, o.config_hash)
        o.after = recorded if recorded in ("completed", "failed", "interrupted") else "no record"
        o.detail = "ran elsewhere, ended during this launch" + _recorded_error(o.folder)


def _record_after(sweep_dir: Path, outcomes: list[_Outcome]) -> None:
    """sweep.json's ``after`` of each job this launch ran or left to another, as the summary
    says it (a job left to another launch that ended meanwhile: its record's state)."""
    _refresh_elsewhere(outcomes)
    merge_manifest(sweep_dir, [o.entry() for o in outcomes if o.launched or o.after])


def _recorded_error(folder: Path) -> str:
    """``: <the error's first line>`` of a failed job's metrics.json, or ""."""
    try:
        error = read_json(folder / METRICS).get("error")
    except (OSError, ValueError, AttributeError):
        return ""
    line = str(error or "").strip().splitlines()[:1]
    return f": {line[0][:300]}" if line else ""


def _summary(
    config: DictConfig,
    sweep_dir: Path,
    outcomes: list[_Outcome],
    todo: list[_Outcome],
    stopped: str | None = None,
) -> list[str]:
    """The end of a sweep: the count of each state, the jobs that did not complete, where the
    results are and the commands that read them."""
    _refresh_elsewhere(outcomes)
    counts = {s: sum(o.after == s for o in outcomes) for s in _ORDER}
    before = sum(o.before == "completed" and not o.launched and not o.reused for o in outcomes)
    reused = sum(bool(o.reused) for o in outcomes)
    parts = []
    for state, n in counts.items():
        if n:
            notes = [f"{before} before this launch"] if before else []
            if reused:
                notes.append(f"{reused} copied from other sweeps, where they completed")
            note = f" ({', '.join(notes)})" if state == "completed" and notes else ""
            parts.append(f"{n} {state}{note}")
    name = OmegaConf.select(config, "experiment.name") or sweep_dir.name
    n = len(outcomes)
    lines = [
        f"nasheur: sweep {name}: {n} job{'s' if n != 1 else ''}: "
        + (", ".join(parts) or "none")
        + (f"; {stopped}" if stopped else "")
    ]
    listed = [o for o in outcomes if o.after != "completed"]
    for o in listed[:20]:
        try:
            where = o.folder.relative_to(sweep_dir)
        except ValueError:
            where = o.folder
        lines.append(f"  {o.after}: {where}" + (f": {o.detail}" if o.detail else ""))
    if len(listed) > 20:
        lines.append(f"  ... and {len(listed) - 20} more")
    where = shlex.quote(str(sweep_dir))
    lines.append(f"results in {sweep_dir} (sweep.json lists its jobs); read them with")
    lines.append(f"  python -m nasheur.results show {where}")
    tables = OmegaConf.select(config, "experiment.table")  # "11", or "5,6,7"
    for table in [] if tables is None else str(tables).split(","):
        lines.append(f"  python -m nasheur.results table {where} --table {table.strip()}")
    return lines


_UNFINISHED = ("failed", "interrupted", "no record", "not finished", "not run")


def _failure_message(
    todo: list[_Outcome], stopped: str | None, submitted: bool = True
) -> str | None:
    """The error that ends a sweep whose launched jobs did not all complete, or None.
    `submitted`: whether the jobs that did not end reached the scheduler (not when sbatch
    refused them)."""
    launched = len(todo)
    bad = [o for o in todo if o.after in _UNFINISHED]
    if not bad and not stopped:
        return None
    counts = {s: sum(o.after == s for o in bad) for s in _UNFINISHED}
    # "of 1 launched job": jobs skipped as completed or copied from a sibling are not counted
    jobs = "launched job" if launched == 1 else "launched jobs"
    notes = []
    if counts["failed"] and counts["failed"] == len(bad):
        head = f"{counts['failed']} of {launched} {jobs} failed"
    else:
        head = f"{len(bad)} of {launched} {jobs} did not complete"
        notes.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if counts["failed"]:
        notes.append("metrics.json says why")
    others = launched - len(bad)
    if stopped and not submitted:
        from nasheur.config import site_env_file  # nasheur.config imports this module

        notes.append(f"{stopped}; they were not submitted: fix the cause ({site_env_file()})")
    elif stopped:
        notes.append(
            f"the launcher stopped waiting: {stopped}; the other jobs may still be running in "
            "SLURM (squeue)"
        )
    elif others and all(o.after == "completed" for o in todo if o not in bad):
        notes.append("the others completed" if others > 1 else "the other one completed")
    them = "it" if len(bad) == 1 and not stopped else "them"
    # a failure's cause (a damaged checkpoint, a NaN loss) may need fixing first: a retry
    # as it stands would fail alike
    fixed = " once the cause is fixed" if counts["failed"] else ""
    return f"{head} ({'; '.join(n for n in notes if n)}). " + (
        f"Run the same command again to retry {them}{fixed} (completed jobs are skipped, "
        "interrupted ones resume from their checkpoint, running ones are left alone)"
    )


# ------------------------------------------------------------------ submitit


def _uncompleted_errors() -> tuple[type[BaseException], ...]:
    try:
        from submitit.core.utils import UncompletedJobError
    except ImportError:
        return ()
    return (UncompletedJobError,)


def _refused_submission(err: BaseException) -> bool:
    """Whether submitit's error is the scheduler refusing a submission (sbatch's own error,
    which submitit raises from the failed command), not a submitted job that ended."""
    import subprocess

    return isinstance(err.__cause__, subprocess.CalledProcessError)


def _uncompleted_line(err: BaseException) -> str:
    """``SLURM job 123_4 ended without a result (state: CANCELLED by 0)`` from submitit's
    message (which goes on with the job's whole error stream)."""
    text = str(err)
    job = re.search(r"Job (\S+)", text)
    state = re.search(r"\(state: ([^)]*)\)", text)
    if job is None:
        return _first_line(err)
    return f"job {job.group(1)} ended without a result" + (
        f" (state: {state.group(1)})" if state else ""
    )


class _Settled:
    """A submitit job whose results() gives a failed JobReturn, instead of raising, when the
    cluster ended it without a result: the launcher then goes on waiting for the others."""

    def __init__(self, job: Any, overrides: Any) -> None:
        self._job = job
        self._overrides = list(overrides) if overrides is not None else None

    def results(self) -> list[Any]:
        try:
            return self._job.results()
        except _uncompleted_errors() as err:
            value = NoResult(_uncompleted_line(err))
            return [
                JobReturn(overrides=self._overrides, status=JobStatus.FAILED, _return_value=value)
            ]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)


@contextlib.contextmanager
def _each_job_settled(submitted: Any = None) -> Iterator[None]:
    """hydra-submitit-launcher waits for its jobs in turn, and the first that SLURM ended
    without a result (``scancel``, a lost node) raises submitit's UncompletedJobError out of
    ``launch``, while the array's other jobs still run. Within this context submitit's
    ``map_array`` hands out :class:`_Settled` jobs, so each such job becomes a failed result and
    the launcher waits for all. Each job that SLURM took is also handed, with its SLURM job id,
    to `submitted(overrides, job_id)`, where given."""

    def settled(original: Any, executor: Any, fn: Any, *iterables: Any) -> list[Any]:
        jobs = original(executor, fn, *iterables)
        overrides = list(iterables[0]) if iterables else []
        if len(overrides) != len(jobs):
            overrides = [None] * len(jobs)
        if submitted is not None and getattr(executor, "cluster", None) == "slurm":
            for job, item in zip(jobs, overrides, strict=True):
                for each in _job_overrides(item):
                    submitted(each, str(job.job_id))
        return [_Settled(job, o) for job, o in zip(jobs, overrides, strict=True)]

    with map_array_wrapped(settled):
        yield


def _job_overrides(item: Any) -> list[Sequence[str]]:
    """The overrides of the jobs an array task runs, from its item in ``map_array``: one
    job's overrides, or a packed task's jobs (each ``(overrides, ...)``, packed_launcher)."""
    if not item:
        return []
    if isinstance(item[0], str):
        return [item]
    return [args[0] for args in item if isinstance(args, (tuple, list)) and args]


# ------------------------------------------------------------------ folders and sweep.json


def _state(folder: Path, chash: str) -> str:
    path = folder / METRICS
    if not path.is_file():
        return "interrupted" if (folder / CHECKPOINT).is_file() else "new"
    try:
        record = read_json(path)
    except (OSError, ValueError):  # not JSON, or not UTF-8 text
        return "broken"
    if not isinstance(record, dict):
        return "broken"
    if record.get("config_hash") != chash:
        return "other-config"
    status = str(record.get("status", "unknown"))
    if status == "completed":
        from nasheur.groundtruth.convert import fingerprint_of, source_changed

        if source_changed(fingerprint_of(record)):
            return "ground truth changed"  # launched: it evaluates again from its checkpoint
    return status


def _recorded(folder: Path, chash: str) -> str | None:
    """The status that the job's own metrics.json records, or None (no record of it)."""
    state = _state(folder, chash)
    return state if (folder / METRICS).is_file() and state != "other-config" else None


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    """The jobs a sweep.json lists (:func:`nasheur.results.collect.read_manifest`); [] if none."""
    from nasheur.results.collect import read_manifest

    if not path.is_file():
        return []
    try:
        return read_manifest(path)
    except ValueError as err:
        # kept for a look, not overwritten; the list the folders still tell is rebuilt
        kept = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, kept)
        jobs = _jobs_in_folders(path.parent)
        log.warning(
            "%s; kept as %s, and the list rebuilt from the %d job folders in %s",
            err,
            kept.name,
            len(jobs),
            path.parent,
        )
        return jobs


def _jobs_in_folders(sweep_dir: Path) -> list[dict[str, Any]]:
    """The sweep.json entries that a sweep folder's job folders (``<space>/<job>``) still tell:
    each with a record or a checkpoint, its overrides from Hydra's record of it, its config
    hash and state from its metrics.json ("interrupted": a checkpoint alone)."""
    jobs = []
    made = {p.parent for p in sweep_dir.glob("*/*/*") if p.name in (METRICS, CHECKPOINT)}
    for folder in sorted(made):
        try:
            record = read_json(folder / METRICS) if (folder / METRICS).is_file() else {}
        except (OSError, ValueError):
            record = {"status": "broken"}
        record = record if isinstance(record, dict) else {"status": "broken"}
        try:
            overrides = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
        except Exception:  # no record of it, or a damaged one: no overrides
            overrides = []
        jobs.append(
            {
                "overrides": overrides if isinstance(overrides, list) else [],
                "folder": str(folder),
                "config_hash": record.get("config_hash"),
                "state_at_launch": str(record.get("status", "interrupted")),
            }
        )
    return jobs


def merge_manifest(sweep_dir: Path, entries: list[dict[str, Any]]) -> None:
    """Merge a launch's jobs into the sweep folder's sweep.json, keyed by job folder (this
    launch's entry replaces an earlier one, in its place), under a lock, so that launches
    into the same sweep folder, side by side too, each add their jobs."""
    path = Path(sweep_dir) / MANIFEST
    with exclusive(Path(sweep_dir) / MANIFEST_LOCK):
        merged = {manifest_key(j["folder"]): j for j in _read_manifest(path)}
        for entry in entries:
            merged[manifest_key(entry["folder"])] = entry
        atomic_write_json(path, {"jobs": list(merged.values())})
