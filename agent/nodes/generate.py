"""Generate: SQL in the engine's dialect from the linked schema, examples, value hints and the question."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState
from prompts.generate import Generate


@node("generate")
def generate(state: AgentState, ctx: AgentContext) -> dict:
    inputs = Generate.inputs(state.linked_schema, state.examples, state.mappings, state.standalone_question)
    pred = ctx.module("generate")(**inputs)
    refined = ctx.refine(pred.sql, state.standalone_question, state.mappings, state.examples)
    detail = "\n".join([pred.sql, *refined.notes])
    return {
        "sql": refined.sql,
        "attempts": state.attempts + 1,
        "error": None,
        "error_kind": None,
        "_detail": detail,
    }
