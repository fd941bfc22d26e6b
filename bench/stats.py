"""The bench's numbers: percentiles, per-node aggregates and the tables printed from them.

Pure functions over plain dicts (a `NodeRun.model_dump()` per node run), so that a result file
written by one run can be summarised and compared by another (bench/compare.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

TOKEN_KINDS = ("read", "cached", "written")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The value at quantile q (nearest rank on the sorted values); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def tokens_of(run: dict[str, Any]) -> dict[str, int]:
    """read/cached/written of one node run (a record written before the split has only `tokens`)."""
    return {kind: int(run.get(f"tokens_{kind}") or 0) for kind in TOKEN_KINDS}


def token_totals(runs: Iterable[dict[str, Any]]) -> dict[str, int]:
    totals = dict.fromkeys(TOKEN_KINDS, 0)
    for run in runs:
        for kind, n in tokens_of(run).items():
            totals[kind] += n
    return totals


def node_stats(questions: Sequence[Sequence[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per node, in the order nodes first ran: how often it ran, its time per run (mean, p50, p95),
    its share of all node time, and its tokens (totals, and per run)."""
    by_node: dict[str, list[dict[str, Any]]] = {}
    for runs in questions:
        for run in runs:
            by_node.setdefault(run["name"], []).append(run)
    all_ms = sum(float(r["duration_ms"]) for runs in by_node.values() for r in runs) or 1.0
    out: dict[str, dict[str, Any]] = {}
    for name, runs in by_node.items():
        ms = [float(r["duration_ms"]) for r in runs]
        totals = token_totals(runs)
        out[name] = {
            "runs": len(runs),
            "runs_per_question": round(len(runs) / max(1, len(questions)), 2),
            "ms_total": round(sum(ms), 1),
            "ms_mean": round(sum(ms) / len(ms), 1),
            "ms_p50": rounded(median(ms)),
            "ms_p95": rounded(percentile(ms, 0.95)),
            "ms_share": round(sum(ms) / all_ms, 3),
            **{f"tokens_{k}": v for k, v in totals.items()},
            **{f"tokens_{k}_mean": round(v / len(runs), 1) for k, v in totals.items()},
        }
    return out


def wall_summary(walls_s: Sequence[float]) -> dict[str, Any]:
    """p50/p95/mean of wall times per question, and the first one (the first in a fresh process)."""
    return {
        "first_s": rounded(walls_s[0], 2) if walls_s else None,
        "p50_s": rounded(median(walls_s), 2),
        "p95_s": rounded(percentile(walls_s, 0.95), 2),
        "mean_s": rounded(sum(walls_s) / len(walls_s), 2) if walls_s else None,
        "max_s": rounded(max(walls_s), 2) if walls_s else None,
    }


def status_kb(field: str, path: str | Path = "/proc/self/status") -> int:
    """A `VmHWM`-style field of /proc/self/status in KiB (0 where there is no such file)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


# --- tables ----------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, the first column left-aligned and the rest right-aligned."""
    cells = [list(header)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


NODE_HEADER = ("node", "runs", "ms mean", "ms p95", "time %", "read/run", "cached/run", "written/run")


def node_table(nodes: dict[str, dict[str, Any]]) -> str:
    rows = [
        (name, s["runs"], s["ms_mean"], s["ms_p95"], round(100 * s["ms_share"], 1),
         s["tokens_read_mean"], s["tokens_cached_mean"], s["tokens_written_mean"])
        for name, s in nodes.items()
    ]  # fmt: skip
    return table(NODE_HEADER, rows)
