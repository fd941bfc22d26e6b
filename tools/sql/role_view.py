"""A role's view of the database: the schema without the tables and columns the role may not read.

The policy (tools/sql/policy.py) refuses a query that reads a hidden column; the view keeps hidden
parts from being shown at all. `Database` builds it once, when it is opened with a role, and every
step reads `Database.schema`, which is the view: the prompt's schema text and sample values, the
join paths, the value index (built from the view and cached under the view's own fingerprint, so a
role is never served the full index nor the full role a narrowed one), the worked examples, the
repair hints. Without it, the public role saw the Salaries table in the prompt and had "Santo
Domingo" resolved to People.birthCity.

A role that hides nothing (the default, analyst) gets the introspected schema itself, unchanged:
its prompts, and with them the prompt cache and the accepted eval baseline, stay byte-identical.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from tools.sql.introspect import ColumnInfo, DatabaseSchema, TableInfo
from tools.sql.policy import AccessRole
from tools.sql.read_tables import base_tables

# Sentence ends of a description, not the dot of "e.g." (the same rule as the prompt's `brief`).
_SENTENCE_END = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<!\bvs\.)(?<=[.;])\s+")


class HiddenParts(BaseModel):
    """What a role may not read, as it exists in this database (lower-case names)."""

    tables: frozenset[str] = frozenset()
    columns: dict[str, frozenset[str]] = {}  # visible table -> its hidden columns

    @property
    def empty(self) -> bool:
        return not self.tables and not self.columns

    def names(self) -> set[str]:
        """Every hidden table and column name: words a description must not say."""
        return set(self.tables) | {c for cols in self.columns.values() for c in cols}

    def digest(self) -> str:
        """Identifies what is hidden (not the role's name): two roles hiding the same share a value index."""
        parts = sorted(self.tables) + sorted(f"{t}.{c}" for t, cols in self.columns.items() for c in cols)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8]


def hidden_parts(schema: DatabaseSchema, role: AccessRole) -> HiddenParts:
    """The role's rules applied to this database, matched case-insensitively like the policy's:
    tables outside `allowed_tables` or in `denied_tables`, and `denied_columns` (the "*" entry for
    every table). Names the database does not have are ignored."""
    allowed = None if role.allowed_tables is None else {t.lower() for t in role.allowed_tables}
    denied_tables = {t.lower() for t in role.denied_tables}
    denied_columns: dict[str, set[str]] = {}
    for table, cols in role.denied_columns.items():
        denied_columns.setdefault(table.lower(), set()).update(c.lower() for c in cols)
    everywhere = denied_columns.get("*", set())
    tables: set[str] = set()
    columns: dict[str, frozenset[str]] = {}
    for table in schema.tables:
        name = table.name.lower()
        if name in denied_tables or (allowed is not None and name not in allowed):
            tables.add(name)
            continue
        hidden = (everywhere | denied_columns.get(name, set())) & {c.name.lower() for c in table.columns}
        if hidden:
            columns[name] = frozenset(hidden)
    return HiddenParts(tables=frozenset(tables), columns=columns)


def redact(text: str, names: set[str]) -> str:
    """`text` without the sentences that name a hidden table or column: People's description says
    "nameGiven holds the given names ('George Herman')", which the public role must not read."""
    if not text or not names:
        return text
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names)) + r")\b", re.IGNORECASE)
    if not pattern.search(text):
        return text
    kept = " ".join(s for s in _SENTENCE_END.split(text) if not pattern.search(s)).strip()
    return kept[:-1] + "." if kept.endswith(";") else kept


def role_schema(schema: DatabaseSchema, hidden: HiddenParts) -> DatabaseSchema:
    """The schema the role sees: hidden tables, hidden columns (with their sample values), joins that
    touch either, and description sentences naming them, removed. The schema itself when nothing is
    hidden. Its fingerprint names the view, so caches keyed by it (the value index) are per view."""
    if hidden.empty:
        return schema
    names = hidden.names()
    tables = []
    for table in schema.tables:
        low = table.name.lower()
        if low in hidden.tables:
            continue
        gone = hidden.columns.get(low, frozenset())
        columns = [
            ColumnInfo(name=c.name, type=c.type, comment=redact(c.comment, names), samples=list(c.samples))
            for c in table.columns if c.name.lower() not in gone
        ]  # fmt: skip
        tables.append(
            TableInfo(
                name=table.name,
                comment=redact(table.comment, names),
                row_count=table.row_count,
                columns=columns,
            )
        )
    visible = {t.name.lower(): {c.name.lower() for c in t.columns} for t in tables}
    joins = [
        j for j in schema.joins
        if j.left.lower() in visible and j.right.lower() in visible
        and all(a.lower() in visible[j.left.lower()] and b.lower() in visible[j.right.lower()] for a, b in j.on)
    ]  # fmt: skip
    return DatabaseSchema(
        path=schema.path,
        fingerprint=f"{schema.fingerprint}-{hidden.digest()}",
        tables=tables,
        joins=[j.model_copy() for j in joins],
    )


def reads_hidden(sql: str, hidden: HiddenParts, dialect: str = "duckdb") -> bool:
    """Whether a worked example's SQL would show the role something hidden: it reads a hidden table,
    names a hidden column of a table it reads (anywhere: select list, filter, alias) or selects `*`
    from such a table. Unparsable SQL counts as hidden: it cannot be checked."""
    if hidden.empty:
        return False
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return True
    read = set(base_tables(tree))
    if read & hidden.tables:
        return True
    columns = {c for t in read for c in hidden.columns.get(t, frozenset())}
    if not columns:
        return False
    if any(i.name.lower() in columns for i in tree.find_all(exp.Identifier)):
        return True
    return any(not isinstance(s.parent, exp.Count) for s in tree.find_all(exp.Star))
