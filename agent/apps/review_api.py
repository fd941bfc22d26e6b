"""The API routes over stored traces: read one, post feedback on it, the review queue, promotion.

Who may touch which trace: its own user (the `mlflow.trace.user` metadata the agent wrote), or
anyone with the `review` permission. Rows (and the answer that quotes them) are only shown to a
reader with the role the question ran with or an unrestricted one, and a corrected SQL runs with
the caller's role: a reviewer bound to `public` cannot read Salaries through an analyst's trace or
through a "correction".
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from mlflow.tracing.constant import TraceMetadataKey

from agent.apps.auth import Auth, Principal, unscoped_thread
from agent.apps.export import MEDIA_TYPES, rows_file
from agent.apps.payloads import FeedbackIn, GoldenIn, SafeJSONResponse
from agent.charts import chart_spec
from agent.config import Settings, resolve_path
from evals import feedback, promotion


def trace_user(trace) -> str | None:
    return (trace.info.trace_metadata or {}).get(TraceMetadataKey.TRACE_USER)


def review_routes(settings: Settings, gate: Auth, golden_file: Path) -> APIRouter:
    router = APIRouter(default_response_class=SafeJSONResponse)
    access_file = resolve_path(settings.database.access_file)
    # Defaults, not Annotated aliases: with postponed annotations FastAPI cannot see local names.
    anyone, giver, reviewer = (
        Depends(gate.principal),
        Depends(gate.require("feedback")),
        Depends(gate.require("review")),
    )

    def load_trace(trace_id: str, who: Principal):
        try:
            trace = feedback.get_trace(trace_id)
        except feedback.TraceNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        owner = trace_user(trace)
        if who.authenticated and not who.can("review") and owner != who.name:
            if owner is None:  # a CLI question, or the store refused the metadata write (bench_faults)
                raise HTTPException(
                    403,
                    f"Trace {trace_id} has no recorded user, so nobody can show it is yours: only a "
                    "user with the 'review' permission may read or review it.",
                )
            raise HTTPException(
                403,
                f"Trace {trace_id} is another user's question: reading or reviewing it "
                "needs the 'review' permission.",
            )
        return trace

    def trace_role(trace) -> str:
        from tools.sql.policy import default_role_name

        return (trace.info.tags or {}).get(feedback.ROLE_TAG) or default_role_name(access_file)

    def sees_rows(who: Principal, trace) -> bool:
        """The rows a question returned are shown to a reader with its role, or with a role that
        restricts nothing (every field of it but its name and description empty: a restriction
        added to roles later counts as one)."""
        from tools.sql.policy import load_roles

        if not who.authenticated or trace_role(trace) == who.role:
            return True
        role = load_roles(access_file).get(who.role or "")
        return role is not None and all(
            value in (None, [], {}, "")
            for key, value in role.model_dump().items()
            if key not in ("name", "description")
        )

    def trace_db(trace, who: Principal):
        """The trace's database, with the caller's role (the trace's own without auth)."""
        from tools.sql.database import open_database

        tags = trace.info.tags or {}
        role = who.role if who.authenticated else tags.get(feedback.ROLE_TAG) or None
        return open_database(settings.database_config(tags.get(feedback.DB_TAG) or None), role)

    def timeline(trace_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The trace's node timeline and what its last execute step returned (columns, rows)."""
        from agent.apps.trace_view import trace_timeline

        try:
            view = trace_timeline(settings, trace_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        execute = [n for n in view["nodes"] if n["name"] == "execute"]
        return view, (execute[-1]["outputs"] if execute else {}) or {}

    def withheld_message(who: Principal, trace) -> str:
        return f"The question ran with role {trace_role(trace)!r}, not yours ({who.role!r})."

    @router.get("/api/traces/{trace_id}")
    def get_trace(trace_id: str, who: Principal = anyone) -> dict[str, Any]:
        trace = load_trace(trace_id, who)
        view, last = timeline(trace_id)
        root = feedback.root_span(trace)
        outputs = (root.outputs if root else None) or {}
        outputs = outputs if isinstance(outputs, dict) else {}
        info = feedback.summary(trace)
        withheld = not sees_rows(who, trace)
        columns, rows = (
            last.get("columns") or outputs.get("columns") or [],
            [] if withheld else last.get("rows") or [],
        )
        return {
            **view,
            "nodes": [{k: n[k] for k in ("name", "duration_ms", "tokens", "detail")} for n in view["nodes"]],
            "thread_id": unscoped_thread(who, info["thread_id"]),
            "user": trace_user(trace),
            "rewritten_question": outputs.get("rewritten_question"),
            "mappings": outputs.get("mappings") or [],
            "sql": outputs.get("sql"),
            "answer": None if withheld else outputs.get("answer"),
            "error": outputs.get("error"),
            "columns": columns,
            "rows": rows,
            "chart": chart_spec(columns, rows),
            "rows_withheld": withheld_message(who, trace) if withheld else None,
            "truncated": bool(last.get("truncated")),
            "review": info["review"],
            "feedback": info["feedback"],
            "expected_sql": info["expected_sql"],
            "golden_id": info["golden_id"],
            "assessments": feedback.assessments(trace),
        }

    @router.get("/api/traces/{trace_id}/rows.{fmt}")
    def download_rows(trace_id: str, fmt: Literal["csv", "parquet"], who: Principal = anyone) -> Response:
        """The answer's rows as a file: the rows stored on its trace, released by the rule that decides
        whether /api/traces/{id} shows them (its own user or `review`, and a role that may see them).
        Nothing is re-run: a download cannot run SQL, costs no query, and matches what was answered."""
        trace = load_trace(trace_id, who)
        if not sees_rows(who, trace):
            raise HTTPException(403, f"Rows not available: {withheld_message(who, trace)}")
        _, last = timeline(trace_id)
        if not last.get("columns"):
            raise HTTPException(
                404, f"Trace {trace_id} has no result rows (the question was not answered with a query)."
            )
        headers = {
            "Content-Disposition": f'attachment; filename="sqlagent-{trace_id}.{fmt}"',
            "X-Sqlagent-Truncated": "true" if last.get("truncated") else "false",
        }
        return Response(
            rows_file(fmt, last["columns"], last.get("rows") or []),
            media_type=MEDIA_TYPES[fmt],
            headers=headers,
        )

    def judge_labels(labels: dict[str, str]) -> dict[str, str]:
        """A label per judge the review page offers (evals/judges/), each one of the judge's values."""
        from evals.judges.specs import load_specs

        specs = {s.name: s for s in load_specs(settings.judges)}
        for name, value in labels.items():
            if name not in specs:
                raise HTTPException(
                    422, f"labels: no judge named {name!r}; judges: {', '.join(sorted(specs))}."
                )
            if value not in specs[name].values:
                raise HTTPException(
                    422, f"labels.{name}: {value!r} is not one of {', '.join(specs[name].values)}."
                )
        return labels

    @router.get("/api/judges")
    def judges(who: Principal = anyone) -> dict[str, Any]:
        """The judges a reviewer can label (the rubric already is fan_rubric's label)."""
        from evals.judges.specs import load_specs

        return {
            "judges": [
                {"name": s.name, "description": s.description, "values": s.values}
                for s in load_specs(settings.judges)
                if feedback.RUBRIC not in s.human_labels
            ]
        }

    @router.post("/api/feedback")
    def post_feedback(body: FeedbackIn, who: Principal = giver) -> dict[str, Any]:
        trace = load_trace(body.trace_id, who)
        corrected = None
        sql = (body.corrected_sql or "").strip() or None
        if sql:
            try:
                corrected = promotion.check_sql(trace_db(trace, who), sql)
            except promotion.PromotionError as exc:
                raise HTTPException(422, f"The corrected SQL was rejected: {exc}") from None
            corrected["rows"] = corrected["rows"][:100]
            sql = corrected["sql"]
        labels = judge_labels(body.labels or {})
        ids = feedback.log_feedback(  # under the caller, whatever name the body carries (body.user)
            body.trace_id,
            body.value,
            user=who.name,
            comment=(body.comment or "").strip() or None,
            rubric=body.rubric.label if body.rubric else None,
            rubric_reason=((body.rubric.reason or "").strip() or None) if body.rubric else None,
            corrected_sql=sql,
            labels=labels,
        )
        return {"trace_id": body.trace_id, "assessment_ids": ids, "corrected": corrected, "user": who.name}

    @router.get("/api/review")
    def review(limit: Annotated[int, Query(ge=1, le=200)] = 50, who: Principal = reviewer) -> dict[str, Any]:
        items = feedback.review_queue(limit)
        return {"items": [{k: v for k, v in it.items() if k != "is_agent_trace"} for it in items]}

    @router.post("/api/golden", status_code=201)
    def promote(body: GoldenIn, who: Principal = reviewer) -> dict[str, Any]:
        trace = load_trace(body.trace_id, who)
        tags = trace.info.tags or {}
        if tags.get(feedback.GOLDEN_TAG):
            raise HTTPException(
                409, f"The trace is already in the golden set as {tags[feedback.GOLDEN_TAG]!r}."
            )
        if tags.get(feedback.DB_TAG):
            raise HTTPException(
                422, "The golden set is for the default database; this trace used another one."
            )
        try:
            return promotion.promote(trace, trace_db(trace, who), golden_file)
        except promotion.DuplicateItem as exc:
            raise HTTPException(409, str(exc)) from None
        except promotion.PromotionError as exc:
            raise HTTPException(422, str(exc)) from None

    return router
