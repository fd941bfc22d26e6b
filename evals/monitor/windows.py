"""Rates over time windows, read from the trace store, and the thresholds that raise an alert.

The server tags each answer's trace with how it ended and what it spent (agent/service.py) and
where it came from (`sqlagent.origin = serve`), so a window is one search without spans. Code
scores and judge verdicts are the traces' assessments (sampler.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import mlflow

from agent.config_sections import MonitorSettings, MonitorThresholds
from evals.scoring import percentile

ORIGIN_TAG = "sqlagent.origin"
ORIGIN_SERVE = "serve"
_WINDOW = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def window_seconds(window: str) -> int:
    match = _WINDOW.match(window)
    if not match:
        raise ValueError(f"window {window!r} is not a number of minutes, hours or days, e.g. 15m, 1h, 7d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass
class WindowStats:
    window: str
    since: str
    answers: int = 0
    answers_per_hour: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    error_rate: float | None = None
    refusal_rate: float | None = None
    clarify_rate: float | None = None
    budget_stops: int = 0
    scored: int = 0  # answers the monitor scored (the sample)
    empty_result_rate: float | None = None  # of the scored answers that returned a result
    valid_sql_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    tokens_per_answer: float | None = None
    cost_per_answer: float | None = None
    currency: str = "USD"
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _feedback(trace, name: str, source_type: str):
    found = [
        a
        for a in trace.info.assessments or []
        if a.name == name
        and a.feedback is not None
        and getattr(a.source, "source_type", None) == source_type
        and getattr(a, "valid", True) is not False
    ]
    return max(found, key=lambda a: a.create_time_ms or 0) if found else None


def server_traces(experiment_id: str, since_ms: int, max_traces: int) -> list:
    return mlflow.search_traces(
        locations=[experiment_id],
        include_spans=False,
        return_type="list",
        max_results=max_traces,
        filter_string=f"timestamp_ms > {since_ms} AND tags.`{ORIGIN_TAG}` = '{ORIGIN_SERVE}'",
    )


def window_stats(
    experiment_id: str,
    window: str,
    settings: MonitorSettings,
    now: float | None = None,
    judges: list[str] | None = None,
) -> WindowStats:
    now = time.time() if now is None else now
    seconds = window_seconds(window)
    since_ms = int((now - seconds) * 1000)
    traces = server_traces(experiment_id, since_ms, settings.max_traces)
    stats = WindowStats(
        window=window,
        currency=settings.currency,
        since=dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC).isoformat(timespec="seconds"),
    )
    n = stats.answers = len(traces)
    stats.answers_per_hour = round(n * 3600 / seconds, 2)
    statuses: dict[str, int] = {}
    latencies, tokens, costs = [], [], []
    prices = settings.prices
    for t in traces:
        tags = t.info.tags or {}
        status = tags.get("sqlagent.status", "unknown")
        statuses[status] = statuses.get(status, 0) + 1
        stats.budget_stops += tags.get("sqlagent.error_kind") == "budget"
        if t.info.execution_duration is not None:
            latencies.append(t.info.execution_duration)
        try:
            usage = json.loads(tags.get("sqlagent.tokens") or "{}")
        except ValueError:
            usage = {}
        tokens.append(usage.get("total", 0))
        costs.append(
            (
                usage.get("read", 0) * prices.read
                + usage.get("cached", 0) * prices.cached
                + usage.get("written", 0) * prices.written
            )
            / 1e6
        )
    stats.statuses = dict(sorted(statuses.items()))
    stats.error_rate = _share(statuses.get("error", 0), n)
    stats.refusal_rate = _share(statuses.get("refused", 0), n)
    stats.clarify_rate = _share(statuses.get("clarify", 0), n)
    stats.latency_p50_ms = percentile(latencies, 50)
    stats.latency_p95_ms = percentile(latencies, 95)
    stats.tokens_per_answer = round(sum(tokens) / n, 1) if n else None
    stats.cost_per_answer = round(sum(costs) / n, 6) if n else None
    scored = [t for t in traces if _feedback(t, "tokens", "CODE") is not None]
    stats.scored = len(scored)
    results = [f.value for t in scored if (f := _feedback(t, "non_empty_result", "CODE")) is not None]
    stats.empty_result_rate = _share(sum(1 for v in results if v is False), len(results))
    valid = [f.value for t in scored if (f := _feedback(t, "valid_sql", "CODE")) is not None]
    stats.valid_sql_rate = _share(sum(1 for v in valid if v is True), len(valid))
    for name in judges or settings.judges:
        verdicts = [f for t in traces if (f := _feedback(t, name, "LLM_JUDGE")) is not None]
        passed = sum(1 for f in verdicts if str((f.metadata or {}).get("passed")).lower() == "true")
        stats.judges[name] = {
            "judged": len(verdicts),
            "passed": passed,
            "pass_rate": _share(passed, len(verdicts)),
        }
    stats.alerts = alerts(stats, settings.thresholds)
    return stats


def alerts(stats: WindowStats, limits: MonitorThresholds) -> list[str]:
    """Each threshold the window crossed, as one sentence; nothing below min_answers answers."""
    out: list[str] = []
    if stats.answers < limits.min_answers:
        return out
    checks = [
        ("error rate", stats.error_rate, limits.error_rate, "monitor.thresholds.error_rate"),
        ("refusal rate", stats.refusal_rate, limits.refusal_rate, "monitor.thresholds.refusal_rate"),
        ("clarify rate", stats.clarify_rate, limits.clarify_rate, "monitor.thresholds.clarify_rate"),
        (
            "empty-result rate",
            stats.empty_result_rate,
            limits.empty_result_rate,
            "monitor.thresholds.empty_result_rate",
        ),
        (
            "p95 latency (ms)",
            stats.latency_p95_ms,
            limits.p95_latency_ms,
            "monitor.thresholds.p95_latency_ms",
        ),
        (
            "tokens per answer",
            stats.tokens_per_answer,
            limits.tokens_per_answer,
            "monitor.thresholds.tokens_per_answer",
        ),
        (
            "cost per answer",
            stats.cost_per_answer,
            limits.cost_per_answer,
            "monitor.thresholds.cost_per_answer",
        ),
    ]
    for what, value, limit, key in checks:
        if value is not None and limit is not None and value > limit:
            out.append(
                f"{stats.window}: {what} {value:g} is above {limit:g} ({key}), over {stats.answers} answers"
            )
    for name, lowest in limits.judge_pass_rate.items():
        j = stats.judges.get(name)
        if j and j["judged"] >= limits.min_answers and j["pass_rate"] is not None and j["pass_rate"] < lowest:
            out.append(
                f"{stats.window}: {name} pass rate {j['pass_rate']:g} is below {lowest:g} "
                f"(monitor.thresholds.judge_pass_rate.{name}), over {j['judged']} judged answers"
            )
    return out
