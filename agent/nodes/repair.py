"""Repair: a failed query fixed from its error, a bounded number of times (deterministic fixes first)."""

from __future__ import annotations

import difflib
import re

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState
from prompts.repair import Repair
from tools.schema_info import brief
from tools.sql.column_fixes import fix_unknown_columns

_UNKNOWN_COLUMN = re.compile(r"Unknown column '([^']+)'")


def column_hint(ctx: AgentContext, error: str, linked_tables: list[str]) -> str:
    """Where the unknown column of a policy error really lives, and how to join to it.

    The linked schema shows a few columns of a few tables, so the model often reaches for a column
    it has not been shown (Teams.WSWin from BattingPost) or invents one (name_full). Repeating the
    same schema cannot fix that; naming the owner table and its join path, or the closest real
    names, can.
    """
    match = _UNKNOWN_COLUMN.search(error)
    if not match:
        return ""
    name = match.group(1).split(".")[-1].strip('"')
    schema = ctx.db.schema
    linked = [table for t in linked_tables if (table := schema.table(t)) is not None]
    similar = difflib.get_close_matches(name, sorted({c.name for t in linked for c in t.columns}), n=4, cutoff=0.5)
    similar = [s for s in similar if s.lower() != name.lower()]
    owners = [(t, c) for t in schema.tables for c in t.columns if c.name.lower() == name.lower()][:4]
    lines = []
    if owners:
        lines.append(f"{name} is a column of: " + "; ".join(
            f"{t.name}.{c.name}" + (f" ({brief(c.comment, 60)})" if c.comment else "") for t, c in owners
        ))
        owner_names = {t.name for t, _ in owners}
        joins = [j for j in schema.joins_between(set(linked_tables) | owner_names) if {j.left, j.right} & owner_names]
        if joins:
            lines.append("Join with: " + "; ".join(j.sql() for j in joins[:4]))
    else:
        lines.append(f"No table has a column {name}.")
        if not similar:
            everywhere = sorted({c.name for t in schema.tables for c in t.columns})
            similar = difflib.get_close_matches(name, everywhere, n=4, cutoff=0.6)
    if similar and not (owners and {t.name for t, _ in owners} & set(linked_tables)):
        lines.append(f"Similar columns in the linked tables: {', '.join(similar)}.")
    return "\n".join(lines)


@node("repair")
def repair(state: AgentState, ctx: AgentContext) -> dict:
    if state.error_kind == "unknown_column" and state.sql:
        # A column on the wrong alias or misspelt has one fix: no LM call (tools/sql/column_fixes.py).
        fixed = fix_unknown_columns(state.sql, ctx.db.schema.table_columns(), dialect=ctx.db.config.dialect,
                                    joins=ctx.db.schema.joins, unique_on=ctx.db.unique_on)
        if fixed.fixes and ctx.db.policy.check(fixed.sql).allowed:
            refined = ctx.refine(fixed.sql, state.standalone_question, state.mappings, state.examples)
            return {"sql": refined.sql, "repairs": state.repairs + 1, "attempts": state.attempts + 1,
                    "_detail": "\n".join([fixed.sql, f"fixed without the LM: {fixed.detail()}", *refined.notes])}
    error = state.error or ""
    hint = column_hint(ctx, error, state.linked_tables) if state.error_kind == "unknown_column" else ""
    inputs = Repair.inputs(state.linked_schema, state.examples, state.mappings, state.standalone_question, error, hint)
    pred = ctx.module("repair")(**inputs)
    refined = ctx.refine(pred.sql, state.standalone_question, state.mappings, state.examples)
    detail = "\n".join([pred.sql, *refined.notes])
    return {"sql": refined.sql, "repairs": state.repairs + 1, "attempts": state.attempts + 1, "_detail": detail}
