"""The executor interface: what every engine (DuckDB, PostgreSQL, Spark...) gives the rest of the agent.

An engine is opened from `database.url` (tools/sql/engines/__init__.py picks the class by the URL's
scheme) and is the only code that talks to the database. It does five things:

* `execute(sql)`: run one model-written SELECT, in the engine's `dialect`, as the second line of
  defence behind the sqlglot policy: read-only whatever the SQL says, stopped after
  `limits.timeout_s`, at most `limits.max_rows` rows and `limits.max_result_bytes` of values kept
  (`truncated=True` when either cut), failures raised as `SandboxError(kind, message)`;
* `read(sql)`: every row of a query the project wrote itself (introspection, the value index), also
  read-only, streamed in batches, without the row cap;
* `introspect()`: the tables, columns, comments, samples and join paths as a `DatabaseSchema`
  (tools/sql/introspect.py); `fingerprint()` says when that must be read again;
* `attachable_file()` or `read`: where tools/sql/values.py gets the distinct short text values it
  copies once into its DuckDB index file;
* `checks()`: what `sqlagent doctor` reports about the connection (e.g. that it cannot write).

Every engine must hold its guarantees on its own, for SQL that bypasses the policy (a policy bug, an
operator typing raw SQL): tests/security runs the attack suites straight through `execute`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from tools.sql.introspect import DatabaseSchema

SandboxKind = Literal["database", "timeout", "execution", "refused"]


class SandboxError(Exception):
    """A query could not run, and why (`kind`): `database` (cannot open or reach the database),
    `timeout`, `execution` (the engine rejected the SQL), `refused` (the engine's own statement guard)."""

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


class EngineLimits(BaseModel):
    """The per-query limits every engine enforces (from the `limits` section of the configuration)."""

    timeout_s: float = 10
    max_rows: int = 1000
    max_result_bytes: int = 5_000_000
    memory_limit: str = "2GB"  # DuckDB's memory_limit
    threads: int = 2  # DuckDB's threads
    work_mem: str = "64MB"  # PostgreSQL's work_mem (per sort or hash, per query)
    connect_timeout_s: float = 5  # server engines: opening a connection, and waiting for a pooled one
    pool_size: int = 4  # server engines: connections kept open (one per concurrent question)
    build_timeout_s: float = 300  # `read`: introspection and the value index
    # Server engines: refuse to open with a login that can write (database.require_read_only_role).
    require_read_only_role: bool = True


class EngineCheck(BaseModel):
    """One line of `sqlagent doctor` about the engine."""

    name: str
    ok: bool
    detail: str


class Engine(ABC):
    """One open database. Subclasses set `dialect` (sqlglot's name, what the policy parses and the model
    writes) and `label` (how prompts and messages name that SQL dialect)."""

    dialect: ClassVar[str]
    label: ClassVar[str]
    # Called on the querying thread after the engine reopened a database replaced under it (a DuckDB
    # file a deploy renamed over the path); tools/sql/database.py sets it. Server engines never do.
    on_reopen: Callable[[], None] | None = None

    def __init__(self, url: str, limits: EngineLimits) -> None:
        self.url = url
        self.limits = limits

    # -- opening ------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, limits: EngineLimits) -> Engine:
        """Connect, failing early with `SandboxError("database", what to do)` when it cannot."""
        return cls(url, limits)

    @classmethod
    def resolve_url(cls, url: str, root: Path) -> str:
        """`url` with any relative path in it made absolute against `root` (the project root)."""
        return url

    # -- identity -----------------------------------------------------------------------------------

    @property
    @abstractmethod
    def name(self) -> str:
        """A short, file-name-safe name (cache files, ids, metadata): 'lahman'."""

    @property
    def display(self) -> str:
        """The database as messages name it, without secrets."""
        return self.url

    @abstractmethod
    def fingerprint(self) -> str:
        """Changes whenever the schema or the data may have changed: the introspection and value-index
        caches are keyed by it."""

    # -- queries ------------------------------------------------------------------------------------

    @abstractmethod
    def execute(self, sql: str) -> ExecutionResult:
        """Run one model-written SELECT within the limits (see the module docstring)."""

    @abstractmethod
    def read(self, sql: str, batch_rows: int = 10_000) -> Iterator[list[tuple]]:
        """Every row of a query the project wrote itself, in batches, read-only, in `build_timeout_s`."""

    def read_all(self, sql: str) -> list[tuple]:
        return [row for batch in self.read(sql) for row in batch]

    # -- what the agent knows about the database ----------------------------------------------------

    @abstractmethod
    def introspect(self) -> DatabaseSchema:
        """The schema read afresh (tools/sql/schema_cache.py caches it by `fingerprint`)."""

    def attachable_file(self) -> Path | None:
        """A database file DuckDB can ATTACH read-only (the value index is then built inside DuckDB);
        None for a server, whose distinct values tools/sql/values.py copies out through `read`."""
        return None

    def checks(self) -> list[EngineCheck]:
        """Engine-specific doctor checks (read-only role, versions); none by default."""
        return []

    # -- lifecycle ----------------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- shared by the engines ----------------------------------------------------------------------------


def clean_error(error: BaseException) -> str:
    """The first line of an engine's error message, bounded."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first[:500]


def timeout_message(timeout_s: float) -> str:
    return f"The query was stopped after {timeout_s:g} s; simplify it, filter earlier or aggregate before joining."


def to_jsonable(value: Any) -> Any:
    """Convert a driver's Python value into something `json.dumps` accepts."""
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


def keep_rows(
    raw: Iterable[tuple], max_rows: int, max_result_bytes: int, more: bool
) -> tuple[list[list[Any]], bool]:
    """The JSON-safe rows within the byte budget, and whether anything was cut (`more`: the engine
    saw a row past `max_rows`)."""
    truncated = more
    rows: list[list[Any]] = []
    size = 0
    for record in raw:
        if len(rows) >= max_rows:
            return rows, True
        row = [to_jsonable(v) for v in record]
        size += sum(_approx_size(v) for v in row)
        if size > max_result_bytes:
            return rows, True
        rows.append(row)
    return rows, truncated
