"""PostgreSQL: a small psycopg 3 pool of a login role that can only read, every query in a READ ONLY
transaction that is rolled back.

The layers, each of which must hold on its own (tests/security runs the attacks through each):

* **the role** (data/postgres_reader.sql sets it up; `checks()` verifies it): SELECT on the exposed
  tables, no ownership, no CREATE on any schema, no TEMPORARY, no superuser/createrole/createdb/
  bypassrls, `default_transaction_read_only = on`; the server refuses file, program and
  large-object functions (`pg_read_file`, `COPY ... PROGRAM`, server-side `lo_import`) to it;
* **the transaction**: `BEGIN READ ONLY`, `statement_timeout`, `work_mem` and
  `idle_in_transaction_session_timeout` set LOCAL from `limits`, then `ROLLBACK` whatever happened,
  and `DISCARD ALL` before the connection serves another question (no session state carries over:
  no prepared statements, no advisory locks, no settings);
* **the statement**: sqlglot must read exactly one query (SELECT, set operation, VALUES) and the
  server gets it as a server-side cursor (`DECLARE ... CURSOR FOR`), which PostgreSQL accepts only
  for one SELECT or VALUES and runs through the extended protocol (one statement, no `;` chains);
* **the result**: rows are fetched from the cursor, at most `max_rows + 1`, then cut to the byte
  budget, so a huge result never leaves the server.

Identifiers are read case-insensitively, as DuckDB does (tools/sql/engines/identifiers.py), so the
same SQL runs on a Lahman database whose tables are "People" and "Batting". Connecting fails early:
a bad URL, a server that is down or does not answer within `limits.connect_timeout_s`, a wrong
password or an unknown database each raise `SandboxError("database", <what to do>)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import sqlglot
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlglot import exp

from tools.sql.engines.base import (
    Engine,
    EngineCheck,
    EngineLimits,
    ExecutionResult,
    SandboxError,
    clean_error,
    keep_rows,
    timeout_message,
)
from tools.sql.engines.identifiers import CatalogSpelling
from tools.sql.engines.postgres_catalog import (
    COLUMNS_SQL,
    FINGERPRINT_SQL,
    FOREIGN_KEYS_SQL,
    NAMES_SQL,
    TABLES_SQL,
    TYPES,
)
from tools.sql.engines.postgres_role import role_checks
from tools.sql.introspect import (
    CACHE_VERSION,
    ColumnInfo,
    DatabaseSchema,
    JoinEdge,
    TableInfo,
    add_samples,
    inferred_joins,
    merge_joins,
    named_references,
    quote_identifier,
)

# Above this many rows (PostgreSQL's estimate) a table is not scanned whole for introspection: its
# row count is the estimate and its sample values come from a TABLESAMPLE of about SAMPLE_ROWS rows.
FULL_SCAN_ROWS = 1_000_000
SAMPLE_ROWS = 100_000

_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Values)


def _connect_problem(error: psycopg.Error, where: str, user: str, timeout_s: float) -> str:
    """What a failed connection means and what to do, from libpq's message."""
    text = clean_error(error)
    lowered = str(error).lower()
    if "connection option" in lowered or "invalid uri" in lowered or "invalid percent-encoded" in lowered:
        return (
            f"database.url is not a valid PostgreSQL URL ({text.removeprefix('connection is bad: ')}): write it "
            "as postgresql://USER@HOST:PORT/DATABASE."
        )
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            f"PostgreSQL at {where} refused the credentials of role {user!r} ({text}): set its password in "
            "the environment variable database.password_env names, PGPASSWORD or ~/.pgpass."
        )
    if "role" in lowered and "does not exist" in lowered:
        return (
            f"PostgreSQL at {where} has no role {user!r}: create it with data/postgres_reader.sql "
            "(docs/engines.md) or fix the user in database.url."
        )
    if "database" in lowered and "does not exist" in lowered:
        return f"{text} at {where}: load it (`make pg-demo-db`, data/load_postgres.py) or fix the database in database.url."
    if "timeout expired" in lowered:
        return (
            f"PostgreSQL at {where} did not answer within {timeout_s:g} s (limits.connect_timeout_s): check "
            "the host and port in database.url and any firewall between."
        )
    if "connection refused" in lowered or "could not connect" in lowered or "no such file" in lowered:
        return (
            f"PostgreSQL at {where} is not accepting connections ({text}): is the server running "
            f"(`pg_isready -h HOST -p PORT`)? Check the host and port in database.url."
        )
    if "could not translate host name" in lowered:
        return f"Unknown host in database.url ({text}): fix the host name."
    return f"Cannot connect to PostgreSQL at {where}: {text}"


class PostgresEngine(Engine):
    dialect = "postgres"
    label = "PostgreSQL"

    def __init__(self, url: str, limits: EngineLimits) -> None:
        super().__init__(url, limits)
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as error:
            raise SandboxError(
                "database", f"database.url is not a valid PostgreSQL URL: {clean_error(error)}"
            ) from None
        self.user = str(params.get("user") or "")
        self.dbname = str(params.get("dbname") or self.user)
        self.where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/{self.dbname}"
        connect_s = max(2, math.ceil(limits.connect_timeout_s))  # libpq's minimum is 2 s
        # Keepalives and tcp_user_timeout bound a query whose server vanished mid-way (no answer ever).
        self._conninfo = make_conninfo(
            url, connect_timeout=connect_s, application_name="sqlagent", keepalives=1, keepalives_idle=10,
            keepalives_interval=5, keepalives_count=3,
            tcp_user_timeout=int((limits.timeout_s + limits.connect_timeout_s + 30) * 1000),
        )  # fmt: skip
        # One direct connection first: the pool retries in the background and would report only a
        # timeout, while libpq's own message says what is wrong.
        try:
            first = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as error:
            raise SandboxError(
                "database", _connect_problem(error, self.where, self.user, connect_s)
            ) from None
        with first:
            version = first.info.server_version
            self.server_version = f"{version // 10000}.{version % 10000}"
            self.user = first.execute("SELECT current_user").fetchone()[0]
        self._pool = ConnectionPool(
            self._conninfo, min_size=1, max_size=max(1, limits.pool_size),
            kwargs={"autocommit": True, "prepare_threshold": None},  # DISCARD ALL drops prepared statements
            reset=_discard, check=ConnectionPool.check_connection, timeout=limits.connect_timeout_s,
            name="sqlagent", open=False,
        )  # fmt: skip
        self._pool.open(wait=True, timeout=connect_s + 1)
        self._closed = False
        self._cursor_ids = iter(range(1, 1 << 62))
        self._ids_lock = threading.Lock()
        try:
            if limits.require_read_only_role:
                refused = [c for c in role_checks(self.connection, self.user) if not c.ok]
                if refused:
                    raise SandboxError("database", f"{refused[0].detail} Or set database.require_read_only_role: "
                                                   "false to run with it anyway (docs/engines.md).")  # fmt: skip
            self._spelling = CatalogSpelling.from_rows(self.read_all(NAMES_SQL))
        except BaseException:
            self.close()
            raise

    # -- identity -----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "pg-" + "".join(ch if ch.isalnum() else "-" for ch in self.where)

    @property
    def display(self) -> str:
        return f"postgresql://{self.user}@{self.where}"

    def fingerprint(self) -> str:
        """The catalog (tables, columns, types, comments) and the tables' write counters: a schema
        change or any insert, update or delete gives a new fingerprint."""
        rows = self.read_all(FINGERPRINT_SQL)
        raw = f"{self.where}|{self.user}|{rows}|v{CACHE_VERSION}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            self._pool.close()

    # -- execution ----------------------------------------------------------------------------------

    def execute(self, sql: str) -> ExecutionResult:
        limits = self.limits
        (columns, raw), elapsed_ms = self._in_transaction(
            self.prepare(sql), limits.timeout_s, self._fetch_limited
        )
        rows, truncated = keep_rows(raw[: limits.max_rows], limits.max_rows, limits.max_result_bytes,
                                    more=len(raw) > limits.max_rows)  # fmt: skip
        return ExecutionResult(
            columns=columns, rows=rows, row_count=len(rows), truncated=truncated, elapsed_ms=elapsed_ms
        )

    def read(self, sql: str, batch_rows: int = 10_000) -> Iterator[list[tuple]]:
        # Project-written SQL only, and small results (grouped values): collected in one transaction.
        batches, _ = self._in_transaction(
            self._spelling_of(sql), self.limits.build_timeout_s,
            lambda cursor: list(iter(lambda: cursor.fetchmany(batch_rows), [])),
        )  # fmt: skip
        yield from batches

    def prepare(self, sql: str) -> str:
        """The statement guard (exactly one query, as sqlglot reads it) and the catalog's spelling."""
        if "\x00" in sql or any(0xD800 <= ord(ch) <= 0xDFFF for ch in sql):  # PostgreSQL takes neither
            raise SandboxError("refused", "The query holds a NUL byte or text that is not UTF-8.")
        try:
            trees = [t for t in sqlglot.parse(sql, dialect=self.dialect) if t is not None]
        except sqlglot.errors.SqlglotError as error:
            raise SandboxError(
                "refused", f"The query could not be read as PostgreSQL: {clean_error(error)}"
            ) from None
        if len(trees) != 1:
            raise SandboxError("refused", f"Exactly one statement is allowed; found {len(trees)}.")
        if not isinstance(trees[0], _QUERY_ROOTS):
            raise SandboxError("refused", f"Only SELECT statements can run; found {trees[0].key.upper()}.")
        return self._spelling_of(sql)

    def _spelling_of(self, sql: str) -> str:
        spelling = getattr(self, "_spelling", None)
        return spelling.resolve(sql, self.dialect) if spelling is not None else sql

    def _fetch_limited(self, cursor: psycopg.ServerCursor) -> tuple[list[str], list[tuple]]:
        raw = cursor.fetchmany(self.limits.max_rows + 1)
        return [d.name for d in cursor.description or []], raw

    def _in_transaction(self, sql: str, timeout_s: float, fetch: Any) -> tuple[Any, float]:
        """`fetch(cursor)` of `sql` run as a server-side cursor in a READ ONLY transaction that is
        always rolled back, and the milliseconds it took."""
        if self._closed:
            raise SandboxError("database", "The PostgreSQL engine is closed.")
        with self._ids_lock:
            cursor_name = f"sqlagent_{next(self._cursor_ids)}"
        try:
            with self._pool.connection(timeout=self.limits.connect_timeout_s) as conn:
                try:
                    conn.execute("BEGIN TRANSACTION READ ONLY")
                    conn.execute(
                        "SELECT set_config('statement_timeout', %s, true), set_config('work_mem', %s, true), "
                        "set_config('idle_in_transaction_session_timeout', %s, true)",
                        [
                            f"{int(timeout_s * 1000)}ms",
                            self.limits.work_mem,
                            f"{int(timeout_s * 1000) + 5000}ms",
                        ],
                    )
                    cursor = conn.cursor(name=cursor_name)
                    start = time.perf_counter()
                    cursor.execute(sql)
                    result = fetch(cursor)
                    elapsed_ms = (time.perf_counter() - start) * 1000
                finally:
                    _rollback(conn)
        except PoolTimeout:
            raise SandboxError(
                "database",
                f"No PostgreSQL connection to {self.where} within {self.limits.connect_timeout_s:g} s: the server is "
                "down or every pooled connection is busy (limits.db_pool_size).",
            ) from None
        except psycopg.errors.QueryCanceled:
            raise SandboxError("timeout", timeout_message(timeout_s)) from None
        except (
            psycopg.errors.OutOfMemory,
            psycopg.errors.ProgramLimitExceeded,
            psycopg.errors.DiskFull,
        ) as error:
            raise SandboxError(
                "execution",
                f"The query ran out of memory or disk ({clean_error(error)}; limits.work_mem={self.limits.work_mem}): "
                "filter earlier or aggregate before joining.",
            ) from None
        except psycopg.OperationalError as error:
            if error.sqlstate and not error.sqlstate.startswith(
                ("08", "57P")
            ):  # not the connection or server
                raise SandboxError("execution", clean_error(error)) from None
            raise SandboxError("database", f"PostgreSQL at {self.where}: {clean_error(error)}") from None
        except psycopg.errors.SyntaxError as error:
            # DECLARE CURSOR takes one SELECT or VALUES: anything else is a syntax error there.
            raise SandboxError("execution", clean_error(error)) from None
        except psycopg.Error as error:
            raise SandboxError("execution", clean_error(error)) from None
        return result, elapsed_ms

    # -- introspection ------------------------------------------------------------------------------

    def introspect(self) -> DatabaseSchema:
        """information_schema for tables and columns, pg_description for their comments, declared
        foreign keys; the shared part (samples, inferred joins) runs through `read`."""
        tables: list[TableInfo] = []
        columns: dict[str, list[ColumnInfo]] = {}
        for table, column, data_type, comment in self.read_all(COLUMNS_SQL):
            columns.setdefault(table, []).append(
                ColumnInfo(name=column, type=TYPES.get(data_type, data_type.upper()), comment=comment)
            )
        for table, comment, estimate in self.read_all(TABLES_SQL):
            infos = columns.get(table, [])
            big = estimate > FULL_SCAN_ROWS
            row_count = (
                int(estimate)
                if big
                else self.read_all(f"SELECT count(*) FROM {quote_identifier(table)}")[0][0]
            )
            source = quote_identifier(table)
            if big:
                source += f" TABLESAMPLE SYSTEM ({max(0.01, 100 * SAMPLE_ROWS / estimate):.2f})"
            add_samples(self.read_all, source, infos)
            tables.append(TableInfo(name=table, comment=comment, row_count=row_count, columns=infos))
        declared: dict[str, JoinEdge] = {}
        for name, left, left_col, right, right_col in self.read_all(FOREIGN_KEYS_SQL):
            edge = declared.setdefault(name, JoinEdge(left=left, right=right, on=[], declared=True))
            edge.on.append((left_col, right_col))
        small = [t for t in tables if t.row_count <= FULL_SCAN_ROWS]  # uniqueness checks scan the table
        joins = merge_joins(list(declared.values()), inferred_joins(self.read_all, small))
        joins = merge_joins(joins, named_references(self.read_all, small))
        return DatabaseSchema(path=self.display, fingerprint=self.fingerprint(), tables=tables, joins=joins)

    # -- doctor -------------------------------------------------------------------------------------

    def checks(self) -> list[EngineCheck]:
        """The role must not be able to write: its attributes, its privileges, and a real write tried
        in a transaction that is rolled back (with READ WRITE set, so the grants alone are tested)."""
        return [self._version_check(), *role_checks(self.connection, self.user)]

    def _version_check(self) -> EngineCheck:
        return EngineCheck(name="engine", ok=True,
                           detail=f"PostgreSQL {self.server_version} at {self.where} as {self.user}, "
                                  f"pool of {self.limits.pool_size}, READ ONLY transactions")  # fmt: skip

    def connection(self) -> Any:
        """A pooled connection (context manager) for `role_checks` and tests; never for model SQL."""
        return self._pool.connection(timeout=self.limits.connect_timeout_s)


def _rollback(conn: psycopg.Connection) -> None:
    """End the question's transaction whatever state it is in (a broken connection is discarded by
    the pool's check)."""
    with contextlib.suppress(psycopg.Error):  # broken: the pool's check replaces it before lending it again
        conn.execute("ROLLBACK")


def _discard(conn: psycopg.Connection) -> None:
    """Before a connection serves the next question: no settings, prepared statements, cursors,
    advisory locks or LISTEN carry over."""
    conn.execute("DISCARD ALL")
