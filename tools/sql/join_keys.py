"""Joins on part of a key, completed: `Teams T1 JOIN SeriesPost T2 ON T1.teamID = T2.teamIDwinner`.

A team id names a franchise's team in every season it played, so joining on it alone pairs the
2016 World Series with every Chicago team-season since 1876: the small model's answer to "Who won
the 2016 World Series?" was "Chicago White Stockings". A join condition that leaves one side's key
incomplete is completed with the missing key column both tables have:

- the join equates columns of two catalog tables (L.a = R.b, ...);
- one side is not unique on the columns it is joined on, but is unique once a key column that both
  tables have (yearID) is added;
- the condition does not mention that column yet.

Key columns are those the schema's join paths use, so Teams and Managers are never joined on W.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from tools.sql.grounding import conjuncts


class CompletedJoins(BaseModel):
    sql: str
    added: list[str] = []

    def detail(self) -> str:
        return "; ".join(f"joined also on {a} (the rest of the key)" for a in self.added)


def complete_join_keys(
    sql: str,
    columns: dict[str, list[str]],
    key_columns: set[str],
    unique_on: Callable[[str, tuple[str, ...]], bool],
    dialect: str = "duckdb",
) -> CompletedJoins:
    """`sql` with each join on part of a key completed (see the module docstring). `columns` maps the
    catalog's tables to their columns, `key_columns` are the (lower-case) columns of its join paths,
    `unique_on(table, cols)` says whether those columns identify a row."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return CompletedJoins(sql=sql)
    catalog = {t.lower(): (t, names) for t, names in columns.items()}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    added: list[str] = []
    for select in tree.find_all(exp.Select):
        aliases: dict[str, tuple[str, list[str]]] = {}
        written: dict[str, str] = {}  # alias as the query spells it (T1, not t1)
        sources = [select.args.get("from_") or select.args.get("from")] + list(select.args.get("joins") or [])
        for source in sources:
            table = source.this if source is not None else None
            if (
                isinstance(table, exp.Table)
                and table.name.lower() in catalog
                and table.name.lower() not in ctes
            ):
                aliases[table.alias_or_name.lower()] = catalog[table.name.lower()]
                written[table.alias_or_name.lower()] = table.alias_or_name
        for join in select.args.get("joins") or []:
            on = join.args.get("on")
            pairs: dict[tuple[str, str], list[tuple[str, str]]] = {}
            for condition in conjuncts(on):
                if not isinstance(condition, exp.EQ):
                    continue
                left, right = condition.left, condition.right
                if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
                    continue
                a, b = left.table.lower(), right.table.lower()
                if a in aliases and b in aliases and a != b:
                    key = (a, b) if a < b else (b, a)
                    cols = (left.name, right.name) if a < b else (right.name, left.name)
                    pairs.setdefault(key, []).append(cols)
            for (a, b), joined in pairs.items():
                extra = _missing_key(aliases[a], aliases[b], joined, key_columns, unique_on)
                if extra is None:
                    continue
                condition = exp.EQ(
                    this=exp.column(extra[0], table=written[a]),
                    expression=exp.column(extra[1], table=written[b]),
                )
                join.set("on", exp.and_(on, condition))
                on = join.args["on"]
                added.append(condition.sql(dialect=dialect))
    if not added:
        return CompletedJoins(sql=sql)
    return CompletedJoins(sql=tree.sql(dialect=dialect), added=added)


def _missing_key(
    a: tuple[str, list[str]],
    b: tuple[str, list[str]],
    joined: list[tuple[str, str]],
    key_columns: set[str],
    unique_on: Callable[[str, tuple[str, ...]], bool],
) -> tuple[str, str] | None:
    """(column of a, column of b) that completes the key of one side, or None."""
    (a_table, a_cols), (b_table, b_cols) = a, b
    a_by_name, b_by_name = {c.lower(): c for c in a_cols}, {c.lower(): c for c in b_cols}
    if not all(x.lower() in a_by_name and y.lower() in b_by_name for x, y in joined):
        return None  # an unknown column: the policy's error, not a key to complete
    used = {c.lower() for pair in joined for c in pair}
    shared = [
        (c, b_by_name[c.lower()])
        for c in a_cols
        if c.lower() in b_by_name and c.lower() in key_columns and c.lower() not in used
    ]
    for table, side, by_name in ((a_table, 0, a_by_name), (b_table, 1, b_by_name)):
        on = tuple(by_name[pair[side].lower()] for pair in joined)
        if unique_on(table, on):
            continue
        for pair in shared:
            if unique_on(table, (*on, pair[side])):
                return pair
    return None
