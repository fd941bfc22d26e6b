"""Benchmark the agent end to end: latency per question, non-LM overhead, peak memory.

    .venv/bin/python -m bench.bench_agent [--lm embedded/qwen2.5-coder-1.5b] [--limit 20]

Runs the 20 questions of bench/questions.txt through `Agent.ask` with the LM cache off, so every
LM call is real. LM time is measured by a DSPy callback around every LM call; the non-LM overhead of
a question is its wall time minus its LM time (graph, retrieval, value look-ups, policy, sandbox,
tracing). Peak RSS is the process's VmHWM (the llama.cpp model runs in-process). Prints a table and
writes bench/results/agent-<timestamp>.json with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import dspy
from dspy.utils.callback import BaseCallback

import agent  # noqa: F401  (offline switches)
from agent.config import PROJECT_ROOT, load_settings
from agent.service import Agent

QUESTIONS = PROJECT_ROOT / "bench" / "questions.txt"
RESULTS = PROJECT_ROOT / "bench" / "results"


class LMTimer(BaseCallback):
    """Accumulates wall time spent inside LM calls."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started: dict[str, float] = {}

    def on_lm_start(self, call_id, instance, inputs):
        self._started[call_id] = time.perf_counter()

    def on_lm_end(self, call_id, outputs, exception=None):
        self.total += time.perf_counter() - self._started.pop(call_id, time.perf_counter())


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm", help="lm.model to benchmark (default: the configured one)")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--no-tracing", action="store_true", help="measure without MLflow tracing")
    args = parser.parse_args(argv)

    overrides = {"lm": {"cache": False}}
    if args.no_tracing:
        overrides["tracking"] = {"enabled": False}
    settings = load_settings(**overrides)
    if args.lm:
        settings.lm.model = args.lm
    timer = LMTimer()
    dspy.configure(callbacks=[timer])

    load_before = os.getloadavg()
    started = time.perf_counter()
    bot = Agent(settings)
    startup_s = time.perf_counter() - started
    questions = [q for q in QUESTIONS.read_text().splitlines() if q.strip() and not q.startswith("#")]
    rows = []
    for question in questions[: args.limit]:
        lm_before = timer.total
        t0 = time.perf_counter()
        result = bot.ask(question)
        wall = time.perf_counter() - t0
        lm_time = timer.total - lm_before
        rows.append({
            "question": question, "status": result.status, "wall_s": round(wall, 3), "lm_s": round(lm_time, 3),
            "overhead_ms": round((wall - lm_time) * 1000, 1), "tokens": sum(n.tokens for n in result.nodes),
            "sql": result.sql, "answer": result.answer,
        })  # fmt: skip
        print(f"{wall:6.1f} s  lm {lm_time:5.1f} s  overhead {(wall - lm_time) * 1000:6.0f} ms  "
              f"[{result.status}] {question}", flush=True)
    walls = [r["wall_s"] for r in rows]
    overheads = [r["overhead_ms"] for r in rows]
    summary = {
        "lm": settings.lm.model,
        "questions": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "startup_s": round(startup_s, 2),
        "p50_s": round(statistics.median(walls), 2),
        "p95_s": round(percentile(walls, 0.95), 2),
        "overhead_p50_ms": round(statistics.median(overheads), 1),
        "overhead_p95_ms": round(percentile(overheads, 0.95), 1),
        "peak_rss_mb": round(_status_kb("VmHWM") / 1024),
        "tracing": settings.tracking.enabled,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"agent-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"summary": summary, "questions": rows}, indent=2, default=str))
    print(f"written {out.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
