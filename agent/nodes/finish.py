"""Finish: close a turn that ends without an answer (a refusal, an error) with a readable message."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState


@node("finish")
def finish(state: AgentState, ctx: AgentContext) -> dict:
    if state.error_kind == "not_approved":
        return {"answer": state.error, "_detail": "not approved"}
    if state.status == "refused":
        return {"answer": f"I can't run that: {state.error}", "_detail": state.error_kind or "refused"}
    if state.error_kind == "budget":  # the cost guard's message says where the tokens went
        return {"status": "error", "answer": state.error, "_detail": "budget"}
    attempts = ctx.settings.limits.max_repair_attempts
    message = (
        f"I could not produce a working query after {attempts} repair attempts. Last error: {state.error}"
    )
    return {"status": "error", "answer": message, "_detail": state.error_kind or "error"}
