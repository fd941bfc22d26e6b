"""`sqlagent mcp`: the database as an MCP server, for Claude Desktop, IDEs and other agents.

Tools: `ask` (the agent graph, agent/service.py), `explain` (a query in plain words, agent/explain.py:
refused when the role may not run it) and every tool of the registry (tools/builtin.py:
`describe_schema`, `lookup_values`, `run_sql`), listed with their own argument and result schemas
and called through `ToolRegistry.call`: the same policy, sandbox, role view and tool spans as the
agent, the CLI and the HTTP API. Nothing here re-implements a tool; a tool added to the registry
is served here without a line changed.

Who may do what: over stdio, the process belongs to whoever started it, and every call runs with
the role given by `--role` or `mcp.role`. Over streamable HTTP the rules of `sqlagent serve` hold
(agent/apps/auth.py, users.py): with auth on (server.auth) every request needs a bearer token with
the `ask` permission and runs with the token's role; without auth only a loopback address is allowed.
So do its limits per token's user, on the tools that use the model (`ask`, `explain`): questions
queued or running and per minute (agent/apps/limits.py) and the token budget
(agent/apps/token_budget.py), counted in this process. A refusal is a tool error whose text says
which limit and when to retry, with `retry_after_s` in its structured content. The local operator
(stdio, or HTTP without auth) is not limited.

Traces: `ask` leaves the agent's own trace; a registry tool call leaves one trace whose root span is
`sqlagent.mcp.<tool>`, with the caller as `mlflow.trace.user` and the role as a tag.

Every call runs on one worker thread, in arrival order (agent/apps/agent_pool.py): the model has one
slot and the value index's DuckDB connection is not for concurrent use.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import mcp_types as types
import mlflow
from mcp.server import Server
from mlflow.entities import SpanType
from mlflow.tracing.constant import TraceMetadataKey
from pydantic import BaseModel, Field, ValidationError

from agent.apps.agent_pool import AgentFactory, AgentPool, default_agent_factory
from agent.apps.auth import LOCAL, Principal, scoped_thread, unscoped_thread
from agent.apps.bad_input import arguments_problem, validation_message
from agent.apps.limits import QuestionLimits, TooManyQuestions
from agent.apps.payloads import MAX_QUESTION, THREAD_PATTERN
from agent.apps.token_budget import OverTokenBudget, UserBudgets
from agent.apps.version import version
from agent.config import Settings
from agent.explain import ExplainResult
from agent.service import AskResult, TokenBudget
from agent.tracing import setup_tracing
from evals import feedback
from tools.builtin import registry
from tools.registry import Tool
from tools.run_sql import MAX_SQL_CHARS
from tools.sql.database import Database, open_database

log = logging.getLogger(__name__)

PRINCIPAL_KEY = "sqlagent.principal"  # where the HTTP token gate leaves the caller in the ASGI scope
ASK = "ask"
ASK_DESCRIPTION = (
    "Answer a question about the database in plain language: the agent finds the tables and values, "
    "writes one SELECT, checks it against the safety policy, runs it read-only and answers. Returns the "
    "SQL, the columns and rows, the answer and a thread_id. status 'clarify' means the answer is a "
    "question back, and 'approve' that the query waits for approval (limits.approve_sql): reply ('yes', "
    "or the choice) on the same thread_id; a follow-up ('and in 1961?') also goes on it."
)
EXPLAIN = "explain"
EXPLAIN_DESCRIPTION = (
    "Explain one SELECT in plain language (which data it reads, which rows it keeps, how it groups and "
    "orders them), without running it. A query the role may not run is refused with the reason, not "
    "explained. Pass the question it answers when there is one."
)
_READ_ONLY = types.ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
_WRITES = types.ToolAnnotations(read_only_hint=False, open_world_hint=False)


class AskArgs(BaseModel):
    question: str = Field(
        min_length=1, max_length=MAX_QUESTION, description="The question, in plain language."
    )
    thread_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=THREAD_PATTERN,
        description="The thread_id of an earlier answer, to continue that conversation.",
    )


class ExplainArgs(BaseModel):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="One SELECT statement.")
    question: str | None = Field(None, max_length=MAX_QUESTION, description="The question it answers.")


def _output_schema(model: type[BaseModel] | None) -> dict[str, Any] | None:
    return model.model_json_schema(mode="serialization") if model is not None else None


class McpBackend:
    """The tools' side: one Database per role for the registry tools, one Agent per role for `ask`."""

    def __init__(
        self,
        settings: Settings,
        *,
        role: str | None = None,
        db: str | None = None,
        agent_factory: AgentFactory | None = None,
    ):
        self.settings = settings
        self.role = role if role is not None else settings.mcp.role
        self.db = db
        self.tracing = setup_tracing(settings)
        self.pool = AgentPool(settings, agent_factory or default_agent_factory)
        self.tools: dict[str, Tool] = {t.name: t for t in registry()}
        # The HTTP API's limits (server.py), applied to authenticated callers only. The registry
        # tools do not count: they use no model, a run_sql is bounded by the sandbox's timeout and
        # row cap, and a client's model that writes its own SQL makes several of them per question
        # (describe_schema, lookup_values, run_sql), which questions_per_minute would cut short.
        self.limits = QuestionLimits(
            settings.server.max_concurrent_questions, settings.server.questions_per_minute
        )
        self.budgets = UserBudgets(settings.budget)
        self.database(
            self.role
        )  # a missing database or an unknown role fails at start, not at the first call

    def database(self, role: str | None) -> Database:
        return open_database(self.settings.database_config(self.db), role)

    def list_tools(self) -> list[types.Tool]:
        out = [
            types.Tool(
                name=ASK,
                description=ASK_DESCRIPTION,
                input_schema=AskArgs.model_json_schema(),
                output_schema=_output_schema(AskResult),
                annotations=_READ_ONLY,
            ),
            types.Tool(
                name=EXPLAIN,
                description=EXPLAIN_DESCRIPTION,
                input_schema=ExplainArgs.model_json_schema(),
                output_schema=_output_schema(ExplainResult),
                annotations=_READ_ONLY,
            ),
        ]
        for tool in self.tools.values():
            if tool.args_model is None:  # nothing to describe its arguments with: not callable by a client
                continue
            out.append(
                types.Tool(
                    name=tool.name,
                    description=tool.description,
                    input_schema=tool.args_model.model_json_schema(),
                    output_schema=_output_schema(tool.result_model),
                    annotations=_READ_ONLY if tool.read_only else _WRITES,
                )
            )
        return out

    def role_of(self, who: Principal) -> str | None:
        return who.role if who.authenticated else self.role

    async def call(self, name: str, arguments: dict[str, Any], who: Principal) -> types.CallToolResult:
        role = self.role_of(who)
        if problem := arguments_problem(arguments, f"The {name}"):
            return _error(problem)
        try:
            if name == ASK:
                args = AskArgs.model_validate(arguments)
                result = await self._model_job(
                    who, role, lambda agent, budget: self._ask(agent, args, who, role, budget)
                )
                return _result(result, failed=result.status == "error")
            if name == EXPLAIN:
                query = ExplainArgs.model_validate(arguments)
                result = await self._model_job(
                    who, role, lambda agent, budget: self._explain(agent, query, who, role)
                )
                return _result(result, failed=result.status != "ok")
            tool = self.tools.get(name)
            if tool is None or tool.args_model is None:
                return _error(
                    f"Unknown tool {name!r}; tools: {', '.join(t.name for t in self.list_tools())}."
                )
            parsed = tool.args_model.model_validate(arguments)
            result = await asyncio.wrap_future(self.pool.run(lambda: self._tool(name, parsed, who, role)))
            return _result(result, failed=getattr(result, "status", "ok") != "ok")
        except ValidationError as exc:
            return _error(validation_message(exc, f"The {name} argument"))
        except (TooManyQuestions, OverTokenBudget) as exc:
            return _refused(exc.message, exc.retry_after_s)
        except (ValueError, FileNotFoundError) as exc:  # an unknown role, a missing database
            return _error(f"{type(exc).__name__}: {exc}")

    async def _model_job(
        self, who: Principal, role: str | None, job: Callable[[Any, TokenBudget], Any]
    ) -> Any:
        """Run `job(agent, budget)` on the worker, counted against `who`'s limits (raises
        TooManyQuestions or OverTokenBudget before it queues, as server.py's 429s)."""
        budget = self.budgets.budget_for(who)  # first: a user past the budget takes no place
        release = self.limits.acquire(who.name) if who.authenticated else _nothing
        try:
            future = self.pool.submit(self.db, role, lambda agent: job(agent, budget))
        except BaseException:
            release()
            raise
        # Held until the worker is done with the job, not until this call returns: a client that
        # gives up (a cancelled call, a dropped connection) leaves its job queued or running.
        future.add_done_callback(lambda _: release())
        return await asyncio.wrap_future(future)

    def _ask(  # worker thread
        self, agent: Any, args: AskArgs, who: Principal, role: str | None, budget: TokenBudget
    ) -> AskResult:
        result = agent.ask(
            args.question,
            thread_id=scoped_thread(who, args.thread_id),
            user=who.name,
            tags=_tags(self.db, role),
            budget=budget,
        )
        self.budgets.charge(who, sum(n.tokens for n in result.nodes))
        result.thread_id = unscoped_thread(who, result.thread_id)
        return result

    def _explain(self, agent: Any, args: ExplainArgs, who: Principal, role: str | None) -> ExplainResult:
        tags = {"sqlagent.source": "mcp", **_tags(self.db, role)}  # worker thread, as _ask
        result = agent.explain(args.sql, args.question, user=who.name, tags=tags)
        self.budgets.charge(who, result.step.tokens if result.step is not None else 0)
        return result

    def _tool(self, name: str, args: BaseModel, who: Principal, role: str | None) -> Any:  # worker thread
        db = self.database(role)
        with mlflow.start_span(name=f"sqlagent.mcp.{name}", span_type=SpanType.TOOL) as root:
            root.set_inputs(args.model_dump())
            if self.tracing:
                mlflow.update_current_trace(
                    metadata={TraceMetadataKey.TRACE_USER: who.name},
                    tags={"sqlagent.source": "mcp", **_tags(self.db, role)},
                )
            result = registry().call(name, db, args)
            root.set_outputs(result.model_dump(mode="json") if isinstance(result, BaseModel) else result)
        return result

    def close(self) -> None:
        self.pool.close()


def _tags(db: str | None, role: str | None) -> dict[str, str]:
    return {key: value for key, value in ((feedback.DB_TAG, db), (feedback.ROLE_TAG, role)) if value}


def _result(result: BaseModel, *, failed: bool) -> types.CallToolResult:
    data = result.model_dump(mode="json")
    text = json.dumps(data, ensure_ascii=False)  # the spec's text twin of the structured content
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=data, is_error=failed
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _refused(message: str, retry_after_s: int) -> types.CallToolResult:
    """A limit's refusal: its one line (which says when to retry), and the wait for a client to read.
    Not the tool's output schema: a client validates structured content only when is_error is false."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)],
        structured_content={"error": message, "retry_after_s": retry_after_s},
        is_error=True,
    )


def _nothing() -> None:
    """The release of a call that took no place: the local operator is not limited."""


def _principal(ctx: Any) -> Principal:
    """The caller the HTTP token gate found; over stdio (no request) and without auth, the local operator."""
    request = getattr(ctx, "request", None)
    if request is None:
        return LOCAL
    return (request.scope.get("state") or {}).get(PRINCIPAL_KEY, LOCAL)


def build_server(backend: McpBackend) -> Server:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=backend.list_tools())

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await backend.call(params.name, params.arguments or {}, _principal(ctx))

    schemas = {t.name: t.input_schema for t in backend.list_tools()}
    return Server(
        "sqlagent",
        version=version(),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=schemas.get,
        instructions="Read-only access to one SQL database. Start with describe_schema, find names with "
        "lookup_values, run one SELECT with run_sql, or let `ask` do all of it from a question.",
    )
