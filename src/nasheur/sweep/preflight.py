"""What a launch reads before it launches: the jobs' CIFAR-10, ground truth (against their
spaces and pool size) and, where they run here, their device; each job would otherwise fail
on it in its first seconds, on the cluster after its wait in the queue.
"""

from __future__ import annotations

from typing import Any

from nasheur.sweep.plan import Reads


def missing_data(roots: set[str]) -> list[str]:
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


def bad_inputs(
    jobs: list[tuple[list[str], Reads]], local: bool, convert: bool = True
) -> dict[str, list[list[str]]]:
    """Each error the jobs' own first checks would raise, with the jobs that would raise it:
    their ground truth (each file read once, as the job reads it: a benchmark file's first
    conversion, cached, happens here instead of in every job; without `convert`, as a dry
    run writes nothing, such a file is left to the jobs) against their spaces and
    ``eval.pool_size``, and where the jobs run here (`local`) their device."""
    from nasheur.config import ConfigError, ground_truth_cache_dir, ground_truth_path
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
            key = (ground_truth_path(cfg), g.dataset, g.metric, g.column, g.unit)
            key += (ground_truth_cache_dir(cfg), cfg.search_space.name)
            if key not in read:
                try:
                    if not convert and detect_format(key[0]) != "table":
                        metric = None if g.metric is None else g.metric.value
                        cached = cached_table(
                            key[0], dataset=g.dataset, metric=metric, cache_dir=key[5]
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
