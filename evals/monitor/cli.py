"""`sqlagent monitor [--window 1h ...] [--check] [--json]`: the server's answers over time windows.

Exit codes: 0 no threshold crossed (or no --check); 1 with --check, a threshold crossed (each
alert is also a log line on stderr: cron mails it, CI shows it); 2 a bad window.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from agent.config import load_settings

log = logging.getLogger("sqlagent.monitor")
EXIT_OK, EXIT_ALERT, EXIT_USAGE = 0, 1, 2


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.0f}{unit}"


def render(stats) -> str:
    j = ", ".join(f"{name} {_pct(v['pass_rate'])} of {v['judged']}" for name, v in stats.judges.items())
    lines = [
        f"last {stats.window} (since {stats.since}): {stats.answers} answers, {stats.answers_per_hour:g}/hour; "
        f"scored {stats.scored}",
        f"  errors {_pct(stats.error_rate)}, refusals {_pct(stats.refusal_rate)}, clarifications "
        f"{_pct(stats.clarify_rate)}, empty results {_pct(stats.empty_result_rate)}, valid SQL "
        f"{_pct(stats.valid_sql_rate)}, budget stops {stats.budget_stops}",
        f"  latency p50 {_num(stats.latency_p50_ms, ' ms')}, p95 {_num(stats.latency_p95_ms, ' ms')}; tokens per answer "
        f"{_num(stats.tokens_per_answer)}; cost per answer "
        f"{'-' if stats.cost_per_answer is None else f'{stats.cost_per_answer:.4f} {stats.currency}'}",
        f"  judges: {j or 'none'}",
    ]
    lines += [f"  ALERT {a}" for a in stats.alerts]
    return "\n".join(lines)


def cmd_monitor(args: argparse.Namespace) -> int:
    import mlflow

    from agent.tracing import setup_tracing
    from evals.monitor.windows import window_seconds, window_stats

    settings = load_settings()
    windows = args.window or settings.monitor.windows
    try:
        for w in windows:
            window_seconds(w)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not setup_tracing(settings):
        print("error: tracking is off (tracking.enabled): there are no traces to read", file=sys.stderr)
        return EXIT_USAGE
    experiment = mlflow.get_experiment_by_name(settings.tracking.experiment)
    out: list[Any] = []
    for w in windows:
        stats = window_stats(experiment.experiment_id, w, settings.monitor) if experiment else None
        if stats is None:
            continue
        out.append(stats)
        for a in stats.alerts:
            log.warning("ALERT %s", a)
    if args.json:
        print(json.dumps([s.as_dict() for s in out], indent=2))
    else:
        print("\n".join(render(s) for s in out) or f"no experiment {settings.tracking.experiment!r} yet")
    crossed = any(s.alerts for s in out)
    return EXIT_ALERT if args.check and crossed else EXIT_OK


def add_monitor_parser(subparsers: Any) -> None:
    mon = subparsers.add_parser(
        "monitor", help="the server's answers over time windows; --check exits 1 on an alert"
    )
    mon.add_argument(
        "--window", action="append", help="e.g. 15m, 1h, 7d (repeatable; default monitor.windows)"
    )
    mon.add_argument("--check", action="store_true", help="exit 1 when a threshold is crossed (cron, CI)")
    mon.add_argument("--json", action="store_true")
    mon.set_defaults(func=cmd_monitor)
