"""`--explain` on `sqlagent ask` and `sqlagent sql`: the query in plain words after the answer or the
rows, through `Agent.explain` (agent/explain.py) like the web page's Explain button.

With --format json the text is the field `explanation` and the step's whole result `explain`; the
command fails (exit 1) when an explanation was asked for and not given, the rows printed all the same.
"""

from __future__ import annotations

from typing import Any

from agent.apps.cli_output import EXIT_FAIL, EXIT_OK
from agent.config import Settings


def explain_turn(bot: Any, result: Any) -> Any:
    """The turn's SQL explained (a query awaiting approval too), None when the turn wrote none."""
    if not result.sql:
        return None
    return bot.explain(result.sql, result.rewritten_question or result.question, about=result.trace_id)


def explain_query(settings: Settings, db: str | None, role: str | None, sql: str) -> Any:
    """A query typed by hand, explained without a question. Raises when the agent cannot start."""
    from agent.service import Agent

    return Agent(settings, db_path=db, role=role, persistent_threads=False).explain(sql)


def explanation_fields(explained: Any) -> dict[str, Any]:
    """`explanation`: the text (null when there was no SQL, or it was refused or failed);
    `explain`: the step's result (status, error, trace id, tokens)."""
    return {
        "explanation": explained.explanation if explained else None,
        "explain": explained.model_dump() if explained else None,
    }


def explanation_text(explained: Any) -> str:
    if explained.status == "ok":
        return f"Explanation: {explained.explanation}"
    return f"Explanation [{explained.status}]: {explained.error}"


def explain_code(explained: Any) -> int:
    return EXIT_OK if explained is None or explained.status == "ok" else EXIT_FAIL
