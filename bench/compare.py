"""Before/after tables of two bench result files (bench/results/agent-*.json).

    .venv/bin/python -m bench.bench_agent --compare OLD.json NEW.json   # two earlier runs
    .venv/bin/python -m bench.bench_agent --compare OLD.json            # a new run against OLD

Every cell is `old -> new (delta)`; a number one file lacks (an older format, a skipped Spider
part) shows as `-`. Lower is better for every metric here except `ok` and the Spider accuracies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.stats import table

# (label, path into the result file, digits)
OVERALL: list[tuple[str, tuple[str | int, ...], int]] = [
    ("questions", ("summary", "questions"), 0),
    ("ok", ("summary", "ok"), 0),
    ("wall p50 s", ("summary", "p50_s"), 2),
    ("wall p95 s", ("summary", "p95_s"), 2),
    ("first question s", ("summary", "first_s"), 2),
    ("non-LM overhead p50 ms", ("summary", "overhead_p50_ms"), 1),
    ("tokens read/question", ("summary", "tokens_per_question", "read"), 1),
    ("tokens cached/question", ("summary", "tokens_per_question", "cached"), 1),
    ("tokens written/question", ("summary", "tokens_per_question", "written"), 1),
    ("model load s", ("startup", "model_load_s"), 2),
    ("startup total s", ("startup", "total_s"), 2),
    ("peak RSS MiB", ("summary", "peak_rss_mb"), 0),
    ("spider items", ("spider", "items"), 0),
    ("spider bare p50 s", ("spider", "baseline", "p50_s"), 2),
    ("spider agent p50 s", ("spider", "agent", "p50_s"), 2),
    ("spider agent/bare p50", ("spider", "ratio_p50"), 2),
    ("spider bare correct", ("spider", "baseline", "correct"), 0),
    ("spider agent correct", ("spider", "agent", "correct"), 0),
    # Not results: a busy machine explains a slower run (the bench itself keeps ~threads cores busy).
    ("load avg 1 min before", ("meta", "loadavg_before", 0), 2),
    ("load avg 1 min after", ("meta", "loadavg_after", 0), 2),
]
NODE_COLUMNS = [
    ("runs", "runs"),
    ("ms/run", "ms_mean"),
    ("read/run", "tokens_read_mean"),
    ("cached/run", "tokens_cached_mean"),
    ("written/run", "tokens_written_mean"),
]


def get(data: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        in_list = isinstance(key, int) and isinstance(data, list) and -len(data) <= key < len(data)
        if not (in_list or (isinstance(key, str) and isinstance(data, dict) and key in data)):
            return None
        data = data[key]
    return data


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def delta_cell(old: Any, new: Any, digits: int = 1) -> str:
    """`old -> new (+d, +p%)`, with whatever of that the two values allow."""
    a, b = _num(old), _num(new)

    def fmt(x: float | None) -> str:
        return "-" if x is None else (f"{x:.{digits}f}" if digits else f"{x:.0f}")

    if a is None or b is None:
        return f"{fmt(a)} -> {fmt(b)}"
    change = b - a
    pct = f", {100 * change / a:+.0f}%" if a else ""
    sign = "+" if change >= 0 else "-"
    return f"{fmt(a)} -> {fmt(b)} ({sign}{fmt(abs(change))}{pct})"


def overall_table(old: dict[str, Any], new: dict[str, Any]) -> str:
    rows = []
    for label, path, digits in OVERALL:
        a, b = get(old, path), get(new, path)
        if a is None and b is None:
            continue
        rows.append((label, delta_cell(a, b, digits)))
    return table(("overall", "before -> after (delta)"), rows)


def nodes_table(
    old: dict[str, dict[str, Any]] | None, new: dict[str, dict[str, Any]] | None, title: str
) -> str:
    old, new = old or {}, new or {}
    names = list(new) + [n for n in old if n not in new]
    rows = []
    for name in names:
        a, b = old.get(name, {}), new.get(name, {})
        rows.append(
            (
                name,
                *(delta_cell(a.get(key), b.get(key), 0 if key == "runs" else 1) for _, key in NODE_COLUMNS),
            )
        )
    return table((title, *(label for label, _ in NODE_COLUMNS)), rows)


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    parts = [overall_table(old, new), nodes_table(old.get("nodes"), new.get("nodes"), "node")]
    spider_old, spider_new = get(old, ("spider", "agent", "nodes")), get(new, ("spider", "agent", "nodes"))
    if spider_old or spider_new:
        parts.append(nodes_table(spider_old, spider_new, "spider node"))
    return "\n\n".join(parts)


def load(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a bench result (expected a JSON object)")
    return data


def describe(path: str | Path, data: dict[str, Any]) -> str:
    meta = data.get("meta") or {}
    commit = (get(meta, ("git", "commit")) or "?")[:10]
    dirty = "+dirty" if get(meta, ("git", "dirty")) else ""
    lm = meta.get("lm") or get(data, ("summary", "lm")) or "?"
    return f"{path}: {meta.get('started_at', '?')} {lm} {commit}{dirty}"
