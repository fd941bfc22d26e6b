"""Unknown columns that have one obvious fix, fixed without asking the model again.

Shown its failed query, the 1.5B model wrote the same query back in 37 of 37 repairs on the golden
test and dev splits. These unknown columns need no model at all:

- the column is on the wrong alias: `T2.WSWin` where T2 is Managers and T1, Teams, is the one
  table of the query that has WSWin -> `T1.WSWin`;
- the column is misspelt: `T1.name_first` where People has nameFirst (the same name once case and
  underscores are ignored) -> `T1.nameFirst`;
- the alias was never defined: `p.nameFirst` in a query that joined People as p1 -> `p1.nameFirst`;
- the column lives in the one lookup table joined to the alias's table by a join path:
  `m.nameFirst` on Managers -> `JOIN People AS p ON m.playerID = p.playerID` and `p.nameFirst`.

A reference is changed only when exactly one column fits, never inside a join condition (a join on
the wrong column is a wrong join), and the repair step keeps a fix only when the whole query then
passes the policy; anything else is left to the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from tools.sql.introspect import JoinEdge


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


def fix_unknown_columns(
    sql: str,
    columns: dict[str, list[str]],
    dialect: str = "duckdb",
    joins: Sequence[JoinEdge] = (),
    unique_on: Callable[[str, tuple[str, ...]], bool] | None = None,
) -> FixedColumns:
    """`sql` with each unknown column reference re-pointed or re-spelt when exactly one column fits,
    or read from the one lookup table that has it (`joins`: the schema's join paths; `unique_on`
    says which side of one is the lookup). `columns` maps each catalog table to its column names."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return FixedColumns(sql=sql)
    catalog = {t.lower(): names for t, names in columns.items()}
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    sources: dict[str, list[str]] = {}  # alias (or table name) -> its columns
    alias_tables: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if name in catalog and name not in ctes:
            sources.setdefault(table.alias_or_name.lower(), catalog[name])
            alias_tables.setdefault(table.alias_or_name.lower(), name)
    added: dict[tuple[str, str], str] = {}  # (alias, lookup table) -> the alias of the join added for it
    if not sources:
        return FixedColumns(sql=sql)
    output_aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    derived = ctes | {s.alias_or_name.lower() for s in tree.find_all(exp.Subquery) if s.alias_or_name}
    fixes: list[ColumnFix] = []
    for column in list(tree.find_all(exp.Column)):  # a list: a lookup join adds nodes on the way
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
            if len(respelt) == 1:
                column.set("this", exp.to_identifier(respelt.pop()))
            elif owners or unique_on is None or (undefined and len(set(alias_tables.values())) != 1):
                continue
            else:
                # p.nameFirst with no p in the query (FROM AwardsPlayers a1, alone or joined to
                # itself): the lookup table joined as p to the one table there is.
                anchor = next(iter(sources)) if undefined or not qualifier else qualifier
                if len(sources) != 1 and not qualifier:
                    anchor = ""
                if not _join_lookup(
                    tree,
                    column,
                    anchor,
                    alias_tables,
                    catalog,
                    joins,
                    unique_on,
                    added,
                    qualifier if undefined else None,
                ):
                    continue
        after = column.sql(dialect=dialect)
        if after == before:  # the undefined alias now names a joined lookup table: say which
            proper = {t.lower(): t for t in columns}
            after += next(
                (
                    f" (joined {proper.get(t, t)} AS {a})"
                    for (_, t), a in added.items()
                    if a == column.table.lower()
                ),
                "",
            )
        fixes.append(ColumnFix(before=before, after=after))
    if not fixes:
        return FixedColumns(sql=sql)
    return FixedColumns(sql=tree.sql(dialect=dialect), fixes=fixes)


def _join_lookup(
    tree: exp.Expression,
    column: exp.Column,
    alias: str,
    alias_tables: dict[str, str],
    catalog: dict[str, list[str]],
    joins: Sequence[JoinEdge],
    unique_on: Callable[[str, tuple[str, ...]], bool],
    added: dict[tuple[str, str], str],
    new_alias: str | None = None,
) -> bool:
    """Re-point `column` to the one lookup table that has it, joined to `alias` by a join path:
    `m.nameFirst` on Managers -> `JOIN People AS p ON m.playerID = p.playerID` and `p.nameFirst`.
    A lookup is the side of a join path that its join columns identify (People for playerID)."""
    table = alias_tables.get(alias)
    select = column.find_ancestor(exp.Select)
    if table is None or select is None:
        return False
    name = column.name.lower()
    fits = []
    for j in joins:
        if j.left.lower() == table and j.right.lower() != table:
            other, on = j.right, list(j.on)
        elif j.right.lower() == table and j.left.lower() != table:
            other, on = j.left, [(r, lft) for lft, r in j.on]
        else:
            continue
        if any(c.lower() == name for c in catalog.get(other.lower(), [])) and unique_on(
            other, tuple(b for _, b in on)
        ):
            fits.append((other, on))
    if len(fits) != 1:
        return False
    lookup, on = fits[0]
    key = (alias, lookup.lower())
    if key not in added:
        taken = set(alias_tables) | set(added.values())
        new = next(
            c
            for c in (new_alias, lookup[0].lower(), lookup[:2].lower(), f"{lookup.lower()}_1")
            if c and c not in taken
        )
        condition = exp.and_(
            *(
                exp.EQ(
                    this=exp.column(a, table=_as_written(tree, alias)), expression=exp.column(b, table=new)
                )
                for a, b in on
            )
        )
        select.join(exp.alias_(exp.to_table(lookup), new, table=True), on=condition, copy=False)
        added[key] = new
    column.set("this", exp.to_identifier(next(c for c in catalog[lookup.lower()] if c.lower() == name)))
    column.set("table", exp.to_identifier(added[key]))
    group = select.args.get("group")
    keys = {(alias, a.lower()) for a, _ in on}
    grouped = {
        (c.table.lower(), c.name.lower())
        for c in (group.expressions if group else [])
        if isinstance(c, exp.Column)
    }
    outside_aggregates = column.find_ancestor(exp.AggFunc) is None and column.find_ancestor(exp.Group) is None
    if (
        group
        and keys <= grouped
        and outside_aggregates
        and (column.table.lower(), column.name.lower()) not in grouped
    ):
        # Grouped by the key the lookup is joined on: its columns are one value per group (DuckDB
        # still wants them listed).
        group.append("expressions", column.copy())
    return True


def _as_written(tree: exp.Expression, alias: str) -> str:
    """The alias as the query spells it (T1, not t1)."""
    for table in tree.find_all(exp.Table):
        if table.alias_or_name.lower() == alias:
            return table.alias_or_name
    return alias
