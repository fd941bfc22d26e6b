"""The clients of bench/bench_faults.py: what one authenticated client does, and how an ending is judged.

A client asks questions one after another until the deadline and gives feedback on each answered
trace. Every HTTP exchange is recorded; a question ends as
- `answer`: 200 and `status: ok`,
- `clear_error`: 200 with `status: error` and an `error_kind`, or a 4xx with a one-line `detail`
  (429 with Retry-After included): the client is told what happened,
- `failure`: anything else: a 5xx, a body that is not the API's JSON, a traceback in the text, a
  transport error, a request still unanswered after the client's timeout (a hung worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

import httpx
from pydantic import BaseModel

Ending = Literal["answer", "clear_error", "failure"]
FEEDBACK_ATTEMPTS = 3


class Question(BaseModel):
    client: int
    question: str
    started_s: float
    ended_s: float
    http: int | None  # None: no response (timeout, connection error)
    ending: Ending
    kind: str  # "ok", the error_kind, "http 429", "timeout", ...
    error: str | None = None
    trace_id: str | None = None


class FeedbackAttempt(BaseModel):
    client: int
    user: str
    trace_id: str
    value: bool
    comment: str
    at_s: float
    http: int | None
    acknowledged: bool
    ending: Ending
    detail: str | None = None
    assessment_ids: list[str] = []


def _looks_broken(text: str) -> bool:
    return "Traceback (most recent call last)" in text or 'File "/' in text


def judge_ask(http: int, text: str, body: dict | None) -> tuple[Ending, str, str | None]:
    """(ending, kind, error) of one /api/ask response."""
    if body is None or _looks_broken(text):
        return "failure", f"http {http} unreadable", text[:300]
    if http == 200:
        status, kind, error = body.get("status"), body.get("error_kind"), body.get("error")
        if status == "ok":
            return "answer", "ok", None
        if status in ("error", "refused", "clarify") and kind and (error or body.get("answer")):
            return "clear_error", str(kind), error
        return "failure", f"status {status} without error_kind", str(body)[:300]
    detail = body.get("detail")
    if 400 <= http < 500 and isinstance(detail, str) and detail and "\n" not in detail:
        return "clear_error", f"http {http}", detail
    return "failure", f"http {http}", str(detail)[:300]


def judge_feedback(http: int, text: str, body: dict | None) -> tuple[Ending, str | None]:
    """A feedback post is acknowledged (200 with assessment ids), refused clearly (a 4xx, or a 503
    with a one-line detail: the store is down, retry later), or a failure."""
    if body is None or _looks_broken(text):
        return "failure", text[:300]
    if http == 200:
        return ("answer", None) if body.get("assessment_ids") else ("failure", f"200 without ids: {body}")
    detail = body.get("detail")
    clear = isinstance(detail, str) and detail and "\n" not in detail
    if clear and (400 <= http < 500 or http == 503):
        return "clear_error", detail
    return "failure", str(detail)[:300]


def _json(response: httpx.Response) -> dict | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class Recorder:
    """Everything the clients saw, from many threads."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.lock = threading.Lock()
        self.questions: list[Question] = []
        self.feedback: list[FeedbackAttempt] = []

    def add(self, item: Question | FeedbackAttempt) -> None:
        with self.lock:
            (self.questions if isinstance(item, Question) else self.feedback).append(item)


def question_for(client: int, i: int) -> str:
    return f"Who hit the most home runs in {1900 + (client * 7 + i) % 120}?"


def run_client(
    n: int, user: str, token: str, base: str, deadline: float, timeout_s: float, rec: Recorder
) -> None:
    """Ask until `deadline` (monotonic), one question at a time, feedback on every answered trace."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=timeout_s, headers=headers) as client:
        i = 0
        while time.monotonic() < deadline:
            question = question_for(n, i)
            started = rec.clock()
            try:
                r = client.post("/api/ask", json={"question": question})
            except httpx.TimeoutException:
                rec.add(
                    Question(
                        client=n,
                        question=question,
                        started_s=started,
                        ended_s=rec.clock(),
                        http=None,
                        ending="failure",
                        kind="timeout",
                        error=f"no answer within {timeout_s} s",
                    )
                )
                i += 1
                continue
            except httpx.HTTPError as exc:
                rec.add(
                    Question(
                        client=n,
                        question=question,
                        started_s=started,
                        ended_s=rec.clock(),
                        http=None,
                        ending="failure",
                        kind="transport",
                        error=f"{type(exc).__name__}: {exc}",
                    )
                )
                time.sleep(0.5)  # the server is gone or refusing connections: do not spin
                i += 1
                continue
            body = _json(r)
            ending, kind, error = judge_ask(r.status_code, r.text, body)
            trace_id = body.get("trace_id") if body and r.status_code == 200 else None
            rec.add(
                Question(
                    client=n,
                    question=question,
                    started_s=started,
                    ended_s=rec.clock(),
                    http=r.status_code,
                    ending=ending,
                    kind=kind,
                    error=error,
                    trace_id=trace_id,
                )
            )
            if ending == "answer" and trace_id:
                give_feedback(client, n, user, trace_id, i, rec)
            elif r.status_code == 429:
                time.sleep(
                    min(float(r.headers.get("Retry-After", "1")), max(0.0, deadline - time.monotonic()))
                )
            i += 1


def give_feedback(client: httpx.Client, n: int, user: str, trace_id: str, i: int, rec: Recorder) -> None:
    value, comment = (n + i) % 2 == 0, f"client {n} question {i}"
    for _ in range(FEEDBACK_ATTEMPTS):
        at = rec.clock()
        try:
            r = client.post("/api/feedback", json={"trace_id": trace_id, "value": value, "comment": comment})
        except httpx.HTTPError as exc:
            rec.add(
                FeedbackAttempt(
                    client=n,
                    user=user,
                    trace_id=trace_id,
                    value=value,
                    comment=comment,
                    at_s=at,
                    http=None,
                    acknowledged=False,
                    ending="failure",
                    detail=f"{type(exc).__name__}: {exc}",
                )
            )
            return
        body = _json(r)
        ending, detail = judge_feedback(r.status_code, r.text, body)
        rec.add(
            FeedbackAttempt(
                client=n,
                user=user,
                trace_id=trace_id,
                value=value,
                comment=comment,
                at_s=at,
                http=r.status_code,
                acknowledged=ending == "answer",
                ending=ending,
                detail=detail,
                assessment_ids=(body or {}).get("assessment_ids") or [] if ending == "answer" else [],
            )
        )
        if r.status_code != 503:  # acknowledged, or refused for good (e.g. 404): retrying changes nothing
            return
        time.sleep(float(r.headers.get("Retry-After", "1")))
