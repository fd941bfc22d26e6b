"""Which reference of a query names a column its table does not have, said so a model can fix it.

sqlglot's qualifier reports only the bare name ("Unknown column: playerid"). A small model that
joined AllstarFull to Teams ON T1.playerID = T2.playerID cannot tell from that which side is wrong,
and measured repairs of such errors ended wrong after both attempts (the 2026-12-01 test split: 6 of
7 unknown-column items). Naming the alias and its table, or the tables an unqualified name was
looked for in, points at the clause to change.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp


def unknown_column_message(
    qualifier_error: str,
    tree: exp.Expression,
    columns: dict[str, dict[str, str]],
    tables: dict[str, str],
    original_name: Callable[[str], str],
) -> str:
    """The policy's sentence for sqlglot's qualifier error (its first line): the column as the query
    wrote it, and where it was looked for."""
    match = re.search(r"Column '([^']+)'|Unknown column: (\S+)", qualifier_error)
    if not match:
        return f"The query refers to an unknown column: {qualifier_error}"
    name = original_name((match.group(1) or match.group(2)).strip('"'))
    table_match = re.search(r"for table: '([^']+)'", qualifier_error)
    where = f" in table '{table_match.group(1)}'" if table_match else ""
    placed = where_unknown(tree, name, columns, tables)
    return f"Unknown column '{name}'{where}" + (f": {placed}." if placed else ".")


def where_unknown(
    tree: exp.Expression, name: str, columns: dict[str, dict[str, str]], tables: dict[str, str]
) -> str:
    """'Teams (T2) has no column playerID' / 'none of People has a column H', or '' when the reference
    cannot be placed (a CTE's columns, a name only the qualifier reported). `columns` and `tables` are
    the catalog keyed by lower-case names."""
    low = name.lower()
    sources = _sources(tree, tables)
    found: list[str] = []
    for column in tree.find_all(exp.Column):
        if column.name.lower() != low:
            continue
        if column.table:
            table = sources.get(column.table.lower())
            if table is not None and low not in columns.get(table, {}):
                found.append(f"{tables[table]} ({column.table}) has no column {name}")
        else:
            scope_tables = sorted({tables[t] for t in sources.values()})
            if scope_tables and not any(low in columns.get(t.lower(), {}) for t in scope_tables):
                found.append(f"none of {', '.join(scope_tables)} has a column {name}")
    return "; ".join(dict.fromkeys(found))


def replacement_tables(
    tree: exp.Expression, name: str, columns: dict[str, dict[str, str]], tables: dict[str, str]
) -> tuple[str, list[str]]:
    """(the table that lacks `name`, the tables that have every column the query reads from it
    plus `name`), e.g. ('Teams', ['Managers', 'Pitching']) for `SELECT W, L FROM Teams WHERE
    playerID = ...`: the table to read instead, not merely some table with a playerID (twenty have
    one). ('', []) when the reference cannot be placed. Catalog arguments as for `where_unknown`."""
    low = name.lower()
    sources = _sources(tree, tables)
    wrong = ""
    for column in tree.find_all(exp.Column):
        if column.name.lower() != low:
            continue
        if column.table:
            candidate = sources.get(column.table.lower(), "")
        else:
            candidate = next(iter(sources.values())) if len(set(sources.values())) == 1 else ""
        if candidate and low not in columns.get(candidate, {}):
            wrong = candidate
            break
    if not wrong:
        return "", []
    aliases = {a for a, t in sources.items() if t == wrong}
    single = len(set(sources.values())) == 1
    read = {
        c.name.lower() for c in tree.find_all(exp.Column)
        if (c.table and c.table.lower() in aliases) or (not c.table and single)
    } | {low}  # fmt: skip
    fits = sorted(tables[t] for t, cols in columns.items() if t != wrong and read <= cols.keys())
    return tables[wrong], fits


def _sources(tree: exp.Expression, tables: dict[str, str]) -> dict[str, str]:
    """Alias (or table name) -> catalog table, lower-case, for every catalog table the query reads."""
    sources: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        if table.name.lower() in tables:
            sources.setdefault(table.alias_or_name.lower(), table.name.lower())
    return sources
