"""Ground-truth (stand-alone) accuracies of benchmark architectures.

``nasheur.groundtruth.table`` is pure numpy/csv so that result tools can read ground truth
without importing torch. The official benchmark readers (``nb101``, ``nb201``, ``nds``) are
imported only when a file of their kind is read; :func:`load_ground_truth` converts such a file
once into a cached table (see :mod:`nasheur.groundtruth.convert`).
"""

from nasheur.groundtruth.convert import (
    FORMATS,
    cache_path,
    convert_file,
    detect_format,
    load_ground_truth,
    read_source,
    source_sha256,
)
from nasheur.groundtruth.table import GroundTruth, GroundTruthError, read_table, write_table

__all__ = [
    "FORMATS",
    "GroundTruth",
    "GroundTruthError",
    "cache_path",
    "convert_file",
    "detect_format",
    "load_ground_truth",
    "read_source",
    "read_table",
    "source_sha256",
    "write_table",
]
