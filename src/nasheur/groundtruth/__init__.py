"""Ground-truth (stand-alone) accuracies of benchmark architectures.

``nasheur.groundtruth.table`` is pure numpy/csv so that result tools can read ground truth
without importing torch.
"""

from nasheur.groundtruth.table import GroundTruth, GroundTruthError, read_table, write_table

__all__ = ["GroundTruth", "GroundTruthError", "read_table", "write_table"]
