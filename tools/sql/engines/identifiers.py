"""Read identifiers the way DuckDB does (case-insensitively) on an engine that does not.

PostgreSQL folds an unquoted name to lower case and matches a quoted one exactly, so on a database
whose tables are called "People" and "Batting" the SQL every worked example, the model and the
helper queries write (`SELECT nameFirst FROM People`) would fail. Before such SQL runs, each table
and column name is rewritten to the catalog's spelling, in any case, quoted or not, and quoted:

* a table name to the catalog table of that name;
* a column to the column of that name in the table its qualifier names (`b.yearid` on Batting is
  "yearID", while HallOfFame's is "yearid"), else in the tables the statement reads, else anywhere;
* an output alias like a column name (`sum(HR) AS hr ... ORDER BY hr`) as that column would be, so
  its definition and its uses stay one name.

Anything else (a table alias, a CTE name, an alias no column resembles) is left as written. This
renames, never adds: the rewritten query reads exactly the tables and columns the original named,
so it changes no safety property (the policy has already checked the original).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlglot
from sqlglot import exp


def _spelling(name: str, candidates: Iterable[str]) -> str | None:
    """`name` itself when a candidate is spelled so, else the first candidate equal ignoring case."""
    matches = sorted(c for c in candidates if c.lower() == name.lower())
    return name if name in matches else (matches[0] if matches else None)


def _quote(identifier: exp.Identifier | None, spelling: str | None) -> bool:
    if identifier is None or spelling is None or (identifier.quoted and identifier.this == spelling):
        return False
    identifier.set("this", spelling)
    identifier.set("quoted", True)
    return True


class CatalogSpelling:
    """The catalog's spelling of every table and of each table's columns."""

    def __init__(self, columns: Mapping[str, Iterable[str]]) -> None:
        self.columns = {table: list(cols) for table, cols in columns.items()}
        self.every_column = {c for cols in self.columns.values() for c in cols}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> CatalogSpelling:
        columns: dict[str, list[str]] = {}
        for table, column in rows:
            columns.setdefault(table, []).append(column)
        return cls(columns)

    def resolve(self, sql: str, dialect: str) -> str:
        """`sql` with catalog names spelled and quoted as the catalog has them; `sql` unchanged when
        sqlglot cannot read it as one statement (the engine's own parser then has the last word)."""
        try:
            trees = [t for t in sqlglot.parse(sql, dialect=dialect) if t is not None]
        except sqlglot.errors.SqlglotError:
            return sql
        if len(trees) != 1:
            return sql
        tree = trees[0]
        changed = False
        aliases: dict[str, str] = {}  # table alias (lower) -> catalog table
        read: list[str] = []
        for table in tree.find_all(exp.Table):
            spelling = _spelling(table.name, self.columns)
            if spelling is None or table.args.get("db"):
                continue
            changed |= _quote(table.this if isinstance(table.this, exp.Identifier) else None, spelling)
            read.append(spelling)
            aliases[(table.alias or spelling).lower()] = spelling
        in_read = [c for t in read for c in self.columns[t]]

        def column_spelling(name: str, table: str | None) -> str | None:
            if table is not None:
                return _spelling(name, self.columns[table])
            return _spelling(name, in_read) or _spelling(name, self.every_column)

        for column in tree.find_all(exp.Column):
            qualifier = column.args.get("table")
            table = aliases.get(column.table.lower()) if column.table else None
            if qualifier is not None and table is not None and column.table.lower() == table.lower():
                changed |= _quote(qualifier, table)  # `Batting.HR`, not an alias
            if isinstance(column.this, exp.Identifier):
                changed |= _quote(column.this, column_spelling(column.name, table))
        for join in tree.find_all(exp.Join):
            for key in join.args.get("using") or []:  # JOIN ... USING (playerID): names, not columns
                if isinstance(key, exp.Identifier):
                    changed |= _quote(key, column_spelling(key.this, None))
        for alias in tree.find_all(exp.Alias):
            identifier = alias.args.get("alias")
            if isinstance(identifier, exp.Identifier):
                changed |= _quote(identifier, column_spelling(identifier.this, None))
        return tree.sql(dialect=dialect) if changed else sql
