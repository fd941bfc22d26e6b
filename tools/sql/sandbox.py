"""The names that lived here before tools/sql/engines/: a query's result and errors, and `Sandbox`,
DuckDB's engine opened on a file with explicit limits (tests and scripts use it directly).

The sandbox itself is each engine's `execute` (tools/sql/engines/base.py describes the contract,
tools/sql/engines/duckdb.py the DuckDB one).
"""

from __future__ import annotations

from pathlib import Path

from tools.sql.engines.base import EngineLimits, ExecutionResult, SandboxError, SandboxKind, to_jsonable
from tools.sql.engines.duckdb import DuckDBEngine

__all__ = ["ExecutionResult", "Sandbox", "SandboxError", "SandboxKind", "to_jsonable"]


class Sandbox(DuckDBEngine):
    """`DuckDBEngine` on `db_path` with these limits."""

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
        super().__init__(
            db_path,
            EngineLimits(
                timeout_s=timeout_s,
                max_rows=max_rows,
                memory_limit=memory_limit,
                threads=threads,
                max_result_bytes=max_result_bytes,
            ),
        )
