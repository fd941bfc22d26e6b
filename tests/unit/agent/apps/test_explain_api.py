"""POST /api/explain with auth on: the `ask` permission and the token's role, SQL the role may not run
refused with the policy's reason, the explanation's own trace, its tokens charged to the user."""

from __future__ import annotations

import mlflow
import pytest
from fastapi.testclient import TestClient

from agent.apps.server import create_app
from agent.apps.users import UserStore
from agent.explain import EXPLAIN, EXPLAINS_TAG
from agent.service import Agent
from tests.fake_lm import default_handlers, fake_lm
from tests.tracking_store import temporary_tracking

RUTH = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
)
SALARY = "SELECT playerID, salary FROM Salaries ORDER BY salary DESC LIMIT 1"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain-api")
    store = UserStore(tmp / "users.sqlite")
    tokens = {
        name: store.add(name, role, perms)[1]
        for name, role, perms in [
            ("alice", "public", ["ask", "feedback"]),
            ("bob", "analyst", ["ask", "review"]),
            ("rita", "public", ["review"]),
        ]
    }
    made: list[tuple] = []

    def factory(s, db, role):
        made.append((db, role))
        lm, _ = fake_lm(default_handlers(RUTH))
        return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    with temporary_tracking(tmp, "explain-api-test") as settings:
        settings.budget.tokens_per_user = 1_000_000
        app = create_app(settings, agent_factory=factory, auth=True, users=store)
        with TestClient(app) as client:
            yield {"client": client, "tokens": tokens, "made": made, "app": app}


def explain(env, name: str | None, **body):
    headers = {"Authorization": f"Bearer {env['tokens'][name]}"} if name else {}
    return env["client"].post("/api/explain", json=body, headers=headers)


def test_no_token_is_401_and_no_ask_permission_is_403(env):
    r = explain(env, None, sql=RUTH)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = explain(env, "rita", sql=RUTH)
    assert r.status_code == 403 and "lacks the 'ask' permission" in r.json()["detail"]


def test_explains_with_the_token_role(env):
    r = explain(env, "alice", sql=RUTH, question="Who hit the most home runs in 1927?")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["status"] == "ok" and data["explanation"] == "It reads the Batting and People tables."
    assert data["step"]["name"] == EXPLAIN and data["step"]["tokens"] > 0
    assert (None, "public") in env["made"]
    charged = env["app"].state.quality.budgets.user_tokens.remaining("alice")
    assert charged == 1_000_000 - data["step"]["tokens"]
    metrics = env["client"].get("/metrics", headers={"Authorization": f"Bearer {env['tokens']['bob']}"}).text
    assert 'node="explain"' in metrics


def test_sql_the_role_may_not_run_is_refused_with_the_policy_reason(env):
    data = explain(env, "alice", sql=SALARY).json()
    assert data["status"] == "refused" and data["error_kind"] == "access_denied"
    assert "Salaries" in data["error"] and data["explanation"] is None and data["step"]["tokens"] == 0
    assert explain(env, "bob", sql=SALARY).json()["status"] == "ok"  # the analyst may read salaries


def test_a_wider_role_than_the_token_is_403(env):
    r = explain(env, "alice", sql=RUTH, role="analyst")
    assert r.status_code == 403 and "bound to role 'public'" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "sql is required."),
        ({"sql": ""}, "sql: String should have at least 1 character"),
        ({"sql": RUTH, "rows": []}, "rows is not a field of this request."),
        ({"sql": RUTH, "question": "x" * 2001}, "limits.max_question_chars"),
    ],
)
def test_a_bad_body_is_one_line(env, body, detail):
    r = explain(env, "alice", **body)
    assert r.status_code == 422 and detail in r.json()["detail"]


def test_the_explanation_trace_names_the_turn(env):
    asked = (
        env["client"]
        .post(
            "/api/ask",
            json={"question": "Who hit the most home runs in 1927?"},
            headers={"Authorization": f"Bearer {env['tokens']['alice']}"},
        )
        .json()
    )
    data = explain(env, "alice", sql=asked["sql"], trace_id=asked["trace_id"]).json()
    mlflow.flush_trace_async_logging()
    trace = mlflow.get_trace(data["trace_id"])
    assert trace.info.tags[EXPLAINS_TAG] == asked["trace_id"]
    assert trace.info.trace_metadata["mlflow.trace.user"] == "alice"
    assert [s.name for s in trace.data.spans if s.parent_id is None] == [EXPLAIN]
    # Not a question: the review queue leaves it out.
    reviewed = env["client"].get("/api/review", headers={"Authorization": f"Bearer {env['tokens']['bob']}"})
    assert data["trace_id"] not in [i["trace_id"] for i in reviewed.json()["items"]]
