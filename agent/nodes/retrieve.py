"""Retrieve: the schema for the prompt, the value hints and similar worked examples.

The schema has two parts. The stable part (the most used tables, in full, in one fixed order) is
the same for every question, so it sits in the model's prompt cache after the first one; the linked
part adds the other tables this question points at, with the columns it points at.
"""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState
from tools.schema_info import DescribeSchemaArgs, describe_schema


def stable_schema(ctx: AgentContext) -> tuple[list[str], str]:
    """(tables, text) of the stable part, built once per context. It calls the renderer directly,
    not through the registry: choosing the tables renders up to one candidate set per table, and a
    registry call (a span, its payload) costs ~80x the rendering; the role's rules hold either way."""
    if ctx.stable_schema is None:
        settings = ctx.settings.retrieval

        def render(tables: list[str]) -> str:
            return describe_schema(ctx.db, DescribeSchemaArgs(tables=sorted(tables), detail="compact")).text

        if settings.stable_tables is not None:
            tables = [t for t in settings.stable_tables if ctx.db.schema.table(t) is not None]
        else:
            tables = []
            for name in ctx.retrieve.tables_by_use():
                if len(render([*tables, name])) <= settings.stable_schema_chars:
                    tables.append(name)
        tables.sort()
        ctx.stable_schema = (tables, render(tables) if tables else "")
    return ctx.stable_schema


def _describe(ctx: AgentContext, tables: list[str], **kwargs):
    return ctx.tools.call(
        "describe_schema", ctx.db, DescribeSchemaArgs(tables=tables, detail="compact", **kwargs)
    )


def linked_schema_text(ctx: AgentContext, question: str, tables: list[str]) -> str:
    """The prompt's schema: the stable part, then the linked tables outside it with the columns the
    question points at and their join paths (through describe_schema: the role's rules hold here too)."""
    stable, text = stable_schema(ctx)
    extra = [t for t in tables if t not in stable]
    if not extra:
        return text
    columns = {name: ctx.retrieve.relevant_columns(question, name) for name in extra}
    linked = _describe(ctx, extra, columns=columns, described=stable).text
    return f"{text}\n{linked}" if text else linked


@node("retrieve")
def retrieve(state: AgentState, ctx: AgentContext) -> dict:
    question = state.standalone_question
    entity_tables = [m.table for m in state.mappings]
    stable, _ = stable_schema(ctx)
    pred = ctx.retrieve(
        question=question,
        entity_tables=entity_tables,
        stable=stable,
        entity_columns=[m.column for m in state.mappings],
    )
    tables = list(dict.fromkeys([*stable, *pred.tables]))
    return {
        "linked_tables": tables,
        "linked_schema": linked_schema_text(ctx, question, pred.tables),
        "examples": pred.examples,
        "_detail": f"stable={len(stable)} linked={','.join(t for t in pred.tables if t not in stable)} "
        f"examples={len(pred.examples)}",
    }
