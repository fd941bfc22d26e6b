"""Benchmark the agent end to end: time and LM tokens per node, latency per question, memory.

    .venv/bin/python -m bench.bench_agent [--lm embedded/qwen2.5-coder-1.5b] [--limit 20]
        [--spider DIR [--spider-limit N]] [--compare OLD.json [NEW.json]] [--no-tracing]

Runs the questions of bench/questions.txt through `Agent.ask` with DSPy's response cache off, so
every LM call is real. Per graph node it reports wall time and the LM's tokens: prompt tokens READ
(processed by the model), prompt tokens CACHED (served from the model's prompt cache: llama.cpp's
KV-cache prefix reuse, a provider's prompt caching) and tokens WRITTEN (completion), as recorded by
agent/nodes/instrument.py. Per question: p50/p95 wall time, the first question's time (the first in
this fresh process, after the model has loaded; startup is reported separately: the interpreter
and imports, the model load, the agent's own setup) and the non-LM overhead (wall time minus the
time inside LM calls, from a DSPy callback). Peak RSS is the process's VmHWM (the llama.cpp model
runs in-process). With --spider DIR it also measures the ratio goal on a foreign Spider-style
dataset: the agent against one bare chat call of the same model (bench/spider.py).

Writes bench/results/agent-<timestamp>.json (or --out); `--compare OLD.json` prints a before/after
table against OLD, and `--compare OLD.json NEW.json` compares two earlier runs without running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

import agent  # noqa: F401  (offline switches)
from agent.config import PROJECT_ROOT, Settings, load_settings
from agent.service import Agent, build_lms
from bench import compare as cmp
from bench import spider, stats
from bench.stats import median, node_stats, node_table, percentile, rounded, token_totals, wall_summary
from evals.provenance import git_commit

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


def process_age_s() -> float | None:
    """Seconds since this process started (interpreter start-up and imports so far), from /proc."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def read_questions(path: Path = QUESTIONS) -> list[str]:
    return [q.strip() for q in path.read_text().splitlines() if q.strip() and not q.startswith("#")]


def _model_startup() -> dict[str, float | None]:
    from agent.lm.embedded import running_servers

    servers = running_servers()
    if not servers:  # a hosted model (or a fake one): nothing loads in this process
        return {"model_assemble_s": None, "model_load_s": None}
    return {
        "model_assemble_s": round(sum(s.assemble_seconds or 0 for s in servers), 2),
        "model_load_s": round(sum(s.load_seconds or 0 for s in servers), 2),
    }


def run_bench(
    settings: Settings,
    questions: list[str],
    *,
    lms: dict[str, dspy.LM] | None = None,
    spider_dir: Path | None = None,
    spider_limit: int | None = None,
    persistent_threads: bool = True,
    progress=print,
) -> dict[str, Any]:
    """The whole bench as one JSON-ready dict (`lms` lets tests inject a fake LM)."""
    timer = LMTimer()
    dspy.configure(callbacks=[timer])
    load_before = os.getloadavg()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    age = process_age_s()
    t0 = time.perf_counter()
    lms = lms or build_lms(settings)  # starts (loads) the embedded model
    lms_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    bot = Agent(settings, lms=lms, persistent_threads=persistent_threads)
    agent_init_s = time.perf_counter() - t1
    startup = {
        "process_s": rounded(age, 2),
        **_model_startup(),
        "lms_s": round(lms_s, 2),
        "agent_init_s": round(agent_init_s, 2),
        "total_s": round((age or 0.0) + time.perf_counter() - t0, 2),
    }

    rows = []
    for question in questions:
        lm_before = timer.total
        t = time.perf_counter()
        result = bot.ask(question)
        wall = time.perf_counter() - t
        lm_time = timer.total - lm_before
        runs = [n.model_dump() for n in result.nodes]
        rows.append({
            "question": question, "status": result.status, "wall_s": round(wall, 3), "lm_s": round(lm_time, 3),
            "overhead_ms": round((wall - lm_time) * 1000, 1), "tokens": sum(n.tokens for n in result.nodes),
            **{f"tokens_{k}": v for k, v in token_totals(runs).items()},
            "nodes": runs, "sql": result.sql, "answer": result.answer, "error": result.error,
        })  # fmt: skip
        r = rows[-1]
        progress(
            f"{wall:6.1f} s  lm {lm_time:5.1f} s  overhead {r['overhead_ms']:6.0f} ms  read {r['tokens_read']:5} "
            f"cached {r['tokens_cached']:5} written {r['tokens_written']:4}  [{result.status}] {question}"
        )
    n = max(1, len(rows))
    overheads = [r["overhead_ms"] for r in rows]
    summary = {
        "lm": settings.lm.model,
        "questions": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        **wall_summary([r["wall_s"] for r in rows]),
        "overhead_p50_ms": rounded(median(overheads)),
        "overhead_p95_ms": rounded(percentile(overheads, 0.95)),
        "tokens_per_question": {k: round(v / n, 1) for k, v in token_totals(rows).items()},
        "peak_rss_mb": round(stats.status_kb("VmHWM") / 1024),
    }
    spider_part = _spider(settings, lms, spider_dir, spider_limit, progress)
    summary["peak_rss_mb_end"] = round(stats.status_kb("VmHWM") / 1024)
    meta = {
        "started_at": started_at, "lm": settings.lm.model, "tracing": settings.tracking.enabled,
        "git": git_commit(PROJECT_ROOT), "cpus": os.cpu_count(), "argv": sys.argv[1:],
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    return {
        "meta": meta,
        "startup": startup,
        "summary": summary,
        "nodes": node_stats([r["nodes"] for r in rows]),
        "spider": spider_part,
        "questions": rows,
    }


def _spider(settings, lms, directory: Path | None, limit: int | None, progress) -> dict[str, Any]:
    if directory is None:
        return {"skipped": "no --spider DIR given"}
    if not (directory / spider.QUESTIONS_FILE).is_file():
        progress(f"Spider part skipped: {directory / spider.QUESTIONS_FILE} does not exist")
        return {"skipped": f"{directory / spider.QUESTIONS_FILE} does not exist"}
    items = spider.load_items(directory, limit)
    return {"dir": str(directory), **spider.SpiderBench(settings, lms, progress=progress).run(items)}


def report(result: dict[str, Any]) -> str:
    s, st = result["summary"], result["startup"]
    lines = [
        f"startup: process+imports {st['process_s']} s, model load {st['model_load_s']} s "
        f"(assemble/verify {st['model_assemble_s']} s), LMs {st['lms_s']} s, agent {st['agent_init_s']} s; "
        f"ready after {st['total_s']} s",
        f"{s['questions']} questions, {s['ok']} ok: wall p50 {s['p50_s']} s, p95 {s['p95_s']} s, "
        f"first question {s['first_s']} s; non-LM overhead p50 {s['overhead_p50_ms']} ms",
        f"tokens per question: {s['tokens_per_question']}; peak RSS {s['peak_rss_mb']} MiB "
        f"({s['peak_rss_mb_end']} MiB at the end)",
        "",
        node_table(result["nodes"]),
    ]
    if "skipped" not in result["spider"]:
        lines += ["", spider.report(result["spider"]), "", node_table(result["spider"]["agent"]["nodes"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lm", help="lm.model to benchmark (default: the configured one)")
    parser.add_argument(
        "--limit", type=int, default=20, help="demo questions (and Spider items, see --spider-limit)"
    )
    parser.add_argument("--no-tracing", action="store_true", help="measure without MLflow tracing")
    parser.add_argument(
        "--spider", type=Path, metavar="DIR", help="a Spider-style dataset directory (skipped if absent)"
    )
    parser.add_argument(
        "--spider-limit", type=int, help="Spider items, round-robin over its databases (default: --limit)"
    )
    parser.add_argument(
        "--compare", nargs="+", metavar="JSON", help="OLD [NEW]: before/after table (NEW: no run)"
    )
    parser.add_argument("--out", type=Path, help="result file (default bench/results/agent-<timestamp>.json)")
    args = parser.parse_args(argv)
    if args.compare and len(args.compare) > 2:
        parser.error("--compare takes OLD.json, or OLD.json NEW.json")
    if args.compare:
        try:
            old = cmp.load(args.compare[0])
            new = cmp.load(args.compare[1]) if len(args.compare) == 2 else None
        except (OSError, ValueError) as exc:
            print(f"--compare: {exc}", file=sys.stderr)
            return 2
        if new is not None:
            print(
                f"before {cmp.describe(args.compare[0], old)}\nafter  {cmp.describe(args.compare[1], new)}\n"
            )
            print(cmp.compare(old, new))
            return 0

    overrides: dict[str, Any] = {"lm": {"cache": False}}
    if args.no_tracing:
        overrides["tracking"] = {"enabled": False}
    settings = load_settings(**overrides)
    if args.lm:
        settings.lm.model = args.lm
    limit = args.spider_limit if args.spider_limit is not None else args.limit
    result = run_bench(settings, read_questions()[: args.limit], spider_dir=args.spider, spider_limit=limit)
    print()
    print(report(result))
    out = args.out or RESULTS / f"agent-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwritten {out}")
    if args.compare:
        print(f"\nbefore {cmp.describe(args.compare[0], old)}\nafter  {cmp.describe(out, result)}\n")
        print(cmp.compare(old, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
