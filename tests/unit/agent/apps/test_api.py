"""The HTTP API (agent/apps/server.py) with FastAPI's TestClient, a fake LM and a throwaway tracking store."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient

from agent.apps.server import create_app
from agent.service import Agent
from tests.fake_lm import fake_lm
from tests.tracking_store import temporary_tracking

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
RUTH = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
)
BY_YEAR = (
    "SELECT yearID, SUM(HR) AS HR FROM Batting WHERE playerID = 'ruthba01' GROUP BY yearID ORDER BY yearID"
)
CORRECTED = "SELECT nameFirst, nameLast FROM People WHERE playerID = 'ruthba01'"
NODES = ["guard", "rewrite", "retrieve", "generate", "safety", "execute", "answer"]


# A question with "slowly" in it holds the fake model until RELEASE is set (SQL_STARTED says it is held).
SQL_STARTED, RELEASE = threading.Event(), threading.Event()
RELEASE.set()


def handlers():
    def sql(inputs):
        question = inputs.get("question", "") + inputs.get("follow_up", "")
        if "slowly" in question:
            SQL_STARTED.set()
            assert RELEASE.wait(30)
        return {"sql": BY_YEAR if "each year" in question else RUTH}

    return {
        "standalone_question": lambda i: {"standalone_question": i["follow_up"]},
        "mentions": lambda i: {"mentions": []},
        "sql": sql,
        "answer": lambda i: {"answer": "Babe Ruth hit 60."},
    }


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    golden = tmp / "golden.jsonl"
    shutil.copy(ROOT / "evals" / "golden.jsonl", golden)
    made: list[tuple] = []

    def factory(s, db, role):
        made.append((db, role))
        lm, _ = fake_lm(handlers())
        return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    with temporary_tracking(tmp, "api-test") as settings:
        app = create_app(settings, agent_factory=factory, golden_path=golden, auth=False)  # the local mode
        with TestClient(app) as client:
            yield client, golden, made


@pytest.fixture(scope="module")
def client(app_env):
    return app_env[0]


@pytest.fixture(scope="module")
def asked(client):
    r = client.post("/api/ask", json={"question": "Who hit the most home runs in 1927?"})
    assert r.status_code == 200, r.text
    return r.json()


def _sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln and not ln.startswith(":")]
        if not lines:
            continue
        fields = dict(ln.split(": ", 1) for ln in lines)
        events.append((fields["event"], json.loads(fields["data"])))
    return events


# --- ask ----------------------------------------------------------------------------------------


def test_ask_returns_the_cli_json_object(asked):
    from agent.service import AskResult

    AskResult.model_validate(asked)  # the same object as `sqlagent ask --json`
    assert asked["status"] == "ok", asked
    assert asked["rows"] == [["Babe", "Ruth", 60]]
    assert [n["name"] for n in asked["nodes"]] == NODES
    assert asked["trace_id"] and asked["thread_id"]


def test_one_agent_per_db_and_role(client, app_env, asked):
    client.post("/api/ask", json={"question": "Who hit the most home runs in 1927?"})
    r = client.post("/api/ask", json={"question": "Who hit the most home runs in 1927?", "role": "public"})
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert app_env[2] == [(None, None), (None, "public")]


def test_ask_stream_one_event_per_node_then_result(client):
    with client.stream(
        "GET", "/api/ask/stream", params={"question": "Babe Ruth home runs in each year?"}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.read().decode())
    kinds = [k for k, _ in events]
    assert kinds == ["node"] * len(NODES) + ["result"]
    assert [d["name"] for k, d in events if k == "node"] == NODES
    assert all({"name", "duration_ms", "tokens", "detail"} <= set(d) for k, d in events if k == "node")
    result = events[-1][1]
    assert result["status"] == "ok" and result["sql"].startswith("SELECT yearID")
    assert [n["name"] for n in result["nodes"]] == NODES
    # One measure over seasons: a Vega-Lite line, with the rows as its data.
    chart = result["chart"]
    assert chart["mark"]["type"] == "line" and chart["encoding"]["x"]["title"] == "yearID"
    assert len(chart["data"]["values"]) == len(result["rows"]) == 22
    # The same trace shape as /api/ask: one sqlagent.ask root with the node spans under it.
    mlflow.flush_trace_async_logging()  # spans are exported asynchronously: a busy machine lags
    trace = mlflow.get_trace(result["trace_id"])
    roots = [s for s in trace.data.spans if s.parent_id is None]
    assert [s.name for s in roots] == ["sqlagent.ask"]
    nodes = sorted((s for s in trace.data.spans if s.name.startswith("node.")), key=lambda s: s.start_time_ns)
    assert [s.name for s in nodes] == [f"node.{n}" for n in NODES]


def test_a_streaming_question_holds_no_request_thread_while_it_waits(client):
    """The route's threads serve every sync route (health, feedback): a question the model is still
    working on must not keep one."""
    import anyio.to_thread

    def borrowed() -> float:
        return anyio.to_thread.current_default_thread_limiter().borrowed_tokens

    events: list = []
    RELEASE.clear()
    SQL_STARTED.clear()

    def consume():
        with client.stream("GET", "/api/ask/stream", params={"question": "Babe Ruth, slowly?"}) as r:
            events.extend(_sse(r.read().decode()))

    reader = threading.Thread(target=consume)
    reader.start()
    try:
        assert SQL_STARTED.wait(30)
        seen = []
        for _ in range(15):  # over 1.5 s: more than one of the stream's 1 s keep-alive waits
            seen.append(client.portal.call(borrowed))
            time.sleep(0.1)
        assert max(seen) == 0, seen
    finally:
        RELEASE.set()
        reader.join(30)
    assert events[-1][0] == "result" and events[-1][1]["status"] == "ok"


def test_stream_and_ask_agree_on_bad_input(client, app_env):
    """A question that cannot be asked is a 422 with the agent's own one-line reason, before it queues."""
    made = len(app_env[2])
    for question, reason in [
        ("   ", "The question is empty"),
        ("x" * 2001, "the limit is 2000"),
        (
            "home runs \ufffd",
            "not valid UTF-8 text (U+FFFD, the mark of a failed decoding, at character 11).",
        ),
        ("Who won\x00 in 2001?", "contains a NUL byte (at character 8)."),
    ]:
        r = client.post("/api/ask", json={"question": question})
        assert r.status_code == 422 and reason in r.json()["detail"], r.text
        s = client.get("/api/ask/stream", params={"question": question})
        assert s.status_code == 422 and s.json() == r.json()
    assert len(app_env[2]) == made  # no agent was asked


@pytest.mark.parametrize("payload", [
    {},
    {"question": 42},
    {"question": ["a"]},
    {"question": "hi", "thread_id": "has spaces"},
    {"question": "hi", "unknown": 1},
    {"question": "hi", "db": "/etc/passwd"},
    {"question": "hi", "db": "../../../../etc/hosts.duckdb"},
    {"question": "hi", "role": "root"},
    {"question": "x" * 20_001},
])  # fmt: skip
def test_ask_bad_payloads_are_4xx(client, payload):
    r = client.post("/api/ask", json=payload)
    assert r.status_code == 422, r.text
    assert isinstance(r.json()["detail"], str) and "http" not in r.json()["detail"]


def test_malformed_bodies_do_not_crash(client):
    for body, ctype in [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"question=hi", "application/x-www-form-urlencoded"),
        (b"[]", "application/json"),
        (b'"just a string"', "application/json"),
        (b"", "application/json"),
    ]:
        r = client.post("/api/ask", content=body, headers={"content-type": ctype})
        assert r.status_code in (400, 422), (body, r.status_code, r.text)
        detail = r.json()["detail"]  # one readable line, not pydantic's list with documentation URLs
        assert isinstance(detail, str) and "\n" not in detail and "http" not in detail, detail
    # A lone surrogate (a JSON escape that is not text): a clear 422, not a 500.
    r = client.post(
        "/api/ask", content=b'{"question": "home runs \\ud800"}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert (
        r.json()["detail"]
        == "The question is not valid UTF-8 text (a lone surrogate U+D800 at character 11)."
    )
    # The same for the feedback's text (agent/text_check.py, as the CLI and MCP say it): the JSON
    # escape, the character invalid bytes decode to, and a NUL byte, named by field and place.
    for field, text, detail in [
        ("corrected_sql", "SELECT 1 \\ud800", "is not valid UTF-8 text (a lone surrogate U+D800 at character 10)."),
        ("corrected_sql", "SELECT '\\ufffd'", "is not valid UTF-8 text (U+FFFD, the mark of a failed decoding, at character 9)."),
        ("comment", "wrong\\u0000 columns", "contains a NUL byte (at character 6)."),
    ]:  # fmt: skip
        r = client.post(
            "/api/feedback",
            content=b'{"trace_id": "x", "value": false, "%s": "%s"}' % (field.encode(), text.encode()),
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json() == {"detail": f"The {field} {detail}"}, r.text
        assert r.content.count(b"\n") == 0  # one line of JSON
    # Invalid bytes in a query string: the same one line, and the agent is never asked.
    r = client.get("/api/ask/stream?question=home%20runs%FF%FE")
    assert r.status_code == 422, r.text
    assert (
        r.json()["detail"]
        == "The question is not valid UTF-8 text (U+FFFD, the mark of a failed decoding, at character 10)."
    )
    assert client.get("/api/ask/stream").status_code == 422
    assert client.get("/api/review", params={"limit": "many"}).status_code == 422
    assert client.get("/api/nope").status_code == 404


# --- traces and feedback ---------------------------------------------------------------------------


def test_trace_view(client, asked):
    r = client.get(f"/api/traces/{asked['trace_id']}")
    assert r.status_code == 200, r.text
    view = r.json()
    assert [n["name"] for n in view["nodes"]] == NODES
    assert view["question"] == asked["question"] and view["sql"] == asked["sql"]
    assert view["rows"] == [["Babe", "Ruth", 60]] and view["columns"] == asked["columns"]


@pytest.mark.parametrize("trace_id", ["tr-00000000000000000000000000000000", "nonsense", "'; DROP TABLE x"])
def test_unknown_trace_is_404(client, trace_id):
    assert client.get(f"/api/traces/{trace_id}").status_code == 404
    r = client.post("/api/feedback", json={"trace_id": trace_id, "value": True})
    assert r.status_code == 404
    assert client.post("/api/golden", json={"trace_id": trace_id}).status_code == 404


@pytest.mark.parametrize("payload", [
    {"value": True},
    {"trace_id": "x"},
    {"trace_id": "x", "value": "yes"},
    {"trace_id": "x", "value": 1},
    {"trace_id": "x", "value": True, "rubric": {"label": "great"}},
    {"trace_id": "x", "value": True, "rubric": "correct"},
    {"trace_id": "x", "value": True, "comment": 5},
    {"trace_id": "", "value": True},
])  # fmt: skip
def test_feedback_bad_payloads(client, payload):
    assert client.post("/api/feedback", json=payload).status_code == 422


@pytest.mark.parametrize("sql", [
    "DROP TABLE People",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT 1; SELECT 2",
    "SELECT nope FROM People",
])  # fmt: skip
def test_unsafe_corrected_sql_is_422_with_the_reason(client, asked, sql):
    r = client.post(
        "/api/feedback", json={"trace_id": asked["trace_id"], "value": False, "corrected_sql": sql}
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("The corrected SQL was rejected:")
    assert len(r.json()["detail"]) > len("The corrected SQL was rejected: ")


def test_feedback_is_readable_back(client):
    asked = client.post("/api/ask", json={"question": "Top home run hitter of 1927, please"}).json()
    r = client.post("/api/feedback", json={
        "trace_id": asked["trace_id"], "value": False, "comment": "wrong columns", "corrected_sql": CORRECTED + ";",
        "rubric": {"label": "partially", "reason": "right player, extra column"}, "user": "alice",
    })  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["corrected"]["rows"] == [["Babe", "Ruth"]] and len(body["assessment_ids"]) == 3
    view = client.get(f"/api/traces/{asked['trace_id']}").json()
    by_name = {a["name"]: a for a in view["assessments"]}
    fb = by_name["user_correctness"]
    assert fb["value"] is False and fb["rationale"] == "wrong columns"
    assert (fb["source_type"], fb["source_id"]) == ("HUMAN", "local")  # never the name the body sends
    assert by_name["user_rubric"]["value"] == "partially"
    assert by_name["expected_sql"]["kind"] == "expectation" and by_name["expected_sql"]["value"] == CORRECTED
    assert view["review"] == "rejected" and view["expected_sql"] == CORRECTED
    # ... and straight from MLflow.
    names = {a.name for a in mlflow.get_trace(asked["trace_id"]).info.assessments}
    assert {"user_correctness", "user_rubric", "expected_sql"} <= names


# --- review and golden -----------------------------------------------------------------------------


def test_review_queue_and_promotion(client, app_env):
    _, golden_file, _ = app_env
    before = golden_file.read_text().splitlines()
    q_bad = "Which player is Babe Ruth? (review test)"
    q_good = "Home runs leader in 1927 (review test)"
    q_none = "Babe Ruth home runs in each year (review test)"
    bad = client.post("/api/ask", json={"question": q_bad}).json()
    good = client.post("/api/ask", json={"question": q_good}).json()
    none = client.post("/api/ask", json={"question": q_none}).json()
    client.post(
        "/api/feedback", json={"trace_id": bad["trace_id"], "value": False, "corrected_sql": CORRECTED}
    )
    client.post(
        "/api/feedback", json={"trace_id": good["trace_id"], "value": True, "rubric": {"label": "correct"}}
    )

    items = client.get("/api/review").json()["items"]
    ids = [it["trace_id"] for it in items]
    assert bad["trace_id"] in ids and none["trace_id"] in ids and good["trace_id"] not in ids
    assert ids.index(none["trace_id"]) < ids.index(bad["trace_id"])  # newest first
    entry = items[ids.index(bad["trace_id"])]
    assert entry["question"] == q_bad and entry["sql"] == bad["sql"] and entry["status"] == "ok"
    assert entry["review"] == "rejected" and entry["feedback"]["value"] is False
    assert entry["expected_sql"] == CORRECTED

    # Not reviewed yet: nothing to promote.
    assert client.post("/api/golden", json={"trace_id": none["trace_id"]}).status_code == 422

    r = client.post("/api/golden", json={"trace_id": bad["trace_id"]})
    assert r.status_code == 201, r.text
    item = r.json()["item"]
    assert item["question"] == q_bad and item["gold_sql"] == CORRECTED
    assert (item["split"], item["tags"], item["difficulty"]) == ("train", ["from-feedback"], "medium")
    assert r.json()["dataset"].get("dataset_id"), r.json()["dataset"]

    r2 = client.post("/api/golden", json={"trace_id": good["trace_id"]})
    assert (
        r2.status_code == 201
        and r2.json()["item"]["gold_sql"] == good["sql"]
        and r2.json()["source"] == "accepted"
    )

    # Duplicates: the same trace, or another trace of the same question.
    assert client.post("/api/golden", json={"trace_id": bad["trace_id"]}).status_code == 409
    again = client.post("/api/ask", json={"question": q_bad}).json()
    client.post("/api/feedback", json={"trace_id": again["trace_id"], "value": True})
    assert client.post("/api/golden", json={"trace_id": again["trace_id"]}).status_code == 409
    for payload in ({}, {"trace_id": 5}, {"trace_id": "x", "split": "test"}):
        assert client.post("/api/golden", json=payload).status_code == 422

    # The promoted trace left the queue; the file gained exactly the two items, still sorted.
    assert bad["trace_id"] not in [it["trace_id"] for it in client.get("/api/review").json()["items"]]
    after = golden_file.read_text().splitlines()
    assert len(after) == len(before) + 2
    items = [json.loads(line) for line in after]
    assert [(i["split"], i["id"]) for i in items] == sorted((i["split"], i["id"]) for i in items)
    new = [i for i in items if "from-feedback" in i["tags"]]
    assert {i["question"] for i in new} == {q_bad, q_good}
    assert all(i["split"] == "train" for i in new)
    # The MLflow evaluation dataset holds them (merging is idempotent: one record per question).
    from mlflow.genai import datasets

    ds = datasets.get_dataset(name="sqlagent-golden")
    records = ds.to_df()
    questions = [r["question"] for r in records["inputs"]]
    assert sorted(questions) == sorted([q_bad, q_good])


def test_promoted_items_pass_the_golden_set_checks(app_env):
    """Every promoted line is valid by tests/unit/evals/test_golden_set.py's per-item rules."""
    from tests.unit.evals import test_golden_set as gs

    _, golden_file, _ = app_env
    for line in golden_file.read_text().splitlines():
        item = json.loads(line)
        if "from-feedback" in item["tags"]:
            gs.test_item_format(item)


def test_pages_are_served(client):
    for path, marker in [
        ("/", "<title>sqlagent"),
        ("/review", "<title>sqlagent"),
        ("/static/app.js", "Authorization"),
        ("/static/style.css", "body"),
        ("/static/vendor/vega-embed.min.js", "vegaEmbed"),
    ]:
        r = client.get(path)
        assert r.status_code == 200 and marker in r.text, path
    assert client.get("/static/../server.py").status_code == 404
