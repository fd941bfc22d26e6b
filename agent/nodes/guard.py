"""Guard: refuse prompt injection, write requests and out-of-database requests before any LM call."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState
from tools.sql.guard import check_question


@node("guard")
def guard(state: AgentState, ctx: AgentContext) -> dict:
    decision = check_question(state.question)
    if decision.allowed:
        return {"_detail": "allowed"}
    return {
        "status": "refused",
        "error": decision.reason,
        "error_kind": decision.code,
        "_detail": f"{decision.code}: {decision.reason}",
    }
