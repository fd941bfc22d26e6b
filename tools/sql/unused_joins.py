"""Joins nothing reads, dropped: `university T1 JOIN basketball_match T2 ON T1.School_ID = T2.School_ID`
when no column of T2 is used anywhere else.

A small model that is shown join paths likes to use them. Asked "List all public schools and their
locations", it joined every school to its basketball matches and listed each school once per match.
A join whose table the query never reads is at best a no-op (a lookup the foreign key guarantees)
and at worst a row multiplier and a filter nobody asked for: on 100 Spider sports questions, 11
agent queries had one, and dropping it turned 5 of them from wrong to right and none from right to
wrong (on the golden Lahman splits: 10 had one, none changed its verdict).

Dropped only when the join is a plain or INNER join on a catalog table written with ON, no column of
its alias appears outside its own ON condition (another join's condition counts as a use), the
SELECT has no `*`, and no unqualified column could be one of its columns.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError


class DroppedJoins(BaseModel):
    sql: str
    dropped: list[str] = []

    def detail(self) -> str:
        return "; ".join(f"dropped the join to {d} (none of its columns is used)" for d in self.dropped)


def drop_unused_joins(sql: str, columns: dict[str, list[str]], dialect: str = "duckdb") -> DroppedJoins:
    """`sql` without the joins nothing reads (see the module docstring). `columns` maps the catalog's
    tables to their column names."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return DroppedJoins(sql=sql)
    catalog = {t.lower(): {c.lower() for c in names} for t, names in columns.items()}
    dropped: list[str] = []
    for select in list(tree.find_all(exp.Select)):
        if any(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
            for e in select.expressions
        ):
            continue
        for join in list(select.args.get("joins") or []):
            table = join.this
            kind = (join.args.get("kind") or "").upper()
            if (
                not isinstance(table, exp.Table)
                or table.name.lower() not in catalog
                or join.args.get("side")
                or kind not in ("", "INNER")
                or join.args.get("on") is None
                or join.args.get("using")
            ):
                continue
            alias = table.alias_or_name.lower()
            own = catalog[table.name.lower()]
            used = False
            for column in select.find_all(exp.Column):
                if column.find_ancestor(exp.Join) is join:
                    continue
                if column.table.lower() == alias or (not column.table and column.name.lower() in own):
                    used = True
                    break
            if not used:
                join.pop()
                dropped.append(table.sql(dialect=dialect))
    if not dropped:
        return DroppedJoins(sql=sql)
    return DroppedJoins(sql=tree.sql(dialect=dialect), dropped=dropped)
