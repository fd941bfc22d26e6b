"""What the agent knows about a database: tables, columns, comments, sample values and join paths.

Each engine (tools/sql/engines/) reads its own catalog (tables, column types, comments, declared
keys); the parts below are shared by all of them, written in SQL every engine runs. The result is
cached as JSON (tools/sql/schema_cache.py) keyed by the engine's fingerprint (a DuckDB file's path, size and mtime), so the agent
can be pointed at a database it has never seen (`--db`) and pay for introspection once.

Column types use DuckDB's names (VARCHAR, INTEGER, DOUBLE, DATE...) on every engine: an engine
translates its own (PostgreSQL's `character varying`) so the code that reads types sees one vocabulary.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

CACHE_VERSION = 6  # bump when the schema or value-index format changes
SAMPLE_VALUES = 3
# Column names that look like keys. Shared key columns are join candidates when the database
# declares no foreign keys (Lahman and most analytics databases do not).
_KEY_NAME = re.compile(r"(id|key|code)$", re.IGNORECASE)
# Shared alone, these are coincidences (every table has a year), not join paths.
_GENERIC_KEYS = {"yearid", "year", "lgid", "id", "stint"}


class ColumnInfo(BaseModel):
    name: str
    type: str
    comment: str = ""
    samples: list[str] = Field(default_factory=list)


class TableInfo(BaseModel):
    name: str
    comment: str = ""
    row_count: int = 0
    columns: list[ColumnInfo]

    def column(self, name: str) -> ColumnInfo | None:
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


class JoinEdge(BaseModel):
    """Two tables joined on one or more column pairs (left.col = right.col)."""

    left: str
    right: str
    on: list[tuple[str, str]]
    declared: bool = False

    def sql(self) -> str:
        return " AND ".join(f"{self.left}.{_q(a)} = {self.right}.{_q(b)}" for a, b in self.on)


class DatabaseSchema(BaseModel):
    path: str
    fingerprint: str
    tables: list[TableInfo]
    joins: list[JoinEdge] = Field(default_factory=list)

    def table(self, name: str) -> TableInfo | None:
        lowered = name.lower()
        return next((t for t in self.tables if t.name.lower() == lowered), None)

    def table_columns(self) -> dict[str, list[str]]:
        return {t.name: [c.name for c in t.columns] for t in self.tables}

    def joins_between(self, names: set[str]) -> list[JoinEdge]:
        lowered = {n.lower() for n in names}
        return [j for j in self.joins if j.left.lower() in lowered and j.right.lower() in lowered]


def _q(identifier: str) -> str:
    """Quote identifiers that DuckDB would not accept bare (Lahman's "2B" and "3B")."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", identifier):
        return identifier
    return '"' + identifier.replace('"', '""') + '"'


quote_identifier = _q


def file_fingerprint(path: Path) -> str:
    stat = path.stat()
    raw = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v{CACHE_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


Query = Callable[[str], list[tuple]]  # rows of one SQL query the project wrote (an engine's `read_all`)


def add_samples(query: Query, source: str, columns: list[ColumnInfo]) -> None:
    """A few frequent values per text column: they show the model what codes look like. `source` is
    what to read them from: the quoted table, or a sample of it on a big server table."""
    for column in columns:
        if column.type != "VARCHAR":
            continue
        rows = query(
            f"SELECT {_q(column.name)} AS v, count(*) AS n FROM {source} WHERE {_q(column.name)} IS NOT NULL "
            f"AND length({_q(column.name)}) <= 40 GROUP BY 1 ORDER BY n DESC, v LIMIT {SAMPLE_VALUES}"
        )
        column.samples = [str(v) for v, _ in rows]


def inferred_joins(query: Query, tables: list[TableInfo]) -> list[JoinEdge]:
    """Lookup joins: tables sharing key-like columns where those columns identify a row on one side.

    Batting-People on playerID and Batting-Teams on (teamID, yearID, lgID) are kept; Batting-Pitching
    share the same names but neither side is unique on them, so that pair is not a join path.
    """
    unique_cache: dict[tuple[str, tuple[str, ...]], bool] = {}

    def unique(table: str, cols: tuple[str, ...]) -> bool:
        key = (table, cols)
        if key not in unique_cache:
            tup = ", ".join(_q(c) for c in cols)
            total, distinct = query(f"SELECT count(*), count(DISTINCT ({tup})) FROM {_q(table)}")[0]
            unique_cache[key] = total > 0 and total == distinct
        return unique_cache[key]

    edges = []
    for i, left in enumerate(tables):
        left_keys = {c.name.lower(): c.name for c in left.columns if _KEY_NAME.search(c.name)}
        for right in tables[i + 1 :]:
            shared = sorted(
                (left_keys[c.name.lower()], c.name) for c in right.columns if c.name.lower() in left_keys
            )
            if not shared or all(a.lower() in _GENERIC_KEYS for a, _ in shared):
                continue
            if unique(left.name, tuple(a for a, _ in shared)) or unique(
                right.name, tuple(b for _, b in shared)
            ):
                edges.append(JoinEdge(left=left.name, right=right.name, on=shared))
    return edges


def named_references(query: Query, tables: list[TableInfo]) -> list[JoinEdge]:
    """Columns named after another table point at its id: record.Swimmer_ID -> swimmer.ID,
    game.stadium_id -> stadium.id (the usual convention when no foreign key is declared)."""
    by_name = {t.name.lower(): t for t in tables}
    edges = []
    for table in tables:
        for column in table.columns:
            match = re.fullmatch(r"(.+?)_?id", column.name, re.IGNORECASE)
            stem = match.group(1).lower() if match else column.name.lower()  # also `Team` -> team.Team_id
            if not match and stem not in by_name:
                continue
            target = by_name.get(stem) or by_name.get(stem + "s") or by_name.get(stem.rstrip("s"))
            if target is None or target is table:
                continue
            key = next(
                (c for c in target.columns if c.name.lower() in {"id", f"{stem}_id", f"{stem}id"}), None
            )
            if key is None or key is column or key.type != column.type:
                continue
            total, distinct = query(
                f"SELECT count(*), count(DISTINCT {_q(key.name)}) FROM {_q(target.name)}"
            )[0]
            if total and total == distinct:
                edges.append(JoinEdge(left=table.name, right=target.name, on=[(column.name, key.name)]))
    return edges


def merge_joins(declared: list[JoinEdge], inferred: list[JoinEdge]) -> list[JoinEdge]:
    seen = {frozenset((j.left.lower(), j.right.lower())) for j in declared}
    return declared + [j for j in inferred if frozenset((j.left.lower(), j.right.lower())) not in seen]
