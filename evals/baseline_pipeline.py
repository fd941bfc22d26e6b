"""The zero-shot baseline as an eval pipeline: full schema + question -> SQL -> policy -> sandbox.

Same LM, same safety policy and sandbox as the agent (the `run_sql` tool), nothing else: no
rewrite, entity resolution, retrieval, examples, repair or answer step. The schema is every table
with its columns and types, one line per table, plus the join keys; column descriptions are left
out, because with them the Lahman schema (~20k tokens) does not fit the embedded model's 8k context.
A multi-turn item gets its earlier questions prepended to the question; the baseline cannot ask
for clarification, so clarify items count as wrong for it.
"""

from __future__ import annotations

import re
import time
import uuid

import dspy
import mlflow
from mlflow.entities import SpanType

from agent.config import Settings
from evals.dataset import EvalItem
from evals.runner import NodeTiming, Prediction
from prompts.baseline import Baseline
from tools.builtin import registry
from tools.run_sql import RunSqlArgs
from tools.schema_info import DescribeSchemaArgs
from tools.sql.database import Database, open_database

_TABLE = re.compile(r"^TABLE (\S+)")


def compact_schema(text: str) -> str:
    """describe_schema's text (one column per line) as one line per table: `T(a INTEGER, b VARCHAR)`."""
    out: list[str] = []
    table: str | None = None
    cols: list[str] = []
    in_joins = False

    def flush() -> None:
        if table is not None:
            out.append(f"{table}({', '.join(cols)})")

    for line in text.splitlines():
        if line.startswith("JOINS"):
            flush()
            table, in_joins = None, True
            out.append("Joins:")
            continue
        match = _TABLE.match(line)
        if match:
            flush()
            table, cols, in_joins = match.group(1), [], False
            continue
        if in_joins:
            out.append(line.strip())
        elif line.strip():
            cols.append(line.strip())
    flush()
    return "\n".join(out)


def question_with_turns(item: EvalItem) -> str:
    if not item.turns:
        return item.question
    earlier = "\n".join(f"- {t}" for t in item.turns)
    return f"Earlier questions in this conversation:\n{earlier}\nNow: {item.question}"


class BaselinePipeline:
    name = "baseline"

    def __init__(self, settings: Settings, *, lm: dspy.LM | None = None, db_path: str | None = None):
        from agent.lm.embedded import build_lm
        from agent.tracing import setup_tracing

        self.settings = settings
        self.tracing = setup_tracing(settings)
        self.lm = lm or build_lm(settings.lm, settings.embedded)
        self.db_path = db_path
        self.module = Baseline(settings.database_config(db_path).dialect_label)
        self._schemas: dict[str, str] = {}

    def prepare(self, items: list[EvalItem]) -> None:
        for item in items:
            self.schema_text(self.database(item))

    def database(self, item: EvalItem) -> Database:
        return open_database(self.settings.database_config(item.db or self.db_path))

    def schema_text(self, db: Database) -> str:
        key = db.config.url
        if key not in self._schemas:
            described = registry().call("describe_schema", db, DescribeSchemaArgs(with_comments=False))
            self._schemas[key] = compact_schema(described.text)
        return self._schemas[key]

    def predict(self, item: EvalItem) -> Prediction:
        db = self.database(item)
        schema = self.schema_text(db)
        question = question_with_turns(item)
        started = time.perf_counter()
        with mlflow.start_span(name="baseline.ask", span_type=SpanType.AGENT) as root:
            root.set_inputs({"question": question})
            t0 = time.perf_counter()
            error = None
            sql = None
            with dspy.context(lm=self.lm), dspy.track_usage() as usage:
                try:
                    sql = self.module(db_schema=schema, question=question).sql
                except Exception as exc:  # an unparsable completion: a wrong answer, not a crash
                    error = f"{type(exc).__name__}: {exc}"
            gen_ms = (time.perf_counter() - t0) * 1000
            tokens = sum(int(u.get("total_tokens") or 0) for u in usage.get_total_tokens().values())
            nodes = [NodeTiming(name="generate", duration_ms=round(gen_ms, 1), tokens=tokens)]
            columns, rows, truncated, status, error_kind = [], [], False, "error", None
            if sql:
                t1 = time.perf_counter()
                result = registry().call("run_sql", db, RunSqlArgs(sql=sql))
                nodes.append(
                    NodeTiming(name="execute", duration_ms=round((time.perf_counter() - t1) * 1000, 1))
                )
                status, error, error_kind = result.status, result.error, result.error_kind
                columns, rows, truncated = result.columns, result.rows, result.truncated
            elif error is None:
                error = "The model returned no SQL."
            root.set_outputs({"sql": sql, "status": status, "error": error})
            trace_id = getattr(root, "trace_id", None) if self.tracing else None
        latency = (time.perf_counter() - started) * 1000
        return Prediction(
            status=status,
            sql=sql,
            columns=columns,
            rows=rows,
            truncated=truncated,
            error=error,
            error_kind=error_kind,
            trace_id=trace_id if trace_id and not str(trace_id).startswith("tr-no-op") else None,
            thread_id=uuid.uuid4().hex,
            latency_ms=round(latency, 1),
            nodes=nodes,
        )
