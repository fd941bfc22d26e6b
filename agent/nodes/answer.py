"""Answer: a short answer grounded in the rows; the rows themselves stay in state."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState, Turn
from prompts.answer import rows_text


@node("answer")
def answer(state: AgentState, ctx: AgentContext) -> dict:
    question = state.standalone_question or state.question
    pred = ctx.answer(
        question=question,
        columns=state.columns,
        rows=rows_text(state.columns, state.rows, ctx.settings.limits.rows_in_prompt),
    )
    turn = Turn(question=state.question, standalone_question=question, sql=state.sql)
    # An empty result that survived repair is still an answer ("no matching data"), not an error.
    return {"answer": pred.answer, "status": "ok", "error": None, "error_kind": None,
            "history": [*state.history, turn], "_detail": pred.answer}
