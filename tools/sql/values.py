"""The value index: every short text value of a database, searchable exactly, by word and fuzzily.

Entity resolution needs to know that "Yankees" is a value of Teams.name ("New York Yankees",
teamID 'NYA', 1913-2024) and that "Micky Mantle" is close to People "Mickey Mantle" (playerID
'mantlmi01'). The index is built once per database with plain SQL and cached as a DuckDB file (a
server engine's distinct values are copied out once into the same kind of file); look-ups use
DuckDB's built-in `jaro_winkler_similarity` and `levenshtein`, so no extension and no
network is needed.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import sqlglot
from pydantic import BaseModel

from tools.sql.introspect import DatabaseSchema, Query, TableInfo, quote_identifier

if TYPE_CHECKING:
    from tools.sql.engines.base import Engine

MAX_DISTINCT = 60_000  # larger text columns are free text or ids, not names people type
MAX_VALUE_CHARS = 80
# Free-text columns hold prose ("Week of 1990-09-01"), not names anyone refers to.
_FREE_TEXT = re.compile(r"note|comment|desc|remark|text", re.IGNORECASE)
_KEY_LIKE = re.compile(r"(id|key|code)$", re.IGNORECASE)
_NAME_LIKE = re.compile(r"name|nick|alias|title|\+", re.IGNORECASE)
_GENERIC = {"yearid", "lgid", "id", "stint", "divid"}
_FIRST = re.compile(r"^(name_?first|first_?name|fname|given_?name|nickname)$", re.IGNORECASE)
_GIVEN = re.compile(r"^(name_?given|full_?given_?name)$", re.IGNORECASE)
_LAST = re.compile(r"^(name_?last|last_?name|lname|surname|family_?name)$", re.IGNORECASE)


class ValueCandidate(BaseModel):
    """One database value a mention may refer to."""

    table: str
    column: str  # the column (or "nameFirst+nameLast") the text was found in
    value: str  # the text as stored
    key_column: str  # the identifier column to filter on in SQL
    key_value: str
    year_min: int | None = None
    year_max: int | None = None
    rows: int = 0
    score: float
    method: str  # exact | exact-ci | word | fuzzy

    def label(self) -> str:
        years = ""
        if self.year_min is not None:
            end = "" if self.year_max is None else str(self.year_max)
            years = f", {self.year_min}" + (f"-{end}" if self.year_max != self.year_min else "")
        return f"{self.value} ({self.table}.{self.key_column} = '{self.key_value}'{years})"


def _key_column(table: TableInfo, value_column: str) -> str:
    """The identifier a value stands for: Teams.name -> teamID, People.nameLast -> playerID."""
    stem = table.name.lower().rstrip("s")
    keys = [
        c.name
        for c in table.columns
        if _KEY_LIKE.search(c.name) and c.name.lower() not in _GENERIC and c.type == "VARCHAR"
    ]
    for key in keys:
        key_stem = _KEY_LIKE.sub("", key).lower()
        if key_stem and stem.startswith(key_stem):
            return key
    return keys[0] if keys else value_column


def _year_exprs(table: TableInfo) -> tuple[str, str] | None:
    names = {c.name.lower(): c for c in table.columns}
    for candidate in ("yearid", "year", "season"):
        if candidate in names and names[candidate].type in {"BIGINT", "INTEGER", "SMALLINT"}:
            col = quote_identifier(names[candidate].name)
            return f"min({col})", f"max({col})"
    dated = [c for c in table.columns if c.type.startswith(("DATE", "TIMESTAMP"))]
    dated = [c for c in dated if not re.search(r"birth|death", c.name, re.IGNORECASE)]
    if len(dated) >= 2:
        return (
            f"min(year({quote_identifier(dated[0].name)}))",
            f"max(year({quote_identifier(dated[-1].name)}))",
        )
    return None


def _sources(query: Query, schema: DatabaseSchema, prefix: str = "") -> list[tuple[TableInfo, str, str]]:
    """(table, label, SQL expression) for every indexable text column and full-name composite."""
    out = []
    for table in schema.tables:
        text_cols = [c for c in table.columns if c.type == "VARCHAR"]
        for col in text_cols:
            if _FREE_TEXT.search(col.name):
                continue
            q = quote_identifier(col.name)
            distinct, longest = query(
                f"SELECT count(DISTINCT {q}), max(length({q})) FROM {prefix}{quote_identifier(table.name)}"
            )[0]
            if distinct and distinct <= MAX_DISTINCT and (longest or 0) <= MAX_VALUE_CHARS:
                out.append((table, col.name, q))
        firsts = [c.name for c in text_cols if _FIRST.match(c.name) or _GIVEN.match(c.name)]
        lasts = [c.name for c in text_cols if _LAST.match(c.name)]
        for first in firsts:
            for last in lasts:
                expr = f"{quote_identifier(first)} || ' ' || {quote_identifier(last)}"
                out.append((table, f"{first}+{last}", expr))
    return out


# One normalisation, in SQL, used for the index and for every mention (no Python/SQL drift).
NORMALISE_SQL = (
    "trim(regexp_replace(regexp_replace(lower(strip_accents({x})), '[.''`’]', '', 'g'), "
    "'[^0-9a-z]+', ' ', 'g'))"
)


def _index_entry(table: TableInfo, label: str, expr: str) -> tuple[str, str, tuple[str, str], bool]:
    """(key column, its SQL, the year range's SQL, is a code) of one indexed text column."""
    is_code = bool(_KEY_LIKE.search(label)) and "+" not in label
    # A name stands for its row's id (Teams.name -> teamID); a code (teamID in Batting) or an
    # attribute (People.birthCity, Teams.park) stands for itself: "Boston" is not a player.
    key = _key_column(table, label) if _NAME_LIKE.search(label) and not is_code else label
    key_expr = quote_identifier(key) if "+" not in key else expr
    years = _year_exprs(table) or ("NULL", "NULL")
    return key, key_expr, years, is_code


_CREATE_INDEX = (
    "CREATE TABLE value_index (tbl VARCHAR, col VARCHAR, value VARCHAR, norm VARCHAR, key_col VARCHAR, "
    "key_value VARCHAR, year_min INTEGER, year_max INTEGER, n INTEGER, is_code BOOLEAN)"
)


def build_index(db_path: Path, schema: DatabaseSchema, index_path: Path) -> None:
    """Write the value index for one DuckDB database into its own DuckDB file (atomically, set-based:
    the database is attached read-only and the values never leave DuckDB)."""
    tmp = index_path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    out = duckdb.connect(str(tmp))
    try:
        out.execute(f"ATTACH '{db_path}' AS src (READ_ONLY)")
        out.execute(_CREATE_INDEX)
        for table, label, expr in _sources(lambda sql: out.execute(sql).fetchall(), schema, prefix="src."):
            key, key_expr, (ymin, ymax), is_code = _index_entry(table, label, expr)
            out.execute(
                f"INSERT INTO value_index SELECT ?, ?, v, {NORMALISE_SQL.format(x='v')}, ?, k, ymin, ymax, n, ? "
                f"FROM (SELECT {expr} AS v, CAST({key_expr} AS VARCHAR) AS k, {ymin} AS ymin, {ymax} AS ymax, "
                f"count(*) AS n FROM src.{quote_identifier(table.name)} WHERE {expr} IS NOT NULL GROUP BY 1, 2)",
                [table.name, label, key, is_code],
            )
        out.execute("CREATE TABLE meta AS SELECT ? AS fingerprint", [schema.fingerprint])
        out.execute("DETACH src")
    finally:
        out.close()
    tmp.replace(index_path)


_COPIED = pa.schema(
    [("v", pa.string()), ("k", pa.string()), ("ymin", pa.int64()), ("ymax", pa.int64()), ("n", pa.int64())]
)


def copy_index(engine: Engine, schema: DatabaseSchema, index_path: Path) -> None:
    """Write the value index of a database on another engine (a server): the same grouped values are
    read out once through the engine (one query per column, in its dialect) and normalised here."""
    tmp = index_path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    out = duckdb.connect(str(tmp))
    try:
        out.execute(_CREATE_INDEX)

        def query(sql: str) -> list[tuple]:  # _sources writes DuckDB's SQL ("2B"): Spark quotes `2B`
            return engine.read_all(sqlglot.transpile(sql, read="duckdb", write=engine.dialect)[0])

        for table, label, expr in _sources(query, schema):
            key, key_expr, (ymin, ymax), is_code = _index_entry(table, label, expr)
            select = (
                f"SELECT {expr} AS v, CAST({key_expr} AS VARCHAR) AS k, CAST({ymin} AS INTEGER) AS ymin, "
                f"CAST({ymax} AS INTEGER) AS ymax, count(*) AS n FROM {quote_identifier(table.name)} "
                f"WHERE {expr} IS NOT NULL GROUP BY 1, 2"
            )
            for batch in engine.read(sqlglot.transpile(select, read="duckdb", write=engine.dialect)[0]):
                columns = list(zip(*batch, strict=True))
                copied = pa.Table.from_arrays(
                    [pa.array(c, type=f.type) for c, f in zip(columns, _COPIED, strict=True)], schema=_COPIED
                )
                out.register("copied", copied)
                out.execute(
                    f"INSERT INTO value_index SELECT ?, ?, v, {NORMALISE_SQL.format(x='v')}, ?, k, ymin, ymax, n, ? "
                    "FROM copied",
                    [table.name, label, key, is_code],
                )
                out.unregister("copied")
        out.execute("CREATE TABLE meta AS SELECT ? AS fingerprint", [schema.fingerprint])
    finally:
        out.close()
    tmp.replace(index_path)


class ValueIndex:
    """Look-ups over the cached index. Thread-safe: one connection, one lock."""

    def __init__(self, index_path: Path):
        self._con = duckdb.connect(str(index_path), read_only=True)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, engine: Engine, schema: DatabaseSchema, cache_dir: Path) -> ValueIndex:
        cache_dir.mkdir(parents=True, exist_ok=True)
        index_path = cache_dir / f"{engine.name}-{schema.fingerprint}.values.duckdb"
        if not index_path.exists():
            source = engine.attachable_file()
            if source is not None:
                build_index(source, schema, index_path)
            else:
                copy_index(engine, schema, index_path)
        return cls(index_path)

    def close(self) -> None:
        self._con.close()

    def search(self, mention: str, *, limit: int = 10, min_score: float = 0.8) -> list[ValueCandidate]:
        """Candidates for one mention, best first.

        exact: same text; exact-ci: same after normalising case, accents and punctuation;
        word: the mention is a whole-word part of a longer name ("Yankees" in "New York Yankees");
        fuzzy: Jaro-Winkler similarity on names of 4+ characters ("Micky Mantle" ~ "Mickey Mantle").
        Codes (teamID 'NYA') only match exactly: a typo in a code is not evidence.
        """
        with self._lock:
            norm = self._con.execute(f"SELECT {NORMALISE_SQL.format(x='$m')}", {"m": mention}).fetchone()[0]
        if len(norm) < 2:
            return []
        sql = """
            WITH scored AS (
              SELECT *, CASE
                  WHEN value = $raw THEN 1.0
                  WHEN norm = $norm THEN 0.99
                  WHEN NOT is_code AND length($norm) >= 4 AND (' ' || norm || ' ') LIKE ('% ' || $norm || ' %')
                       THEN 0.9 + 0.08 * length($norm) / length(norm)
                  WHEN NOT is_code AND length($norm) >= 4 AND length(norm) >= 4
                       THEN jaro_winkler_similarity(norm, $norm)
                            - CASE WHEN levenshtein(norm, $norm) > greatest(2, length($norm) // 4) THEN 0.1 ELSE 0 END
                  ELSE 0 END AS score
              FROM value_index
              WHERE norm = $norm OR value = $raw OR (NOT is_code AND (
                    (' ' || norm || ' ') LIKE ('% ' || $norm || ' %')
                    OR (abs(length(norm) - length($norm)) <= 3 AND jaro_winkler_similarity(norm, $norm) >= $min)))
            )
            SELECT tbl, col, value, key_col, key_value, year_min, year_max, n,
                   -- Given names ("Nolan Ryan" Schanz) are weaker evidence than the name people use.
                   score - CASE WHEN col ILIKE '%given%' THEN 0.03
                                -- A lone surname or first name is weaker than a full name or a title
                                WHEN regexp_matches(col, '^(name_?first|first_?name|fname|name_?last|last_?name|lname|surname)$', 'i')
                                THEN 0.08 ELSE 0 END AS score,
                   CASE WHEN value = $raw THEN 'exact' WHEN norm = $norm THEN 'exact-ci'
                        WHEN (' ' || norm || ' ') LIKE ('% ' || $norm || ' %') THEN 'word' ELSE 'fuzzy' END
            FROM scored WHERE score >= $min
            ORDER BY 9 DESC, n DESC, tbl, col, key_value LIMIT $limit
        """
        with self._lock:
            rows = self._con.execute(
                sql, {"raw": mention, "norm": norm, "min": min_score, "limit": limit * 5}
            ).fetchall()
        seen: set[tuple[str, str, str, str]] = set()
        out: list[ValueCandidate] = []
        for tbl, col, value, key_col, key_value, ymin, ymax, n, score, method in rows:
            ident = (tbl, col, key_col, key_value)
            if ident in seen:
                continue
            seen.add(ident)
            out.append(
                ValueCandidate(
                    table=tbl,
                    column=col,
                    value=value,
                    key_column=key_col,
                    key_value=key_value,
                    year_min=ymin,
                    year_max=ymax,
                    rows=n,
                    score=round(float(score), 4),
                    method=method,
                )
            )
        # A whole-word or exact hit is evidence; a fuzzy neighbour of it ("Dodge" for "Dodgers") is noise.
        if any(c.method != "fuzzy" for c in out):
            out = [c for c in out if c.method != "fuzzy"]
        return out[:limit]
