"""The typed schema of one nasheur job, its validation and its identity.

Hydra composes the YAML under ``conf/`` on top of :class:`Config` (registered in the
ConfigStore as ``nasheur_schema``), so a wrong type or an unknown key fails while composing.
:func:`validate` then checks ranges and the combinations a search space supports. None of this
imports torch: a bad command line fails in about a second, before any data is read.

The groups follow the paper's Table 1: ``supernet`` (the mapping f_ws), ``fidelity`` (low
fidelity), ``protocol`` (the hyper-parameters of P_ws) and ``sampler``; beside them
``search_space``, ``dataset``, ``ground_truth``, ``eval`` and ``metrics``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import time
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config value or combination that cannot run; the message names the key."""


# Enum members are lower case so that the YAML and the command line read as in the paper.
class SpaceName(str, Enum):
    nb101 = "nb101"
    nb201 = "nb201"
    darts_nds = "darts_nds"
    embedded = "embedded"  # NB201 cells, small, on procedural data: the fresh-machine default


class OpsOn(str, Enum):
    edge = "edge"
    node = "node"


class DynamicChannels(str, Enum):
    fixed = "fixed"
    shuffle = "shuffle"
    interpolate = "interpolate"
    disabled = "disabled"


class SamplerName(str, Enum):
    random_nas = "random_nas"
    random_a = "random_a"
    fairnas = "fairnas"


PROCEDURAL_CLASSES = 10  # the textures of nasheur.data.procedural (its MAX_CLASSES)


class DatasetName(str, Enum):
    cifar10 = "cifar10"
    synthetic = "synthetic"
    procedural = "procedural"  # the embedded benchmark's texture images (no download)


class EvalBN(str, Enum):
    auto = "auto"
    batch = "batch"
    running = "running"
    recalibrate = "recalibrate"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class GTUnit(str, Enum):
    auto = "auto"
    percent = "percent"
    fraction = "fraction"


@dataclass
class SearchSpaceConfig:
    name: SpaceName = MISSING


@dataclass
class SupernetConfig:
    """The mapping f_ws from an architecture to a path of the super-net (Table 1, left)."""

    ops_on: OpsOn = OpsOn.edge
    dynamic_channels: DynamicChannels = DynamicChannels.fixed
    # NB101 with dynamic_channels=disabled: the sub-space trained (spaces/nb101.py says which)
    subspace: int | None = None
    # NB101 with dynamic channels: train on a random subset of the space as large as sub-space
    # `subspace` (Table 7's baseline), drawn from the seed
    random_subspace: bool = False
    ofa_kernel: bool = False  # ops differing only in kernel size share one kernel
    wsbn: bool = False  # a shared op keeps one BN per input it reads from
    path_dropout: float = 0.0  # drop probability of every edge output, per sample, training only
    global_dropout: float = 0.0  # dropout before the classifier, training only


@dataclass
class FidelityBaseline:
    """The space's paper setting, against which low fidelity is measured."""

    layers: int = MISSING
    channels: int = MISSING
    batch_size: int = MISSING
    train_portion: float = MISSING


@dataclass
class FidelityConfig:
    """Low-fidelity factors: how much smaller or cheaper the super-net is than its baseline."""

    baseline: FidelityBaseline = field(default_factory=FidelityBaseline)
    layers: int = MISSING  # counted as the benchmark counts depth (NB201: cells per stage)
    channels: int = MISSING  # initial channels
    batch_size: int = MISSING
    train_portion: float = MISSING  # share of the CIFAR-10 training set that trains the super-net
    # prolong the epochs in inverse proportion to the compute saved (paper Table 4)
    compensate_epochs: bool = False


@dataclass
class ProtocolConfig:
    """Hyper-parameters of the super-net training protocol P_ws."""

    lr: float = MISSING
    epochs: int = MISSING
    weight_decay: float = MISSING
    bn_track: bool = MISSING  # BN tracks running statistics during training
    bn_affine: bool = MISSING  # BN learns a scale and a shift
    momentum: float = 0.9
    grad_clip: float = 5.0
    lr_min: float = 0.0  # the cosine schedule decays to this


@dataclass
class SamplerConfig:
    name: SamplerName = MISSING


@dataclass
class DatasetConfig:
    name: DatasetName = MISSING
    # cifar10: the `cifar-10-batches-py` folder, or the folder that holds it
    root: str = "${nasheur.env:NASHEUR_DATA,data}"
    val_portion: float = 0.1  # the fixed validation share of the training set
    split_seed: int = 0  # the train/validation split is the same for every run seed
    augment: bool = True  # random crop (4-pixel padding) and horizontal flip of training images
    # synthetic / procedural: seeded image sets that need no download
    num_images: int = 2000
    image_size: int = 16
    num_classes: int = 10


GT_DATASETS = ("cifar10", "cifar10-valid")  # a plain string: "cifar10-valid" is no enum name


class GTMetric(str, Enum):
    test = "test"
    valid = "valid"


@dataclass
class GroundTruthConfig:
    # a GT table (CSV) or an official benchmark file: NB101 .tfrecord, NB201 / NATS .pth,
    # .pickle.pbz2 or -simple/ folder, NDS DARTS.json (README "Ground truth")
    path: str | None = None
    column: str | None = None  # CSV tables: accuracy column; default: the layout's own
    unit: GTUnit = GTUnit.auto  # CSV tables: auto = the file declares percent or fraction
    dataset: str | None = None  # NB201/NATS: cifar10 (default) or cifar10-valid
    metric: GTMetric | None = None  # test or valid; None: the file's default (see conf/)
    cache_dir: str | None = None  # converted tables; default: beside the file


@dataclass
class EvalConfig:
    bn: EvalBN = EvalBN.auto
    pool_size: int = 200
    recalibrate_batches: int = 10  # training batches per architecture for eval.bn=recalibrate


@dataclass
class MetricsConfig:
    skdt_threshold: float = 0.001  # metrics.BIN_WIDTH (not imported: scipy is slow to load)
    top_n: int = 3


@dataclass
class RunConfig:
    """How the job runs: debugging cuts, logging and arithmetic precision."""

    max_steps_per_epoch: int | None = None  # cut epochs short (debugging); null: full epochs
    log_every: int = 0  # also log every N steps; 0: per epoch only
    # a checkpoint after an epoch only once this many seconds passed since the last one (and
    # after the last epoch); 0: after every epoch. A resume repeats the epochs since, exactly
    checkpoint_every_s: float = 0.0
    bf16: bool = False  # bfloat16 autocast in training and evaluation (TF32 is on for CUDA anyway)
    # speed knobs that leave the arithmetic as it is (README, "Speed")
    eval_graphs: bool = True  # CUDA: replay a CUDA graph of each architecture's eval forward
    eval_streams: int = 4  # with eval_graphs: architectures evaluated at once, a stream each
    eval_pack: int = 1  # validation batches per forward, each normalised with its own statistics
    channels_last: bool = False  # NHWC layout (cuDNN's NHWC kernels; other float rounding)


@dataclass
class ExperimentConfig:
    """Set by `+experiment=<name>`: which sweep a job belongs to and what its table shows."""

    name: str = "multirun"  # the sweep's folder: runs/sweeps/<name>
    table: str | None = None  # the paper table its results fill ("5,6,7": several)
    factors: list[str] = field(default_factory=list)  # config keys whose values name a row


@dataclass
class Config:
    search_space: SearchSpaceConfig = field(default_factory=SearchSpaceConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    ground_truth: GroundTruthConfig = field(default_factory=GroundTruthConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    seed: int = 0
    device: Device = Device.auto


def _bool_keys(cls: type, prefix: str = "") -> set[str]:
    """The dotted names of the yes/no keys of the schema `cls`."""
    hints = typing.get_type_hints(cls)
    out: set[str] = set()
    for f in fields(cls):
        kind = hints[f.name]
        if kind is bool:
            out.add(prefix + f.name)
        elif is_dataclass(kind):
            out |= _bool_keys(kind, f"{prefix}{f.name}.")
    return out


BOOL_KEYS = frozenset(_bool_keys(Config))
# the yes/no keys of the sweeper's and the launcher profiles' schemas (hydra_plugins), which
# OmegaConf reads from a number as it does the job's (`hydra.sweeper.check_data=2` is true)
HYDRA_BOOL_KEYS = frozenset(
    (
        "hydra.sweeper.reuse",
        "hydra.sweeper.check_data",
        "hydra.sweeper.dry_run",
        "hydra.launcher.mps",
        "hydra.launcher.stderr_to_stdout",
    )
)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")  # as OmegaConf reads them


# Keys that do not change what a job computes, left out of its identity (config_hash).
# `dataset.root` says where CIFAR-10 lies on this machine, not which data: data moved to
# another file system (or spelt `/data/` for `/data`) must not make a sweep train again.
IDENTITY_EXCLUDED = (
    "device",
    "dataset.root",
    "run.log_every",
    "run.checkpoint_every_s",
    "run.eval_graphs",
    "run.eval_streams",
    "run.eval_pack",
    "run.channels_last",
    "experiment",
    "ground_truth.cache_dir",
)


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    # importing the sweeper stores `hydra/sweeper=ablation`, the launchers the schemas of
    # `hydra/launcher=slurm` and `local_parallel`; registering them by hand matters for
    # editable installs, whose import hook hides them from Hydra's walk of `hydra_plugins`
    from hydra_plugins.nasheur_ablation.ablation_sweeper import AblationSweeper
    from hydra_plugins.nasheur_ablation.packed_launcher import (
        LocalParallelLauncher,
        PackedSlurmLauncher,
    )

    ConfigStore.instance().store(name="nasheur_schema", node=Config)
    Plugins.instance().register(AblationSweeper)
    Plugins.instance().register(PackedSlurmLauncher)
    Plugins.instance().register(LocalParallelLauncher)


def to_config(cfg: DictConfig | dict[str, Any]) -> Config:
    """A composed DictConfig (without its `hydra` node) as the typed :class:`Config`.

    Raises :class:`ConfigError` naming the key for what the schema does not hold: a key it
    does not know (Hydra lets `+supernet.wbsn=true` into a typed node, where OmegaConf keeps
    it as an extra attribute that nothing reads), a value of the wrong type, a value missing.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), cfg)
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(omegaconf_said(err)) from None
    unknown = _unknown_keys(config)
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: not in the "
            f"config{did_you_mean(unknown)} (python -m nasheur --cfg job shows the keys)"
        )
    return config  # type: ignore[return-value]


def config_keys() -> list[str]:
    """Every key of the config, dotted (``protocol.lr``)."""

    def walk(obj: Any, prefix: str) -> Iterator[str]:
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                yield from walk(value, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}"

    return sorted(walk(Config(), ""))


def did_you_mean(unknown: Iterable[str]) -> str:
    """ "; did you mean protocol.lr?" for misspelt keys and groups close to known ones, and
    for a known key under the wrong section (`fidelity.epochs`: protocol.epochs)."""
    import difflib

    keys = config_keys()
    by_leaf: dict[str, list[str]] = {}
    for key in keys:
        by_leaf.setdefault(key.rpartition(".")[2], []).append(key)
    close: list[str] = []
    for key in unknown:
        if key.partition(".")[0] == "hydra":  # Hydra's own keys: none of nasheur's is meant
            continue
        found = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
        if not found and "." in key:  # a known name in another section
            leaf = difflib.get_close_matches(key.rpartition(".")[2], by_leaf, n=1, cutoff=0.85)
            found = by_leaf[leaf[0]] if leaf else []
        if not found and "." not in key:  # a group's name (protcol=nb201)
            found = difflib.get_close_matches(key, [*GROUPS, "experiment"], n=1, cutoff=0.8)
        close += [f for f in found if f != key]
    return f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""


# the config groups of conf/config.yaml's defaults: every job takes one option of each
GROUPS = ("dataset", "eval_speed", "search_space", "supernet", "fidelity", "protocol", "sampler")


# where a group's keys live, for the groups whose package is not their name
GROUP_PACKAGE = {"eval_speed": "run"}


def _removed_group(group: str, said: str) -> str:
    package = GROUP_PACKAGE.get(group, group)
    return (
        f"{said}: the {group} group cannot be removed (every job takes one of its options); "
        f"choose one with {group}=<option>, or set its keys ({package}.<key>=...)"
    )


# the groups that hold a search space's paper defaults, one option per space (Table 14)
SPACE_GROUPS = ("supernet", "fidelity", "protocol")


def check_groups(choices: Any, *, spaces: bool = True) -> None:
    """Refuse a group removed on the command line (``~supernet``): the job would take the
    schema's bare defaults, which are no space's paper setting, and say nothing of it. And
    (`spaces`: a job's choices, not a sweep's, whose swept spaces each job takes) refuse
    another space's defaults (``search_space=nb201 fidelity=darts_nds``): the job
    would train the searched space at that space's settings under its own name, and its
    record would sit among the space's runs as if it were one of them; the keys are the same
    for every space, so a setting of one is given as keys (``fidelity.layers=8``)."""
    removed = [g for g in GROUPS if choices.get(g) is None]
    if removed:
        raise ConfigError(_removed_group(removed[0], f"~{removed[0]}"))
    space = choices.get("search_space")
    for group in SPACE_GROUPS if spaces else ():
        if choices.get(group) != space:
            raise ConfigError(
                f"{group}={choices.get(group)} holds the defaults of search_space="
                f"{choices.get(group)}, but this job searches search_space={space}: leave "
                f"{group} at its default ({group}={space}, the space's paper setting) and "
                f"set the keys that should differ ({group}.<key>=...)"
            )


# Hydra's output folders of a run and of a sweep
OUTPUT_DIRS = ("hydra.run.dir", "hydra.sweep.dir")


def check_command_line(args: list[str]) -> None:
    """What Hydra would take badly from the command line, refused before it composes:
    a group removed, as :func:`check_groups` refuses it (``sampler=null`` and ``sampler=``
    would end in a Python traceback, ``~search_space`` in an interpolation error naming none
    of them), the key of a group's option set alone (``search_space.name``, ``dataset.name``),
    and a yes/no key given a number (OmegaConf reads ``supernet.wsbn=2`` as true)."""
    for arg in args:
        name, eq, value = arg.partition("=")
        key = name.lstrip("+~")
        if key in GROUPS and (name.startswith("~") or (eq and value.strip() in ("", "null"))):
            raise ConfigError(_removed_group(key, arg))
        if key == "search_space.name" and eq:
            # the supernet, fidelity, protocol and dataset groups follow the search_space
            # group, not this key: the job would search one space at another's settings
            raise ConfigError(
                f"{arg}: choose the search space with search_space=<space>, the group that "
                "brings that space's supernet, fidelity, protocol and dataset defaults; the key "
                "alone keeps the defaults of the group's space"
            )
        if key == "dataset.name" and eq:
            # the other dataset keys come with the group's option, not this key: it would
            # generate one image set at another's sizes, split and augmentation
            raise ConfigError(
                f"{arg}: choose the images with dataset=<name>, the group that brings that "
                "image set's sizes, split and augmentation; the key alone keeps the settings "
                "of the group's image set"
            )
        folder = value.strip().strip("'\"")
        if key in OUTPUT_DIRS and eq and (folder in ("", ".") or _is_cwd(folder)):
            # the job's files (its lock, checkpoint, record) would land among whatever is here
            raise ConfigError(
                f"{arg} names the current folder: give the run a folder of its own, or leave "
                f"{key} out (runs go under $NASHEUR_RUNS, default runs/)"
            )
        yes_no = key in BOOL_KEYS or key in HYDRA_BOOL_KEYS
        if not eq or not yes_no or any(c in value for c in "()[]{}*"):
            continue  # sweep functions and globs: the sweeper's to expand
        for one in value.split(","):  # a value, or a sweep's list
            if one.strip().lower() not in _TRUE + _FALSE:
                raise ConfigError(f"{key}={one} is not a yes/no value: expected true or false")


def _is_cwd(folder: str) -> bool:
    """Whether `folder` names the current folder however it is spelt (``./``, its path)."""
    try:
        return Path(os.path.expanduser(folder)).resolve() == Path.cwd().resolve()
    except (OSError, RuntimeError, ValueError):
        return False


def omegaconf_said(err: OmegaConfBaseException) -> str:
    """An OmegaConf error in one line, naming its key (OmegaConf's own message spans several
    lines of object types)."""
    said = (getattr(err, "msg", None) or str(err)).strip().splitlines()[:1]
    key = getattr(err, "full_key", None)
    return f"{key}: {'; '.join(said)}" if key else "; ".join(said) or type(err).__name__


# Hydra prints a composition error (a value of the wrong type, an option a group lacks) in
# several lines and exits 1; with HYDRA_FULL_ERROR set it raises it instead, and the command
# says it in one line like its own config errors (nasheur.__main__.cli). The variable is set
# only until the config is composed: the job and the sweeper drop it, so that a job's own
# errors are reported as before and no job process inherits it.
_FULL_ERROR = "HYDRA_FULL_ERROR"
_full_error_set = False


def raise_composition_errors() -> bool:
    """Have Hydra raise its composition errors; False where the user set the variable
    (then Hydra reports everything in full, as they asked)."""
    global _full_error_set
    if _FULL_ERROR in os.environ:
        return False
    os.environ[_FULL_ERROR] = "1"
    _full_error_set = True
    return True


def composed() -> None:
    """The config is composed: Hydra reports what follows its own way again."""
    global _full_error_set
    if _full_error_set:
        os.environ.pop(_FULL_ERROR, None)
        _full_error_set = False


def _launchers_with(key: str) -> list[str]:
    """The project's launcher profiles (``hydra/launcher=local_parallel``, ``=slurm``) whose
    schema has `key` (``hydra.launcher.jobs_at_once``); [] for any other key."""
    if not key.startswith("hydra.launcher."):
        return []
    from dataclasses import fields

    from hydra_plugins.nasheur_ablation.packed_launcher import (
        LocalParallelConf,
        PackedSlurmQueueConf,
    )

    name = key.split(".")[2]
    return [
        f"hydra/launcher={profile}"
        for profile, schema in (
            ("local_parallel", LocalParallelConf),
            ("slurm", PackedSlurmQueueConf),
        )
        if name in {f.name for f in fields(schema)} - {"_target_"}
    ]


def unknown_plugin_setting(err: BaseException) -> str | None:
    """Hydra's error for a key added under hydra.sweeper or hydra.launcher (``+hydra.sweeper.
    dryrun=true``) that the plugin's constructor does not take, in one line that names the key
    and the plugin's settings; None for any other error."""
    import difflib
    import importlib
    import inspect

    text = str(err)
    name = re.search(r"unexpected keyword argument '(\w+)'", text)
    owner = re.search(r"full_key: (hydra\.(?:sweeper|launcher))\b", text)
    target = re.search(r"Error in call to target '([\w.]+)\.(\w+)'", text)
    if not (name and owner and target):
        return None
    key = f"{owner.group(1)}.{name.group(1)}"
    try:
        plugin = getattr(importlib.import_module(target.group(1)), target.group(2))
        params = inspect.signature(plugin.__init__).parameters.values()
    except (ImportError, AttributeError, TypeError, ValueError):
        return f"unknown key {key}: not a setting of {owner.group(1)}"
    # a plugin that takes **params names its settings (PackedSlurmLauncher.SETTINGS)
    settings = list(getattr(plugin, "SETTINGS", ())) or [
        p.name for p in params if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    close = difflib.get_close_matches(name.group(1), settings, n=1, cutoff=0.7)
    hint = f"; did you mean {owner.group(1)}.{close[0]}?" if close else ""
    return (
        f"unknown key {key}: not a setting of {owner.group(1)} ({target.group(2)}: "
        f"{', '.join(settings)}){hint}"
    )


def composition_said(err: BaseException) -> str:
    """A Hydra composition error in one line: OmegaConf's names the key (its full_key),
    Hydra's the override, with its cause's first line; a group's options (Hydra's "Available
    options in 'sampler':" and one line each) on that line."""
    if isinstance(err, OmegaConfBaseException):
        return omegaconf_said(err)
    setting = unknown_plugin_setting(err)
    if setting is not None:
        return setting
    override = getattr(err, "override", None)  # Hydra's OverrideParseException: its text
    if isinstance(override, str):
        first = str(err).strip().splitlines()[0] if str(err).strip() else "cannot be parsed"
        return (
            f"override {override!r}: {first} (a value with '=', ',', spaces or brackets in "
            "it goes in quotes: key='a=b')"
        )
    missing = re.match(r"Could not override '([^']+)'", str(err))
    if missing and re.search(r"Key '[^']+' not in ", str(err.__cause__ or err)):
        # Hydra's advice, to append the key with '+', only trades this error for "unknown
        # key": a misspelt key is the likelier story
        key = missing.group(1)
        shown = "hydra" if key.startswith("hydra.") else "job"  # Hydra's own keys apart
        owners = _launchers_with(key)
        if owners:  # a key of another launcher profile than the one composed
            return (
                f"unknown key {key}: a key of {' and '.join(owners)}, not of the launcher "
                f"chosen ({'choose one, e.g.' if len(owners) > 1 else 'choose it:'} "
                f"{owners[0]} {key}=...)"
            )
        return (
            f"unknown key {key}: not in the config{did_you_mean([key])} (python -m nasheur "
            f"--cfg {shown} shows the keys)"
        )
    if str(err).startswith("Sweeping over Hydra's configuration is not supported"):
        # hydra.sweep.dir=/a,b under -m: the comma made a sweep of a folder name
        return (
            f"{str(err).strip()}: a ',' in a value sweeps it; a value with ',' goes in quotes: "
            "key='a,b'"
        )
    text = str(err).split("Config search path:", 1)[0]  # where Hydra looked: not the error
    lines = [line.strip().rstrip(".") for line in text.splitlines() if line.strip()]
    cause = err.__cause__
    said: list[str] = []
    for line in lines:
        if said and said[-1].endswith(":"):
            said[-1] += f" {line}"
        elif said and said[-1].startswith("Available options"):
            said[-1] += f", {line}"
        else:
            said.append(line)
    said += [str(cause).strip().splitlines()[0]] if cause is not None and str(cause).strip() else []
    return "; ".join(said)


def _unknown_keys(obj: Any, prefix: str = "") -> list[str]:
    """The dotted names of attributes of the dataclasses in `obj` that are not their fields."""
    if not is_dataclass(obj):
        return []
    names = {f.name for f in fields(obj)}
    out = [f"{prefix}{k}" for k in vars(obj) if k not in names]
    for name in sorted(names):
        out += _unknown_keys(getattr(obj, name), f"{prefix}{name}.")
    return out


def plain(cfg: Config | DictConfig) -> dict[str, Any]:
    """The resolved config as JSON-ready plain data (enums as their names)."""
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.structured(cfg)
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)  # type: ignore[return-value]


# keys added to the config after jobs had run, with their defaults: at the default they are
# left out of a job's identity (inactive_keys), so that those jobs keep their folders
ADDED_KEYS: dict[str, Any] = {"supernet.random_subspace": False}


def unread_keys(data: dict[str, Any]) -> dict[str, str]:
    """Keys that nothing reads under a config (a dict, as a record holds it), each with why:
    the folder of CIFAR-10 under a generated image set, the sizes of generated image sets
    under CIFAR-10, the recalibration batches under another BN mode."""
    dataset = (data.get("dataset") or {}).get("name")
    keys: dict[str, str] = {}
    if dataset == "cifar10":
        why = "dataset=cifar10 takes the sizes of its files"
        keys |= dict.fromkeys(
            ("dataset.num_images", "dataset.image_size", "dataset.num_classes"), why
        )
    elif dataset is not None:
        keys["dataset.root"] = (
            f"dataset={dataset} generates its images; only cifar10 reads a folder"
        )
    bn = (data.get("eval") or {}).get("bn")
    if bn != "recalibrate":
        keys["eval.recalibrate_batches"] = f"eval.bn={bn}: only eval.bn=recalibrate reads it"
    return keys


def inactive_keys(data: dict[str, Any]) -> tuple[str, ...]:
    """Keys left out of a config's identity besides `IDENTITY_EXCLUDED`: those that nothing
    reads under it (:func:`unread_keys`), and those of `ADDED_KEYS` at their defaults."""
    keys = list(unread_keys(data))
    for dotted, default in ADDED_KEYS.items():
        section, _, key = dotted.partition(".")
        if (data.get(section) or {}).get(key, default) == default:
            keys.append(dotted)
    return tuple(keys)


def inert_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Keys set to a value that changes nothing a job computes under this config, each with
    the value that means the same, though its folder's hash (:func:`config_hash`) tells them
    apart: `fidelity.compensate_epochs=true` where no factor that saves compute is reduced, so
    that it prolongs nothing (Table 4's batch-size jobs repeat `batch_size_ablation`'s). The
    tables count a job once across experiments (Table 3) with these set so."""
    from nasheur.fidelity import compensation  # the config is read before torch; so is this

    fidelity = data.get("fidelity")
    if not isinstance(fidelity, dict) or fidelity.get("compensate_epochs") is not True:
        return {}
    try:
        return {"fidelity.compensate_epochs": False} if compensation(fidelity) == 1 else {}
    except (KeyError, TypeError, ZeroDivisionError):  # a hand-edited record: as written
        return {}


def resolve_bn_mode(eval_bn: str, bn_track: bool) -> str:
    """The BN mode evaluation uses: ``auto`` is ``running`` when the super-net tracks
    statistics, ``batch`` when it does not (spec section 4)."""
    if eval_bn == "auto":
        return "running" if bn_track else "batch"
    return eval_bn


def wsbn_inert(ops_on: str, affine: bool, eval_bn: str) -> str | None:
    """Why WSBN cannot change what a super-net computes under these settings (None where it
    can). A slot keeps affine parameters and statistics; with ops on edges every op set has
    one input, so one slot; and a BN without affine parameters whose statistics evaluation
    never reads (`eval_bn`, resolved: ``batch``) normalises each batch by its own statistics
    alone, the same function in every slot."""
    if ops_on == "edge":
        return "with ops on edges every op set reads from one input"
    if not affine and eval_bn == "batch":
        return (
            "protocol.bn_affine=false and BN in batch mode at evaluation: every slot "
            "normalises each batch by its own statistics and nothing else"
        )
    return None


def wsbn_unused(cfg: Config) -> str | None:
    """Why `cfg`'s WSBN (on) changes nothing (:func:`wsbn_inert`); None where it is off or
    can act."""
    if not cfg.supernet.wsbn:
        return None
    p = cfg.protocol
    return wsbn_inert(
        cfg.supernet.ops_on.value, p.bn_affine, resolve_bn_mode(cfg.eval.bn.value, p.bn_track)
    )


_FROM_ENV = object()


def config_hash(data: dict[str, Any], *, ground_truth: Any = _FROM_ENV) -> str:
    """A stable hash of a resolved config: the identity of a job and its output folder.

    A ground truth named by the environment counts as if ``ground_truth.path`` named it.
    `ground_truth`: the file a null ``ground_truth.path`` stands for instead of the
    environment's (a record's, which names the file its job read)."""
    data = json.loads(json.dumps(data))  # a deep copy of plain data
    gt, space = data.get("ground_truth"), data.get("search_space", {}).get("name")
    if isinstance(gt, dict) and gt.get("path") is None and space:
        # a file named by $NASHEUR_GT_<SPACE> is part of the identity, as ground_truth.path is:
        # another file is another job, and the same file names the same job either way
        gt["path"] = ground_truth_from_env(space) if ground_truth is _FROM_ENV else ground_truth
    if isinstance(gt, dict) and isinstance(gt.get("path"), str):
        # one file, one identity: a relative path is the file it names from here (not the
        # same job from every folder), and ./, // and ~ spell the same file
        gt["path"] = os.path.abspath(os.path.expanduser(gt["path"]))
    for dotted in IDENTITY_EXCLUDED + inactive_keys(data):
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# the sections that only a job's evaluation reads: nothing of them reaches its training (the
# pool is drawn from a stream of its own), so jobs that differ only there train one super-net
EVALUATION_ONLY = ("eval", "metrics", "ground_truth")


def training_hash(data: dict[str, Any]) -> str:
    """The identity of a job's training: :func:`config_hash` of its resolved config without
    the sections only its evaluation reads (:data:`EVALUATION_ONLY`). Jobs that share it
    train the same super-net, step for step; one of them may evaluate another's
    (:mod:`nasheur.reuse`, "trained twins")."""
    trained = {k: v for k, v in data.items() if k not in EVALUATION_ONLY}
    return config_hash(trained, ground_truth=None)


def _short_override(item: str) -> str:
    key, _, value = item.partition("=")
    return f"{key.rpartition('.')[2]}={value}"


def _dir_value(value: Any) -> str:
    """A value as the command line spells it: ``true``, ``null``, ``random_nas``."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)


def _dir_resolver(root: str = "", *, _root_: DictConfig) -> str:
    """``<space>/<readable>-<config hash>``: a job's folder under `root` (the runs folder or
    the sweep's).

    The same config always lands in the same folder, so rerunning a command resumes it: the
    folder under `root` whose name ends in the config's hash is the job's whatever its
    readable part says (another spelling of a value, a folder named by an older version).
    The readable part names the experiment's factors and the seed in a sweep, else the
    overrides.
    """
    if "search_space" not in _root_:  # `--cfg hydra` shows Hydra's node without the job's
        return "<space>/<factors or overrides>-<config hash>"
    job = OmegaConf.masked_copy(_root_, [k for k in _root_ if k != "hydra"])
    data = OmegaConf.to_container(job, resolve=True, enum_to_str=True)
    factors = data.get("experiment", {}).get("factors") or []
    if factors:
        plain_job = OmegaConf.create(data)
        items = [
            f"{key}={_dir_value(OmegaConf.select(plain_job, key))}" for key in (*factors, "seed")
        ]
    else:
        overrides = OmegaConf.select(_root_, "hydra.job.override_dirname", default="") or ""
        items = [i for i in overrides.split(",") if i and not i.startswith("+experiment=")]
    # `protocol.lr=0.05,seed=1` reads as `lr=0.05,seed=1`; the hash keeps folders distinct
    short = ",".join(_short_override(item) for item in items)
    readable = re.sub(r"[^A-Za-z0-9=,._+-]", "_", short)[:100].rstrip(",") or "default"
    space, chash = data["search_space"]["name"], config_hash(data)
    name = f"{readable}-{chash}"
    if root:
        existing = sorted(Path(root, space).glob(f"*-{chash}"))
        if len(existing) == 1 and existing[0].is_dir():
            return f"{space}/{existing[0].name}"
        # a single run (a sweep's launch merges its jobs by hash), not a dry look at names
        if getattr(OmegaConf.select(_root_, "hydra.mode"), "name", None) == "RUN":
            name = _reserved_name(Path(root, space), chash, name)
    return f"{space}/{name}"


NAMES = ".nasheur-names"  # in a space's runs folder: the folder name reserved for each hash


def _reserved_name(space_dir: Path, chash: str, name: str) -> str:
    """The folder name of the job `chash` under `space_dir`: `name`, reserved for it in
    ``<space_dir>/.nasheur-names/<chash>`` (made with O_EXCL: one run is first), or the name
    an earlier run reserved there. Where nothing can be written there, `name` (the run's own
    folder, as it would have been)."""
    path = space_dir / NAMES / chash
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides
    except FileExistsError:
        for _ in range(40):  # its first run writes the name right after creating the file
            try:
                reserved = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return name
            if reserved:  # another's name of this job, never a path elsewhere
                ok = reserved.endswith(f"-{chash}") and "/" not in reserved and "\\" not in reserved
                return reserved if ok else name
            time.sleep(0.05)
        return name
    except OSError:
        return name
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(name + "\n")
    except OSError:  # a full disk: no empty reservation left that later runs wait on
        with contextlib.suppress(OSError):
            path.unlink()
    return name


def _sweep_name(*, _root_: DictConfig) -> str:
    """The sweep folder's name: the experiment's (``multirun`` without one); a placeholder in
    ``--cfg hydra``, which shows Hydra's node without the job's keys."""
    if "experiment" not in _root_:
        return "<experiment name>"
    return str(_root_.experiment.name)


def drop_reserved_name(folder: Path) -> None:
    """Let the name of `folder`, a job folder removed because its job never started (a
    rejected command line), go with it: its reservation (:func:`_reserved_name`), where it
    names this folder, and the reservations' folder if that leaves it empty."""
    path = folder.parent / NAMES / folder.name.rpartition("-")[2]
    try:
        if path.read_text(encoding="utf-8").strip() != folder.name:
            return
        path.unlink()
        path.parent.rmdir()
    except (OSError, UnicodeDecodeError):
        return


def site_env_file() -> str:
    """The site profile in use, as launch/with_site_env.sh reads it: ``$NASHEUR_SITE_ENV`` or
    launch/site.env (for messages that send a user to it)."""
    return os.environ.get("NASHEUR_SITE_ENV", "").strip() or "launch/site.env"


def _site_option(name: str, default: Any = None) -> Any:
    """An sbatch option from the environment (launch/site.env): the variable's text as it is
    (a partition list such as ``dev,gpu`` included), `default` when it is unset or empty, and
    None, which leaves the option out, when it is ``null``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    return None if value == "null" else value


def _env_or(name: str, default: str) -> str:
    """A folder from the environment: `default` when the variable is unset or empty (Hydra's
    ``oc.env`` would take an empty one as the path "", putting runs under ``/``). A leading
    ``~`` is the home folder, as in ``NASHEUR_GT_*`` (a quoted ``"~/runs"`` is not expanded by
    the shell, and would be a folder named ``~`` here)."""
    value = os.path.expanduser(os.environ.get(name, "").strip())
    if "${" in value:  # Hydra would read it as an interpolation in each path made from it
        raise ValueError(f"{name}={value!r}: a folder whose name holds '${{' cannot be used")
    return value or default


def runs_root() -> Path:
    """Where jobs and sweeps go: ``$NASHEUR_RUNS``, else ``runs`` (as the config's
    ``hydra.run.dir`` and ``hydra.sweep.dir`` say)."""
    return Path(_env_or("NASHEUR_RUNS", "runs"))


def _site_count(name: str, default: int | None, need: str = "") -> int | None:
    """A whole-number sbatch option from the environment: `default` when the variable is
    unset or empty, None (the option left out) when it is ``null``, unless `need` says why
    the option cannot be left out; anything else must be a whole number."""
    value = _site_option(name, default)
    if value is None or isinstance(value, int):
        if value is None and need:
            raise ValueError(f"{name}=null: {need}; give a whole number or unset it")
        return value
    try:
        return int(value)
    except ValueError:
        # null is offered only where the option may be left out
        also = "" if need else " (or null)"
        raise ValueError(f"{name}={value!r} is not a whole number{also}") from None


def _site_flag(name: str, default: bool) -> bool:
    """A yes/no launcher option from the environment: `default` when the variable is unset or
    empty; true/yes/on/1 or false/no/off/0 (any case), else an error naming the variable
    (OmegaConf's own would name only the interpolation)."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE + _FALSE:
        return value in _TRUE
    raise ValueError(f"{name}={os.environ[name]!r} is not true or false")


def register_resolvers() -> None:
    for name, resolver in (
        ("nasheur.job_dir", _dir_resolver),
        ("nasheur.site", _site_option),
        ("nasheur.env", _env_or),
        ("nasheur.sweep_name", _sweep_name),
        ("nasheur.site_count", _site_count),
        ("nasheur.site_flag", _site_flag),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


# ---------------------------------------------------------------------------------------------
# validation


def _check(
    ok: bool, key: str, value: object, expected: str, *, fault: str = "out of range"
) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is {fault}: expected {expected}")


# the integers torch, numpy and the C code under them take (a size, a seed, a count)
INT64_MAX = 2**63 - 1


def _ints_beyond_int64(obj: Any, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(key, value) of the int fields of the dataclasses in `obj` outside int64."""
    if not is_dataclass(obj):
        return
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, int) and not isinstance(value, bool):
            if not -INT64_MAX - 1 <= value <= INT64_MAX:
                yield f"{prefix}{f.name}", value
        else:
            yield from _ints_beyond_int64(value, f"{prefix}{f.name}.")


def _check_choice(key: str, value: str, allowed: tuple[str, ...], why: str) -> None:
    if value not in allowed:
        where = f" {why}" if why else ""
        raise ConfigError(
            f"{key}={value} is not supported{where}; allowed values: {', '.join(allowed)}"
        )


def ground_truth_env(space: str) -> str:
    """The environment variable that names a space's ground truth: ``NASHEUR_GT_NB201`` etc."""
    return f"NASHEUR_GT_{space.upper()}"


def ground_truth_from_env(space: str) -> str | None:
    """``$NASHEUR_GT_<SPACE>``, or None where it is unset or empty."""
    return os.environ.get(ground_truth_env(space), "").strip() or None


def resolve_ground_truth(space: str, path: str | None) -> str | None:
    """The GT file of ``space``: ``path`` if set, else ``$NASHEUR_GT_<SPACE>`` (one per space,
    so that a sweep over several spaces finds each one's file, e.g. from launch/site.env), else
    the table the space ships with (embedded); None when there is none."""
    if path is not None:
        return os.path.expanduser(path)
    from_env = ground_truth_from_env(space)
    if from_env:
        return os.path.expanduser(from_env)
    from nasheur.spaces import space_info

    shipped = getattr(space_info(space), "shipped_ground_truth", None)
    return None if shipped is None else str(shipped())


# the published file a user most likely has, per space (spec section 6), for error messages
GT_EXAMPLE_FILE = {
    "nb101": "nasbench_only108.tfrecord",
    "nb201": "NAS-Bench-201-v1_1-096897.pth",
    "darts_nds": "DARTS.json",
}


def ground_truth_path(cfg: Config) -> str | None:
    """The GT file of a job (:func:`resolve_ground_truth` of its space and ground_truth.path)."""
    return resolve_ground_truth(cfg.search_space.name.value, cfg.ground_truth.path)


def ground_truth_cache_dir(cfg: Config) -> str | None:
    """Where a job caches its converted GT table: ground_truth.cache_dir with ``~`` expanded
    (given quoted, it reaches the job unexpanded), or None for the default folders."""
    folder = cfg.ground_truth.cache_dir
    return None if folder is None else os.path.expanduser(folder)


CIFAR10_TRAIN_IMAGES = 50_000  # what dataset=cifar10 splits: the release's training batches


def split_sizes(num_images: int, train_portion: float, val_portion: float) -> tuple[int, int]:
    """The sizes of the training and validation shares of `num_images` (nasheur.data.splits):
    the last ``round(val_portion * N)`` images validate, the first ``round(train_portion * N)``
    train, and shares that fit never overlap by rounding (15 images at 0.9 / 0.1 round to 14
    and 2: 13 train)."""
    n = int(num_images)
    n_val, n_train = round(val_portion * n), round(train_portion * n)
    if train_portion + val_portion <= 1 + 1e-12:
        n_train = min(n_train, n - n_val)
    return n_train, n_val


def check_batch_fits(
    batch: int, shares: tuple[int, int], train_portion: float, val_portion: float
) -> None:
    """Refuse a batch larger than either share: a smaller batch, or images repeated in one,
    would change what BN sees."""
    for share, n in zip(("training", "validation"), shares, strict=True):
        if n < batch:
            raise ConfigError(
                f"fidelity.batch_size={batch} exceeds the {n} {share} images of the split "
                f"(fidelity.train_portion={train_portion}, dataset.val_portion={val_portion}); "
                "lower it or use more images"
            )


FOLDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _is_key(cfg: Any, dotted: str) -> bool:
    """Whether `dotted` names a key of the config (its value may be null)."""
    node = cfg
    for part in dotted.split("."):
        if not is_dataclass(node) or part not in {f.name for f in fields(node)}:
            return False
        node = getattr(node, part)
    return True


def validate(cfg: Config) -> None:
    """Ranges and combinations, checked before any data is read. Raises :class:`ConfigError`."""
    from nasheur.spaces import space_info

    for key, value in _ints_beyond_int64(cfg):  # torch would fail on it with a traceback
        _check(False, key, value, "a whole number in int64's range (-2**63 to 2**63 - 1)")
    f, p, d, e, m = cfg.fidelity, cfg.protocol, cfg.dataset, cfg.eval, cfg.metrics
    b = f.baseline  # first: the values that follow it would be named instead
    _check(b.layers >= 1, "fidelity.baseline.layers", b.layers, "an integer >= 1")
    _check(b.channels >= 1, "fidelity.baseline.channels", b.channels, "an integer >= 1")
    _check(b.batch_size >= 2, "fidelity.baseline.batch_size", b.batch_size, "an integer >= 2")
    _check(
        0 < b.train_portion <= 1,
        "fidelity.baseline.train_portion",
        b.train_portion,
        "0 < value <= 1",
    )
    _check(0 < f.train_portion <= 1, "fidelity.train_portion", f.train_portion, "0 < value <= 1")
    _check(
        f.batch_size >= 2, "fidelity.batch_size", f.batch_size, "an integer >= 2 (BN needs a batch)"
    )
    _check(f.channels >= 1, "fidelity.channels", f.channels, "an integer >= 1")
    _check(f.layers >= 1, "fidelity.layers", f.layers, "an integer >= 1")
    s = cfg.supernet
    _check(0 <= s.path_dropout < 1, "supernet.path_dropout", s.path_dropout, "0 <= rate < 1")
    _check(0 <= s.global_dropout < 1, "supernet.global_dropout", s.global_dropout, "0 <= rate < 1")
    _check(math.isfinite(p.lr) and p.lr > 0, "protocol.lr", p.lr, "a finite value > 0")
    _check(p.epochs >= 1, "protocol.epochs", p.epochs, "an integer >= 1")
    _check(
        math.isfinite(p.weight_decay) and p.weight_decay >= 0,
        "protocol.weight_decay",
        p.weight_decay,
        "a value >= 0",
    )
    _check(0 <= p.momentum < 1, "protocol.momentum", p.momentum, "0 <= value < 1")
    _check(
        math.isfinite(p.grad_clip) and p.grad_clip > 0,
        "protocol.grad_clip",
        p.grad_clip,
        "a value > 0",
    )
    _check(
        0 <= p.lr_min <= p.lr, "protocol.lr_min", p.lr_min, f"0 <= value <= protocol.lr ({p.lr})"
    )
    _check(0 < d.val_portion < 1, "dataset.val_portion", d.val_portion, "0 < value < 1")
    _check(d.split_seed >= 0, "dataset.split_seed", d.split_seed, "an integer >= 0")
    _check(d.num_images >= 10, "dataset.num_images", d.num_images, "an integer >= 10")
    _check(d.image_size >= 8, "dataset.image_size", d.image_size, "an integer >= 8")
    _check(d.num_classes >= 2, "dataset.num_classes", d.num_classes, "an integer >= 2")
    if d.name is DatasetName.cifar10:  # the sizes of generated image sets mean nothing here
        for key in ("num_images", "image_size", "num_classes"):
            if getattr(d, key) != getattr(DatasetConfig, key):
                raise ConfigError(
                    f"dataset.{key}={getattr(d, key)} applies to generated images "
                    "(dataset=procedural or synthetic), not to dataset=cifar10"
                )
    # the shares' sizes are known here (CIFAR-10's 50,000 training images, or a generated
    # set's number): each needs an image, and a batch of fresh images (a sweep of jobs that
    # would each fail at their start is refused before it is launched)
    images = CIFAR10_TRAIN_IMAGES if d.name is DatasetName.cifar10 else d.num_images
    shares = split_sizes(images, f.train_portion, d.val_portion)
    for key, share, n in (
        ("fidelity.train_portion", f.train_portion, shares[0]),
        ("dataset.val_portion", d.val_portion, shares[1]),
    ):
        _check(n >= 1, key, share, f"a share of the {images} images (dataset) that holds one")
    check_batch_fits(f.batch_size, shares, f.train_portion, d.val_portion)
    if d.name is DatasetName.procedural:  # one class per texture of nasheur.data.procedural
        _check(
            d.num_classes <= PROCEDURAL_CLASSES,
            "dataset.num_classes",
            d.num_classes,
            f"an integer <= {PROCEDURAL_CLASSES} with dataset=procedural",
        )
    _check(m.top_n >= 1, "metrics.top_n", m.top_n, "an integer >= 1")
    _check(
        e.pool_size >= max(2, m.top_n),
        "eval.pool_size",
        e.pool_size,
        f"an integer >= max(2, metrics.top_n={m.top_n})",
    )
    _check(
        e.recalibrate_batches >= 1,
        "eval.recalibrate_batches",
        e.recalibrate_batches,
        "an integer >= 1",
    )
    _check(
        0 < m.skdt_threshold < 1,  # accuracies are fractions: a bin of 1 holds them all
        "metrics.skdt_threshold",
        m.skdt_threshold,
        "0 < value < 1 (a fraction of accuracy: 0.001 is 0.1%)",
    )
    _check(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")
    gt_path = cfg.ground_truth.path
    if gt_path is not None and not gt_path.strip():  # would be read as the current folder
        raise ConfigError(
            f"ground_truth.path={gt_path!r} names no file: give one, or null for "
            f"{ground_truth_env(cfg.search_space.name.value)} or the space's own"
        )
    cache_dir = cfg.ground_truth.cache_dir
    if cache_dir is not None and not cache_dir.strip():  # would cache in the current folder
        raise ConfigError(
            f"ground_truth.cache_dir={cache_dir!r} names no folder: give one, or null for "
            "beside the ground-truth file"
        )
    x = cfg.experiment
    _check(
        FOLDER_NAME.fullmatch(x.name) is not None and x.name not in (".", ".."),
        "experiment.name",
        x.name,
        "a folder name (runs/sweeps/<name>): letters, digits, '_', '-' and '.', not a path",
        fault="no plain folder name",
    )
    for factor in x.factors:  # the keys whose values name a table's rows and job folders
        _check(
            _is_key(cfg, factor),
            "experiment.factors",
            factor,
            "keys of the config",
            fault="no key of the config",
        )
    steps = cfg.run.max_steps_per_epoch
    _check(steps is None or steps >= 1, "run.max_steps_per_epoch", steps, "null or an integer >= 1")
    _check(cfg.run.log_every >= 0, "run.log_every", cfg.run.log_every, "an integer >= 0")
    every = cfg.run.checkpoint_every_s
    _check(
        every >= 0,  # NaN is not; inf is: after the last epoch only
        "run.checkpoint_every_s",
        every,
        "seconds >= 0 (0: a checkpoint after every epoch; inf: after the last only)",
    )
    _check(cfg.run.eval_streams >= 1, "run.eval_streams", cfg.run.eval_streams, "an integer >= 1")
    _check(cfg.run.eval_pack >= 1, "run.eval_pack", cfg.run.eval_pack, "an integer >= 1")

    if e.bn is EvalBN.running and not p.bn_track:
        raise ConfigError(
            "eval.bn=running needs protocol.bn_track=true: a super-net that does not track BN "
            "statistics has none to evaluate with; use eval.bn=auto, batch or recalibrate"
        )

    space = space_info(cfg.search_space.name.value)
    why = f"by search_space={space.name}"
    _check_choice("supernet.ops_on", cfg.supernet.ops_on.value, space.ops_on, why)
    _check_choice(
        "supernet.dynamic_channels",
        cfg.supernet.dynamic_channels.value,
        space.dynamic_channels,
        why,
    )
    _check_choice("sampler", cfg.sampler.name.value, space.samplers, why)
    multiple = getattr(space, "image_multiple", 1)
    if d.name is not DatasetName.cifar10 and d.image_size % multiple:
        raise ConfigError(
            f"dataset.image_size={d.image_size} is not supported {why}: expected a multiple of "
            f"{multiple} (its reductions halve the image twice)"
        )
    if "disabled" not in space.dynamic_channels:  # a space without sub-spaces
        for key, value, default in (
            ("supernet.subspace", cfg.supernet.subspace, None),
            ("supernet.random_subspace", cfg.supernet.random_subspace, False),
        ):
            if value != default:
                raise ConfigError(
                    f"{key}={_dir_value(value)} needs sub-spaces (NB101's, by the number of "
                    f"incoming edges), which search_space={space.name} does not have"
                )
    if hasattr(space, "validate_config"):  # rules only one space has
        space.validate_config(cfg)

    gt = ground_truth_path(cfg)
    if gt is None:
        raise ConfigError(
            f"ground_truth.path is not set: search_space={space.name} needs a ground-truth table, "
            f"e.g. ground_truth.path=/data/{GT_EXAMPLE_FILE.get(space.name, 'table.csv')}, or "
            f"the environment variable {ground_truth_env(space.name)} (see README, 'Ground truth')"
        )
    if cfg.ground_truth.dataset is not None:
        _check_choice("ground_truth.dataset", cfg.ground_truth.dataset, GT_DATASETS, "")
    # where the file was named, for the messages: the key, else the environment variable
    named = (
        "ground_truth.path"
        if cfg.ground_truth.path is not None
        else f"${ground_truth_env(space.name)}"
        if ground_truth_from_env(space.name)
        else "the shipped table"
    )
    if not Path(gt).exists():
        raise ConfigError(f"{named}={gt}: no such file or folder")
    from nasheur.groundtruth.convert import (  # numpy only
        check_protocol,
        detect_format,
        space_of_file,
    )

    try:
        made_for = space_of_file(gt)
        fmt = detect_format(gt)
    except (OSError, ValueError) as exc:  # an unknown format (GroundTruthError), unreadable
        raise ConfigError(f"{named}={gt}: {exc}") from None
    g = cfg.ground_truth
    table_keys = [
        f"ground_truth.{k}={v}"
        for k, v in (("column", g.column), ("unit", g.unit.value))
        if v is not None and v != "auto"
    ]
    if fmt != "table" and table_keys:  # the job would refuse them once its data are loaded
        raise ConfigError(
            f"{', '.join(table_keys)}: these apply to CSV tables only; {named}={gt} is a {fmt} "
            "benchmark file, whose accuracies are converted to fractions (leave them unset)"
        )
    metric = None if g.metric is None else g.metric.value
    if g.dataset is not None or metric is not None:
        try:
            check_protocol(gt, g.dataset, metric)
        except ValueError as exc:  # GroundTruthError
            given = [
                f"ground_truth.{k}={v}"
                for k, v in (("dataset", g.dataset), ("metric", metric))
                if v
            ]
            raise ConfigError(f"{', '.join(given)}: {exc}") from None
    stands_in_for = getattr(space, "paper_space", None)
    if made_for is None and stands_in_for is not None:
        # its keys are another space's (embedded: NB201 cells): a table that does not say
        # which space it measured could be that space's benchmark
        raise ConfigError(
            f"{named}={gt} does not say which search space it measured; a table for "
            f"search_space={space.name}, whose keys are {stands_in_for} cells, must say so in "
            f"a '# space: {space.name}' line (the builder, python -m nasheur.groundtruth build, "
            "writes it)"
        )
    if made_for is not None and made_for != space.name:
        # NB201 cells are embedded keys too: without this, the embedded super-net would be
        # ranked against NAS-Bench-201's CIFAR-10 accuracies without a word
        raise ConfigError(
            f"{named}={gt} holds architectures of search_space={made_for}, not of "
            f"search_space={space.name}; set search_space={made_for} or another table"
        )
