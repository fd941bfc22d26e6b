"""The API while the tracking store refuses to be read or written (found by bench/bench_faults.py).

MLflow's sqlite store reports every sqlite OperationalError (a read-only file or directory, a
database it cannot open, a lock past the busy timeout) as MlflowException(TEMPORARILY_UNAVAILABLE):
the store calls below raise exactly that. Before: the answer to a question was a 500 (the server
tagged the trace after the answer), feedback was a 500, and reading a trace said 404 "no trace".
"""

from __future__ import annotations

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from agent.apps.server import create_app
from agent.apps.trace_wait import TraceWaiter
from agent.apps.users import UserStore
from agent.service import Agent
from evals import feedback
from tests.fake_lm import default_handlers, fake_lm
from tests.tracking_store import temporary_tracking

RUTH = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
)
QUESTION = "Who hit the most home runs in 1927?"


def refused(*args, **kwargs):
    raise MlflowException(
        "(sqlite3.OperationalError) attempt to write a readonly database", error_code=TEMPORARILY_UNAVAILABLE
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("store-down")
    store = UserStore(tmp / "users.sqlite")
    token = store.add("ana", "public", ["ask", "feedback"])[1]
    reviewer = store.add("rev", "public", ["review"])[1]

    def factory(s, db, role):
        lm, _ = fake_lm(default_handlers(RUTH))
        return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    (tmp / "golden.jsonl").write_text("")
    with temporary_tracking(tmp, "store-down-test") as settings:
        app = create_app(
            settings, agent_factory=factory, golden_path=tmp / "golden.jsonl", auth=True, users=store
        )
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            client.reviewer = {"Authorization": f"Bearer {reviewer}"}
            yield client


def ask(client) -> dict:
    r = client.post("/api/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_role_tag_travels_with_the_trace_not_after_the_answer(env, monkeypatch):
    monkeypatch.setattr(mlflow, "set_trace_tag", refused)  # a write after the answer would fail now
    body = ask(env)
    assert body["status"] == "ok"
    tags = mlflow.get_trace(body["trace_id"]).info.tags
    assert tags[feedback.ROLE_TAG] == "public"  # what decides who may see the trace's rows


def test_feedback_the_store_refuses_is_503_with_retry_after_then_recorded(env, monkeypatch):
    trace_id = ask(env)["trace_id"]
    with monkeypatch.context() as m:
        m.setattr(feedback.mlflow, "log_feedback", refused)
        r = env.post("/api/feedback", json={"trace_id": trace_id, "value": True, "comment": "first try"})
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "2"
    detail = r.json()["detail"]
    assert (
        "tracking store cannot record the feedback" in detail and "readonly" in detail and "\n" not in detail
    )
    again = env.post("/api/feedback", json={"trace_id": trace_id, "value": True, "comment": "second try"})
    assert again.status_code == 200, again.text
    found = [a for a in mlflow.get_trace(trace_id).info.assessments if a.name == feedback.CORRECTNESS]
    assert [a.rationale for a in found] == ["second try"]


def test_a_trace_the_store_cannot_read_is_503_not_404(env, monkeypatch):
    trace_id = ask(env)["trace_id"]
    with monkeypatch.context() as m:
        m.setattr(mlflow.MlflowClient, "get_trace", refused)
        read = env.get(f"/api/traces/{trace_id}")
        give = env.post("/api/feedback", json={"trace_id": trace_id, "value": False})
    assert (read.status_code, give.status_code) == (503, 503), (read.text, give.text)
    assert "cannot be read right now" in read.json()["detail"]
    assert env.get(f"/api/traces/{trace_id}").status_code == 200
    assert env.get("/api/traces/tr-00000000000000000000000000000000").status_code == 404  # unknown stays 404


def test_another_store_call_down_is_503_too(env, monkeypatch):
    monkeypatch.setattr(feedback.mlflow, "search_traces", refused)
    r = env.get("/api/review", headers=env.reviewer)
    assert r.status_code == 503 and "cannot be used right now" in r.json()["detail"], r.text


def test_an_answer_whose_trace_the_store_did_not_take_says_so(env, monkeypatch):
    assert ask(env)["trace_stored"] is True
    original = TraceWaiter.wait
    # The store never lists the trace (MLflow dropped it while the store was down): the wait gives up.
    monkeypatch.setattr(TraceWaiter, "_readable", lambda self, waiting: set())
    monkeypatch.setattr(
        TraceWaiter, "wait", lambda self, trace_id, timeout_s=5.0: original(self, trace_id, 0.3)
    )
    body = ask(env)
    assert body["status"] == "ok" and body["trace_id"] and body["trace_stored"] is False
