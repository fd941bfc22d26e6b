"""Unknown columns that have one obvious fix, fixed without asking the model again.

Shown its failed query, the 1.5B model wrote the same query back in 37 of 37 repairs on the golden
test and dev splits. Two kinds of unknown column need no model at all:

- the column is on the wrong alias: `T2.WSWin` where T2 is Managers and T1, Teams, is the one
  table of the query that has WSWin -> `T1.WSWin`;
- the column is misspelt: `T1.name_first` where People has nameFirst (the same name once case and
  underscores are ignored) -> `T1.nameFirst`;
- the alias was never defined: `p.nameFirst` in a query that joined People as p1 -> `p1.nameFirst`.

A reference is changed only when exactly one column fits, never inside a join condition (a join on
the wrong column is a wrong join), and the repair step keeps a fix only when the whole query then
passes the policy; anything else is left to the model.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError


class ColumnFix(BaseModel):
    before: str
    after: str


class FixedColumns(BaseModel):
    sql: str
    fixes: list[ColumnFix] = []

    def detail(self) -> str:
        return "; ".join(f"{f.before} -> {f.after}" for f in self.fixes)


def _squash(name: str) -> str:
    return name.lower().replace("_", "")


def fix_unknown_columns(sql: str, columns: dict[str, list[str]], dialect: str = "duckdb") -> FixedColumns:
    """`sql` with each unknown column reference re-pointed or re-spelt when exactly one column fits.
    `columns` maps each catalog table (any case) to its column names."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return FixedColumns(sql=sql)
    catalog = {t.lower(): names for t, names in columns.items()}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    sources: dict[str, list[str]] = {}  # alias (or table name) -> its columns
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name in catalog and name not in ctes:
            sources.setdefault(table.alias_or_name.lower(), catalog[name])
    if not sources:
        return FixedColumns(sql=sql)
    output_aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    derived = ctes | {s.alias_or_name.lower() for s in tree.find_all(exp.Subquery) if s.alias_or_name}
    fixes: list[ColumnFix] = []
    for column in tree.find_all(exp.Column):
        name, qualifier = column.name, column.table.lower()
        if not name or qualifier in derived:
            continue  # a CTE's or a subquery's column: its names are not in the catalog
        if column.find_ancestor(exp.Join) is not None:
            continue  # a join condition on the wrong column is a wrong join, not a typo
        if not qualifier and name.lower() in output_aliases:
            continue  # ORDER BY hits, where hits is a select alias
        # An alias the query never defined (p for People joined as p1) is looked for everywhere.
        undefined = bool(qualifier) and qualifier not in sources
        scope = {qualifier: sources[qualifier]} if qualifier in sources else sources
        if not undefined and any(name.lower() == c.lower() for names in scope.values() for c in names):
            continue
        before = column.sql(dialect=dialect)
        owners = [a for a, names in sources.items() if any(name.lower() == c.lower() for c in names)]
        if qualifier and len(owners) == 1:
            column.set("table", exp.to_identifier(_as_written(tree, owners[0])))
        else:
            respelt = {c for names in scope.values() for c in names if _squash(c) == _squash(name)}
            if len(respelt) != 1:
                continue
            column.set("this", exp.to_identifier(respelt.pop()))
        fixes.append(ColumnFix(before=before, after=column.sql(dialect=dialect)))
    if not fixes:
        return FixedColumns(sql=sql)
    return FixedColumns(sql=tree.sql(dialect=dialect), fixes=fixes)


def _as_written(tree: exp.Expression, alias: str) -> str:
    """The alias as the query spells it (T1, not t1)."""
    for table in tree.find_all(exp.Table):
        if table.alias_or_name.lower() == alias:
            return table.alias_or_name
    return alias
