"""What bench/bench_faults.py concludes: acknowledged feedback read back, per-fault effects, the table."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from bench.fault_clients import FeedbackAttempt, Question
from bench.faults import FaultRecord

CORRECTNESS = "user_correctness"  # evals/feedback.py's name for a user's verdict
WINDOW_GRACE_S = 2.0  # a question that ended just after a fault was repaired may still have met it


class Reconciliation(BaseModel):
    acknowledged: int
    found_via_api: int
    found_via_mlflow: int
    lost: list[str]  # "trace_id assessment_id: why"
    answered_traces: int
    answered_traces_missing: list[str]


class Outcome(BaseModel):
    clients: int
    seconds: float
    elapsed_s: float
    warmup_s: float
    faults: list[FaultRecord]
    health_misses: list[dict]
    server_alive: bool
    after_faults: str  # the HTTP status and AskResult status of one question after the last fault
    client_crashes: list[str]
    questions: list[Question]
    feedback: list[FeedbackAttempt]
    reconciliation: Reconciliation
    load_avg: list[float]

    def failures(self) -> list[str]:
        out = [
            f"question {q.question!r} (client {q.client}): {q.kind}: {q.error}"
            for q in self.questions
            if q.ending == "failure"
        ]
        out += [
            f"feedback on {f.trace_id}: {f.http}: {f.detail}" for f in self.feedback if f.ending == "failure"
        ]
        out += [f"acknowledged feedback lost: {x}" for x in self.reconciliation.lost]
        out += [f"health probe failed at {m['at_s']} s: {m['why']}" for m in self.health_misses]
        out += [f"a client crashed: {c}" for c in self.client_crashes]
        if not self.server_alive:
            out.append("the server thread died")
        if not self.after_faults.startswith("200 ok"):
            out.append(f"the question after the faults: {self.after_faults}")
        return out

    def passed(self, require_all_answered: bool) -> bool:
        if self.failures():
            return False
        if require_all_answered:
            return all(q.ending == "answer" for q in self.questions) and all(
                f.acknowledged for f in self.feedback
            )
        return True


def _matches(item: dict, attempt: FeedbackAttempt, assessment_id: str) -> bool:
    return (item.get("id") == assessment_id and item.get("name") == CORRECTNESS
            and item.get("value") is attempt.value and item.get("source_id") == attempt.user
            and item.get("rationale") == attempt.comment)  # fmt: skip


def reconcile(
    base: str, tokens: dict[str, str], feedback: list[FeedbackAttempt], questions: list[Question]
) -> Reconciliation:
    """Every acknowledged assessment, read back twice: GET /api/traces/{id} with the giver's token,
    and mlflow.get_trace in this process (the same store)."""
    import httpx
    import mlflow

    from evals.feedback import assessment_dict

    mlflow.flush_trace_async_logging()
    acked = [(f, aid) for f in feedback if f.acknowledged for aid in f.assessment_ids]
    lost, via_api, via_mlflow = [], 0, 0
    with httpx.Client(base_url=base, timeout=30) as client:
        for attempt, aid in acked:
            r = client.get(
                f"/api/traces/{attempt.trace_id}", headers={"Authorization": f"Bearer {tokens[attempt.user]}"}
            )
            api_ok = r.status_code == 200 and any(
                _matches(a, attempt, aid) for a in r.json().get("assessments", [])
            )
            trace = mlflow.get_trace(attempt.trace_id, silent=True)
            ml_ok = trace is not None and any(
                _matches(assessment_dict(a), attempt, aid) for a in trace.info.assessments or []
            )
            via_api += api_ok
            via_mlflow += ml_ok
            if not (api_ok and ml_ok):
                lost.append(
                    f"{attempt.trace_id} {aid}: api {r.status_code} {'found' if api_ok else 'missing'}, "
                    f"mlflow {'found' if ml_ok else 'missing'}"
                )
    answered = {q.trace_id for q in questions if q.ending == "answer" and q.trace_id}
    missing = sorted(t for t in answered if mlflow.get_trace(t, silent=True) is None)
    return Reconciliation(
        acknowledged=len(acked),
        found_via_api=via_api,
        found_via_mlflow=via_mlflow,
        lost=lost,
        answered_traces=len(answered),
        answered_traces_missing=missing,
    )


def in_window(start: float, end: float, fault: FaultRecord) -> bool:
    return fault.ended_s is not None and start <= fault.ended_s + WINDOW_GRACE_S and end >= fault.started_s


def fault_rows(outcome: Outcome) -> list[dict]:
    rows = []
    for fault in outcome.faults:
        qs = [q for q in outcome.questions if in_window(q.started_s, q.ended_s, fault)]
        fb = [f for f in outcome.feedback if in_window(f.at_s, f.at_s, fault)]
        rows.append({
            "fault": fault.name, "from_s": fault.started_s, "to_s": fault.ended_s, "detail": fault.detail,
            "questions": dict(Counter(q.ending for q in qs)), "kinds": dict(Counter(q.kind for q in qs)),
            "feedback_http": dict(Counter(str(f.http) for f in fb)),
        })  # fmt: skip
    return rows


def report(outcome: Outcome) -> str:
    qs, fb, rc = outcome.questions, outcome.feedback, outcome.reconciliation
    endings, statuses = Counter(q.ending for q in qs), Counter(str(q.http) for q in qs)
    answered_ms = sorted((q.ended_s - q.started_s) * 1000 for q in qs if q.ending == "answer")
    p50 = answered_ms[len(answered_ms) // 2] if answered_ms else None
    p95 = answered_ms[min(len(answered_ms) - 1, int(0.95 * len(answered_ms)))] if answered_ms else None
    lines = [
        f"clients {outcome.clients}, {outcome.seconds:g} s of new questions (all done after {outcome.elapsed_s} s), "
        f"warm-up {outcome.warmup_s} s, load {', '.join(f'{x:.1f}' for x in outcome.load_avg)}",
        f"questions {len(qs)}: answer {endings['answer']}, clear error {endings['clear_error']}, "
        f"failure {endings['failure']}; HTTP {dict(statuses)}; error kinds "
        f"{dict(Counter(q.kind for q in qs if q.ending != 'answer'))}",
        f"answer latency ms: p50 {p50 and round(p50)}, p95 {p95 and round(p95)}, "
        f"max {answered_ms and round(answered_ms[-1])}",
        f"feedback posts {len(fb)}: acknowledged {sum(f.acknowledged for f in fb)}, HTTP "
        f"{dict(Counter(str(f.http) for f in fb))}; acknowledged assessments {rc.acknowledged}, found via API "
        f"{rc.found_via_api}, via MLflow {rc.found_via_mlflow}, lost {len(rc.lost)}",
        f"answered traces {rc.answered_traces}, missing from the store {len(rc.answered_traces_missing)}",
        f"health probe misses {len(outcome.health_misses)}; server alive {outcome.server_alive}; "
        f"a question after the faults: {outcome.after_faults}",
    ]
    rows = fault_rows(outcome)
    if rows:
        lines += ["", f"{'fault':<27} {'window s':<13} {'questions':<40} {'feedback HTTP':<18} what happened"]
        for r in rows:
            window = f"{r['from_s']:.1f}-{r['to_s']:.1f}" if r["to_s"] is not None else "-"
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["kinds"].items()))
            feedback = ", ".join(f"{k}: {v}" for k, v in sorted(r["feedback_http"].items()))
            lines.append(f"{r['fault']:<27} {window:<13} {kinds:<40} {feedback:<18} {r['detail']}")
    failures = outcome.failures()
    if failures:
        lines += ["", f"{len(failures)} failures:", *(f"  {f}" for f in failures[:15])]
    return "\n".join(lines)
