"""The wrapper every node goes through: an MLflow span, wall time and LM tokens per node.

Each node gets its own span named `node.<name>` (asserted on by the tracing tests), inside the one
trace the caller opened for the question. DSPy's autolog nests module and LM spans inside it.

Tokens come from `dspy.track_usage()`, which sums the OpenAI-shaped `usage` of every LM call in the
node, per LM: `prompt_tokens`, `completion_tokens`, `total_tokens` and
`prompt_tokens_details.cached_tokens`. llama.cpp's server fills the last with its KV-cache prefix
reuse (the same number as its `timings.cache_n`; `timings.prompt_n` = prompt - cached); hosted
providers report their prompt caching there too (DSPy maps Anthropic's cache reads onto it). A
provider that reports no cached count gets cached = 0. A DSPy cache hit adds no usage at all, so
it counts 0 everywhere: the model did no work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dspy
import mlflow
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from mlflow.entities import SpanType

from agent.budget import BUDGET_KIND, stop_message
from agent.context import AgentContext
from agent.runtime import agent_context
from agent.state import AgentState, NodeRun
from agent.steps import step


class NodeFailure(RuntimeError):
    """An exception inside a node, carrying the node's name and time so the result can say where it failed."""

    def __init__(self, node: str, duration_ms: float, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.node = node
        self.duration_ms = duration_ms


NodeFn = Callable[[AgentState, AgentContext], dict[str, Any]]


@dataclass(frozen=True)
class TokenCounts:
    """LM tokens of one node: `read` (prompt tokens the model processed), `cached` (prompt tokens
    served from a prompt cache), `written` (completion) and `total` (the provider's total_tokens)."""

    read: int = 0
    cached: int = 0
    written: int = 0
    total: int = 0

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            self.read + other.read,
            self.cached + other.cached,
            self.written + other.written,
            self.total + other.total,
        )


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _cached(details: Any) -> int:
    if isinstance(details, Mapping):
        return _count(details.get("cached_tokens"))
    return _count(getattr(details, "cached_tokens", 0))  # a provider object not flattened to a dict


def usage_counts(usage: Mapping[str, Any]) -> TokenCounts:
    """One OpenAI-shaped usage dict (one call, or DSPy's sum of several) as read/cached/written."""
    prompt = _count(usage.get("prompt_tokens"))
    cached = min(_cached(usage.get("prompt_tokens_details")), prompt)
    written = _count(usage.get("completion_tokens"))
    total = _count(usage.get("total_tokens")) or prompt + written
    return TokenCounts(read=prompt - cached, cached=cached, written=written, total=total)


def token_counts(usage_by_lm: Mapping[str, Mapping[str, Any]]) -> TokenCounts:
    """`dspy.track_usage().get_total_tokens()` (usage per LM) summed over the LMs."""
    return sum((usage_counts(u or {}) for u in usage_by_lm.values()), TokenCounts())


def step_attributes(name: str, tokens: TokenCounts, duration_ms: float) -> dict[str, Any]:
    """A step span's attributes: what the trace view, the monitor and the bench read per node."""
    return {
        "sqlagent.node": name,
        "sqlagent.tokens": tokens.total,
        "sqlagent.tokens_read": tokens.read,
        "sqlagent.tokens_cached": tokens.cached,
        "sqlagent.tokens_written": tokens.written,
        "sqlagent.duration_ms": round(duration_ms, 1),
    }


def step_run(name: str, tokens: TokenCounts, duration_ms: float, detail: str = "") -> NodeRun:
    """A step's line in a result's timeline, with the same numbers as its span."""
    return NodeRun(
        name=name,
        duration_ms=round(duration_ms, 1),
        tokens=tokens.total,
        tokens_read=tokens.read,
        tokens_cached=tokens.cached,
        tokens_written=tokens.written,
        detail=detail,
    )


def budget_stop(name: str, state: AgentState, span: Any) -> dict[str, Any] | None:
    """The update that ends the turn when the cost guard refuses LM step `name` (agent/budget.py)."""
    message = stop_message(
        name, state.tokens_by_node, state.token_budget, state.dearest_step, state.budget_source
    )
    if message is None:
        return None
    span.set_attributes(
        {
            "sqlagent.node": name,
            "sqlagent.budget_stop": True,
            "sqlagent.tokens_by_node": dict(state.tokens_by_node),
        }
    )
    span.set_outputs({"stopped": message})
    return {
        "status": "error",
        "error_kind": BUDGET_KIND,
        "error": message,
        "answer": message,
        "nodes": [NodeRun(name=name, duration_ms=0.0, detail=f"stopped by the token budget: {message}")],
    }


def node(name: str) -> Callable[[NodeFn], Callable[[AgentState, Runtime[Any]], dict]]:
    """Wrap a step function as the graph node `name`; agent/steps.py says whether it is an LM step."""
    lm = step(name).module is not None

    def wrap(fn: NodeFn) -> Callable[[AgentState, Runtime[Any]], dict]:
        def run(state: AgentState, runtime: Runtime[Any]) -> dict[str, Any]:
            ctx = agent_context(runtime.context)
            start = time.perf_counter()
            paused: GraphBubbleUp | None = None
            with mlflow.start_span(name=f"node.{name}", span_type=SpanType.CHAIN) as span:
                span.set_inputs({"question": state.question, "sql": state.sql, "attempts": state.attempts})
                stopped = budget_stop(name, state, span) if lm else None
                if stopped is not None:
                    return stopped
                try:
                    if lm:
                        with (
                            dspy.context(lm=ctx.lm(name), adapter=ctx.adapter(name)),
                            dspy.track_usage() as usage,
                        ):
                            update = fn(state, ctx)
                        tokens = token_counts(usage.get_total_tokens())
                    else:
                        update = fn(state, ctx)
                        tokens = TokenCounts()
                except GraphBubbleUp as pause:
                    # interrupt(): the run stops here for a person's reply and re-runs this node on
                    # resume. Not a failure: the span ends cleanly and says so.
                    paused = pause
                    span.set_attributes({"sqlagent.node": name, "sqlagent.interrupted": True})
                except Exception as exc:  # the span records the exception; the caller learns which node
                    raise NodeFailure(name, (time.perf_counter() - start) * 1000, exc) from exc
                else:
                    duration = (time.perf_counter() - start) * 1000
                    span.set_outputs({k: v for k, v in update.items() if k != "nodes"})
                    span.set_attributes(step_attributes(name, tokens, duration))
            if paused is not None:
                raise paused
            detail = str(update.pop("_detail", ""))
            if tokens.total:  # this turn's spend, per node in the order they ran: what the cost guard reads
                spent = dict(state.tokens_by_node)
                spent[name] = spent.get(name, 0) + tokens.total
                update["tokens_by_node"] = spent
                update["dearest_step"] = max(state.dearest_step, tokens.total)
            update["nodes"] = [step_run(name, tokens, duration, detail)]
            return update

        # Not functools.wraps: LangGraph reads the signature to inject `runtime`, so keep run's own.
        run.__name__ = run.__qualname__ = name
        run.__doc__ = fn.__doc__
        run.step = fn  # the step itself, for callers that run it outside the graph (the optimizer)
        return run

    return wrap
