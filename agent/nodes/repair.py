"""Repair: the failed SQL and its error go back to the model, a bounded number of times."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState


@node("repair")
def repair(state: AgentState, ctx: AgentContext) -> dict:
    pred = ctx.repair(
        db_schema=state.linked_schema,
        question=state.rewritten_question or state.standalone_question or state.question,
        failed_sql=state.sql or "",
        error=state.error or "",
    )
    return {"sql": pred.sql, "repairs": state.repairs + 1, "attempts": state.attempts + 1, "_detail": pred.sql}
