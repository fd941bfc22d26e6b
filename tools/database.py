"""One open database: its schema, value index, SQL policy and sandbox, built once per process."""

from __future__ import annotations

import re
import threading
from collections import Counter
from pathlib import Path

from agent.config import Settings, resolve_path
from tools.descriptions import apply_descriptions, load_descriptions
from tools.introspect import DatabaseSchema, load_schema, quote_identifier
from tools.policy import AccessRole, Catalog, SqlPolicy, default_role_name, load_roles
from tools.sandbox import Sandbox
from tools.values import ValueIndex

ACCESS_FILE = resolve_path("config/access.yaml")


class Database:
    def __init__(self, path: Path, settings: Settings, role: str | None = None):
        self.path = path
        self.settings = settings
        cache_dir = resolve_path(settings.database.catalog_cache_dir)
        self.schema: DatabaseSchema = load_schema(path, cache_dir)
        if settings.database.descriptions:
            descriptions = load_descriptions(resolve_path(settings.database.descriptions))
            self.schema = apply_descriptions(self.schema, descriptions)
        self.values = ValueIndex.open(path, self.schema, cache_dir)
        roles = load_roles(ACCESS_FILE)
        role_name = role or default_role_name(ACCESS_FILE)
        if role_name not in roles:
            raise ValueError(f"Unknown role {role_name!r}; roles in {ACCESS_FILE.name}: {', '.join(sorted(roles))}.")
        self.role: AccessRole = roles[role_name]
        limits = settings.limits
        self.policy = SqlPolicy(
            Catalog(tables=self.schema.table_columns()),
            limit_cap=limits.limit_cap,
            dialect=settings.database.dialect,
            role=self.role,
        )
        self.sandbox = Sandbox(
            path,
            timeout_s=limits.query_timeout_s,
            max_rows=limits.max_rows,
            memory_limit=limits.memory_limit,
            threads=limits.db_threads,
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

    def close(self) -> None:
        self.sandbox.close()
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


_open: dict[tuple[str, str | None], Database] = {}
_lock = threading.Lock()


def open_database(settings: Settings, path: str | Path | None = None, role: str | None = None) -> Database:
    """The process-wide Database for (path, role); introspection and the index are cached on disk too."""
    db_path = resolve_path(path or settings.database.path)
    key = (str(db_path), role)
    with _lock:
        if key not in _open:
            _open[key] = Database(db_path, settings, role)
        return _open[key]
