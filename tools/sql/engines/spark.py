"""Spark SQL: PySpark 4 in local mode on one machine, or a cluster through Spark Connect, one code path.

`database.url` is `spark-local:///WAREHOUSE;database=NAME` or `sc://HOST:PORT/;database=NAME`
(tools/sql/engines/spark_session.py reads it and opens the process-wide session, lazily, once).

The second layer behind `tools.sql.policy.SqlPolicy`; it holds on its own for SQL that bypasses the
policy (tests/security/test_spark_engine.py sends the attacks straight here):

* the statement guard (tools/sql/engines/spark_guard.py): one query, planned but not run, whose
  analyzed plan reads catalog tables only and calls no reflection, script or user-defined function;
* a timeout through job cancellation: the query's jobs carry a tag of their own (local mode: a
  SparkContext job tag; Spark Connect: an operation tag), and after `limits.timeout_s` a watchdog
  cancels that tag until the call returns - again and again, because a job that starts after the
  first cancel is not cancelled by it;
* at most `max_rows + 1` rows are collected (`limit`), at most `max_result_bytes` of values kept;
* every engine gets its own session (local: `newSession()` of the process's, so its current
  database and SQL settings are its own; Connect: a server-side session per URL).

Introspection reads Spark's catalog (`spark.catalog`: tables, columns, types, table and column
COMMENTs) into the same DatabaseSchema as DuckDB's; samples and join paths come from the shared SQL
in tools/sql/introspect.py, written in DuckDB's dialect and transpiled here by sqlglot. The value
index copies the distinct short text values out once (tools/sql/values.py `copy_index`).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot

from tools.sql.engines import spark_guard
from tools.sql.engines.base import (
    Engine,
    EngineCheck,
    EngineLimits,
    ExecutionResult,
    SandboxError,
    keep_rows,
    timeout_message,
)
from tools.sql.engines.spark_session import (
    SparkTarget,
    connect_session,
    java_runtime,
    local_session,
    parse_url,
)
from tools.sql.introspect import (
    CACHE_VERSION,
    ColumnInfo,
    DatabaseSchema,
    TableInfo,
    add_samples,
    inferred_joins,
    merge_joins,
    named_references,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Spark's type names in DuckDB's vocabulary (tools/sql/introspect.py: one vocabulary on every engine).
_TYPES = {
    "string": "VARCHAR", "int": "INTEGER", "integer": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT",
    "tinyint": "TINYINT", "double": "DOUBLE", "float": "FLOAT", "boolean": "BOOLEAN", "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP", "binary": "BLOB",
}  # fmt: skip
_CANCEL_EVERY_S = 0.25


def duckdb_type(spark_type: str) -> str:
    """A Spark column type as DuckDB names it: string -> VARCHAR, decimal(9,2) -> DECIMAL(9,2)."""
    lowered = spark_type.strip().lower()
    if lowered in _TYPES:
        return _TYPES[lowered]
    if re.fullmatch(r"(var)?char\(\d+\)", lowered):
        return "VARCHAR"
    try:
        return sqlglot.exp.DataType.build(spark_type, dialect="spark").sql(dialect="duckdb").upper()
    except (sqlglot.errors.ParseError, ValueError):
        return spark_type.upper()


class SparkEngine(Engine):
    dialect = "spark"
    label = "Spark"  # "Write one Spark SQL query"

    def __init__(self, url: str, limits: EngineLimits, target: SparkTarget) -> None:
        super().__init__(url, limits)
        self.target = target
        self._session: SparkSession | None = None
        self._fingerprint: str | None = None
        self._open_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, limits: EngineLimits) -> SparkEngine:
        try:
            target = parse_url(url)
        except ValueError as error:
            raise SandboxError("database", str(error)) from None
        engine = cls(url, limits, target)
        engine.session()  # fail early: no Java, no warehouse, a server that does not answer
        return engine

    @classmethod
    def resolve_url(cls, url: str, root: Path) -> str:
        """`url` with a relative local warehouse made absolute against `root` (the project root)."""
        target = parse_url(url, root)
        if target.mode != "local":
            return url
        return f"spark-local:///{target.warehouse}" + (
            f";database={target.database}" if target.database else ""
        )

    # -- the session --------------------------------------------------------------------------------

    @property
    def classic(self) -> bool:
        return self.target.mode == "local"

    def session(self) -> SparkSession:
        """This engine's Spark session, opened on first use (module docstring)."""
        with self._open_lock:
            if self._session is None:
                limits = self.limits
                if self.target.mode == "local":
                    assert self.target.warehouse is not None
                    base = local_session(
                        self.target.warehouse, threads=limits.threads, memory_limit=limits.memory_limit
                    )
                    session = base.newSession()
                else:
                    assert self.target.remote is not None
                    session = connect_session(
                        self.target.remote, self.target.display, connect_timeout_s=limits.connect_timeout_s
                    )
                self._use_database(session)
                self._session = session
            return self._session

    def _use_database(self, session: SparkSession) -> None:
        database = self.target.database
        if not database:
            return
        catalog, _, name = database.rpartition(".")
        try:
            if catalog:
                session.catalog.setCurrentCatalog(catalog)
            exists = session.catalog.databaseExists(name)
        except Exception as error:
            raise SandboxError("database", f"{self.display}: {_spark_error(error)}") from None
        if not exists:
            raise SandboxError(
                "database",
                f"{self.display}: the catalog has no database {database!r}; load the demo one with "
                "`python -m data.load_spark` or fix ;database= in database.url.",
            )
        session.catalog.setCurrentDatabase(name)

    # -- identity -----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        if self.target.database:
            return re.sub(r"[^A-Za-z0-9_]+", "_", self.target.database.rsplit(".", 1)[-1])
        return "spark"

    @property
    def display(self) -> str:
        return self.target.display

    def fingerprint(self) -> str:
        """Changes when a table is created, altered, replaced or re-analyzed: the catalog's own record of
        each table (DESCRIBE TABLE EXTENDED: created time, location, statistics, properties). Read once
        per engine (one command per table), like a process reads a DuckDB file's schema once."""
        if self._fingerprint is None:
            digest = hashlib.sha256(f"{self.display}|v{CACHE_VERSION}".encode())
            session = self.session()
            for table in self._tables(session):
                described = session.sql(f"DESCRIBE TABLE EXTENDED {_quote(table.name)}").collect()
                digest.update(repr([tuple(row) for row in described if row[0] != "Last Access"]).encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    # -- queries ------------------------------------------------------------------------------------

    def execute(self, sql: str) -> ExecutionResult:
        limits = self.limits
        start = time.perf_counter()
        with self._deadline(limits.timeout_s) as expired:
            df = self._plan(sql)
            columns = list(df.columns)
            try:
                raw = df.limit(limits.max_rows + 1).collect()
            except Exception as error:
                raise _run_error(error, expired(), limits.timeout_s) from None
        elapsed_ms = (time.perf_counter() - start) * 1000
        rows, truncated = keep_rows(
            (tuple(r) for r in raw[: limits.max_rows]), limits.max_rows, limits.max_result_bytes,
            more=len(raw) > limits.max_rows,
        )  # fmt: skip
        return ExecutionResult(
            columns=columns, rows=rows, row_count=len(rows), truncated=truncated, elapsed_ms=elapsed_ms
        )

    def read(self, sql: str, batch_rows: int = 10_000) -> Iterator[list[tuple]]:
        # The project's own SQL passes the same guard: it is read-only whatever it says.
        with self._deadline(self.limits.build_timeout_s) as expired:
            df = self._plan(sql)
            batch: list[tuple] = []
            try:
                for row in df.toLocalIterator():
                    batch.append(tuple(row))
                    if len(batch) >= batch_rows:
                        yield batch
                        batch = []
            except Exception as error:
                raise _run_error(error, expired(), self.limits.build_timeout_s) from None
            if batch:
                yield batch

    def _plan(self, sql: str) -> DataFrame:
        """The query planned (parsed and analyzed, nothing run) and passed by the guard."""
        session = self.session()
        spark_guard.refuse_command(sql)
        try:
            df = session.sql(spark_guard.wrap(sql))
            if not self.classic:
                df.columns  # noqa: B018 - Spark Connect analyzes lazily: parse errors surface here
        except Exception as error:
            message = _spark_error(error)
            if "PARSE_SYNTAX_ERROR" in message or type(error).__name__ == "ParseException":
                raise spark_guard.parse_refusal(sql, message) from None
            raise SandboxError("execution", message) from None
        spark_guard.check(df, self.classic)
        # EXPLAIN only plans (the guard above has passed): the optimized plan with its row estimates.
        spark_guard.check_joins(session.sql("EXPLAIN COST " + spark_guard.wrap(sql)).collect()[0][0])
        return df

    @contextmanager
    def _deadline(self, timeout_s: float):
        """Tag the jobs this thread starts; after `timeout_s`, cancel the tag until the block ends.
        Yields a function telling whether the deadline passed."""
        session = self.session()
        tag = f"sqlagent-{uuid.uuid4().hex}"
        done, expired = threading.Event(), threading.Event()

        def watchdog() -> None:
            if done.wait(timeout_s):
                return
            expired.set()
            while not done.is_set():
                self._cancel(session, tag)
                done.wait(_CANCEL_EVERY_S)

        if self.classic:
            session.sparkContext.addJobTag(tag)
        else:
            session.addTag(tag)
        guard = threading.Thread(target=watchdog, name="spark-query-deadline", daemon=True)
        guard.start()
        try:
            yield expired.is_set
        finally:
            done.set()
            if self.classic:
                session.sparkContext.removeJobTag(tag)
            else:
                session.removeTag(tag)

    def _cancel(self, session: SparkSession, tag: str) -> None:
        # Local mode: SparkSession.interruptTag does not reach jobs started through py4j threads
        # (measured: a running job was not found by its session tag), the SparkContext's job tag does.
        if self.classic:
            session.sparkContext.cancelJobsWithTag(tag)
        else:
            session.interruptTag(tag)

    # -- introspection ------------------------------------------------------------------------------

    def _tables(self, session: SparkSession) -> list[Any]:
        database = self.target.database.rsplit(".", 1)[-1] if self.target.database else None
        tables = session.catalog.listTables(database) if database else session.catalog.listTables()
        return sorted(
            (t for t in tables if not t.isTemporary and not t.name.startswith("_")), key=lambda t: t.name
        )

    def introspect(self) -> DatabaseSchema:
        """The current database's tables and views, with their COMMENTs, in DuckDB's type names."""
        session = self.session()
        database = self.target.database.rsplit(".", 1)[-1] if self.target.database else None

        def query(sql: str) -> list[tuple]:
            return self.read_all(sqlglot.transpile(sql, read="duckdb", write="spark")[0])

        tables: list[TableInfo] = []
        for table in self._tables(session):
            columns = [
                ColumnInfo(name=c.name, type=duckdb_type(c.dataType), comment=c.description or "")
                for c in session.catalog.listColumns(table.name, database)
            ]
            row_count = int(self.read_all(f"SELECT count(*) FROM {_quote(table.name)}")[0][0])
            add_samples(query, _duck_quote(table.name), columns)
            tables.append(TableInfo(name=table.name, comment=table.description or "", row_count=row_count,
                                    columns=columns))  # fmt: skip
        joins = merge_joins(inferred_joins(query, tables), named_references(query, tables))
        return DatabaseSchema(path=self.display, fingerprint=self.fingerprint(), tables=tables, joins=joins)

    def checks(self) -> list[EngineCheck]:
        """What doctor says: the Spark and Java versions, and that the guard refuses a write."""
        session = self.session()
        where = (
            f"local[{self.limits.threads}], warehouse {self.target.warehouse}"
            if self.classic
            else "Spark Connect"
        )
        java = f", Java {java_runtime()[1]}" if self.classic else ""
        checks = [EngineCheck(name="engine", ok=True, detail=f"Spark {session.version} ({where}{java})")]
        probes = {
            "write": "CREATE TABLE sqlagent_doctor_probe (x INT)",
            "reflection": "SELECT reflect('java.lang.System', 'getProperty', 'user.name')",
        }
        for what, probe in probes.items():
            try:
                self.execute(probe)
            except SandboxError as error:
                ok = error.kind == "refused"
                detail = (
                    f"a {what} is refused: {error.message}"
                    if ok
                    else f"a {what} probe failed: {error.message}"
                )
            else:
                ok, detail = (
                    False,
                    f"the statement guard let a {what} through ({probe}): do not use this engine",
                )
            checks.append(EngineCheck(name=f"engine {what}", ok=ok, detail=detail))
        return checks

    def close(self) -> None:
        # The session is the process's (other engines may share its JVM or server); it stops at exit.
        self._session = None


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _duck_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _spark_error(error: BaseException) -> str:
    """A PySpark or JVM error's message, first meaningful line, bounded."""
    java = getattr(error, "java_exception", None)
    text = (
        str(java.getMessage())
        if java is not None
        else (getattr(error, "getMessage", lambda: None)() or str(error))
    )
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    return first[:500]


def _run_error(error: BaseException, expired: bool, timeout_s: float) -> SandboxError:
    message = _spark_error(error)
    if expired or "OPERATION_CANCELED" in message or "cancelled" in message.lower():
        return SandboxError("timeout", timeout_message(timeout_s))
    return SandboxError("execution", message)
