"""Human feedback on traces: MLflow assessments written by the web app and read back for review.

A thumbs up/down is a `user_correctness` feedback (bool, rationale = the comment), the rubric a
`user_rubric` feedback (correct / partially / wrong, rationale = the reason), a corrected query an
`expected_sql` expectation, a label for an LLM judge a feedback named after the judge
(evals/judges/). All carry `AssessmentSource(HUMAN, <user>)`. A promoted trace gets the
tag `sqlagent.golden_id`, which takes it out of the review queue.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.entities import AssessmentSource
from mlflow.exceptions import MlflowException

CORRECTNESS = "user_correctness"
RUBRIC = "user_rubric"
EXPECTED_SQL = "expected_sql"
GOLDEN_TAG = "sqlagent.golden_id"
DB_TAG = "sqlagent.db"
ROLE_TAG = "sqlagent.role"
ROOT = "sqlagent.ask"


class TraceNotFound(LookupError):
    pass


class StoreUnavailable(RuntimeError):
    """The tracking store cannot be read or written right now (unwritable, locked, moved): retry later."""


# MLflow's sqlalchemy store turns every sqlite OperationalError (read-only file, cannot open the
# database or its journal, locked past the busy timeout) into this code.
_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"


def store_problem(exc: MlflowException, doing: str) -> StoreUnavailable | None:
    if exc.error_code != _UNAVAILABLE:
        return None
    cause = " ".join(str(exc.__cause__ or exc).split())
    cause = cause if len(cause) <= 200 else cause[:199] + "…"
    return StoreUnavailable(f"The tracking store cannot {doing} right now ({cause}); retry in a few seconds.")


def get_trace(trace_id: str):
    """The trace; TraceNotFound for an unknown or malformed id or a trace of another program, and
    StoreUnavailable when the store cannot be read (mlflow.get_trace says None to both: a client
    told "no such trace" would never retry)."""
    try:
        trace = mlflow.MlflowClient().get_trace(trace_id)
    except MlflowException as exc:
        problem = store_problem(exc, "be read")
        if problem is not None:
            raise problem from exc
        trace = None
    if trace is None:
        raise TraceNotFound(f"No trace {trace_id!r} in the tracking store.")
    return trace


def root_span(trace):
    spans = trace.data.spans
    return next((s for s in spans if s.name == ROOT), None) or next(
        (s for s in spans if s.parent_id is None), None
    )


def log_feedback(
    trace_id: str,
    value: bool,
    *,
    user: str = "web",
    comment: str | None = None,
    rubric: str | None = None,
    rubric_reason: str | None = None,
    corrected_sql: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[str]:
    """Log the human assessments on the trace; returns their ids. StoreUnavailable when the store
    refuses a write (the assessments this call logged before it stay). `labels`: a label per LLM
    judge, logged under the judge's name (what `sqlagent judges align` reads)."""
    try:
        return _log_feedback(
            trace_id,
            value,
            user=user,
            comment=comment,
            rubric=rubric,
            rubric_reason=rubric_reason,
            corrected_sql=corrected_sql,
            labels=labels or {},
        )
    except MlflowException as exc:
        problem = store_problem(exc, "record the feedback")
        if problem is not None:
            raise problem from exc
        raise


def _log_feedback(
    trace_id: str,
    value: bool,
    *,
    user: str,
    comment: str | None,
    rubric: str | None,
    rubric_reason: str | None,
    corrected_sql: str | None,
    labels: dict[str, str],
) -> list[str]:
    source = AssessmentSource(source_type="HUMAN", source_id=user)
    metadata = {"rubric": rubric} if rubric else None
    ids = [
        mlflow.log_feedback(
            trace_id=trace_id,
            name=CORRECTNESS,
            value=bool(value),
            rationale=comment or None,
            source=source,
            metadata=metadata,
        ).assessment_id
    ]
    if rubric:
        ids.append(
            mlflow.log_feedback(
                trace_id=trace_id, name=RUBRIC, value=rubric, rationale=rubric_reason or None, source=source
            ).assessment_id
        )
    for judge, label in labels.items():
        ids.append(
            mlflow.log_feedback(
                trace_id=trace_id, name=judge, value=label, rationale=comment or None, source=source
            ).assessment_id
        )
    if corrected_sql:
        ids.append(
            mlflow.log_expectation(
                trace_id=trace_id, name=EXPECTED_SQL, value=corrected_sql, source=source
            ).assessment_id
        )
    return ids


def assessment_dict(a) -> dict[str, Any]:
    kind = "expectation" if a.expectation is not None else "feedback"
    source = a.source
    return {
        "id": a.assessment_id,
        "name": a.name,
        "kind": kind,
        "value": a.value,
        "rationale": getattr(a, "rationale", None),
        "source_type": getattr(source, "source_type", None),
        "source_id": getattr(source, "source_id", None),
        "metadata": a.metadata or {},
        "create_time_ms": a.create_time_ms,
        "valid": getattr(a, "valid", True) is not False,
    }


def assessments(trace) -> list[dict[str, Any]]:
    """The trace's assessments, oldest first (superseded ones marked valid=False)."""
    items = [assessment_dict(a) for a in (trace.info.assessments or [])]
    return sorted(items, key=lambda a: a["create_time_ms"] or 0)


def latest(items: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    found = [a for a in items if a["name"] == name and a["valid"]]
    return found[-1] if found else None


def summary(trace) -> dict[str, Any]:
    """What the review queue shows for one trace."""
    root = root_span(trace)
    inputs = (root.inputs if root else None) or {}
    outputs = (root.outputs if root else None) or {}
    items = assessments(trace)
    correctness = latest(items, CORRECTNESS)
    rubric = latest(items, RUBRIC)
    expected = latest(items, EXPECTED_SQL)
    tags = trace.info.tags or {}
    if correctness is None:
        review = "unreviewed"
    else:
        review = "accepted" if correctness["value"] is True else "rejected"
    return {
        "trace_id": trace.info.trace_id,
        "timestamp_ms": trace.info.request_time,
        "question": inputs.get("question"),
        "thread_id": inputs.get("thread_id"),
        "sql": outputs.get("sql") if isinstance(outputs, dict) else None,
        "answer": outputs.get("answer") if isinstance(outputs, dict) else None,
        "status": outputs.get("status") if isinstance(outputs, dict) else None,
        "review": review,
        "feedback": None
        if correctness is None
        else {
            "value": correctness["value"],
            "comment": correctness["rationale"],
            "by": correctness["source_id"],
            "rubric": rubric["value"] if rubric else None,
            "rubric_reason": rubric["rationale"] if rubric else None,
        },
        "expected_sql": expected["value"] if expected else None,
        "golden_id": tags.get(GOLDEN_TAG),
        "is_agent_trace": root is not None and root.name == ROOT and root.parent_id is None,
    }


def review_queue(limit: int = 50) -> list[dict[str, Any]]:
    """Agent traces awaiting review (no feedback yet, or negative feedback), newest first."""
    from mlflow.tracking.fluent import _get_experiment_id

    traces = mlflow.search_traces(
        locations=[_get_experiment_id()],
        order_by=["timestamp_ms DESC"],
        max_results=max(limit * 4, 100),
        return_type="list",
    )
    out = []
    for trace in traces:
        item = summary(trace)
        if item["is_agent_trace"] and item["golden_id"] is None and item["review"] != "accepted":
            out.append(item)
        if len(out) >= limit:
            break
    return out
