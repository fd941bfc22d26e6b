"""Plain-text rendering for the terminal: results, tables and per-node timelines."""

from __future__ import annotations

from typing import Any


def table(columns: list[str], rows: list[list[Any]], limit: int = 20) -> str:
    if not columns:
        return "(no columns)"
    shown = [["NULL" if v is None else str(v) for v in row] for row in rows[:limit]]
    widths = [min(40, max([len(c)] + [len(r[i]) for r in shown])) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in shown]
    if len(rows) > limit:
        out.append(f"... {len(rows) - limit} more rows")
    return "\n".join(out)


def timeline(nodes: list[dict[str, Any]]) -> str:
    """node, duration, tokens and the key output of each node, in execution order."""
    total = sum(n["duration_ms"] for n in nodes) or 1.0
    lines = [f"{'node':<10} {'ms':>8} {'tokens':>7}  {'':<20} detail"]
    for n in nodes:
        bar = "#" * max(1, round(20 * n["duration_ms"] / total))
        detail = " ".join(str(n.get("detail", "")).split())
        lines.append(
            f"{n['name']:<10} {n['duration_ms']:>8.0f} {n.get('tokens', 0):>7}  {bar:<20} {detail[:100]}"
        )
    lines.append(f"{'total':<10} {total:>8.0f} {sum(n.get('tokens', 0) for n in nodes):>7}")
    return "\n".join(lines)
