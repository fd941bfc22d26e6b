"""One open database: its engine, schema, value index and SQL policy, built once per process."""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from tools.sql.descriptions import apply_descriptions, load_descriptions
from tools.sql.engines import dialect_label, engine_kind, open_engine
from tools.sql.engines.base import Engine, EngineLimits
from tools.sql.introspect import DatabaseSchema, quote_identifier
from tools.sql.policy import AccessRole, Catalog, SqlPolicy, default_role_name, load_roles
from tools.sql.role_view import HiddenParts, hidden_parts, reads_hidden, role_schema
from tools.sql.schema_cache import load_schema
from tools.sql.values import ValueIndex

log = logging.getLogger(__name__)


class DatabaseConfig(BaseModel):
    """What opening a database needs, with every path resolved by the caller (the runtime builds it
    from the YAML configuration: `Settings.database_config`). Nothing here reads configuration."""

    url: str  # a DuckDB file (absolute path) or an engine URL (tools/sql/engines/__init__.py)
    # The SQL dialect the model writes and the policy parses; None: the engine's (duckdb, postgres).
    dialect_override: str | None = None
    descriptions: Path | None = None  # YAML of table/column descriptions laid over the database's comments
    catalog_cache_dir: Path
    access_file: Path  # the roles (config/access.yaml)
    limit_cap: int = 1000
    limits: EngineLimits = EngineLimits()

    @property
    def dialect(self) -> str:
        """What the model writes and the policy parses: the engine's dialect unless overridden."""
        return self.dialect_override or engine_kind(self.url).dialect

    @property
    def dialect_label(self) -> str:
        return dialect_label(self.dialect)


class Database:
    """One database as one role sees it. `schema` is the role's view (tools/sql/role_view.py): every
    step reads it, and the value index is built from it. Only the policy, which must recognise a
    hidden column to refuse it, and the SQL fixes, which must read a query as the database would,
    see `full_schema`."""

    def __init__(self, config: DatabaseConfig, role: str | None = None):
        self.config = config
        roles = load_roles(config.access_file)
        role_name = role or default_role_name(config.access_file)
        if role_name not in roles:
            raise ValueError(
                f"Unknown role {role_name!r}; roles in {config.access_file.name}: {', '.join(sorted(roles))}."
            )
        self.role: AccessRole = roles[role_name]
        # The engine runs every query: the model's (through the policy) and the helpers' below. `sandbox`
        # is its older name, kept because every caller that runs SQL reads `db.sandbox.execute`.
        self.engine: Engine = open_engine(config.url, config.limits)
        self.sandbox: Engine = self.engine
        # The fingerprint of a file with other contents that replaced the one the schema was read
        # from (`_database_replaced`): until a restart, the schema and value index are the old file's.
        self.replaced_by: str | None = None
        try:
            self._load(config)
        except BaseException:
            self.engine.close()
            raise
        self.engine.on_reopen = self._database_replaced

    def _database_replaced(self) -> None:
        """The engine reopened a replaced database file: queries now read the new file. Called on
        the querying thread, at the first query after the swap.

        A file with the same fingerprint (path, size, mtime: a copy such as bench/faults.py makes)
        is the same data, and the schema and value index still describe it. One with another
        fingerprint may have other tables, columns and values, and what the prompts describe is the
        old file's. This logs one warning naming the restart, and does not rebuild in place: the
        schema is read in several layers (here: the role view, the policy's catalog, the value
        index; agent/context.py: the retrieve step's schema index and stable prompt block, the
        prompt artifacts checked against the schema), built once per process and read field by
        field by questions running on other threads, so a rebuild of this object alone would give
        prompts of one file and checks of another. A restart builds them all from the new file
        (the caches are keyed by fingerprint). Until then a question on what changed ends with a
        clear error: the policy refuses a table or column it does not know, DuckDB one that is
        gone. Only the per-value query caches below are dropped: they are data, not description."""
        now = self.engine.fingerprint()
        if now == self.full_schema.fingerprint:
            self.replaced_by = None  # the same data (a copy), or the old file put back
            return
        if now == self.replaced_by:
            return
        for cached in (Database.key_rows, Database.unique_on, Database.distinct_values):
            cached.cache_clear()
        self.replaced_by = now
        log.warning(
            "The database %s was replaced by one with other contents (fingerprint %s -> %s): queries "
            "read the new data, but the schema, samples and value index the prompts describe are the "
            "old file's. Restart the server (or the process) to rebuild them from the new file.",
            self.engine.display,
            self.full_schema.fingerprint,
            now,
        )

    def _load(self, config: DatabaseConfig) -> None:
        self.full_schema: DatabaseSchema = load_schema(self.engine, config.catalog_cache_dir)
        if config.descriptions:
            self.full_schema = apply_descriptions(self.full_schema, load_descriptions(config.descriptions))
        self.hidden: HiddenParts = hidden_parts(self.full_schema, self.role)
        self.schema: DatabaseSchema = role_schema(self.full_schema, self.hidden)
        self.values = ValueIndex.open(self.engine, self.schema, config.catalog_cache_dir)
        self.policy = SqlPolicy(
            Catalog(tables=self.full_schema.table_columns()),
            limit_cap=config.limit_cap,
            dialect=config.dialect,
            role=self.role,
        )
        # How many tables carry each column name: teamID (many) is a better filter than franchID (few).
        self.centrality = Counter(c.name.lower() for t in self.schema.tables for c in t.columns)
        self.hubs = _hub_tables(self.schema)
        self.vocabulary = schema_vocabulary(self.schema)

    def finer_key(self, column: str, value: str, era: tuple[int, int]) -> tuple[str, str, str] | None:
        """The one more specific id for `column = value` in the years of `era`, if there is one:
        franchID 'NYY' in 1998 -> Teams.teamID 'NYA'. Looked up in a table that has both ids and a year."""
        generic = {"lgid", "divid", "yearid"}
        for table in self.schema.tables:
            names = {c.name.lower(): c.name for c in table.columns}
            year = names.get("yearid") or names.get("year")
            if column.lower() not in names or year is None:
                continue
            finer = [
                c.name for c in table.columns
                if c.type == "VARCHAR" and re.search(r"id$", c.name, re.IGNORECASE) and c.name.lower() not in generic
                and self.centrality[c.name.lower()] > self.centrality[column.lower()]
                and self.hubs.get(c.name.lower()) == table.name  # Teams for teamID, not Managers for playerID
            ]  # fmt: skip
            literal = "'" + value.replace("'", "''") + "'"
            for key in sorted(finer, key=lambda n: -self.centrality[n.lower()]):
                rows = self.sandbox.execute(
                    f"SELECT DISTINCT {quote_identifier(key)} FROM {quote_identifier(table.name)} "
                    f"WHERE {quote_identifier(names[column.lower()])} = {literal} "
                    f"AND {quote_identifier(year)} BETWEEN {era[0]} AND {era[1]}"
                ).rows
                if len(rows) == 1:
                    return table.name, key, str(rows[0][0])
                if rows:
                    break  # several team-seasons in those years: the franchise is the right filter
        return None

    def _most_in_any_table(self, column: str, count: Callable[[str, str], str]) -> int:
        """The largest `count(table, column)` query result over the tables that have `column`
        (both names quoted as the table spells them)."""
        most = 0
        for table in self.schema.tables:
            name = next((c.name for c in table.columns if c.name.lower() == column.lower()), None)
            if name is not None:
                rows = self.sandbox.execute(count(quote_identifier(table.name), quote_identifier(name))).rows
                most = max(most, int(rows[0][0]) if rows else 0)
        return most

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one Database per file, kept for the process
    def key_rows(self, column: str, value: str) -> int:
        """The most rows any table has with `column = value`: a franchise's team-seasons in Teams."""
        literal = "'" + value.replace("'", "''") + "'"
        return self._most_in_any_table(
            column, lambda table, col: f"SELECT count(*) FROM {table} WHERE {col} = {literal}"
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Database per file, kept for the process
    def unique_on(self, table: str, columns: tuple[str, ...]) -> bool:
        """Whether `columns` identify a row of `table` (Teams: teamID no, teamID and yearID yes)."""
        names = ", ".join(quote_identifier(c) for c in columns)
        rows = self.sandbox.execute(
            f"SELECT count(*), count(DISTINCT ({names})) FROM {quote_identifier(table)}"
        ).rows
        return bool(rows) and int(rows[0][0]) > 0 and rows[0][0] == rows[0][1]

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Database per file, kept for the process
    def distinct_values(self, column: str) -> int:
        """The most distinct values any table holds in `column`: many for ids and seasons, few for
        flags, leagues and award names."""
        return self._most_in_any_table(
            column, lambda table, col: f"SELECT count(DISTINCT {col}) FROM {table}"
        )

    def reads_hidden(self, sql: str) -> bool:
        """Whether showing `sql` (a worked example) would show this role a hidden table or column."""
        return reads_hidden(sql, self.hidden, self.config.dialect)

    @property
    def name(self) -> str:
        """The database's short name (a DuckDB file's stem): ids, file names, metadata."""
        return self.engine.name

    @property
    def url(self) -> str:
        """What `database.url` named, as messages may show it (no secrets)."""
        return self.engine.display

    def close(self) -> None:
        self.engine.close()
        self.values.close()


def vocabulary_key(text: str) -> str:
    """Lower-case words, trailing plural 's' dropped: 'Home Runs' and 'home run' are one phrase."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)


def schema_vocabulary(schema: DatabaseSchema) -> set[str]:
    """Table and column names and what the columns measure ("home runs", "at bats", "salary").

    A mention that is schema vocabulary is a statistic, not an entity: "home runs" must not become
    the player whose first name is "Home Run" unless the user typed that name exactly.
    """
    words = set()
    for table in schema.tables:
        words.add(vocabulary_key(table.name))
        for column in table.columns:
            words.add(vocabulary_key(column.name))
            lead = re.split(r"[(,:;.]| - | = ", column.comment, maxsplit=1)[0]
            if 0 < len(lead.split()) <= 4:
                words.add(vocabulary_key(lead))
    words.discard("")
    return words


def _hub_tables(schema: DatabaseSchema) -> dict[str, str]:
    """For each column name, the table to filter it in: the table named after it (teamID -> Teams),
    else the one that joins to the most others (franchID -> Teams, playerID -> People)."""
    degree: Counter[str] = Counter()
    for j in schema.joins:
        if len(j.on) == 1:  # single-key joins point at a lookup table (People by playerID)
            degree[j.left] += 1
            degree[j.right] += 1
    hubs: dict[str, str] = {}
    for table in sorted(schema.tables, key=lambda t: (-degree[t.name], t.name)):
        for column in table.columns:
            hubs.setdefault(column.name.lower(), table.name)
    for table in schema.tables:
        singular = table.name.lower().rstrip("s")
        for column in table.columns:
            stem = re.sub(r"(id|key|code)$", "", column.name.lower())
            if stem and singular == stem:
                hubs[column.name.lower()] = table.name
    return hubs


_open: dict[tuple[str, str, str | None], Database] = {}
_lock = threading.Lock()


def open_database(config: DatabaseConfig, role: str | None = None) -> Database:
    """The process-wide Database for (url, dialect, role); introspection and the index are cached on
    disk too. The dialect is part of the key: its policy allows other functions."""
    key = (config.url, config.dialect, role)
    with _lock:
        if key not in _open:
            _open[key] = Database(config, role)
        return _open[key]
