"""Read identifiers the way DuckDB does (case-insensitively) on an engine that does not.

PostgreSQL folds an unquoted name to lower case and matches a quoted one exactly, so on a database
whose tables are called "People" and "Batting" the SQL every worked example, the model and the
helper queries write (`SELECT nameFirst FROM People`) would fail. Before such SQL runs, every
identifier that names a table or column of the catalog, in any case, quoted or not, is rewritten
to the catalog's spelling and quoted; an identifier the catalog does not have (an alias, a CTE) with
the same lower-case spelling as one it has is rewritten the same way, so that a query that defines
`sum(HR) AS hr` and orders by `HR` still refers to one name. Anything else is left as written.

This renames, never adds: the rewritten query reads exactly the tables and columns the original
named, so it changes no safety property (the policy has already checked the original).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp


class CatalogSpelling:
    """The catalog's spelling of every table and column name, looked up case-insensitively."""

    def __init__(self, names: Iterable[str]) -> None:
        self.exact = set(names)
        self.by_lower: dict[str, str] = {}
        for name in sorted(self.exact):  # one spelling per lower-case name, the same on every run
            self.by_lower.setdefault(name.lower(), name)

    def resolve(self, sql: str, dialect: str) -> str:
        """`sql` with catalog identifiers spelled and quoted as the catalog has them; `sql` unchanged
        when sqlglot cannot parse it (the engine's own parser then has the last word)."""
        try:
            trees = [t for t in sqlglot.parse(sql, dialect=dialect) if t is not None]
        except sqlglot.errors.SqlglotError:
            return sql
        if len(trees) != 1:
            return sql
        tree = trees[0]
        changed = False
        for node in tree.find_all(exp.Identifier):
            name = node.this
            spelling = name if name in self.exact else self.by_lower.get(name.lower())
            if spelling is None or (node.quoted and spelling == name):
                continue
            node.set("this", spelling)
            node.set("quoted", True)
            changed = True
        return tree.sql(dialect=dialect) if changed else sql
