"""The ratio goal: the agent against one bare chat call of the same model, on foreign databases.

    .venv/bin/python -m bench.bench_agent --spider DIR [--spider-limit N]

DIR is a Spider-style dataset (questions.jsonl with `db_id`, databases/<db_id>/<db_id>.duckdb and a
.sqlite twin for the SQLite-dialect gold; evals/dataset.py resolves it). It is read from where it
lies and never copied; without --spider, or when DIR does not exist, this part is skipped.

Per item, the bare baseline is one chat request: a system line, the database's tables as CREATE
TABLE statements, the question; the reply is taken as SQL (prompts/sql_text.extract_sql) and run
through the same `run_sql` tool (policy + sandbox) as the agent's SQL. The agent is the graph on
that database (evals/runner.AgentPipeline: one Agent per database, the LMs shared). All baseline
items run first, then all agent items, so that neither evicts the other's prompt prefix from
llama.cpp's KV cache; items are grouped by database for the same reason. Both are scored by
execution against the gold (evals/runner.run_gold + build_record).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import Config, Message, Request

from agent.config import Settings
from agent.nodes.instrument import TokenCounts, token_counts
from agent.state import NodeRun
from bench.stats import median, node_stats, percentile, rounded, token_totals
from evals.dataset import EvalItem, load_dataset
from evals.runner import AgentPipeline, Prediction, build_record, run_gold
from prompts.sql_text import extract_sql
from tools.builtin import registry
from tools.run_sql import RunSqlArgs
from tools.sql.database import Database
from tools.sql.introspect import DatabaseSchema, quote_identifier

QUESTIONS_FILE = "questions.jsonl"
SYSTEM_LINE = "You write {dialect} SQL for the database below. Reply with one SQL query only, no explanation."
Progress = Callable[[str], None]


def create_tables(schema: DatabaseSchema) -> str:
    """The schema as CREATE TABLE statements: names and types only, as a bare prompt would give them."""
    q = quote_identifier
    return "\n".join(
        f"CREATE TABLE {q(t.name)} ({', '.join(f'{q(c.name)} {c.type}' for c in t.columns)});"
        for t in schema.tables
    )


def bare_request(lm: dspy.LM, dialect: str, ddl: str, question: str) -> Request:
    """The one request: schema first and the question last (a constant prefix per database)."""
    config = Config(max_tokens=lm.kwargs.get("max_tokens"), temperature=lm.kwargs.get("temperature"))
    return Request(
        model=lm.model,
        system=SYSTEM_LINE.format(dialect=dialect_name(dialect)),
        messages=(Message.user(f"{ddl}\n\nQuestion: {question}"),),
        config=config,
    )


def dialect_name(dialect: str) -> str:
    return {"duckdb": "DuckDB", "postgres": "PostgreSQL", "sqlite": "SQLite"}.get(dialect, dialect)


def bare_chat(lm: dspy.LM, db: Database, question: str) -> tuple[str, float, TokenCounts]:
    """(SQL, ms, tokens) of one bare chat call; an LM error is raised (the caller records it)."""
    request = bare_request(lm, db.config.dialect, create_tables(db.schema), question)
    started = time.perf_counter()
    with dspy.track_usage() as usage:
        response = lm(request)
    ms = (time.perf_counter() - started) * 1000
    return extract_sql(response.text or ""), ms, token_counts(usage.get_total_tokens())


def select_items(items: Sequence[EvalItem], limit: int | None) -> list[EvalItem]:
    """`limit` items taken round-robin over the databases (so a few items still cover several),
    then grouped by database in first-seen order."""
    by_db: dict[str, list[EvalItem]] = {}
    for item in items:
        by_db.setdefault(item.db_id or item.db or "", []).append(item)
    queues = [list(v) for v in by_db.values()]
    picked: list[EvalItem] = []
    total = len(items) if limit is None else min(limit, len(items))
    while len(picked) < total:
        for queue in queues:
            if queue and len(picked) < total:
                picked.append(queue.pop(0))
    order = {key: n for n, key in enumerate(by_db)}
    return sorted(picked, key=lambda i: order[i.db_id or i.db or ""])


def load_items(directory: Path, limit: int | None) -> list[EvalItem]:
    return select_items(load_dataset(directory / QUESTIONS_FILE).items, limit)


def _tokens(counts: TokenCounts) -> dict[str, int]:
    return {"tokens_read": counts.read, "tokens_cached": counts.cached, "tokens_written": counts.written}


class SpiderBench:
    def __init__(self, settings: Settings, lms: dict[str, dspy.LM], *, progress: Progress = print):
        self.settings = settings
        self.pipeline = AgentPipeline(settings, lms=lms)
        self.lm = lms.get("generate", lms["default"])  # the model the agent writes SQL with
        self.max_rows = settings.limits.max_rows
        self.progress = progress

    def baseline(self, item: EvalItem) -> dict[str, Any]:
        db = self.pipeline.database(item)  # the agent's own connection: DuckDB allows one config per file
        started = time.perf_counter()
        sql, lm_ms, counts, error = None, 0.0, TokenCounts(), None
        status, columns, rows, truncated = "error", [], [], False
        try:
            sql, lm_ms, counts = bare_chat(self.lm, db, item.question)
        except Exception as exc:  # a failed call is a wrong answer, not a crashed bench
            error = f"{type(exc).__name__}: {exc}"
        if sql:
            result = registry().call("run_sql", db, RunSqlArgs(sql=sql))
            status, error = result.status, result.error
            columns, rows, truncated = result.columns, result.rows, result.truncated
        elif error is None:
            error = "The model returned no SQL."
        latency_ms = (time.perf_counter() - started) * 1000
        pred = Prediction(
            status=status,
            sql=sql,
            columns=columns,
            rows=rows,
            truncated=truncated,
            error=error,
            latency_ms=round(latency_ms, 1),
        )
        record = build_record(item, pred, run_gold(item, db, self.max_rows), pipeline="baseline")
        return {
            "s": round(latency_ms / 1000, 3),
            "lm_s": round(lm_ms / 1000, 3),
            "status": status,
            "correct": record["correct"],
            "sql": sql,
            "error": error,
            **_tokens(counts),
        }

    def agent(self, item: EvalItem) -> dict[str, Any]:
        pred = self.pipeline.predict(item)
        agent = self.pipeline.agent(item)
        state = agent.graph.get_state({"configurable": {"thread_id": pred.thread_id}}).values
        runs = [NodeRun.model_validate(n).model_dump() for n in state.get("nodes") or []]
        record = build_record(item, pred, run_gold(item, agent.context.db, self.max_rows), pipeline="agent")
        return {
            "s": round(pred.latency_ms / 1000, 3),
            "status": pred.status,
            "correct": record["correct"],
            "sql": pred.sql,
            "error": pred.error,
            **{f"tokens_{k}": v for k, v in token_totals(runs).items()},
            "nodes": runs,
        }

    def run(self, items: list[EvalItem]) -> dict[str, Any]:
        started = time.perf_counter()
        self.pipeline.prepare(items)  # opens every database and builds its caches before any timing
        setup_s = time.perf_counter() - started
        rows = [
            {"id": i.id, "db_id": i.db_id, "difficulty": i.difficulty, "question": i.question} for i in items
        ]
        for part, fn in (("baseline", self.baseline), ("agent", self.agent)):
            for row, item in zip(rows, items, strict=True):
                row[part] = fn(item)
                r = row[part]
                self.progress(
                    f"{r['s']:6.1f} s  spider {part:8} [{r['status']}] correct={r['correct']}  "
                    f"{item.id}: {item.question}"
                )
        return summarize(rows, setup_s)


def _side(rows: list[dict[str, Any]], part: str) -> dict[str, Any]:
    sides = [r[part] for r in rows]
    walls = [s["s"] for s in sides]
    n = max(1, len(sides))
    totals = token_totals(sides)
    return {
        "p50_s": rounded(median(walls), 2),
        "p95_s": rounded(percentile(walls, 0.95), 2),
        "mean_s": rounded(sum(walls) / n, 2) if walls else None,
        "correct": sum(s["correct"] is True for s in sides),
        "scored": sum(s["correct"] is not None for s in sides),
        "ok": sum(s["status"] == "ok" for s in sides),
        "tokens_per_item": {k: round(v / n, 1) for k, v in totals.items()},
    }


def summarize(rows: list[dict[str, Any]], setup_s: float = 0.0) -> dict[str, Any]:
    """The Spider part of the result file: both sides' p50/p95 and accuracy, and the p50 ratio."""
    baseline, agent = _side(rows, "baseline"), _side(rows, "agent")
    agent["nodes"] = node_stats([r["agent"].get("nodes") or [] for r in rows])
    # From the unrounded medians: a fast bare call (a fake LM in tests) rounds to 0.0 s.
    agent_p50 = median([r["agent"]["s"] for r in rows])
    bare_p50 = median([r["baseline"]["s"] for r in rows])
    ratio = agent_p50 / bare_p50 if agent_p50 is not None and bare_p50 else None
    per_item = [r["agent"]["s"] / r["baseline"]["s"] for r in rows if r["baseline"]["s"] > 0]
    return {
        "items": len(rows),
        "databases": sorted({r["db_id"] for r in rows if r["db_id"]}),
        "setup_s": round(setup_s, 2),
        "baseline": baseline,
        "agent": agent,
        "ratio_p50": rounded(ratio, 2),
        "ratio_per_item_p50": rounded(median(per_item), 2),
        "records": rows,
    }


def report(spider: dict[str, Any]) -> str:
    b, a = spider["baseline"], spider["agent"]
    lines = [
        f"Spider: {spider['items']} items on {len(spider['databases'])} databases (setup {spider['setup_s']} s)",
        f"  bare model call  p50 {b['p50_s']} s  p95 {b['p95_s']} s  correct {b['correct']}/{b['scored']}  "
        f"tokens/item {b['tokens_per_item']}",
        f"  agent            p50 {a['p50_s']} s  p95 {a['p95_s']} s  correct {a['correct']}/{a['scored']}  "
        f"tokens/item {a['tokens_per_item']}",
        f"  agent / bare p50 ratio {spider['ratio_p50']}  (per-item ratio p50 {spider['ratio_per_item_p50']})",
    ]
    return "\n".join(lines)
