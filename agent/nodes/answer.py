"""Answer: a short answer grounded in the rows; the rows themselves stay in state.

Small results are said by a template (no LM call), longer ones by the LM (config answer.mode).
"""

from __future__ import annotations

from agent.config import AnswerSettings
from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState, Turn
from prompts.answer import rows_text, template_answer


def use_template(settings: AnswerSettings, columns: list[str], rows: list[list]) -> bool:
    if settings.mode != "auto":
        return settings.mode == "template"
    return len(rows) <= settings.template_max_rows and len(columns) <= settings.template_max_columns


@node("answer")
def answer(state: AgentState, ctx: AgentContext) -> dict:
    question = state.standalone_question
    if use_template(ctx.settings.answer, state.columns, state.rows):
        text = template_answer(state.columns, state.rows, state.truncated)
        how = "template"
    else:
        pred = ctx.module("answer")(
            question=question,
            columns=state.columns,
            rows=rows_text(state.columns, state.rows, ctx.settings.limits.rows_in_prompt),
        )
        text, how = pred.answer, "lm"
    turn = Turn(question=state.question, standalone_question=question, sql=state.sql)
    # An empty result that survived repair is still an answer ("no matching data"), not an error.
    return {
        "answer": text,
        "status": "ok",
        "error": None,
        "error_kind": None,
        "history": [*state.history, turn],
        "_detail": f"({how}) {text}",
    }
