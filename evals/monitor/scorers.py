"""Code scorers of one answer: cheap, deterministic, no LM. Each is a named value on the trace.

valid_sql         the final SQL passed the policy and ran (None when no SQL was written)
non_empty_result  the query returned rows (answers only)
latency_ms        the answer's wall time in the server
tokens            LM tokens the answer spent (prompt + completion)
refused, clarified, errored   how the turn ended
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SOURCE_ID = "sqlagent.monitor"
CODE_SCORERS = ("valid_sql", "non_empty_result", "latency_ms", "tokens", "refused", "clarified", "errored")


@dataclass(frozen=True)
class Score:
    name: str
    value: Any
    rationale: str | None = None


def code_scores(result: Any, latency_ms: float) -> list[Score]:
    """`result`: an AskResult (status, sql, rows, error_kind, nodes)."""
    status = result.status
    scores = []
    if result.sql:
        ran = status == "ok"
        scores.append(
            Score("valid_sql", ran, None if ran else f"the last query did not run ({result.error_kind})")
        )
    if status == "ok":
        scores.append(Score("non_empty_result", bool(result.rows), f"{len(result.rows)} rows"))
    tokens = sum(n.tokens for n in result.nodes)
    by_node = ", ".join(f"{n.name} {n.tokens}" for n in result.nodes if n.tokens) or "no LM tokens"
    scores += [
        Score("latency_ms", round(latency_ms, 1)),
        Score("tokens", tokens, by_node),
        Score("refused", status == "refused", result.error_kind if status == "refused" else None),
        Score("clarified", status == "clarify"),
        Score("errored", status == "error", result.error_kind if status == "error" else None),
    ]
    return scores
