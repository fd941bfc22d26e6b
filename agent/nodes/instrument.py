"""The wrapper every node goes through: an MLflow span, wall time and LM tokens per node.

Each node gets its own span named `node.<name>` (asserted on by the tracing tests), inside the one
trace the caller opened for the question. DSPy's autolog nests module and LM spans inside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dspy
import mlflow
from langgraph.runtime import Runtime
from mlflow.entities import SpanType

from agent.context import AgentContext
from agent.state import AgentState, NodeRun


class NodeFailure(RuntimeError):
    """An exception inside a node, carrying the node's name and time so the result can say where it failed."""

    def __init__(self, node: str, duration_ms: float, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.node = node
        self.duration_ms = duration_ms


NodeFn = Callable[[AgentState, AgentContext], dict[str, Any]]


def _tokens(usage: dict[str, dict[str, Any]]) -> int:
    return sum(int(u.get("total_tokens") or 0) for u in usage.values())


def node(name: str, *, lm: bool = True) -> Callable[[NodeFn], Callable[[AgentState, Runtime[AgentContext]], dict]]:
    def wrap(fn: NodeFn) -> Callable[[AgentState, Runtime[AgentContext]], dict]:
        def run(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
            ctx = runtime.context
            start = time.perf_counter()
            with mlflow.start_span(name=f"node.{name}", span_type=SpanType.CHAIN) as span:
                span.set_inputs({"question": state.question, "sql": state.sql, "attempts": state.attempts})
                try:
                    if lm:
                        with dspy.context(lm=ctx.lm(name)), dspy.track_usage() as usage:
                            update = fn(state, ctx)
                        tokens = _tokens(usage.get_total_tokens())
                    else:
                        update = fn(state, ctx)
                        tokens = 0
                except Exception as exc:  # the span records the exception; the caller learns which node
                    raise NodeFailure(name, (time.perf_counter() - start) * 1000, exc) from exc
                duration = (time.perf_counter() - start) * 1000
                span.set_outputs({k: v for k, v in update.items() if k != "nodes"})
                span.set_attributes({"sqlagent.node": name, "sqlagent.tokens": tokens,
                                     "sqlagent.duration_ms": round(duration, 1)})
            detail = str(update.pop("_detail", ""))
            update["nodes"] = [NodeRun(name=name, duration_ms=round(duration, 1), tokens=tokens, detail=detail)]
            return update

        # Not functools.wraps: LangGraph reads the signature to inject `runtime`, so keep run's own.
        run.__name__ = run.__qualname__ = name
        run.__doc__ = fn.__doc__
        return run

    return wrap
