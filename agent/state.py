"""The graph state: what flows between nodes, nothing else.

Per-turn fields are reset by `turn_input()` at the start of every question, because on a LangGraph
thread a field without a reducer keeps its value from the previous turn. `history` and
`pending_clarification` are what a thread deliberately carries over.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from prompts.retrieve import Example
from tools.sql.engines.base import SandboxKind
from tools.sql.entities import Ambiguity, EntityMapping
from tools.sql.guard import GuardCode
from tools.sql.policy import PolicyCode

# "clarify" and "approve": the run is paused at an `interrupt()` (a clarifying question, the SQL
# waiting for a person's approval) and resumes with the reply on the same thread.
Status = Literal["running", "ok", "clarify", "approve", "refused", "error"]
# Why a turn did not end in rows: the guard's, the policy's or the sandbox's code, an empty result
# (answered, or sent to repair), or a failure of our own. The graph routes on these.
# "budget": the cost guard stopped the turn (agent/budget.py).
ErrorKind = Literal[GuardCode, PolicyCode, SandboxKind, "empty_result", "not_approved", "internal", "budget"]


class NodeRun(BaseModel):
    name: str
    duration_ms: float
    tokens: int = 0  # every LM token of the node: prompt + completion (what providers call total_tokens)
    # The prompt split into what the model processed and what its prompt cache served (llama.cpp's
    # KV-cache prefix reuse, a hosted provider's prompt caching), then the completion. DSPy cache hits
    # count nothing: no LM ran. agent/nodes/instrument.py says where the numbers come from.
    tokens_read: int = 0
    tokens_cached: int = 0
    tokens_written: int = 0
    detail: str = ""


class Turn(BaseModel):
    question: str
    standalone_question: str
    sql: str | None = None


class PendingClarification(BaseModel):
    question: str  # the standalone question waiting for an answer
    ambiguity: Ambiguity
    resolved: list[EntityMapping] = Field(default_factory=list)


class AgentState(BaseModel):
    # Input of this turn: the user's own words.
    question: str
    # Carried across turns of a thread.
    history: list[Turn] = Field(default_factory=list)
    pending_clarification: PendingClarification | None = None
    # Rewrite. The one question every later step reads: the user's, made standalone on a thread
    # (set before any LM step runs; its resolved names travel beside it in `mappings`).
    standalone_question: str = ""
    mentions: list[str] = Field(default_factory=list)
    mappings: list[EntityMapping] = Field(default_factory=list)
    clarification: str | None = None
    # Retrieve.
    linked_tables: list[str] = Field(default_factory=list)
    linked_schema: str = ""
    examples: list[Example] = Field(default_factory=list)
    # Generate, safety, execute, repair.
    sql: str | None = None
    approved: bool = False  # a person approved this SQL (limits.approve_sql); a repair asks again
    attempts: int = 0
    repairs: int = 0
    error: str | None = None
    error_kind: ErrorKind | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    truncated: bool = False
    # Answer.
    answer: str | None = None
    status: Status = "running"
    nodes: Annotated[list[NodeRun], operator.add] = Field(default_factory=list)
    # The cost guard (agent/budget.py): this turn's token budget (0: no limit; None: not given, the
    # guard sets budget.tokens_per_question, as for a LangGraph API client), the LM tokens each
    # node has spent in this turn, in the order they ran, and the dearest single LM step so far.
    token_budget: int | None = None
    budget_source: str = "budget.tokens_per_question"
    tokens_by_node: dict[str, int] = Field(default_factory=dict)
    dearest_step: int = 0


def turn_input(
    question: str, token_budget: int | None = None, budget_source: str = "budget.tokens_per_question"
) -> dict[str, Any]:
    """The input of a new turn: the question, its token budget, and every per-turn field back at its default."""
    carried = {"history", "pending_clarification", "nodes"}
    fresh = AgentState(question=question, token_budget=token_budget, budget_source=budget_source)
    values = {name: getattr(fresh, name) for name in AgentState.model_fields if name not in carried}
    return values
