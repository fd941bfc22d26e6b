"""The HTTP API with auth on: tokens, roles, permissions, per-user traces and question limits.

A fake LM and a throwaway tracking store, as in test_api.py; users live in a temporary users file.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient

from agent.apps.server import create_app
from agent.apps.users import UserStore
from agent.service import Agent, AskResult
from tests.fake_lm import default_handlers, fake_lm
from tests.tracking_store import temporary_tracking

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
RUTH = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
)
SALARY = "SELECT playerID, salary FROM Salaries ORDER BY salary DESC LIMIT 1"
CORRECTED = "SELECT nameFirst, nameLast FROM People WHERE playerID = 'ruthba01'"
QUESTION = "Who hit the most home runs in 1927?"
USER_KEY, SESSION_KEY = "mlflow.trace.user", "mlflow.trace.session"


def handlers():
    return {
        **default_handlers(lambda i: SALARY if "salary" in i.get("question", "") else RUTH),
        "answer": lambda i: {"answer": "Babe Ruth hit 60."},
    }


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth-api")
    golden = tmp / "golden.jsonl"
    shutil.copy(ROOT / "evals" / "golden.jsonl", golden)
    store = UserStore(tmp / "users.sqlite")
    tokens = {
        name: store.add(name, role, perms)[1]
        for name, role, perms in [
            ("alice", "public", ["ask", "feedback"]),
            ("bob", "analyst", ["ask", "feedback", "review"]),
            ("carol", "public", ["ask"]),
            ("rita", "public", ["review"]),
        ]
    }
    made: list[tuple] = []

    def factory(s, db, role):
        made.append((db, role))
        lm, _ = fake_lm(handlers())
        return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    with temporary_tracking(tmp, "auth-api-test") as settings:
        settings.server.questions_per_minute = 1000  # the limits have their own app below
        app = create_app(settings, agent_factory=factory, golden_path=golden, auth=True, users=store)
        with TestClient(app) as client:
            yield {"client": client, "tokens": tokens, "store": store, "made": made, "settings": settings}


def auth(env, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {env['tokens'][name]}"}


def ask(env, name: str, question: str = QUESTION, **extra) -> dict:
    r = env["client"].post("/api/ask", json={"question": question, **extra}, headers=auth(env, name))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def alice_asked(env):
    return ask(env, "alice", thread_id="conv-1")


# --- 401 ----------------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/ask", {"question": QUESTION}),
    ("GET", "/api/ask/stream?question=hi", None),
    ("GET", "/api/traces/tr-00000000000000000000000000000000", None),
    ("GET", "/api/traces/tr-00000000000000000000000000000000/rows.csv", None),
    ("POST", "/api/feedback", {"trace_id": "x", "value": True}),
    ("GET", "/api/review", None),
    ("POST", "/api/golden", {"trace_id": "x"}),
    ("GET", "/api/me", None),
    ("GET", "/api/suggestions", None),
]


@pytest.mark.parametrize(("method", "url", "body"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer sqa_not-a-token", "Basic YWxpY2U6cHc=", "Bearer "])
def test_no_or_unknown_token_is_401_with_a_challenge(env, method, url, body, header):
    headers = {"Authorization": header} if header else {}
    r = env["client"].request(method, url, json=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith('Bearer realm="sqlagent"')
    detail = r.json()["detail"]
    assert isinstance(detail, str) and ("token" in detail.lower() or "bearer" in detail.lower())


def test_health_and_pages_need_no_token(env):
    client = env["client"]
    assert client.get("/api/health").json()["auth"] is True
    for path in ("/", "/review", "/static/app.js"):
        assert client.get(path).status_code == 200, path


def test_me_names_the_token_owner(env):
    me = env["client"].get("/api/me", headers=auth(env, "alice")).json()
    assert me == {
        "name": "alice",
        "role": "public",
        "permissions": ["ask", "feedback"],
        "authenticated": True,
    }


# --- roles and permissions -------------------------------------------------------------------------


def test_questions_run_with_the_token_role(env, alice_asked):
    assert alice_asked["status"] == "ok" and alice_asked["rows"] == [["Babe", "Ruth", 60]]
    assert (None, "public") in env["made"]
    # public has no Salaries: the policy refuses what analyst bob may read.
    assert ask(env, "alice", "Top salary ever?")["status"] != "ok"
    assert ask(env, "bob", "Top salary ever?")["status"] == "ok"
    # A client cannot pick a wider role, on either endpoint; naming its own is fine.
    r = env["client"].post(
        "/api/ask", json={"question": QUESTION, "role": "analyst"}, headers=auth(env, "alice")
    )
    assert r.status_code == 403 and "bound to role 'public'" in r.json()["detail"]
    r = env["client"].get(
        "/api/ask/stream", params={"question": QUESTION, "role": "analyst"}, headers=auth(env, "alice")
    )
    assert r.status_code == 403
    assert ask(env, "alice", role="public")["status"] == "ok"


def test_missing_permissions_are_403(env, alice_asked):
    client = env["client"]
    r = client.post("/api/ask", json={"question": QUESTION}, headers=auth(env, "rita"))  # review only
    assert (
        r.status_code == 403 and r.json()["detail"] == "User 'rita' lacks the 'ask' permission (has: review)."
    )
    carol = ask(env, "carol")
    r = client.post(
        "/api/feedback", json={"trace_id": carol["trace_id"], "value": True}, headers=auth(env, "carol")
    )
    assert r.status_code == 403 and "'feedback'" in r.json()["detail"]
    assert client.get("/api/review", headers=auth(env, "alice")).status_code == 403


def test_feedback_is_recorded_under_the_token_user(env, alice_asked):
    r = env["client"].post("/api/feedback", headers=auth(env, "alice"), json={
        "trace_id": alice_asked["trace_id"], "value": False, "user": "mallory", "corrected_sql": CORRECTED,
    })  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "alice"
    sources = {
        a.name: a.source.source_id
        for a in mlflow.get_trace(alice_asked["trace_id"]).info.assessments
        if a.source.source_type == "HUMAN"
    }  # beside the monitor's code scores
    assert sources == {"user_correctness": "alice", "expected_sql": "alice"}


def test_other_users_traces_need_review(env, alice_asked):
    client = env["client"]
    bobs = ask(env, "bob", "Top salary ever?")
    r = client.get(f"/api/traces/{bobs['trace_id']}", headers=auth(env, "alice"))
    assert r.status_code == 403 and "'review'" in r.json()["detail"]
    r = client.post(
        "/api/feedback", json={"trace_id": bobs["trace_id"], "value": True}, headers=auth(env, "alice")
    )
    assert r.status_code == 403
    # Her own trace she reads, with its rows; bob (review, unrestricted analyst) reads it too.
    mine = client.get(f"/api/traces/{alice_asked['trace_id']}", headers=auth(env, "alice")).json()
    assert (
        mine["user"] == "alice" and mine["rows"] == [["Babe", "Ruth", 60]] and mine["thread_id"] == "conv-1"
    )
    assert client.get(f"/api/traces/{alice_asked['trace_id']}", headers=auth(env, "bob")).json()["rows"]
    # rita reviews as public: bob's analyst trace shows its SQL, not the salaries it returned.
    view = client.get(f"/api/traces/{bobs['trace_id']}", headers=auth(env, "rita")).json()
    assert (
        view["sql"] and view["rows"] == [] and view["answer"] is None and "analyst" in view["rows_withheld"]
    )
    # ... and a "correction" runs with her role, so it cannot read Salaries either.
    r = client.post(
        "/api/feedback",
        json={"trace_id": bobs["trace_id"], "value": False, "corrected_sql": SALARY},
        headers=auth(env, "rita"),
    )
    assert r.status_code == 403  # rita has no feedback permission at all
    r = client.post(
        "/api/feedback",
        json={"trace_id": alice_asked["trace_id"], "value": False, "corrected_sql": SALARY},
        headers=auth(env, "alice"),
    )
    assert r.status_code == 422 and "Salaries" in r.json()["detail"]


def test_a_trace_without_a_user_says_so(env):
    """A question asked outside the API (the CLI on the same store) or whose metadata the store
    refused has no mlflow.trace.user: its 403 says that, not "another user's question"."""
    lm, _ = fake_lm(handlers())
    agent = Agent(env["settings"], role="public", lms={"default": lm}, persistent_threads=False)
    asked = agent.ask(QUESTION)
    mlflow.flush_trace_async_logging()
    assert USER_KEY not in mlflow.get_trace(asked.trace_id).info.trace_metadata
    r = env["client"].get(f"/api/traces/{asked.trace_id}", headers=auth(env, "alice"))
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert "no recorded user" in detail and "'review'" in detail and "another user" not in detail
    assert env["client"].get(f"/api/traces/{asked.trace_id}", headers=auth(env, "bob")).status_code == 200


def test_rows_download_follows_the_trace_view_rule(env, alice_asked):
    """CSV and Parquet of the rows stored on the trace, for whoever the trace view shows them to."""
    import io

    import pyarrow.parquet as pq

    client, trace = env["client"], alice_asked["trace_id"]
    r = client.get(f"/api/traces/{trace}/rows.csv", headers=auth(env, "alice"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text == "nameFirst,nameLast,HR\nBabe,Ruth,60\n"
    assert f'filename="sqlagent-{trace}.csv"' in r.headers["content-disposition"]
    assert r.headers["x-sqlagent-truncated"] == "false"
    r = client.get(f"/api/traces/{trace}/rows.parquet", headers=auth(env, "bob"))  # review, unrestricted role
    assert r.status_code == 200
    assert pq.read_table(io.BytesIO(r.content)).to_pylist() == [
        {"nameFirst": "Babe", "nameLast": "Ruth", "HR": 60}
    ]
    # Another user without review: 403, as for the trace itself; an unknown format is refused.
    bobs = ask(env, "bob", "Top salary ever?")
    r = client.get(f"/api/traces/{bobs['trace_id']}/rows.csv", headers=auth(env, "alice"))
    assert r.status_code == 403 and "'review'" in r.json()["detail"]
    # A reviewer bound to public cannot take away the salaries an analyst's question returned.
    r = client.get(f"/api/traces/{bobs['trace_id']}/rows.parquet", headers=auth(env, "rita"))
    assert r.status_code == 403 and "role 'analyst'" in r.json()["detail"]
    assert client.get(f"/api/traces/{trace}/rows.xlsx", headers=auth(env, "alice")).status_code == 422
    # A refused question has no rows to take away.
    refused = ask(env, "alice", "Top salary ever?")
    r = client.get(f"/api/traces/{refused['trace_id']}/rows.csv", headers=auth(env, "alice"))
    assert r.status_code == 404 and "no result rows" in r.json()["detail"]


def test_suggestions_are_what_the_token_role_may_ask(env):
    client = env["client"]
    public = client.get("/api/suggestions", headers=auth(env, "alice")).json()["questions"]
    analyst = client.get("/api/suggestions", headers=auth(env, "bob")).json()["questions"]
    assert (
        public[:2]
        == analyst[:2]
        == [
            "Who hit the most home runs in 1927, and how many?",
            "How many games did the Yankees win in 1998?",
        ]
    )  # the README's own
    born = "How many major leaguers were born on February 29?"  # reads People.birthMonth, hidden from public
    assert born in analyst and born not in public
    assert len(public) == len(analyst) == 6
    assert client.get("/api/suggestions", headers=auth(env, "rita")).status_code == 403  # no `ask`


def test_promotion_needs_review(env):
    client = env["client"]
    mine = ask(env, "alice", "Home runs leader in 1927 (auth review test)")
    client.post(
        "/api/feedback", json={"trace_id": mine["trace_id"], "value": True}, headers=auth(env, "alice")
    )
    r = client.post("/api/golden", json={"trace_id": mine["trace_id"]}, headers=auth(env, "alice"))
    assert r.status_code == 403 and "'review'" in r.json()["detail"]
    queue = client.get("/api/review", headers=auth(env, "bob")).json()["items"]
    assert queue  # bob sees the queue
    r = client.post("/api/golden", json={"trace_id": mine["trace_id"]}, headers=auth(env, "bob"))
    assert r.status_code == 201, r.text


def test_revoked_token_is_401_at_once(env):
    store = env["store"]
    _, token = store.add("temp", "public", ["ask"])
    headers = {"Authorization": f"Bearer {token}"}
    assert env["client"].get("/api/me", headers=headers).status_code == 200
    store.revoke("temp")
    r = env["client"].get("/api/me", headers=headers)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


# --- user and conversation on the trace -----------------------------------------------------------


def test_trace_metadata_has_user_and_session(env, alice_asked):
    assert alice_asked["thread_id"] == "conv-1"  # the client's own id back, not the scoped key
    follow = ask(env, "alice", "And in 1928?", thread_id="conv-1")
    new = ask(env, "alice")
    metas = [mlflow.get_trace(r["trace_id"]).info.trace_metadata for r in (alice_asked, follow, new)]
    assert [m[USER_KEY] for m in metas] == ["alice"] * 3
    assert metas[0][SESSION_KEY] == metas[1][SESSION_KEY] == "alice:conv-1"
    assert metas[2][SESSION_KEY] == f"alice:{new['thread_id']}" != metas[0][SESSION_KEY]
    # The same thread id from another user is another conversation.
    bobs = ask(env, "bob", thread_id="conv-1")
    meta = mlflow.get_trace(bobs["trace_id"]).info.trace_metadata
    assert (meta[USER_KEY], meta[SESSION_KEY]) == ("bob", "bob:conv-1")
    # A new conversation's id continues it: the follow-up lands in the same session.
    again = ask(env, "alice", "And in 1929?", thread_id=new["thread_id"])
    assert mlflow.get_trace(again["trace_id"]).info.trace_metadata[SESSION_KEY] == metas[2][SESSION_KEY]


def test_feedback_right_after_concurrent_answers(env):
    """The answer is only sent once its trace info (with the user) is stored: feedback posted at once,
    from several users at a time, is never refused as someone else's (bench/bench_api.py found it)."""
    statuses: list[int] = []

    def one(name: str, n: int) -> None:
        asked = ask(env, name, f"Who hit the most home runs in {1950 + n}?")
        r = env["client"].post(
            "/api/feedback", json={"trace_id": asked["trace_id"], "value": True}, headers=auth(env, name)
        )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=one, args=(name, n)) for n, name in enumerate(["alice", "bob"] * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200] * 4


def test_stream_carries_the_user_too(env):
    with env["client"].stream(
        "GET",
        "/api/ask/stream",
        params={"question": QUESTION, "thread_id": "s-1"},
        headers=auth(env, "carol"),
    ) as r:
        assert r.status_code == 200
        text = r.read().decode()
    import json

    result = json.loads(text.rsplit("event: result\ndata: ", 1)[1].split("\n", 1)[0])
    assert result["thread_id"] == "s-1"
    meta = mlflow.get_trace(result["trace_id"]).info.trace_metadata
    assert (meta[USER_KEY], meta[SESSION_KEY]) == ("carol", "carol:s-1")


# --- limits -----------------------------------------------------------------------------------------


class BlockingAgent:
    """Answers at once, or holds each question until `gate` is set (a question in progress)."""

    def __init__(self, gate: threading.Event):
        self.gate = gate

    def ask(self, question, thread_id=None, user=None, tags=None, budget=None):
        self.gate.wait(10)
        return AskResult(question=question, status="ok", answer="ok", thread_id=thread_id)


def test_limits_are_429_with_retry_after(env, tmp_path):
    settings = env["settings"].model_copy(deep=True)
    settings.server.max_concurrent_questions, settings.server.questions_per_minute = 1, 2
    gate = threading.Event()
    app = create_app(
        settings, agent_factory=lambda s, db, role: BlockingAgent(gate), auth=True, users=env["store"]
    )
    with TestClient(app) as client:
        post = lambda who: client.post("/api/ask", json={"question": QUESTION}, headers=auth(env, who))  # noqa: E731
        slow = threading.Thread(target=post, args=("alice",))
        slow.start()
        deadline = time.monotonic() + 5
        while not app.state.pool.agents and time.monotonic() < deadline:  # alice's question is in the worker
            time.sleep(0.01)
        busy = post("alice")
        assert busy.status_code == 429 and busy.headers["retry-after"] == "5"
        assert "max_concurrent_questions" in busy.json()["detail"]
        other = threading.Thread(target=lambda: post("bob"))  # another user is not held by alice's limit
        other.start()
        gate.set()
        slow.join(10)
        other.join(10)
        assert post("alice").status_code == 200  # her slot is free once the answer is in
        rate = post("alice")  # the fourth in a minute (the refused one did not count)
        assert rate.status_code == 429 and "questions_per_minute" in rate.json()["detail"]
        assert 1 <= int(rate.headers["retry-after"]) <= 60
        assert post("bob").status_code == 200
