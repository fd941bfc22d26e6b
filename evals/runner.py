"""Run dataset items through a pipeline (the agent or the zero-shot baseline) and score each one.

A pipeline answers one item and returns a `Prediction`; the runner runs the item's gold SQL on the
*same* `Database` object the pipeline used (DuckDB refuses a second in-process connection to one
file with another configuration), scores the pair with evals/scoring.py and builds one flat,
JSON-ready record per item: what predictions.jsonl holds and what the report and the gate read.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import sqlglot
from pydantic import BaseModel, Field
from sqlglot import exp

from agent.config import LimitSettings
from evals import scoring
from evals.dataset import EvalItem
from tools.sql.database import Database
from tools.sql.engines.base import SandboxError, to_jsonable

ROWS_KEPT = 50  # rows per item written to predictions.jsonl
ROWS_IN_PROMPT = LimitSettings().rows_in_prompt  # rows the answer node sees (agent default)


class NodeTiming(BaseModel):
    name: str
    duration_ms: float
    tokens: int = 0


class Prediction(BaseModel):
    """What a pipeline says about one item (the last turn of a multi-turn item)."""

    status: str
    sql: str | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    truncated: bool = False
    answer: str | None = None
    error: str | None = None
    error_kind: str | None = None  # the agent's code for the error (e.g. unknown_column), for error analysis
    trace_id: str | None = None
    thread_id: str | None = None
    latency_ms: float = 0.0
    nodes: list[NodeTiming] = Field(default_factory=list)
    mappings: list[dict[str, Any]] = Field(default_factory=list)
    rewritten_question: str | None = None
    linked_tables: list[str] | None = None  # None: the pipeline does no schema linking


class Pipeline(Protocol):
    name: str

    def prepare(self, items: list[EvalItem]) -> None: ...

    def database(self, item: EvalItem) -> Database: ...

    def predict(self, item: EvalItem) -> Prediction: ...


# --- the agent as a pipeline -------------------------------------------------------------------


class AgentPipeline:
    """The agent graph, one `Agent` per database file, all sharing the same LMs."""

    name = "agent"

    def __init__(self, settings, *, lms=None, db_path: str | None = None, compiled: bool = True):
        from agent.service import build_lms

        if not compiled:
            settings = settings.model_copy(
                update={"prompts": settings.prompts.model_copy(update={"use_compiled": False})}
            )
        self.settings = settings
        self.rows_in_prompt = settings.limits.rows_in_prompt
        self.lms = lms or build_lms(settings)
        self.db_path = db_path
        self.loaded_compiled: list[str] = []
        self._agents: dict[str, Any] = {}

    def agent(self, item: EvalItem):
        from agent.service import Agent

        key = item.db or self.db_path or ""
        if key not in self._agents:
            agent = Agent(self.settings, db_path=key or None, lms=self.lms, persistent_threads=False)
            self.loaded_compiled = list(agent.context.compiled)
            self._agents[key] = agent
        return self._agents[key]

    def prepare(self, items: list[EvalItem]) -> None:
        """Build every agent now, on this thread: Agent() configures DSPy and MLflow, which DSPy only
        allows from the thread that configured it first (genai.evaluate predicts on a worker thread)."""
        for item in items:
            self.agent(item)

    def database(self, item: EvalItem) -> Database:
        return self.agent(item).context.db

    def predict(self, item: EvalItem) -> Prediction:
        agent = self.agent(item)
        thread = f"eval-{item.id}-{uuid.uuid4().hex[:8]}"
        for turn in item.turns:  # earlier turns of a conversation, on the same thread
            agent.ask(turn, thread_id=thread)
        started = time.perf_counter()
        result = agent.ask(item.question, thread_id=thread)
        latency = (time.perf_counter() - started) * 1000
        state = agent.graph.get_state({"configurable": {"thread_id": thread}}).values
        return Prediction(
            status=result.status,
            sql=result.sql,
            columns=result.columns,
            rows=result.rows,
            truncated=result.truncated,
            answer=result.answer,
            error=result.error,
            error_kind=result.error_kind,
            trace_id=result.trace_id,
            thread_id=thread,
            latency_ms=round(latency, 1),
            nodes=[NodeTiming(name=n.name, duration_ms=n.duration_ms, tokens=n.tokens) for n in result.nodes],
            mappings=[m.model_dump() for m in result.mappings],
            rewritten_question=result.rewritten_question,
            linked_tables=list(state.get("linked_tables") or []),
        )


# --- gold --------------------------------------------------------------------------------------


class Gold(BaseModel):
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    error: str | None = None
    dialect: str = "duckdb"  # the dialect of `sql`
    sql: str | None = None  # the gold SQL as it ran: the item's, transpiled to the engine's dialect
    # Under an outer ORDER BY: each row's ORDER BY key values, so that tied rows compare as a bag.
    # None: no outer ORDER BY, or the keys could not be had (then `note` says why: a total order).
    order_keys: list[list[Any]] | None = None
    note: str | None = None


class GoldQueryError(Exception):
    """A gold query failed; the message is what the record shows."""


GoldExecute = Callable[[str], tuple[list[str], list[list[Any]], bool]]  # sql -> columns, rows, truncated


def _sandbox_execute(db: Database) -> GoldExecute:
    def execute(sql: str) -> tuple[list[str], list[list[Any]], bool]:
        try:
            result = db.sandbox.execute(sql)
        except SandboxError as exc:
            raise GoldQueryError(f"{exc.kind}: {exc.message}") from None
        return result.columns, result.rows, result.truncated

    return execute


def _sqlite_execute(path: str, max_rows: int) -> GoldExecute:
    def execute(sql: str) -> tuple[list[str], list[list[Any]], bool]:
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                cur = con.execute(sql)
                columns = [d[0] for d in cur.description or []]
                raw = cur.fetchmany(max_rows + 1)  # one more than kept tells a cut result from a full one
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise GoldQueryError(f"{type(exc).__name__}: {exc}") from None
        return columns, [[to_jsonable(v) for v in r] for r in raw[:max_rows]], len(raw) > max_rows

    return execute


def run_gold(item: EvalItem, db: Database, max_rows: int) -> Gold | None:
    """The gold result: on the pipeline's own sandbox, or with sqlite3 for SQLite-dialect gold.

    A gold result cut by the row or size cap is a gold error (its rows past the cap are unknown).
    Under an outer ORDER BY the rows come with their ORDER BY key values (see `_with_order_keys`).
    """
    if not item.has_gold:
        return None
    sql = item.gold_sql or ""
    if item.gold_db and item.gold_db.endswith((".sqlite", ".sqlite3", ".db")):
        dialect, execute = "sqlite", _sqlite_execute(item.gold_db, max_rows)
    else:
        dialect, execute = db.config.dialect, _sandbox_execute(db)
        try:
            sql = gold_in_dialect(sql, item.gold_dialect, dialect)
        except sqlglot.errors.SqlglotError as exc:
            return Gold(
                error=f"the gold SQL could not be transpiled to {dialect}: {exc}", dialect=dialect, sql=sql
            )
    try:
        columns, rows, truncated = execute(sql)
    except GoldQueryError as exc:
        return Gold(error=str(exc), dialect=dialect, sql=sql)
    if truncated:
        error = f"gold result truncated at {len(rows)} rows: raise limits.max_rows or narrow the gold"
        return Gold(columns=columns, rows=rows, error=error, dialect=dialect, sql=sql)
    return _with_order_keys(Gold(columns=columns, rows=rows, dialect=dialect, sql=sql), sql, execute)


def gold_in_dialect(sql: str, written_in: str, dialect: str) -> str:
    """The gold SQL for an engine of `dialect`: unchanged in its own dialect, else transpiled by sqlglot
    (with the fixes below for what sqlglot 30 does not translate)."""
    if written_in == dialect or not sql.strip():
        return sql
    tree = sqlglot.parse_one(sql, read=written_in)
    if dialect == "postgres":
        tree = tree.transform(_postgres_gold_fix)
    return tree.sql(dialect=dialect, unsupported_level=sqlglot.ErrorLevel.RAISE)


def _postgres_gold_fix(node: exp.Expression) -> exp.Expression:
    """DuckDB's ROUND(double, n) and MAKE_DATE, which sqlglot renders as functions PostgreSQL lacks:
    PostgreSQL rounds to n digits only a NUMERIC, and calls DATE_FROM_PARTS make_date."""
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        return exp.Round(this=exp.cast(node.this.copy(), "DECIMAL"), decimals=node.args["decimals"].copy())
    if isinstance(node, exp.DateFromParts):
        return exp.Anonymous(
            this="make_date", expressions=[node.args["year"], node.args["month"], node.args["day"]]
        )
    return node


def _with_order_keys(gold: Gold, sql: str, execute: GoldExecute) -> Gold:
    """Add each row's ORDER BY key values: read off the result when every key is an output column,
    else from the gold re-run with the missing keys appended to its SELECT list (its rows then come
    from that run, so rows and keys agree on the order of ties). Otherwise keep a total order and say why."""
    if not scoring.has_outer_order_by(sql, gold.dialect):
        return gold

    def total_order(why: str) -> Gold:
        return gold.model_copy(update={"note": f"ORDER BY ties compared as a total order: {why}"})

    try:
        plan = scoring.order_key_plan(sql, gold.columns, gold.dialect)
    except scoring.OrderKeyError as exc:
        return total_order(str(exc))
    if plan is None:
        return gold
    if plan.query is None:
        return gold.model_copy(update={"order_keys": [[row[p] for p in plan.positions] for row in gold.rows]})
    n = len(gold.columns)
    try:
        columns, rows, truncated = execute(plan.query)
    except GoldQueryError as exc:
        return total_order(f"the gold with its ORDER BY keys added failed ({exc})")
    shown = [r[:n] for r in rows]
    if truncated or columns[:n] != gold.columns or not scoring.bag_equal(gold.rows, shown):
        return total_order("the gold with its ORDER BY keys added returned other rows")
    return gold.model_copy(
        update={"rows": shown, "order_keys": [[r[p] for p in plan.positions] for r in rows]}
    )


# --- one record --------------------------------------------------------------------------------


def answer_grounding(item: EvalItem, pred: Prediction, rows_in_prompt: int) -> float | None:
    """How well the answer sticks to the agent's own rows (not the gold): the answer module's score."""
    if pred.status != "ok" or pred.answer is None:
        return None
    from prompts.answer import rows_text

    question = pred.rewritten_question or item.question
    return scoring.answer_grounding(
        question, rows_text(pred.columns, pred.rows, rows_in_prompt), pred.answer
    )[0]


def build_record(
    item: EvalItem,
    pred: Prediction,
    gold: Gold | None,
    *,
    pipeline: str,
    rows_in_prompt: int = ROWS_IN_PROMPT,
) -> dict[str, Any]:
    """Score one prediction against its gold and flatten everything the report and gate need."""
    dialect = gold.dialect if gold else item.gold_dialect
    gold_sql = gold.sql if gold and gold.sql else item.gold_sql  # as it ran, in `dialect`
    ordered = scoring.has_outer_order_by(gold_sql, dialect) if item.has_gold else False
    score = scoring.score_item(
        expected_status=item.expected_status,
        status=pred.status,
        gold=(gold.columns, gold.rows) if gold and gold.error is None else None,
        gold_error=gold.error if gold else None,
        pred_columns=pred.columns,
        pred_rows=pred.rows,
        ordered=ordered,
        pred_truncated=pred.truncated,
        order_keys=gold.order_keys if gold else None,
        gold_sql=gold_sql,
        pred_sql=pred.sql,
        dialect=dialect,
    )
    node_ms: dict[str, float] = {}
    node_tokens: dict[str, int] = {}
    for n in pred.nodes:
        node_ms[n.name] = round(node_ms.get(n.name, 0.0) + n.duration_ms, 1)
        node_tokens[n.name] = node_tokens.get(n.name, 0) + n.tokens

    mapping = None
    if pipeline == "agent" and item.expected_status == "ok":
        overlap = scoring.mapping_overlap(item.expected_mappings, pred.mappings)
        mapping = {
            "tp": overlap.tp,
            "predicted": overlap.predicted,
            "expected": overlap.expected,
            "precision": overlap.precision,
            "recall": overlap.recall,
        }
    gold_tables = sorted(scoring.sql_tables(gold_sql, dialect)) if item.has_gold else []
    link_recall = (
        scoring.table_recall(gold_tables, pred.linked_tables) if pred.linked_tables is not None else None
    )
    no_rewrite_kept = None
    if pipeline == "agent" and "no-rewrite" in item.tags and not item.turns:
        no_rewrite_kept = pred.rewritten_question in (None, item.question)
    answerable = item.expected_status == "ok"
    return {
        "id": item.id,
        "question": item.question,
        "turns": item.turns,
        "split": item.split,
        "tags": item.tags,
        "difficulty": item.difficulty,
        "must_pass": item.must_pass,
        "expected_status": item.expected_status,
        "db": item.db,
        "status": pred.status,
        "sql": pred.sql,
        "columns": pred.columns,
        "rows": pred.rows[:ROWS_KEPT],
        "row_count": len(pred.rows),
        "truncated": pred.truncated,
        "answer": pred.answer,
        "error": pred.error,
        "error_kind": pred.error_kind,
        "gold_sql": item.gold_sql or None,
        "gold_columns": gold.columns if gold else [],
        "gold_rows": gold.rows[:ROWS_KEPT] if gold else [],
        "gold_row_count": len(gold.rows) if gold else 0,
        "gold_error": gold.error if gold else None,
        "gold_note": gold.note if gold else None,
        "ordered": ordered,
        "correct": score.correct,
        "correct_relaxed": score.correct_relaxed,
        "reason": score.reason,
        "status_ok": score.status_ok,
        "sql_valid": (pred.status == "ok" and bool(pred.sql)) if answerable else None,
        "repaired": any(n.name == "repair" for n in pred.nodes),
        "mapping": mapping,
        "no_rewrite_kept": no_rewrite_kept,
        "rewritten_question": pred.rewritten_question,
        "mappings": pred.mappings,
        "gold_tables": gold_tables,
        "linked_tables": pred.linked_tables,
        "schema_link_recall": link_recall if answerable else None,
        "answer_grounding": answer_grounding(item, pred, rows_in_prompt) if answerable else None,
        "latency_ms": pred.latency_ms,
        "tokens": sum(node_tokens.values()),
        "node_ms": node_ms,
        "node_tokens": node_tokens,
        "nodes": [n.model_dump() for n in pred.nodes],
        "trace_id": pred.trace_id,
        "thread_id": pred.thread_id,
    }


def evaluate_item(item: EvalItem, pipeline: Pipeline, max_rows: int) -> dict[str, Any]:
    pred = pipeline.predict(item)
    gold = run_gold(item, pipeline.database(item), max_rows)
    return build_record(
        item,
        pred,
        gold,
        pipeline=pipeline.name,
        rows_in_prompt=getattr(pipeline, "rows_in_prompt", ROWS_IN_PROMPT),
    )


def progress_bar(total: int, enabled: bool, desc: str = "eval"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="q", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


def run_items(
    items: Iterable[EvalItem],
    pipeline: Pipeline,
    *,
    max_rows: int,
    bar: Any = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    evaluate: Callable[[EvalItem], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate items one after another (the embedded model has one slot). `evaluate`: what to do
    with one item (default evaluate_item; the eval adds the judges' verdicts)."""
    records = []
    for item in items:
        record = evaluate(item) if evaluate else evaluate_item(item, pipeline, max_rows)
        records.append(record)
        if on_record:
            on_record(record)
        if bar is not None:
            bar.set_postfix_str(item.id[:30])
            bar.update(1)
    return records
