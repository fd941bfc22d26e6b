"""Retrieve: the linked part of the schema, the value hints and similar worked examples."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState
from tools.schema_info import DescribeSchemaArgs, brief
from tools.sql.introspect import quote_identifier


def linked_schema_text(ctx: AgentContext, question: str, tables: list[str]) -> str:
    """Compact schema for the prompt: linked tables, their relevant columns, short comments, join paths."""
    if not tables:
        return ""
    described = ctx.tools.call("describe_schema", ctx.db, DescribeSchemaArgs(tables=tables, with_comments=False))
    joins = ctx.db.schema.joins_between(set(described.tables))
    # A join key means the same thing in every table: describe it once, name it elsewhere.
    keys = {a.lower() for j in joins for pair in j.on for a in pair}
    described_keys: set[str] = set()
    blocks = []
    # A stable order (by name) lets llama.cpp reuse the cached prompt prefix across questions.
    for name in sorted(described.tables):
        table = ctx.db.schema.table(name)
        keep = set(ctx.retrieve.relevant_columns(question, name))
        comment = brief(table.comment, 120)
        lines = [f"TABLE {table.name}" + (f" -- {comment}" if comment else "")]
        for col in table.columns:
            if col.name not in keep:
                continue
            line = f"  {quote_identifier(col.name)} {col.type}"
            if col.name.lower() not in described_keys:
                note = brief(col.comment, 60)
                sample = f"e.g. {col.samples[0]!r}" if col.samples and "e.g" not in note else ""
                if note or sample:
                    line += " -- " + " ".join(part for part in (note, sample) if part)
            if col.name.lower() in keys:
                described_keys.add(col.name.lower())
            lines.append(line)
        blocks.append("\n".join(lines))
    if joins:
        blocks.append("JOINS\n" + "\n".join(f"  {j.sql()}" for j in joins))
    return "\n".join(blocks)


@node("retrieve", lm=False)
def retrieve(state: AgentState, ctx: AgentContext) -> dict:
    question = state.standalone_question or state.question
    entity_tables = [m.table for m in state.mappings]
    pred = ctx.retrieve(question=question, entity_tables=entity_tables)
    return {
        "linked_tables": pred.tables,
        "linked_schema": linked_schema_text(ctx, question, pred.tables),
        "examples": [{"question": e.question, "sql": e.sql} for e in pred.examples],
        "_detail": f"tables={','.join(pred.tables)} examples={len(pred.examples)}",
    }
