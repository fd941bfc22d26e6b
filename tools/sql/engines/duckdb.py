"""DuckDB: a read-only, locked-down connection to a database file, the embedded default engine.

The second layer behind `tools.sql.policy.SqlPolicy`; it must hold on its own for SQL that bypasses
the policy (a policy bug, an operator typing raw SQL):

* the database is opened `read_only=True` with external access disabled (no files, no network, no
  ATTACH/COPY/EXPORT/INSTALL/LOAD), extension auto-install/auto-load and community/unsigned extensions
  off, spilling to disk off (`temp_directory=""`, so a big query fails with out-of-memory instead of
  writing next to the database), and the configuration locked so `SET`/`PRAGMA` cannot undo any of it;
* before running, DuckDB's own parser (`extract_statements`) must see exactly one statement of type
  SELECT - this refuses CHECKPOINT/VACUUM/CALL/SET VARIABLE/CREATE TEMP ..., which DuckDB would accept
  on a read-only database (they leave the file intact but could change session state);
* DuckDB has no statement timeout: a `threading.Timer(timeout_s, cursor.interrupt)` stops runaway
  queries (measured: ~timeout + a few ms for cross-join and recursive-CTE bombs);
* at most `max_rows + 1` rows are fetched (`fetchmany`) and at most `max_result_bytes` of converted
  values are kept; either limit sets `truncated=True`.

Thread-safety: one shared read-only database connection; every `execute` runs on its own cursor (a
separate DuckDB connection to the same database instance). Calls from several threads can run
concurrently, each interrupt only stops its own query, and session state (temp objects, variables)
cannot leak from one call to the next.

A replaced file (a deploy renames new data over the path, `os.replace`): an open connection keeps
reading the old, unlinked inode forever, so before each cursor one `os.stat` compares the path's
(device, inode, size, mtime) with the file that was opened, and on a difference the connection is
reopened with the same locked-down configuration. What DuckDB 2.0 does that shapes this (measured):

* closing a connection closes its cursors: a cursor mid-query loses its result ("No open result
  set") and a later `execute` fails ("Connection already closed!"), so the old connection is only
  closed once no cursor handed out on it is still running;
* `duckdb.connect(path)` returns the cached database instance while any connection to that path is
  open (every spelling: symlinks, `./`, `/proc/self/fd/N`), i.e. still the old file; a new instance
  can only be had once the old connection and all its cursors are closed.

So a new cursor request that finds the file replaced waits for the cursors still running on the old
file (each is interrupted after `limits.timeout_s`), then reopens. If they are not done by
`timeout_s` + `REOPEN_GRACE_S` (a long `read`), new queries run on the old file (still a consistent
database, as a reader of the replaced file sees it) until the last one ends, and the reopen happens
then, at the next query. `on_reopen` (set by tools/sql/database.py) is told after each reopen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

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
from tools.sql.introspect import (
    ColumnInfo,
    DatabaseSchema,
    JoinEdge,
    TableInfo,
    add_samples,
    file_fingerprint,
    inferred_joins,
    merge_joins,
    named_references,
    quote_identifier,
)
from tools.sql.schema_cache import load_schema

log = logging.getLogger(__name__)

REOPEN_GRACE_S = 1.0  # past the query timeout: an interrupted cursor takes a few ms to let go
FileIdentity = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


def file_identity(path: Path) -> FileIdentity | None:
    """Which file `path` names now; None while it is missing (a deploy between unlink and rename)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class DuckDBEngine(Engine):
    dialect = "duckdb"
    label = "DuckDB"

    def __init__(self, url: str | Path, limits: EngineLimits) -> None:
        super().__init__(str(url), limits)
        self.path = Path(url)
        if not self.path.is_file():
            raise SandboxError(
                "database",
                f"The database file {self.path} does not exist; build it first (see README) or fix "
                "database.url in the configuration.",
            )
        self._config = {
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_persistent_secrets": False,
            "temp_directory": "",
            "threads": int(limits.threads),
            "memory_limit": str(limits.memory_limit),
            "lock_configuration": True,
        }
        self._state = threading.Condition()  # guards everything below; notified when a cursor ends
        self._closed = False
        self._active = 0  # cursors handed out on `_con` and not yet closed
        self._drain_until: float | None = None  # waiting for the old file's cursors, until then
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened: FileIdentity | None = None
        self._connect()

    def _connect(self) -> None:
        """Open the file the path names now (the identity is read first: a file renamed in between
        is noticed at the next query and reopened again, never missed)."""
        self._opened = file_identity(self.path)
        try:
            self._con = duckdb.connect(str(self.path), read_only=True, config=self._config)
        except duckdb.Error as error:
            raise SandboxError(
                "database", f"Cannot open the database {self.path}: {clean_error(error)}"
            ) from None

    @classmethod
    def open(cls, url: str, limits: EngineLimits) -> DuckDBEngine:
        return cls(url.removeprefix("duckdb://"), limits)

    # -- identity -----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def display(self) -> str:
        return str(self.path)

    def fingerprint(self) -> str:
        return file_fingerprint(self.path)

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        with self._state:
            self._closed = True
            if self._con is not None:
                self._con.close()
                self._con = None
            self._state.notify_all()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the file the path names now (reopened first if it was replaced), closed after."""
        with self._state:
            reopened = self._reopen_if_replaced()
            if self._con is None:
                raise SandboxError("database", "The sandbox is closed.")
            cursor = self._con.cursor()
            self._active += 1
        try:
            if reopened and self.on_reopen is not None:
                self.on_reopen()
            yield cursor
        finally:
            cursor.close()
            with self._state:
                self._active -= 1
                self._state.notify_all()

    def _reopen_if_replaced(self) -> bool:  # holding self._state
        """Reopen when the path names another file than the one open (see the module docstring)."""
        while True:  # re-checked after every wait: another waiter may have reopened meanwhile
            if self._closed:
                return False
            now = file_identity(self.path)
            if self._con is not None and (now is None or now == self._opened):
                return False
            if not self._active:
                break
            if self._drain_until is None:
                self._drain_until = time.monotonic() + self.limits.timeout_s + REOPEN_GRACE_S
            remaining = self._drain_until - time.monotonic()
            if remaining <= 0:
                return False  # the old file serves until its last query ends (module docstring)
            self._state.wait(timeout=remaining)
        before = self._opened
        if self._con is not None:
            self._con.close()
            self._con = None
        self._drain_until = None
        self._connect()  # a new file DuckDB cannot open: SandboxError now, another try next query
        log.warning(
            "The database file %s was replaced (inode %s -> %s); reopened it read-only with the same "
            "locked-down settings.",
            self.path,
            before[1] if before else "?",
            self._opened[1] if self._opened else "?",
        )
        return True

    # -- execution ----------------------------------------------------------------------------------

    def execute(self, sql: str) -> ExecutionResult:
        with self._cursor() as cursor:
            self._guard(cursor, sql)
            return self._run(cursor, sql)

    def _guard(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> None:
        try:
            statements = cursor.extract_statements(sql)
        except duckdb.Error as error:
            raise SandboxError("execution", clean_error(error)) from None
        if len(statements) != 1:
            raise SandboxError("refused", f"Exactly one statement is allowed; found {len(statements)}.")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            name = str(kind).rsplit(".", 1)[-1]
            raise SandboxError("refused", f"Only SELECT statements can run; found {name}.")

    def _interrupting(
        self, cursor: duckdb.DuckDBPyConnection, timeout_s: float
    ) -> tuple[threading.Timer, threading.Event]:
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            cursor.interrupt()

        timer = threading.Timer(timeout_s, stop)
        timer.daemon = True
        return timer, timed_out

    def _run(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> ExecutionResult:
        limits = self.limits
        timer, timed_out = self._interrupting(cursor, limits.timeout_s)
        start = time.perf_counter()
        timer.start()
        try:
            cursor.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            raw = cursor.fetchmany(limits.max_rows + 1)
        except duckdb.Error as error:
            if timed_out.is_set() or isinstance(error, duckdb.InterruptException):
                raise SandboxError("timeout", timeout_message(limits.timeout_s)) from None
            if isinstance(error, duckdb.OutOfMemoryException):
                raise SandboxError(
                    "execution",
                    f"The query ran out of memory (limits.memory_limit={limits.memory_limit}); filter earlier "
                    "or aggregate before joining.",
                ) from None
            raise SandboxError("execution", clean_error(error)) from None
        finally:
            timer.cancel()
        elapsed_ms = (time.perf_counter() - start) * 1000
        rows, truncated = keep_rows(
            raw[: limits.max_rows], limits.max_rows, limits.max_result_bytes, more=len(raw) > limits.max_rows
        )
        return ExecutionResult(
            columns=columns, rows=rows, row_count=len(rows), truncated=truncated, elapsed_ms=elapsed_ms
        )

    def read(self, sql: str, batch_rows: int = 10_000) -> Iterator[list[tuple]]:
        with self._cursor() as cursor:
            timer, timed_out = self._interrupting(cursor, self.limits.build_timeout_s)
            timer.start()
            try:
                cursor.execute(sql)
                while batch := cursor.fetchmany(batch_rows):
                    yield batch
            except duckdb.Error as error:
                kind = "timeout" if timed_out.is_set() else "execution"
                raise SandboxError(kind, clean_error(error)) from None
            finally:
                timer.cancel()

    # -- introspection and the value index ----------------------------------------------------------

    def introspect(self) -> DatabaseSchema:
        """User tables of the main database, through the catalog functions of DuckDB."""
        with self._cursor() as cursor:
            return introspect_connection(cursor, self.path)

    def attachable_file(self) -> Path:
        return self.path

    def checks(self) -> list[EngineCheck]:
        try:
            self.execute("SELECT 1")
        except SandboxError as error:
            return [
                EngineCheck(name="engine", ok=False, detail=f"DuckDB {duckdb.__version__}: {error.message}")
            ]
        return [
            EngineCheck(
                name="engine",
                ok=True,
                detail=f"DuckDB {duckdb.__version__}, file opened read-only, external access off",
            )
        ]


def load_file_schema(path: Path, cache_dir: Path) -> DatabaseSchema:
    """The (cached) schema of a DuckDB file, for scripts and tests that hold a path, not an engine."""
    if not path.exists():
        raise FileNotFoundError(
            f"Database file {path} does not exist. Build the demo database with `make setup` "
            "or pass --db with the path of an existing DuckDB file."
        )
    with DuckDBEngine(path, EngineLimits()) as engine:
        return load_schema(engine, cache_dir)


def introspect_connection(con: duckdb.DuckDBPyConnection, path: Path) -> DatabaseSchema:
    """Read the schema through an open connection (user tables of the main database only)."""

    def query(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    table_rows = con.execute(
        "SELECT table_name, coalesce(comment, '') FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT internal AND NOT temporary "
        "AND table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY table_name"
    ).fetchall()
    tables: list[TableInfo] = []
    for name, comment in table_rows:
        columns = con.execute(
            "SELECT column_name, data_type, coalesce(comment, '') FROM duckdb_columns() "
            "WHERE database_name = current_database() AND table_name = ? ORDER BY column_index",
            [name],
        ).fetchall()
        row_count = con.execute(f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0]
        infos = [ColumnInfo(name=c, type=t, comment=cm) for c, t, cm in columns]
        add_samples(query, quote_identifier(name), infos)
        tables.append(TableInfo(name=name, comment=comment, row_count=row_count, columns=infos))
    joins = merge_joins(_declared_joins(query), inferred_joins(query, tables))
    joins = merge_joins(joins, named_references(query, tables))
    return DatabaseSchema(path=str(path), fingerprint=file_fingerprint(path), tables=tables, joins=joins)


def _declared_joins(query: Callable[[str], list[tuple]]) -> list[JoinEdge]:
    rows = query(
        "SELECT table_name, constraint_column_names, referenced_table, referenced_column_names "
        "FROM duckdb_constraints() WHERE constraint_type = 'FOREIGN KEY' AND database_name = current_database()"
    )
    return [
        JoinEdge(left=t, right=rt, on=list(zip(cols, rcols, strict=False)), declared=True)
        for t, cols, rt, rcols in rows
    ]
