"""Broken SQL for the repair trainset: gold queries corrupted the way small models break them.

Every corruption is deterministic (no randomness: the same gold SQL always gives the same broken
query) and textual-by-AST (sqlglot), so the broken query still reads like model output:

- `column_typo`: one column name misspelt (`nameLast` -> `nameLats`);
- `group_by_drop`: one non-aggregated column removed from GROUP BY (DuckDB's strict GROUP BY);
- `unquoted_digit`: a quoted column that starts with a digit ("2B") written bare (2B);
- `ambiguous_column`: a join key's table qualifier dropped (`s.yearID` -> `yearID`).

A corruption that does not apply to a query returns None; the caller keeps only queries that really
fail on the database (the error message is the real DuckDB/policy one).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

KINDS = ("column_typo", "group_by_drop", "unquoted_digit", "ambiguous_column")


def _parse(sql: str) -> exp.Expression | None:
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return None


def misspell(name: str) -> str:
    """Swap the last two letters ('nameLast' -> 'nameLats'); a short name gets a doubled letter."""
    if len(name) >= 4 and name[-1] != name[-2]:
        return name[:-2] + name[-1] + name[-2]
    return name + name[-1]


def column_typo(sql: str) -> str | None:
    tree = _parse(sql)
    if tree is None:
        return None
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for col in tree.find_all(exp.Column):
        name = col.name
        if len(name) >= 3 and name.lower() not in aliases and not name[0].isdigit():
            col.set("this", exp.to_identifier(misspell(name), quoted=col.this.quoted))
            return tree.sql(dialect="duckdb")
    return None


def group_by_drop(sql: str) -> str | None:
    tree = _parse(sql)
    if tree is None:
        return None
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None or len(group.expressions) < 2:
            continue
        keep = group.expressions[:-1]
        group.set("expressions", keep)
        return tree.sql(dialect="duckdb")
    return None


def unquoted_digit(sql: str) -> str | None:
    found = re.search(r'"(\d[A-Za-z]\w*)"', sql)
    if not found:
        return None
    return sql[: found.start()] + found.group(1) + sql[found.end() :]


def ambiguous_column(sql: str) -> str | None:
    tree = _parse(sql)
    if tree is None or not list(tree.find_all(exp.Join)):
        return None
    for join in tree.find_all(exp.Join):
        on = join.args.get("on")
        if on is None:
            continue
        for eq in on.find_all(exp.EQ):
            left, right = eq.this, eq.expression
            if (
                isinstance(left, exp.Column)
                and isinstance(right, exp.Column)
                and left.table
                and right.table
                and left.name.lower() == right.name.lower()
            ):
                # Drop the qualifier of the same column where it is selected or filtered on, else in the ON.
                for col in tree.find_all(exp.Column):
                    if col.name.lower() == left.name.lower() and col.table and col not in (left, right):
                        col.set("table", None)
                        return tree.sql(dialect="duckdb")
                left.set("table", None)
                return tree.sql(dialect="duckdb")
    return None


CORRUPTIONS = {
    "column_typo": column_typo,
    "group_by_drop": group_by_drop,
    "unquoted_digit": unquoted_digit,
    "ambiguous_column": ambiguous_column,
}


def corruptions(sql: str, start: int = 0) -> list[tuple[str, str]]:
    """Every applicable (kind, broken_sql), rotated to begin at kind number `start` (mixes kinds)."""
    kinds = KINDS[start % len(KINDS) :] + KINDS[: start % len(KINDS)]
    out = []
    for kind in kinds:
        broken = CORRUPTIONS[kind](sql)
        if broken and broken.strip() != sql.strip():
            out.append((kind, broken))
    return out
