"""A column DuckDB will not take because it is neither grouped nor aggregated, fixed without the LM.

`SELECT p.nameFirst, ... GROUP BY p.playerID` and `ROUND(9.0 * ER / (IPouts / 3.0), 2) ... GROUP BY
pi.playerID` both end in DuckDB's "column ... must appear in the GROUP BY clause" (3 of 95 first
queries on the golden test and dev splits, 2026-12-01). Each has one reading:

- the column belongs to a table that has one row per group (People when grouped by playerID): it is
  one value per group, so it joins the GROUP BY;
- it is a number on a table with many rows per group (a season's stints, a career's seasons): a
  per-row statistic summed per group, so it becomes SUM(column), which also turns the per-row
  ERA formula above into the per-group one;
- anything else (a text column on a many-rows table) joins the GROUP BY, as DuckDB suggests.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

_UNGROUPED = re.compile(r'column "?([^"\s]+)"? must appear in the GROUP BY clause', re.IGNORECASE)
_NUMERIC = re.compile(r"INT|DOUBLE|FLOAT|DECIMAL|NUMERIC|REAL|HUGEINT", re.IGNORECASE)


class GroupFix(BaseModel):
    sql: str
    detail: str = ""  # e.g. "ER -> SUM(ER); IPouts -> SUM(IPouts)", empty when nothing was fixed


def ungrouped_column(error: str) -> str | None:
    """The column named by DuckDB's GROUP BY binder error, or None for any other error."""
    match = _UNGROUPED.search(error or "")
    return match.group(1).split(".")[-1] if match else None


def fix_ungrouped(
    sql: str,
    error: str,
    column_types: dict[str, dict[str, str]],
    unique_on: Callable[[str, tuple[str, ...]], bool],
    dialect: str = "duckdb",
) -> GroupFix:
    """`sql` with every ungrouped, unaggregated reference to the binder error's column (and to the
    other columns of the same kind in that SELECT) grouped or summed. `column_types` maps each
    catalog table (lower-case) to its columns (lower-case) and their types."""
    name = ungrouped_column(error)
    if name is None:
        return GroupFix(sql=sql)
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return GroupFix(sql=sql)
    changes: list[str] = []
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None:
            continue
        changes += _fix_select(select, group, column_types, unique_on, dialect)
    if not changes:
        return GroupFix(sql=sql)
    return GroupFix(sql=tree.sql(dialect=dialect), detail="; ".join(dict.fromkeys(changes)))


def _fix_select(
    select: exp.Select,
    group: exp.Group,
    column_types: dict[str, dict[str, str]],
    unique_on: Callable[[str, tuple[str, ...]], bool],
    dialect: str,
) -> list[str]:
    sources: dict[str, str] = {}
    for source in [select.args.get("from_") or select.args.get("from"), *(select.args.get("joins") or [])]:
        node = source.this if source is not None else None
        if isinstance(node, exp.Table) and node.name.lower() in column_types:
            sources[node.alias_or_name.lower()] = node.name.lower()
    if not sources:
        return []
    grouped = [g for g in group.expressions if isinstance(g, exp.Column)]
    grouped_names = {(g.table.lower(), g.name.lower()) for g in grouped}
    aliases = {e.alias.lower() for e in select.expressions if isinstance(e, exp.Alias)}
    changes = []
    for column in list(select.find_all(exp.Column)):
        if column.find_ancestor(exp.Select) is not select or column.find_ancestor(
            exp.AggFunc, exp.Group, exp.Join, exp.Where
        ):
            continue
        if column.find_ancestor(exp.Window) is not None or (
            not column.table and column.name.lower() in aliases
        ):
            continue
        table = _table_of(column, sources, column_types)
        if table is None:
            continue
        alias, table_name = table
        low = column.name.lower()
        if (alias, low) in grouped_names or (not column.table and ("", low) in grouped_names):
            continue
        keys = tuple(g.name for g in grouped if g.table.lower() in ("", alias))
        if keys and unique_on(table_name, keys):
            group.append("expressions", column.copy())
            grouped_names.add((alias, low))
            changes.append(f"{column.sql(dialect=dialect)} added to GROUP BY")
        elif _NUMERIC.search(column_types[table_name].get(low, "")):
            before = column.sql(dialect=dialect)
            column.replace(exp.Sum(this=column.copy()))
            changes.append(f"{before} -> SUM({before})")
        else:
            group.append("expressions", column.copy())
            grouped_names.add((alias, low))
            changes.append(f"{column.sql(dialect=dialect)} added to GROUP BY")
    return changes


def _table_of(
    column: exp.Column, sources: dict[str, str], column_types: dict[str, dict[str, str]]
) -> tuple[str, str] | None:
    if column.table:
        table = sources.get(column.table.lower())
        return (column.table.lower(), table) if table and column.name.lower() in column_types[table] else None
    owners = [(a, t) for a, t in sources.items() if column.name.lower() in column_types[t]]
    return owners[0] if len(owners) == 1 else None
