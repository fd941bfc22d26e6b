"""A read-only, locked-down DuckDB connection that runs one SELECT at a time with a timeout.

This is the second layer behind `tools.sql.policy.SqlPolicy`; it must hold on its own for SQL that bypasses
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
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel

__all__ = ["ExecutionResult", "Sandbox", "SandboxError"]


SandboxKind = Literal["database", "timeout", "execution", "refused"]


class SandboxError(Exception):
    """A query could not run, and why (`kind`)."""

    def __init__(self, kind: SandboxKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __repr__(self) -> str:
        return f"SandboxError(kind={self.kind!r}, message={self.message!r})"


class ExecutionResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


def _clean_error(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first[:500]


def to_jsonable(value: Any) -> Any:
    """Convert a DuckDB Python value into something `json.dumps` accepts."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    return str(value)


def _approx_size(value: Any) -> int:
    if value is None or isinstance(value, bool | int | float):
        return 8
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, dict):
        return sum(len(str(k)) + _approx_size(v) for k, v in value.items()) + 2
    if isinstance(value, list):
        return sum(_approx_size(v) for v in value) + 2
    return len(str(value))


class Sandbox:
    def __init__(
        self,
        db_path: str | Path,
        *,
        timeout_s: float,
        max_rows: int,
        memory_limit: str,
        threads: int,
        max_result_bytes: int = 5_000_000,
    ) -> None:
        self.db_path = Path(db_path)
        self.timeout_s = float(timeout_s)
        self.max_rows = int(max_rows)
        self.max_result_bytes = int(max_result_bytes)
        self.memory_limit = str(memory_limit)
        if not self.db_path.is_file():
            raise SandboxError(
                "database",
                f"The database file {self.db_path} does not exist; build it first (see README) or fix "
                "database.path in the configuration.",
            )
        config = {
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_community_extensions": False,
            "allow_unsigned_extensions": False,
            "allow_persistent_secrets": False,
            "temp_directory": "",
            "threads": int(threads),
            "memory_limit": str(memory_limit),
            "lock_configuration": True,
        }
        try:
            self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(
                str(self.db_path), read_only=True, config=config
            )
        except duckdb.Error as error:
            raise SandboxError(
                "database", f"Cannot open the database {self.db_path}: {_clean_error(error)}"
            ) from None

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- execution ---------------------------------------------------------------------------------

    def execute(self, sql: str) -> ExecutionResult:
        if self._con is None:
            raise SandboxError("database", "The sandbox is closed.")
        cursor = self._con.cursor()
        try:
            self._guard(cursor, sql)
            return self._run(cursor, sql)
        finally:
            cursor.close()

    def _guard(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> None:
        try:
            statements = cursor.extract_statements(sql)
        except duckdb.Error as error:
            raise SandboxError("execution", _clean_error(error)) from None
        if len(statements) != 1:
            raise SandboxError("refused", f"Exactly one statement is allowed; found {len(statements)}.")
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            name = str(kind).rsplit(".", 1)[-1]
            raise SandboxError("refused", f"Only SELECT statements can run; found {name}.")

    def _run(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> ExecutionResult:
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            cursor.interrupt()

        timer = threading.Timer(self.timeout_s, stop)
        timer.daemon = True
        start = time.perf_counter()
        timer.start()
        try:
            cursor.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            raw = cursor.fetchmany(self.max_rows + 1)
        except duckdb.Error as error:
            if timed_out.is_set() or isinstance(error, duckdb.InterruptException):
                raise SandboxError(
                    "timeout",
                    f"The query was stopped after {self.timeout_s:g} s; simplify it, filter earlier or "
                    "aggregate before joining.",
                ) from None
            if isinstance(error, duckdb.OutOfMemoryException):
                raise SandboxError(
                    "execution",
                    f"The query ran out of memory (limits.memory_limit={self.memory_limit}); filter earlier "
                    "or aggregate before joining.",
                ) from None
            raise SandboxError("execution", _clean_error(error)) from None
        finally:
            timer.cancel()
        elapsed_ms = (time.perf_counter() - start) * 1000

        truncated = len(raw) > self.max_rows
        rows: list[list[Any]] = []
        size = 0
        for record in raw[: self.max_rows]:
            row = [to_jsonable(v) for v in record]
            size += sum(_approx_size(v) for v in row)
            if size > self.max_result_bytes:
                truncated = True
                break
            rows.append(row)
        return ExecutionResult(
            columns=columns, rows=rows, row_count=len(rows), truncated=truncated, elapsed_ms=elapsed_ms
        )
