"""Explain a query in plain words, on request: the one implementation behind `Agent.explain`,
`sqlagent ask|sql --explain`, POST /api/explain (the web page's Explain button) and MCP's `explain`.

Not a node of the graph: a turn nobody asks to explain costs nothing. It is an LM step like the
others all the same (agent/steps.py `ON_REQUEST`): its module is prompts/explain.py, its LM
`lm.nodes.explain`, its prompt loaded from prompts/compiled or the Prompt Registry with the others,
optimized by `sqlagent optimize --module explain`.

The role holds here as everywhere: the query goes through the role's policy first, and a query the
role may not run is refused with the policy's reason, never explained (the LM is not called). The
schema the model reads is `describe_schema` on the role's view, of the tables and columns the
checked query reads: a hidden column never reaches the prompt.

Traced as one span `explain`, with a node span's attributes (tokens read/cached/written, duration):
inside the caller's trace when one is open, else as its own trace (`Agent.explain` tags it with
the turn it explains). A finished turn's trace is not reopened: it stays one question's record.
"""

from __future__ import annotations

import time
from typing import Literal

import dspy
import mlflow
from mlflow.entities import SpanType
from mlflow.tracing.constant import TraceMetadataKey
from pydantic import BaseModel, Field

from agent.context import AgentContext
from agent.nodes.instrument import TokenCounts, step_attributes, step_run, token_counts
from agent.question_check import question_problem
from agent.state import NodeRun
from agent.text_check import text_problem
from prompts.explain import Explain
from tools.run_sql import MAX_SQL_CHARS
from tools.schema_info import DescribeSchemaArgs
from tools.sql.policy import PolicyCode, PolicyDecision

EXPLAIN = "explain"  # the step: its span, its LM (lm.nodes.explain), its module and its artifact
EXPLAINS_TAG = "sqlagent.explains"  # on an explanation's own trace: the trace id of the turn explained


class ExplainResult(BaseModel):
    status: Literal["ok", "refused", "error"]
    sql: str = Field(description="The query as checked (LIMIT cap applied); as given when refused.")
    question: str | None = None
    explanation: str | None = None
    error: str | None = None
    error_kind: PolicyCode | Literal["bad_input", "internal"] | None = None
    trace_id: str | None = None
    step: NodeRun | None = None  # its time and LM tokens, as a node's


def schema_text(ctx: AgentContext, decision: PolicyDecision) -> str:
    """The compact schema of what the checked query reads: its tables, and of each only the columns
    it reads (a star was expanded by the policy), through the registry on the role's view."""
    columns: dict[str, list[str]] = {t: [] for t in decision.tables}
    for name in decision.columns:
        table, _, column = name.partition(".")
        columns.setdefault(table, []).append(column)
    args = DescribeSchemaArgs(tables=decision.tables, detail="compact", columns=columns)
    return ctx.tools.call("describe_schema", ctx.db, args).text


def explain_inputs(ctx: AgentContext, decision: PolicyDecision, question: str | None) -> dict[str, str]:
    """The module's inputs for a query the policy allowed: what runs here and what is optimized."""
    return Explain.inputs(decision.sql, schema_text(ctx, decision), question)


def _bad_input(ctx: AgentContext, sql: str, question: str | None) -> str | None:
    if len(sql) > MAX_SQL_CHARS:
        return f"The SQL is {len(sql)} characters long; the limit is {MAX_SQL_CHARS}."
    if problem := text_problem(sql, "The SQL"):
        return problem
    if question and question.strip():
        return question_problem(question, ctx.settings.limits.max_question_chars)
    return None


def _failure(exc: BaseException) -> str:
    text = " ".join(f"The explain step failed: {type(exc).__name__}: {exc}".split())
    return text if len(text) <= 500 else text[:499] + "…"


def _explain(ctx: AgentContext, sql: str, question: str | None) -> tuple[ExplainResult, TokenCounts]:
    base = {"sql": sql, "question": question}
    problem = _bad_input(ctx, sql, question)
    if problem:
        return ExplainResult(status="error", error=problem, error_kind="bad_input", **base), TokenCounts()
    decision = ctx.db.policy.check(sql)
    if not decision.allowed:  # what the role may not run is not explained either: the policy's words
        refused = ExplainResult(status="refused", error=decision.reason, error_kind=decision.code, **base)
        return refused, TokenCounts()
    base["sql"] = decision.sql
    try:
        inputs = explain_inputs(ctx, decision, question)
        with dspy.context(lm=ctx.lm(EXPLAIN), adapter=ctx.adapter(EXPLAIN)), dspy.track_usage() as usage:
            explanation = ctx.module(EXPLAIN)(**inputs).explanation
        tokens = token_counts(usage.get_total_tokens())
    except Exception as exc:  # the LM server down, an unparseable reply: a result, never a traceback
        return ExplainResult(
            status="error", error=_failure(exc), error_kind="internal", **base
        ), TokenCounts()
    if not explanation:
        failed = ExplainResult(status="error", error="The model returned no explanation.", error_kind="internal", **base)  # fmt: skip
        return failed, tokens
    return ExplainResult(status="ok", explanation=explanation, **base), tokens


def explain_sql(
    ctx: AgentContext,
    sql: str,
    question: str | None = None,
    *,
    tracing: bool = False,
    user: str | None = None,
    tags: dict[str, str] | None = None,
) -> ExplainResult:
    """Explain `sql` for the context's role, in the span `explain`. `tracing` (tracking on) with no
    span open: the span is a trace of its own, with `user` as its user and `tags` as its tags."""
    started = time.perf_counter()
    opens_trace = tracing and mlflow.get_current_active_span() is None
    with mlflow.start_span(name=EXPLAIN, span_type=SpanType.CHAIN) as span:
        span.set_inputs({"sql": sql, "question": question})
        if opens_trace:
            metadata = {TraceMetadataKey.TRACE_USER: user} if user else {}
            mlflow.update_current_trace(metadata=metadata, tags=tags or {})
        result, tokens = _explain(ctx, sql, question)
        duration = (time.perf_counter() - started) * 1000
        detail = result.status if result.status == "ok" else f"{result.error_kind}: {result.error}"
        result.step = step_run(EXPLAIN, tokens, duration, detail)
        span.set_outputs(result.model_dump(exclude={"step", "trace_id"}))
        span.set_attributes({**step_attributes(EXPLAIN, tokens, duration), "sqlagent.status": result.status})
        trace_id = getattr(span, "trace_id", None) if opens_trace else None
    result.trace_id = trace_id if trace_id and not str(trace_id).startswith("tr-no-op") else None
    return result
