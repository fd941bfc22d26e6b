"""The engines the agent can run on, chosen by `database.url` (tools/sql/engines/base.py: the interface).

    data/lahman.duckdb                          DuckDB file (a path without a scheme, or duckdb://PATH)
    postgresql://reader@host:5432/lahman        PostgreSQL (psycopg 3, a read-only login role)
    spark-local:///data/spark-warehouse;database=lahman   Spark local mode on a warehouse directory
    sc://host:15002/;database=lahman            Spark SQL on a cluster through Spark Connect

An engine's module is imported only when a URL names it, so a DuckDB user needs no server driver.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from tools.sql.engines.base import Engine, EngineLimits


@dataclass(frozen=True)
class EngineKind:
    """One row of the table below: the URL schemes an engine serves and where its class lives."""

    name: str
    schemes: tuple[str, ...]  # "" is a plain path
    module: str
    cls: str
    dialect: str  # sqlglot's dialect: what the model writes and the policy parses
    label: str  # how prompts and messages name it

    def load(self) -> type[Engine]:
        return getattr(importlib.import_module(self.module), self.cls)


ENGINES: tuple[EngineKind, ...] = (
    EngineKind("duckdb", ("", "duckdb"), "tools.sql.engines.duckdb", "DuckDBEngine", "duckdb", "DuckDB"),
    EngineKind("postgres", ("postgresql", "postgres"), "tools.sql.engines.postgres", "PostgresEngine",
               "postgres", "PostgreSQL"),
    EngineKind("spark", ("spark-local", "sc"), "tools.sql.engines.spark", "SparkEngine", "spark", "Spark"),
)  # fmt: skip


def url_scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def engine_kind(url: str) -> EngineKind:
    """The engine `url` names, or a ValueError that lists the ones there are."""
    scheme = url_scheme(url)
    for kind in ENGINES:
        if scheme in kind.schemes:
            return kind
    known = ", ".join(f"{s}://" for k in ENGINES for s in k.schemes if s)
    raise ValueError(
        f"database.url {url!r}: no engine serves the scheme {scheme + '://'!r}; use a DuckDB file path or one of "
        f"{known}."
    )


def with_password(url: str, password: str) -> str:
    """`url` with its password set (from database.password_env), percent-encoded."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def redacted(url: str) -> str:
    """`url` as messages and traces may show it: any password replaced by ***."""
    url = re.sub(r"(;(?:token|password)=)[^;]*", r"\1***", url, flags=re.IGNORECASE)  # Spark Connect's
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def dialect_label(dialect: str) -> str:
    """How prompts name a dialect: 'duckdb' -> 'DuckDB', 'postgres' -> 'PostgreSQL'."""
    return next((k.label for k in ENGINES if k.dialect == dialect), dialect)


def open_engine(url: str, limits: EngineLimits) -> Engine:
    """Open the engine `url` names (raises SandboxError("database", ...) when it cannot connect)."""
    return engine_kind(url).load().open(url, limits)


__all__ = [
    "ENGINES",
    "Engine",
    "EngineKind",
    "EngineLimits",
    "dialect_label",
    "engine_kind",
    "open_engine",
    "redacted",
    "url_scheme",
    "with_password",
]
