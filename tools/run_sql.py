"""Tool: run one read-only query through the SQL policy and the sandbox.

Access control has two layers here:
1. Static (tools/sql/policy.py): the role's denied tables and columns are refused wherever the query
   references them, before anything runs.
2. On output (this module, `denied_output_columns`): after the query ran, every result column whose
   output name contains a denied column name of the role (for the tables the query read, plus the
   role's "*" entries; case-insensitive, identifier tokens, so `max(birthCity)` counts) is checked
   again. The column passes only when its provenance is proven from the checked SQL: the matching
   projection of the outer SELECT (of every branch of a UNION/INTERSECT/EXCEPT) contains no `*`,
   no `COLUMNS(...)` and no column reference with a denied name - e.g. `nameFirst AS birthCity`.
   Otherwise (a `*`, a CTE or subquery column that reuses a denied name, SQL that cannot be re-parsed)
   the whole result is REFUSED with error_kind `access_denied`, not silently trimmed: a dropped
   column would make the answer wrong without saying why, and a refusal names the column so the
   query can be rewritten with another alias. The rows never leave the tool.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import sqlglot
from pydantic import BaseModel, Field
from sqlglot import exp

from tools.registry import tool
from tools.sql.database import Database
from tools.sql.engines.base import SandboxError, SandboxKind
from tools.sql.policy import AccessRole, PolicyCode

MAX_SQL_CHARS = 20_000


class RunSqlArgs(BaseModel):
    sql: str = Field(
        min_length=1,
        max_length=MAX_SQL_CHARS,
        description="One SELECT statement in the database's SQL dialect.",
    )


class RunSqlResult(BaseModel):
    status: Literal["ok", "refused", "error"]
    sql: str = Field(description="The statement as checked and run (LIMIT cap applied).")
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    truncated: bool = False
    error: str | None = None
    error_kind: PolicyCode | SandboxKind | None = Field(
        None, description="policy code (not_read_only...) or timeout/execution/database"
    )
    elapsed_ms: float = 0.0


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _denied_names(role: AccessRole | None, tables: list[str]) -> set[str]:
    if role is None:
        return set()
    read = {t.lower() for t in tables}
    return {
        c.lower() for t, cols in role.denied_columns.items() if t == "*" or t.lower() in read for c in cols
    }


def _branches(tree: exp.Expression) -> list[exp.Select] | None:
    """The SELECTs whose projections make up the output columns (every branch of a set operation)."""
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    if isinstance(tree, exp.Select):
        return [tree]
    if isinstance(tree, exp.SetOperation):
        left, right = _branches(tree.this), _branches(tree.expression)
        return None if left is None or right is None else left + right
    return None


def _proven_safe(projection: exp.Expression, denied: set[str]) -> bool:
    for node in projection.walk():
        if isinstance(node, exp.Star | exp.Columns):
            return False
        if isinstance(node, exp.Column) and node.name.lower() in denied:
            return False
    return True


def denied_output_columns(
    sql: str, columns: list[str], role: AccessRole | None, tables: list[str], dialect: str = "duckdb"
) -> list[str]:
    """Output columns named like a denied column whose provenance the checked SQL does not prove safe."""
    denied = _denied_names(role, tables)
    hits = [i for i, name in enumerate(columns) if {t.lower() for t in _IDENTIFIER.findall(name)} & denied]
    if not hits:
        return []
    try:
        branches = _branches(sqlglot.parse_one(sql, dialect=dialect))
    except Exception:
        branches = None
    unproven = []
    for i in hits:
        proven = branches is not None and all(
            i < len(b.expressions)
            and len(b.expressions) == len(columns)
            and _proven_safe(b.expressions[i], denied)
            for b in branches
        )
        if not proven:
            unproven.append(columns[i])
    return unproven


@tool(name="run_sql")
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
    role = getattr(db, "role", None)
    leaked = denied_output_columns(decision.sql, result.columns, role, decision.tables, db.config.dialect)
    if leaked:
        name = role.name if role is not None else "this"
        return RunSqlResult(
            status="refused",
            sql=decision.sql,
            error=f"The result has column(s) {', '.join(leaked)} that the {name} role may not see, and their "
            "origin could not be proven from the query; select other columns or use an alias that is not a "
            "restricted column name.",
            error_kind="access_denied",
        )
    return RunSqlResult(
        status="ok",
        sql=decision.sql,
        columns=result.columns,
        rows=result.rows,
        truncated=result.truncated,
        elapsed_ms=result.elapsed_ms,
    )
