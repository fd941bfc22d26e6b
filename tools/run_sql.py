"""Tool: run one read-only query through the SQL policy and the sandbox."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.database import Database
from tools.registry import REGISTRY
from tools.sandbox import SandboxError


class RunSqlArgs(BaseModel):
    sql: str = Field(min_length=1, max_length=20_000, description="One DuckDB SELECT statement.")


class RunSqlResult(BaseModel):
    status: Literal["ok", "refused", "error"]
    sql: str = Field(description="The statement as checked and run (LIMIT cap applied).")
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    truncated: bool = False
    error: str | None = None
    error_kind: str | None = Field(None, description="policy code (not_read_only...) or timeout/execution/database")
    elapsed_ms: float = 0.0


@REGISTRY.tool(name="run_sql")
def run_sql(db: Database, args: RunSqlArgs) -> RunSqlResult:
    """Check a SQL query against the safety policy, then execute it read-only with a timeout and row cap."""
    decision = db.policy.check(args.sql)
    if not decision.allowed:
        return RunSqlResult(status="refused", sql=args.sql, error=decision.reason, error_kind=decision.code)
    try:
        result = db.sandbox.execute(decision.sql)
    except SandboxError as exc:
        status = "refused" if exc.kind == "refused" else "error"
        return RunSqlResult(status=status, sql=decision.sql, error=exc.message, error_kind=exc.kind)
    return RunSqlResult(
        status="ok",
        sql=decision.sql,
        columns=result.columns,
        rows=result.rows,
        truncated=result.truncated,
        elapsed_ms=result.elapsed_ms,
    )
