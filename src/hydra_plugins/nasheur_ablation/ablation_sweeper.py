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

This module is the plugin: its config and the plan-check-launch-report of a sweep. Its parts
live in :mod:`nasheur.sweep`, outside ``hydra_plugins`` (whose scan runs a plugin module again).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nasheur.io import atomic_path, flush_stdout
from nasheur.jobguard import NoResult, Terminated, describe_holder, stop_on_sigterm
from nasheur.results.settings import natural_key
from nasheur.reuse import (
    LEFT,
    Claims,
    TrainedTwins,
    adopt,
    adopt_training,
    completed_twin,
    started_jobs,
    trained_elsewhere_now,
)
from nasheur.sweep.dry_run import dry_run_lines, has_checkpoint
from nasheur.sweep.launchers import (
    each_job_settled,
    refused_submission,
    side_by_side,
    submits,
    uncompleted_errors,
    uncompleted_line,
)
from nasheur.sweep.manifest import RUNNING, experiment_of, experiments_listed, merge_manifest
from nasheur.sweep.outcomes import Outcome, failure_message, record_after, settle, summary
from nasheur.sweep.plan import (
    Planned,
    Reads,
    SweepError,
    block_applies,
    expand,
    format_value,
    grouped,
    names_levels,
    restricting,
    values_of,
)
from nasheur.sweep.preflight import bad_inputs, missing_data
from nasheur.sweep.twins import (
    at_launch,
    copyable,
    note_submitted,
    of_another_sweep,
    trained_by,
    twin_on_its_own,
    wait_and_copy,
)

log = logging.getLogger(__name__)

# what users and tests reach through the plugin module (the rest lives in nasheur.sweep)
__all__ = [
    "AblationSweeper",
    "AblationSweeperConf",
    "NoResult",
    "SweepError",
    "block_applies",
    "expand",
    "merge_manifest",
]


# the SLURM profile's whole-number options, the site variable of each, and their least value
# (mem_gb=0 is SLURM's --mem=0: all the memory of the node, which some sites ask for)
SLURM_COUNTS = (
    ("gpus_per_node", "NASHEUR_SLURM_GPUS", 1),
    ("cpus_per_task", "NASHEUR_SLURM_CPUS", 1),
    ("mem_gb", "NASHEUR_SLURM_MEM_GB", 0),
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
    # launching (false: a CIFAR-10 only the compute nodes see; the GT file must exist here)
    check_data: bool = True
    # print the checked plan (each job, its folder and what a launch would do) and stop
    dry_run: bool = False


ConfigStore.instance().store(
    group="hydra/sweeper", name="ablation", node=AblationSweeperConf, provider="nasheur"
)


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
        except Exception as err:
            # a key the launcher does not take (+hydra.launcher.jobs_at_onec=2), or a bad
            # NASHEUR_SLURM_* value: the key or the variable, in one line
            from nasheur.config import site_env_file, unknown_plugin_setting

            said = unknown_plugin_setting(err)
            cause: BaseException | None = err
            while said is None and cause is not None and not str(cause).startswith("NASHEUR_"):
                cause = cause.__cause__ or cause.__context__
            if said is None and cause is None:
                raise
            flush_stdout()
            print(
                f"nasheur: config error: {said}"
                if said is not None
                else f"nasheur: config error: {cause} (set in the environment or in the site "
                f"profile, {site_env_file()})",
                file=sys.stderr,
                flush=True,
            )
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
            if not values:  # seed=range(0,0): no value (not "the experiment's seeds")
                raise SweepError(
                    f"{o.input_line or key}: names no value to sweep, so the sweep would have no "
                    "job; nothing was launched"
                )
            if key in ("search_space", "seed"):  # each job names its own: unquoted
                named = [format_value(v) for v in values_of(o)]
                if key == "search_space":
                    spaces = named
                else:
                    seeds = named
            elif (o.key_or_group in swept or names_levels(o)) and o.package is None:
                if o.is_delete():
                    raise SweepError(f"{key}: the experiment sweeps this key; it cannot be deleted")
                pinned[o.key_or_group] = values_of(o)
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
        spaces = cli_spaces or self._spaces_with_ground_truth()
        # each space's baseline as its jobs see it: with the experiment and the command line's
        # fixed overrides (fidelity.baseline.channels=64 makes base/2 mean 32)
        fixed = [o for dim in zip(*extra, strict=True) if len(set(dim)) == 1 for o in dim[:1]]
        baselines = {
            space: OmegaConf.to_container(self._baseline(space, fixed)) for space in spaces
        }
        family = {s: getattr(space_info(s), "paper_space", s) for s in spaces}
        seeds = cli_seeds or self.seeds or [OmegaConf.select(self.config, "seed")]
        restricts = restricting(spaces, self.blocks, baselines, family, pinned)
        for key, values in pinned.items():
            if key not in self._swept_keys():  # levels of a key no block sweeps
                continue
            # the values of the spaces swept here: a value only another space's block lists
            # (protocol.weight_decay=0.001 with search_space=nb201) replaces this one's
            ours = sorted(
                {
                    format_value(v)
                    for s in spaces
                    for b in self.blocks
                    if key in b and block_applies(b, s, family[s])
                    for v in b[key]
                },
                key=natural_key,
            )
            log.info(
                "%s: the command line names %s, which %s the experiment's values (%s%s)",
                key,
                ", ".join(format_value(v) for v in values),
                "restrict" if restricts[key] else "replace",
                ", ".join(ours) or "none",
                f" in search_space {', '.join(spaces)}" if self.spaces else "",
            )
        jobs = expand(spaces, seeds, self.blocks, baselines, extra, family, pinned)
        if not jobs:  # two restricting values that no block sweeps together
            said = ", ".join(
                f"{k}={','.join(format_value(v) for v in vs)}" for k, vs in pinned.items()
            )
            raise SweepError(
                (
                    f"no job of the sweep has the command line's {said}: the experiment lists "
                    "these values, but in no one row together (run a sweep for each)"
                    if pinned
                    else "the sweep has no job"
                )
                + "; nothing was launched"
            )
        idle = [s for s in spaces if f"search_space={s}" not in {j[0] for j in jobs}]
        if pinned and idle:  # final_search eval.pool_size=100: NB201's value only
            log.info(
                "search_space %s: no job has the command line's %s, so it runs nothing",
                ", ".join(idle),
                ", ".join(
                    f"{k}={','.join(format_value(v) for v in vs)}" for k, vs in pinned.items()
                ),
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
            if not names and key != "hydra.sweeper.spaces":  # spaces=[]: the composed one
                raise SweepError(
                    f"{key}=[]: a block for no search space would run nothing; list its spaces, "
                    "or drop _spaces to sweep it on every space; nothing was launched"
                )
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
        found = {s: resolve_ground_truth(s, None) for s in self.spaces}
        missing = [s for s in self.spaces if found[s] is None]
        if not missing:
            return self.spaces
        envs = ", ".join(ground_truth_env(s) for s in missing)
        family = getattr(space_info(default), "paper_space", default)
        if len(missing) < len(self.spaces) or family not in self.spaces:
            others = [s for s in self.spaces if s not in missing]
            # a named file that is not there: said now, not after the user restricts to it
            absent = [
                f"{ground_truth_env(s)}={found[s]}"
                for s in others
                if not Path(str(found[s])).exists()
            ]
            raise SweepError(
                f"no ground truth for search_space {', '.join(missing)}: set {envs} (e.g. in "
                f"{site_env_file()})"
                + (
                    f", or restrict the sweep to the others (search_space={','.join(others)})"
                    if others
                    else ""
                )
                + (f"; and no such file: {', '.join(absent)}" if absent else "")
                + "; nothing was launched"
            )
        if submits(self.launcher):  # a site.env without its NASHEUR_GT_* lines, surely
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

    def _check(self, jobs: list[list[str]]) -> list[Planned]:
        """Compose and validate every job before any runs; its folder, config hash, resolved
        ``experiment`` node, what it reads that a launch looks at first (:class:`Reads`) and
        its training hash.

        Jobs whose configs are the same (the same config hash, in whatever folder their
        overrides would name) run once."""
        from nasheur.config import (
            ConfigError,
            check_command_line,
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
        identities: set[tuple[str, str]] = set()  # (space, config hash) of the jobs kept
        inert: dict[str, str] = {}  # space -> why WSBN, a factor of the sweep, changes nothing
        sparse = 0.0  # the longest run.checkpoint_every_s among the jobs
        errors: dict[str, list[list[str]]] = {}  # each message, and the jobs that got it
        for job in jobs:
            # a job's own overrides, its sweep functions expanded (`supernet.wsbn=choice(2)`
            # is `supernet.wsbn=2` here, which OmegaConf would read as true)
            try:
                check_command_line(job)
            except ConfigError as err:
                errors.setdefault(str(err), []).append(job)
                continue
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
            sparse = max(sparse, typed.run.checkpoint_every_s)
            why = wsbn_unused(typed)
            if why and "supernet.wsbn" in typed.experiment.factors:
                inert.setdefault(typed.search_space.name.value, why)
            resolved = plain(typed)
            chash = config_hash(resolved)
            # one config spelt two ways (a key outside its identity, eval.recalibrate_batches
            # under eval.bn=batch; 0.050 for 0.05) is one job too: its jobs share one folder
            if (folder.parent.name, chash) in identities:
                continue
            identities.add((folder.parent.name, chash))
            data = resolved["dataset"]
            root = str(data["root"]) if self.check_data and data["name"] == "cifar10" else None
            reads = Reads(root, typed if self.check_data else None)
            checked.append(
                Planned(
                    job,
                    folder,
                    chash,
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
        self._warn_unsaved_runs(sparse)
        if errors:
            n = sum(len(bad) for bad in errors.values())
            raise SweepError(
                f"{n} of {len(jobs)} jobs have a bad config; nothing was launched:\n"
                + grouped(errors)
            )
        return checked

    def _warn_unsaved_runs(self, every_s: float) -> None:
        """A SLURM run that ends (time limit, preemption) before ``run.checkpoint_every_s``
        passed leaves no checkpoint: a job longer than one run would start again from its
        first epoch at each requeue, for ever. Said before launching; not refused, since a job
        that fits in one run loses nothing."""
        assert self.config is not None
        # SLURM's launchers only (as in _check_scheduler), not submitit's local executor
        if every_s <= 0 or getattr(self.launcher, "_EXECUTOR", None) != "slurm":
            return
        minutes = OmegaConf.select(self.config.hydra.launcher, "timeout_min", default=None)
        delay = OmegaConf.select(self.config.hydra.launcher, "signal_delay_s", default=0) or 0
        if not isinstance(minutes, (int, float)) or every_s < minutes * 60 - delay:
            return
        log.warning(
            "run.checkpoint_every_s=%g is not below a SLURM run's %d s "
            "(hydra.launcher.timeout_min=%g, less signal_delay_s=%d): a job that a time limit "
            "or a preemption stops before it ends is requeued without a checkpoint and starts "
            "again from its first epoch, each time; set run.checkpoint_every_s below that",
            every_s,
            minutes * 60 - delay,
            minutes,
            delay,
        )

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
            flush_stdout()
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
        self._check_one_experiment(sweep_dir, experiment_of(arguments))
        if self.dry_run:
            flush_stdout()
            lines = dry_run_lines(
                sweep_dir,
                jobs,
                self.reuse,
                local=not submits(self.launcher),
                packing=lambda n: side_by_side(self.launcher, n, self.max_batch_size),
            )
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

    @staticmethod
    def _check_one_experiment(sweep_dir: Path, ours: str | None) -> None:
        """A sweep folder holds the jobs of one experiment: a job that two experiments share
        (their baseline) would land in the folder of the first, its record under that one's
        name, and the other's table would lack it."""
        others = sorted(experiments_listed(sweep_dir) - {ours}, key=str)
        if not others:
            return

        def said(name: str | None) -> str:
            return "a sweep without +experiment" if name is None else name

        raise SweepError(
            f"hydra.sweep.dir={sweep_dir} holds the sweep of {', '.join(map(said, others))} "
            "(its sweep.json); a sweep folder holds one experiment's jobs, since a job two "
            "experiments share would be recorded under one of them only: sweep "
            f"{said(ours)} into another hydra.sweep.dir (by default "
            "$NASHEUR_RUNS/sweeps/<experiment>, where the jobs the other sweep completed are "
            "copied); nothing was launched"
        )

    def _launch(
        self, sweep_dir: Path, jobs: list[Planned], made: bool, claims: Claims | None
    ) -> Any:
        """Copy, claim and check the jobs, launch those to run, wait for those left to other
        sweeps, report."""
        assert self.launcher is not None
        outcomes: list[Outcome] = []
        todo: list[Outcome] = []
        left: list[Outcome] = []  # to another launch that holds their claim (nasheur.reuse)
        experiment_of: dict[Path, dict[str, Any]] = {}
        # a job this sweep listed before whose folder is gone was deleted to run it again;
        # one it listed but never ran (sbatch refused it, the sweep stopped first) was not
        listed = started_jobs(sweep_dir) if self.reuse else None
        data_of: dict[Path, Reads] = {}
        trained = TrainedTwins(sweep_dir.parent) if self.reuse else None
        for job, folder, chash, experiment, data, training in jobs:
            data_of[folder], experiment_of[folder] = data, experiment
            state, holder, source = at_launch(folder, chash, sweep_dir, listed)
            outcome = Outcome(job, folder, chash, before=state)
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
                if claims is not None and copyable(state, folder, listed):
                    if trainer is None:  # claimed: a twin may have completed since the look
                        source = completed_twin(folder, chash, sweep_dir)
                        if source is not None and adopt(source, folder, experiment):
                            claims.drop(folder, chash)
                            outcome.copied(source)
                            continue
                        trainer = twin_on_its_own(claims, folder, chash, sweep_dir)
                        if trainer is not None:
                            claims.drop(folder, chash)
                    if of_another_sweep(trainer, sweep_dir):
                        outcome.after = LEFT
                        outcome.detail = trained_by(trainer)
                        left.append(outcome)
                        continue
                if trained is not None and copyable(state, folder, listed):
                    # a completed job (of this sweep or another) trained its super-net: it
                    # evaluates that one
                    source = trained.find(folder, training)
                    if source is not None and adopt_training(source, folder):
                        outcome.trained_in = str(source)
                    elif (now := trained.training_now(folder, training)) is not None:
                        log.warning("%s: %s", folder, trained_elsewhere_now(now))
                outcome.launch()
                todo.append(outcome)
        # the data and ground truth of the jobs to run (completed ones need none): each
        # would fail without them, on the cluster after its wait in the queue
        reads = [(o.overrides, data_of[o.folder]) for o in todo]
        missing = missing_data({r.cifar for _, r in reads if r.cifar is not None})
        bad = {} if missing else bad_inputs(reads, local=not submits(self.launcher))
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
                "launched:\n" + grouped(bad)
            )
        merge_manifest(sweep_dir, [o.entry() for o in outcomes])
        elsewhere = [o for o in outcomes if o.before == RUNNING]
        copied = sum(bool(o.reused) for o in outcomes)
        evaluate_only = sum(bool(o.trained_in) for o in todo)
        # as the dry run says them
        interrupted = [o for o in todo if o.before == "interrupted"]
        resumed = sum(has_checkpoint(o.folder) for o in interrupted)
        how = []
        if resumed:
            theirs = "its checkpoint" if resumed == 1 else "their checkpoints"
            how.append(f"{resumed} to resume from {theirs}")
        if len(interrupted) > resumed:
            n = len(interrupted) - resumed
            theirs = "its first checkpoint" if n == 1 else "their first checkpoints"
            how.append(f"{n} interrupted before {theirs}, to run from the start")
        if evaluate_only:
            theirs = "its super-net" if evaluate_only == 1 else "their super-nets"
            how.append(f"{evaluate_only} only to evaluate: {theirs} trained already")
        packing = side_by_side(self.launcher, len(todo), self.max_batch_size)
        log.info(
            "sweep of %d job%s: %d already completed%s, %d to run%s%s%s, in %s",
            len(jobs),
            "" if len(jobs) == 1 else "s",
            sum(o.before == "completed" and not o.launched for o in outcomes),
            f" ({copied} of them copied from other sweeps)" if copied else "",
            len(todo),
            f" ({'; '.join(how)})" if how else "",
            f" ({packing})" if packing else "",
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
            submitted = note_submitted(todo, claims)
            with stop_on_sigterm("the sweep (its summary follows)"), each_job_settled(submitted):
                for start in range(0, len(todo), size):
                    batch = [o.overrides for o in todo[start : start + size]]
                    results.extend(self.launcher.launch(batch, initial_job_idx=start))
                if left and claims is not None:
                    claims.release()  # first: two sweeps may each wait on the other's claims
                    wait_and_copy(left, claims, sweep_dir, experiment_of)
        except uncompleted_errors() as err:  # a launcher that gave up at its first such job
            if refused_submission(err):  # sbatch said no: nothing of this batch is queued
                refused = True
                said = [line for line in str(err).splitlines() if line.strip()] or [repr(err)]
                stopped = f"the scheduler refused the jobs ({said[0]})"
            else:
                stopped = uncompleted_line(err)
        except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C, SIGTERM (jobs in this process)
            # a cluster launcher submitted them all already: they may be queued or running
            queued = submits(self.launcher)
            settle(todo, results, pending="not finished" if queued else "not run")
            record_after(sweep_dir, outcomes)
            what = (
                "Ctrl-C"
                if isinstance(err, KeyboardInterrupt)
                else signal.Signals(err.signum).name
                if isinstance(err, Terminated)
                else f"exit status {err.code}"
            )
            lines = summary(self.config, sweep_dir, outcomes, todo, stopped=f"stopped by {what}")
            if queued:
                lines.append(
                    "the jobs already submitted may still be queued or running in SLURM "
                    "(squeue; scancel to stop them); once they end, the same command resumes "
                    "the sweep"
                )
            else:
                lines.append("the same command resumes the sweep")
            flush_stdout()
            print("\n".join(lines), file=sys.stderr, flush=True)
            # said in full above: no traceback; 130 for Ctrl-C as a shell reports it
            raise SystemExit(130 if isinstance(err, KeyboardInterrupt) else err.code) from None
        settle(todo, results, pending="not run" if refused else "not finished")
        record_after(sweep_dir, outcomes)
        flush_stdout()
        print("\n".join(summary(self.config, sweep_dir, outcomes, todo, stopped)), flush=True)
        message = failure_message(todo, stopped, submitted=not refused)
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
