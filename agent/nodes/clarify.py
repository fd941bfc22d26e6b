"""Clarify: ask which entity was meant, pausing the run with LangGraph's `interrupt()`.

The run stops here and the thread keeps it; the reply resumes it (`Command(resume=reply)`: the CLI's
`--thread`, the web app and the LangGraph API alike). A reply that picks a candidate ("2", "the
second one", an id, a year) becomes a mapping and the run goes on to retrieval; any other reply is
the user's next question, and the run starts over at rewrite with it.
"""

from __future__ import annotations

from langgraph.types import interrupt

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState, turn_input
from tools.sql.entities import EntityMapping, choose_candidate, resolve


def clarification_request(state: AgentState) -> dict:
    """What the paused run shows the person (the interrupt's value)."""
    pending = state.pending_clarification
    assert pending is not None, "clarify runs only after rewrite found an ambiguity"
    return {
        "kind": "clarify",
        "message": state.clarification,
        "mention": pending.ambiguity.mention,
        "candidates": [
            {"number": i, "label": c.label(), "value": c.key_value}
            for i, c in enumerate(pending.ambiguity.candidates, 1)
        ],
    }


@node("clarify")
def clarify(state: AgentState, ctx: AgentContext) -> dict:
    pending = state.pending_clarification
    reply = str(interrupt(clarification_request(state)))
    choice = choose_candidate(reply, pending.ambiguity)
    if choice is None:
        fresh = turn_input(reply, state.token_budget, state.budget_source)  # the paused turn's budget
        return {**fresh, "pending_clarification": None, "_detail": "not a choice: a new question"}
    chosen = resolve(pending.ambiguity.mention, [choice], None, ctx.db.centrality)
    assert isinstance(chosen, EntityMapping)
    chosen.method = "clarified"
    return {
        "standalone_question": pending.question,
        "mappings": [*pending.resolved, chosen],
        "pending_clarification": None,
        "clarification": None,
        "status": "running",
        "_detail": f"clarified {chosen.mention} -> {chosen.hint()}",
    }
