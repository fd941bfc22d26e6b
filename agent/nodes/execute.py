"""Execute: run the checked SQL in the read-only sandbox through the run_sql tool."""

from __future__ import annotations

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState
from tools.run_sql import RunSqlArgs


@node("execute")
def execute(state: AgentState, ctx: AgentContext) -> dict:
    result = ctx.tools.call("run_sql", ctx.db, RunSqlArgs(sql=state.sql))
    if result.status == "ok":
        empty = not result.rows
        return {
            "columns": result.columns,
            "rows": result.rows,
            "truncated": result.truncated,
            # An empty result is suspicious enough to deserve one repair attempt (wrong code, wrong join).
            "error": "The query ran but returned no rows." if empty else None,
            "error_kind": "empty_result" if empty else None,
            "_detail": f"{len(result.rows)} rows in {result.elapsed_ms:.0f} ms",
        }
    update = {
        "error": result.error,
        "error_kind": result.error_kind,
        "_detail": f"{result.error_kind}: {result.error}",
    }
    if result.status == "refused":
        update["status"] = "refused"
    return update
