"""The agent as a service: ask a question on a thread, get one typed result with its trace id.

The CLI, the HTTP server and the eval runner all go through `Agent.ask`, so they behave the same.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dspy
import mlflow
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command
from mlflow.entities import SpanType
from mlflow.tracing.constant import TraceMetadataKey
from pydantic import BaseModel, Field

from agent.config import Settings
from agent.explain import EXPLAIN, EXPLAINS_TAG, ExplainResult, explain_sql
from agent.graph import build_graph
from agent.lm import prompt_cache
from agent.nodes.instrument import NodeFailure
from agent.question_check import question_problem
from agent.runtime import build_lms, open_context
from agent.state import AgentState, ErrorKind, NodeRun, Status, turn_input
from agent.tracing import checkpoint_path, setup_tracing
from prompts.generate import question_text
from tools.sql.entities import EntityMapping

PROMPTS_TAG = (
    "sqlagent.prompts"  # trace tag: {step: "registry:sqlagent-<step>@production/vN" | "file:..." | "code"}
)

CHECKPOINT_TYPES = [
    ("agent.state", "Turn"),
    ("agent.state", "PendingClarification"),
    ("agent.state", "NodeRun"),
    ("prompts.retrieve", "Example"),
    ("tools.sql.entities", "EntityMapping"),
    ("tools.sql.entities", "Ambiguity"),
    ("tools.sql.values", "ValueCandidate"),
]


STATUS_TAG = "sqlagent.status"  # trace tags the monitor reads (evals/monitor/)
TOKENS_TAG = "sqlagent.tokens"  # {"total", "read", "cached", "written", "nodes": {node: tokens}}
ERROR_KIND_TAG = "sqlagent.error_kind"  # why a turn ended without rows (a budget stop is "budget")


@dataclass(frozen=True)
class TokenBudget:
    """A question's token budget (None: no limit) and the setting that set it, for the message."""

    tokens: int | None = None
    source: str = "budget.tokens_per_question"

    def turn_input(self, question: str) -> dict[str, Any]:
        return turn_input(question, self.tokens or 0, self.source)  # 0: no limit


def token_usage(nodes: list[NodeRun]) -> dict[str, Any]:
    """Where a turn's LM tokens went: totals and per node (summed over repeated nodes, in order)."""
    by_node: dict[str, int] = {}
    for n in nodes:
        if n.tokens:
            by_node[n.name] = by_node.get(n.name, 0) + n.tokens
    return {
        "total": sum(n.tokens for n in nodes),
        "read": sum(n.tokens_read for n in nodes),
        "cached": sum(n.tokens_cached for n in nodes),
        "written": sum(n.tokens_written for n in nodes),
        "nodes": by_node,
    }


class AskResult(BaseModel):
    question: str
    rewritten_question: str | None = None
    mappings: list[EntityMapping] = Field(default_factory=list)
    sql: str | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    truncated: bool = False
    answer: str | None = None
    status: Status
    error: str | None = None
    error_kind: ErrorKind | None = None
    trace_id: str | None = None
    thread_id: str | None = None
    nodes: list[NodeRun] = Field(default_factory=list)


# What `Agent.ask_stream` yields: ("node", NodeRun) per finished node, then ("result", AskResult).
StreamEvent = tuple[Literal["node", "result"], "NodeRun | AskResult"]


def _embedded_servers() -> list[Any]:
    from agent.lm.embedded import running_servers

    return running_servers()


def _failure_message(exc: BaseException) -> str:
    # One line, bounded: an adapter error carries the whole LM response on several lines.
    if isinstance(exc, NodeFailure):
        text = f"The {exc.node} step failed: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:499] + "…"


class Agent:
    def __init__(
        self,
        settings: Settings,
        *,
        db_path: str | Path | None = None,
        role: str | None = None,
        lms: dict[str, dspy.LM] | None = None,
        persistent_threads: bool = True,
    ):
        self.settings = settings
        self.tracing = setup_tracing(settings)
        self.context = open_context(
            settings, str(db_path) if db_path else None, role, lms or build_lms(settings)
        )
        # Thread state holds our pydantic models: allow exactly those when reading checkpoints back.
        serde = JsonPlusSerializer(allowed_msgpack_modules=CHECKPOINT_TYPES)
        if persistent_threads:
            conn = sqlite3.connect(checkpoint_path(settings), check_same_thread=False)
            saver = SqliteSaver(conn, serde=serde)
        else:
            saver = InMemorySaver(serde=serde)
        self.graph = build_graph(checkpointer=saver)
        self._prompt_cache_saved = False
        for server in _embedded_servers():
            prompt_cache.restore_prompt_cache(server, self.context.db.url)

    def _keep_prompt_cache(self, result: AskResult) -> None:
        """Once per process, after a question whose last LM step wrote SQL: save the model's prompt
        state (the stable prefix of the SQL prompt) so that the next process starts warm."""
        lm_runs = [n.name for n in result.nodes if n.tokens]
        if self._prompt_cache_saved or not lm_runs or lm_runs[-1] not in ("generate", "repair"):
            return
        self._prompt_cache_saved = True
        for server in _embedded_servers():
            prompt_cache.save_prompt_cache(server, self.context.db.url)

    def _invalid(self, question: str) -> str | None:
        return question_problem(question, self.settings.limits.max_question_chars)

    def ask(
        self,
        question: str,
        thread_id: str | None = None,
        user: str | None = None,
        tags: dict[str, str] | None = None,
        budget: TokenBudget | None = None,
    ) -> AskResult:
        """`tags`: trace tags, written with the trace itself (the server's db and role). `budget`: the
        question's token budget (default: budget.tokens_per_question; the server passes a user's rest)."""
        thread_id = thread_id or uuid.uuid4().hex
        with mlflow.start_span(name="sqlagent.ask", span_type=SpanType.AGENT) as root:
            root.set_inputs({"question": question, "thread_id": thread_id})
            self._identify(thread_id, user, tags)
            result = self._run(question, thread_id, budget or self.default_budget())
            trace_id = self._close_root(root, result, thread_id)
        result.trace_id = trace_id
        self._keep_prompt_cache(result)
        return result

    def ask_stream(
        self,
        question: str,
        thread_id: str | None = None,
        user: str | None = None,
        tags: dict[str, str] | None = None,
        budget: TokenBudget | None = None,
    ) -> Iterator[StreamEvent]:
        """Like `ask`, in the same `sqlagent.ask` root span (so the same trace), but yielding one
        `("node", NodeRun)` event per node as it finishes, then `("result", AskResult)`.

        Consume it to the end on one thread: the root span is the current span between the yields.
        """
        thread_id = thread_id or uuid.uuid4().hex
        with mlflow.start_span(name="sqlagent.ask", span_type=SpanType.AGENT) as root:
            root.set_inputs({"question": question, "thread_id": thread_id})
            self._identify(thread_id, user, tags)
            result = yield from self._run_stream(question, thread_id, budget or self.default_budget())
            trace_id = self._close_root(root, result, thread_id)
        result.trace_id = trace_id
        self._keep_prompt_cache(result)
        yield "result", result

    def explain(
        self,
        sql: str,
        question: str | None = None,
        *,
        user: str | None = None,
        tags: dict[str, str] | None = None,
        about: str | None = None,
    ) -> ExplainResult:
        """`sql` in plain words, for this agent's role (agent/explain.py): refused when the role may
        not run it. Its own trace, tagged with the trace id `about` of the turn it explains."""
        prompts = {PROMPTS_TAG: json.dumps({EXPLAIN: self.context.prompt_sources.get(EXPLAIN)})}
        about_tag = {EXPLAINS_TAG: about} if about else {}
        return explain_sql(
            self.context,
            sql,
            question,
            tracing=self.tracing,
            user=user,
            tags={**prompts, **(tags or {}), **about_tag},
        )

    def _identify(self, thread_id: str, user: str | None, tags: dict[str, str] | None = None) -> None:
        """Who asked, on which conversation, as MLflow's own trace metadata (`mlflow.trace.user`,
        `mlflow.trace.session`): the MLflow UI groups traces by them. Set inside the root span, and
        so are the caller's tags: they reach the store with the trace or not at all, never a trace
        without them (a tag set afterwards fails on its own when the store is down)."""
        if not self.tracing or mlflow.get_current_active_span() is None:
            return
        metadata = {TraceMetadataKey.TRACE_SESSION: thread_id}
        if user:
            metadata[TraceMetadataKey.TRACE_USER] = user
        # Which prompt version of every LM step answered (prompts.source: files or the registry).
        prompts = {PROMPTS_TAG: json.dumps(self.context.prompt_sources, sort_keys=True)}
        mlflow.update_current_trace(metadata=metadata, tags={**prompts, **(tags or {})})

    def default_budget(self) -> TokenBudget:
        return TokenBudget(self.settings.budget.tokens_per_question or None)

    def _close_root(self, root: Any, result: AskResult, thread_id: str) -> str | None:
        root.set_outputs(result.model_dump(exclude={"rows", "nodes"}))
        usage = token_usage(result.nodes)
        root.set_attributes(
            {
                "sqlagent.status": result.status,
                "sqlagent.thread_id": thread_id,
                "sqlagent.tokens": usage["total"],
                "sqlagent.tokens_by_node": usage["nodes"],
            }
        )
        if self.tracing and mlflow.get_current_active_span() is not None:
            # On the trace itself, so that monitoring reads them without loading spans.
            tags = {STATUS_TAG: result.status, TOKENS_TAG: json.dumps(usage)}
            if result.error_kind:
                tags[ERROR_KIND_TAG] = result.error_kind
            mlflow.update_current_trace(tags=tags)
        trace_id = getattr(root, "trace_id", None) if self.tracing else None
        return trace_id if trace_id and not str(trace_id).startswith("tr-no-op") else None

    def _failed(
        self, question: str, thread_id: str, config: dict, before: int, exc: BaseException
    ) -> AskResult:
        message = _failure_message(exc)
        done = [
            NodeRun.model_validate(n)
            for n in (self.graph.get_state(config).values.get("nodes") or [])[before:]
        ]
        if isinstance(exc, NodeFailure):
            done.append(
                NodeRun(name=exc.node, duration_ms=round(exc.duration_ms, 1), detail=f"failed: {exc}")
            )
        return AskResult(
            question=question,
            status="error",
            error=message,
            error_kind="internal",
            answer=f"Something failed while answering. {message}",
            thread_id=thread_id,
            nodes=done,
        )

    def _bad_input(self, question: str, thread_id: str) -> AskResult | None:
        problem = self._invalid(question)
        if problem:
            return AskResult(
                question=question,
                status="error",
                error=problem,
                error_kind="bad_input",
                answer=problem,
                thread_id=thread_id,
            )
        return None

    def _thread_config(self, thread_id: str) -> dict:
        """The checkpoint key of a thread. A narrowed role keeps its threads apart: a thread begun by
        a role that sees everything holds mappings and clarification candidates from hidden columns,
        which a follow-up under the narrower role would carry on (a chosen candidate becomes a
        mapping). The default role's key is the thread id itself, as before."""
        db = self.context.db
        key = thread_id if db.hidden.empty else f"{thread_id}@role:{db.role.name}"
        return {"configurable": {"thread_id": key}}

    def _run(self, question: str, thread_id: str, budget: TokenBudget) -> AskResult:
        bad = self._bad_input(question, thread_id)
        if bad:
            return bad
        config = self._thread_config(thread_id)
        turn, before = self._start(question, config, budget)
        try:
            self.graph.invoke(turn, config=config, context=self.context)
        except Exception as exc:  # the LM server down, a bug in a node: report it, never a traceback
            return self._failed(question, thread_id, config, before, exc)
        return self._result(question, thread_id, config, before)

    def _start(
        self, question: str, config: dict, budget: TokenBudget
    ) -> tuple[dict[str, Any] | Command, int]:
        """What to run, from one read of the thread's checkpoint: a new turn with its token budget,
        or, on a thread paused at an `interrupt()` (a clarifying question, SQL awaiting approval), the
        reply that resumes it (the paused node decides what the reply means, and the turn keeps the
        budget and the spend it had); and how many node runs the thread held before it."""
        snapshot = self.graph.get_state(config)
        before = len(snapshot.values.get("nodes", []) or [])
        if snapshot.interrupts:
            return Command(resume=question), before
        return budget.turn_input(question), before

    def _run_stream(
        self, question: str, thread_id: str, budget: TokenBudget
    ) -> Generator[StreamEvent, None, AskResult]:
        bad = self._bad_input(question, thread_id)
        if bad:
            return bad
        config = self._thread_config(thread_id)
        turn, before = self._start(question, config, budget)
        sent = 0
        try:
            for update in self.graph.stream(
                turn,
                config=config,
                context=self.context,
                stream_mode="updates",
            ):
                for values in update.values():
                    for run in (values.get("nodes") if isinstance(values, dict) else None) or []:
                        sent += 1
                        yield "node", NodeRun.model_validate(run)
        except Exception as exc:  # as in _run; the failed node still gets its event
            result = self._failed(question, thread_id, config, before, exc)
            for run in result.nodes[sent:]:
                yield "node", run
            return result
        return self._result(question, thread_id, config, before)

    def _result(self, question: str, thread_id: str, config: dict, before: int) -> AskResult:
        snapshot = self.graph.get_state(config)
        state = AgentState.model_validate(snapshot.values)
        paused = [i.value for i in snapshot.interrupts if isinstance(i.value, dict)]
        if paused:  # the run waits for a reply: say what it asks, in the status and the answer
            state.status = "approve" if paused[0].get("kind") == "approve_sql" else "clarify"
            state.answer = str(paused[0].get("message") or "")
        # What generate read: the standalone question with its resolved names annotated.
        rewritten = (
            question_text(state.standalone_question, state.mappings) if state.standalone_question else None
        )
        return AskResult(
            question=question,
            rewritten_question=None if state.status == "clarify" else rewritten,
            mappings=state.mappings,
            sql=state.sql,
            columns=state.columns,
            rows=state.rows,
            truncated=state.truncated,
            answer=state.answer,
            status=state.status,
            error=state.error,
            error_kind=state.error_kind,
            thread_id=thread_id,
            nodes=state.nodes[before:],
        )
