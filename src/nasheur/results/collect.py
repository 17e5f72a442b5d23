"""Find and read the `metrics.json` records of jobs and sweeps (no torch: runs anywhere)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

METRICS = "metrics.json"


def find_records(folders: Iterable[str | Path]) -> list[Path]:
    """Every metrics.json under the given job or sweep folders, sorted."""
    found: set[Path] = set()
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            raise FileNotFoundError(f"no such folder: {folder}")
        found.update(p.resolve() for p in ([folder] if folder.is_file() else folder.rglob(METRICS)))
    return sorted(found)


def load_records(folders: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The records, each with its `path`; an unreadable file becomes a `broken` record."""
    records = []
    for path in find_records(folders):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            record = {"status": "broken", "error": f"{type(err).__name__}: {err}"}
        record["path"] = str(path)
        records.append(record)
    return records
