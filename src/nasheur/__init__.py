"""nasheur: how far can a weight-sharing super-net be trusted?

The system of "An Analysis of Super-Net Heuristics in Weight-Sharing NAS" (Yu, Ranftl,
Salzmann, TPAMI): search spaces with known stand-alone accuracy, super-nets trained under the
paper's 14 heuristics, and the ranking metrics that judge them.
"""

__version__ = "0.1.0"
