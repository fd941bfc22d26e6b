"""Safety: the static SQL policy (sqlglot) decides before anything runs."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState


@node("safety")
def safety(state: AgentState, ctx: AgentContext) -> dict:
    if not state.sql:
        return {"error": "The model returned no SQL.", "error_kind": "parse_error", "_detail": "empty"}
    decision = ctx.db.policy.check(state.sql)
    if decision.allowed:
        return {"sql": decision.sql, "error": None, "error_kind": None, "_detail": "allowed"}
    update = {
        "error": decision.reason,
        "error_kind": decision.code,
        "_detail": f"{decision.code}: {decision.reason}",
    }
    if decision.terminal:
        update["status"] = "refused"
    return update
