"""The few lines a person reads at the end of a job (and again with ``results show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["summary_table"]


def summary_table(record: dict[str, Any], path: Path) -> str:
    """A few lines a person reads at the end of a job (``n/a`` for what an older record or
    another tool's lacks)."""
    m, t = record.get("metrics") or {}, record.get("timing") or {}

    def num(v: Any, pct: bool = False, fmt: str = ".4f", unit: str = "") -> str:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "n/a"
        return f"{100 * v:.2f}%" if pct else f"{v:{fmt}}{unit}"

    rows = [
        (
            "super-net accuracy",
            f"{num(m.get('supernet_acc_mean'), True)} ± {num(m.get('supernet_acc_std'), True)}"
            + ("  (untrained)" if record.get("untrained") else ""),
        ),
        ("sparse Kendall tau", num(m.get("sparse_kendall_tau"))),
        ("Kendall tau", num(m.get("kendall_tau"))),
        ("sparse Spearman", num(m.get("sparse_spearman"))),
        ("Spearman", num(m.get("spearman"))),
        ("P>R", num(m.get("p_beat_random")) + _among(record)),
        ("final performance", num(m.get("final_performance"), True)),
        ("wall time", num(t.get("wall_seconds"), fmt=".1f", unit=" s")),
        (
            "training",
            num(t.get("train_images_per_s"), fmt=",.0f", unit=" images/s")
            # only evaluated here: the speed is that of the twin that trained its super-net
            + (f"  (in {record['trained_in']})" if record.get("trained_in") else ""),
        ),
        ("evaluation", num(t.get("eval_archs_per_s"), fmt=".2f", unit=" architectures/s")),
        ("metrics", str(path)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _among(record: dict[str, Any]) -> str:
    """``  (among the 10,467 of NB101SubSpace(subspace=4))``: the architectures P>R counts in,
    where the job searched a part of its space (records before 2026-12-02 do not say)."""
    searched = (record.get("eval") or {}).get("searched")
    if not isinstance(searched, dict) or searched.get("space") == record.get("config", {}).get(
        "search_space", {}
    ).get("name"):
        return ""
    return f"  (among the {searched.get('architectures', 0):,} of {searched.get('space')})"
