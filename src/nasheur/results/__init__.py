"""Results of many jobs: collect their metrics.json records, merge them into the paper's tables."""

from nasheur.results.collect import find_records, load_records

__all__ = ["find_records", "load_records"]
