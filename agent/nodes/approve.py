"""Approve: with `limits.approve_sql: true`, a person sees the checked SQL before it runs.

The run pauses with LangGraph's `interrupt()`; the reply resumes it: yes (run it), no (do not), or
an edited SELECT, which the policy checks again before it runs (the person wrote it, so it is not
asked about twice). A repaired query is a new query: it is asked about again.
"""

from __future__ import annotations

import re

from langgraph.types import interrupt

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState

_YES = re.compile(r"\s*(y|yes|ok|okay|run|run it|approve|approved|go)\s*[.!]?\s*", re.IGNORECASE)
_NO = re.compile(r"\s*(n|no|stop|cancel|deny|denied|reject|don't|do not)\b.*", re.IGNORECASE | re.DOTALL)
_SQL = re.compile(r"\s*(select|with)\b", re.IGNORECASE)


def approval_request(state: AgentState) -> dict:
    return {
        "kind": "approve_sql",
        "message": f"Run this query?\n{state.sql}\nReply yes, no, or an edited SELECT.",
        "sql": state.sql,
    }


@node("approve")
def approve(state: AgentState, ctx: AgentContext) -> dict:
    reply = interrupt(approval_request(state))
    text = str(reply if not isinstance(reply, dict) else reply.get("sql") or reply.get("answer") or "")
    if _SQL.match(text):
        return {"sql": text.strip(), "approved": True, "_detail": "edited by the reviewer"}
    if _YES.fullmatch(text) or reply is True:
        return {"approved": True, "_detail": "approved"}
    if _NO.match(text) or reply is False:
        return {
            "status": "refused",
            "error": "The query was not approved, so it did not run.",
            "error_kind": "not_approved",
            "_detail": "not approved",
        }
    return {
        "status": "refused",
        "error_kind": "not_approved",
        "_detail": "unclear reply",
        "error": f"The reply {text[:80]!r} is not yes, no or a SELECT, so the query did not run.",
    }
