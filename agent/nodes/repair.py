"""Repair: a failed query fixed from its error, a bounded number of times (deterministic fixes first)."""

from __future__ import annotations

import difflib
import re

from sqlglot import parse_one
from sqlglot.errors import SqlglotError

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState
from prompts.repair import Repair
from tools.schema_info import brief
from tools.sql.column_fixes import fix_unknown_columns
from tools.sql.empty_result import explain_empty
from tools.sql.group_fixes import fix_ungrouped, ungrouped_column
from tools.sql.read_tables import base_tables
from tools.sql.unknown_columns import replacement_tables

_UNKNOWN_COLUMN = re.compile(r"Unknown column '([^']+)'")


def column_hint(
    ctx: AgentContext,
    error: str,
    linked_tables: list[str],
    sql: str | None = None,
    question: str = "",
    example_sqls: list[str] | None = None,
) -> str:
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
    similar = difflib.get_close_matches(
        name, sorted({c.name for t in linked for c in t.columns}), n=4, cutoff=0.5
    )
    similar = [s for s in similar if s.lower() != name.lower()]
    # Catalog order: ranking these by the prompt's tables or by the question's words moved the
    # 1.5B model, which takes the first one named, off AllstarFull for "All-Star seasons".
    owners = [(t, c) for t in schema.tables for c in t.columns if c.name.lower() == name.lower()][:4]
    lines = []
    wrong, fits = _replacements(ctx, sql, name)
    if fits:
        # A narrow set, named in the order the model should try them: a table a worked example reads
        # first, then the one the question points at most (Pitching, not Managers, for "Pedro
        # Martinez's record").
        shown = {t.lower() for e in example_sqls or [] for t in _read_tables(e, ctx.db.config.dialect)}
        scores = ctx.retrieve.table_scores(question) if question else {}
        fits = sorted(fits, key=lambda t: (t.lower() not in shown, -scores.get(t, 0.0), t))
        # The table to read instead says more than the first few of twenty tables with a playerID.
        lines.append(
            f"{wrong} has no {name}; tables with {name} and every other column the query reads "
            f"from {wrong}: {', '.join(fits[:4])}."
        )
    elif owners:
        lines.append(
            f"{name} is a column of: "
            + "; ".join(
                f"{t.name}.{c.name}" + (f" ({brief(c.comment, 60)})" if c.comment else "") for t, c in owners
            )
        )
        owner_names = {t.name for t, _ in owners}
        joins = [
            j
            for j in schema.joins_between(set(linked_tables) | owner_names)
            if {j.left, j.right} & owner_names
        ]
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


def _read_tables(sql: str, dialect: str) -> set[str]:
    try:
        return set(base_tables(parse_one(sql, read=dialect)))
    except SqlglotError:
        return set()


def _replacements(ctx: AgentContext, sql: str | None, name: str) -> tuple[str, list[str]]:
    if not sql:
        return "", []
    try:
        tree = parse_one(sql, read=ctx.db.config.dialect)
    except SqlglotError:
        return "", []
    catalog = {t.lower(): {c.lower(): c for c in cols} for t, cols in ctx.db.schema.table_columns().items()}
    return replacement_tables(tree, name, catalog, {t.lower(): t for t in ctx.db.schema.table_columns()})


def _fixed_without_lm(state: AgentState, ctx: AgentContext) -> tuple[str, str] | None:
    """(sql, what was fixed) for an error that has one fix, when the fixed query passes the policy."""
    if not state.sql:
        return None
    dialect = ctx.db.config.dialect
    if state.error_kind == "unknown_column":
        # A column on the wrong alias, misspelt or on a lookup table (tools/sql/column_fixes.py).
        columns = fix_unknown_columns(
            state.sql,
            ctx.db.schema.table_columns(),
            dialect=dialect,
            joins=ctx.db.schema.joins,
            unique_on=ctx.db.unique_on,
        )
        sql, detail = columns.sql, columns.detail() if columns.fixes else ""
    elif state.error_kind == "execution" and ungrouped_column(state.error or ""):
        # Neither grouped nor aggregated: grouped or summed (tools/sql/group_fixes.py).
        types = {t.name.lower(): {c.name.lower(): c.type for c in t.columns} for t in ctx.db.schema.tables}
        grouped = fix_ungrouped(state.sql, state.error or "", types, ctx.db.unique_on, dialect=dialect)
        sql, detail = grouped.sql, grouped.detail
    else:
        return None
    if not detail or not ctx.db.policy.check(sql).allowed:
        return None
    return sql, detail


@node("repair")
def repair(state: AgentState, ctx: AgentContext) -> dict:
    fixed = _fixed_without_lm(state, ctx)
    if fixed is not None:
        sql, what = fixed
        refined = ctx.refine(sql, state.standalone_question, state.mappings, state.examples)
        return {
            "sql": refined.sql,
            "repairs": state.repairs + 1,
            "attempts": state.attempts + 1,
            "approved": False,
            "_detail": "\n".join([sql, f"fixed without the LM: {what}", *refined.notes]),
        }
    error = state.error or ""
    hint = ""
    if state.error_kind == "unknown_column":
        hint = column_hint(
            ctx,
            error,
            state.linked_tables,
            state.sql,
            state.standalone_question,
            [e.sql for e in state.examples],
        )
    elif state.error_kind == "empty_result" and state.sql:
        # Which clause emptied the result: told only "no rows", the model wrote the same query again.
        hint = explain_empty(
            state.sql, lambda sql: ctx.db.sandbox.execute(sql).rows, dialect=ctx.db.config.dialect
        )
    inputs = Repair.inputs(
        state.linked_schema, state.examples, state.mappings, state.standalone_question, error, hint
    )
    pred = ctx.module("repair")(**inputs)
    refined = ctx.refine(pred.sql, state.standalone_question, state.mappings, state.examples)
    detail = "\n".join([pred.sql, *refined.notes])
    return {
        "sql": refined.sql,
        "repairs": state.repairs + 1,
        "attempts": state.attempts + 1,
        "approved": False,
        "_detail": detail,
    }
