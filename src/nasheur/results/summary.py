"""The few lines a person reads at the end of a job (and again with ``results show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["summary_table"]


def summary_table(record: dict[str, Any], path: Path) -> str:
    """A few lines a person reads at the end of a job."""
    m, t = record["metrics"], record["timing"]

    def num(v: float | None, pct: bool = False) -> str:
        return "n/a" if v is None else (f"{100 * v:.2f}%" if pct else f"{v:.4f}")

    rows = [
        (
            "super-net accuracy",
            f"{num(m['supernet_acc_mean'], True)} ± {num(m['supernet_acc_std'], True)}"
            + ("  (untrained)" if record["untrained"] else ""),
        ),
        ("sparse Kendall tau", num(m["sparse_kendall_tau"])),
        ("Kendall tau", num(m["kendall_tau"])),
        ("sparse Spearman", num(m["sparse_spearman"])),
        ("Spearman", num(m["spearman"])),
        ("P>R", num(m["p_beat_random"]) + _among(record)),
        ("final performance", num(m["final_performance"], True)),
        ("wall time", f"{t['wall_seconds']:.1f} s"),
        ("training", f"{t['train_images_per_s']:,.0f} images/s"),
        ("evaluation", f"{t['eval_archs_per_s']:.2f} architectures/s"),
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
