"""Generate: DuckDB SQL from the linked schema, examples, value hints and the question."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState


def examples_text(examples: list[dict[str, str]]) -> str:
    return "\n\n".join(f"Question: {e['question']}\nSQL: {e['sql']}" for e in examples) or "(none)"


def value_hints_text(state: AgentState) -> str:
    return "\n".join(f"{m.mention} = {m.hint()} (matched '{m.matched}')" for m in state.mappings) or "(none)"


@node("generate")
def generate(state: AgentState, ctx: AgentContext) -> dict:
    pred = ctx.generate(
        db_schema=state.linked_schema,
        examples=examples_text(state.examples),
        value_hints=value_hints_text(state),
        question=state.rewritten_question or state.standalone_question or state.question,
    )
    return {"sql": pred.sql, "attempts": state.attempts + 1, "error": None, "error_kind": None, "_detail": pred.sql}
