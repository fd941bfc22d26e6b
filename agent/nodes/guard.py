"""Guard: refuse prompt injection, write requests and out-of-database requests before any LM call."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState, turn_input
from tools.sql.guard import check_question


@node("guard")
def guard(state: AgentState, ctx: AgentContext) -> dict:
    decision = check_question(state.question)
    # Every turn starts clean, whoever started it: a LangGraph API client sends only {"question": ...},
    # and on a thread the last turn's SQL, rows and status would otherwise carry over.
    # The turn's token budget travels through the reset; a client that gave none gets the configured one.
    budget = ctx.settings.budget.tokens_per_question if state.token_budget is None else state.token_budget
    fresh = turn_input(state.question, budget, state.budget_source)
    if decision.allowed:
        return {**fresh, "_detail": "allowed"}
    return {
        **fresh,
        "status": "refused",
        "error": decision.reason,
        "error_kind": decision.code,
        "_detail": f"{decision.code}: {decision.reason}",
    }
