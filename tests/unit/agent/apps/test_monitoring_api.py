"""Online monitoring in the server: every answer sampled and scored in the background (code scorers,
then the judges, through the configured judge LM), the scores on the traces, /metrics, /api/monitor
and the page; thresholds that raise alerts, and `sqlagent monitor --check`."""

from __future__ import annotations

import mlflow
import pytest
from fastapi.testclient import TestClient

from agent.apps.server import create_app
from agent.service import Agent
from tests.fake_judge_server import KEY, fake_judge_server
from tests.fake_lm import default_handlers, fake_lm
from tests.tracking_store import temporary_tracking

RUTH = "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
BAD = "SELECT zzqq_no_such_column FROM Batting"


def _reply(system, user, body):
    if "knowledgeable baseball fan" in system:
        return {"rationale": "fine", "result": "correct"}
    return {"rationale": "fine", "result": "pass"}


@pytest.fixture(scope="module")
def env(tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("monitor")
    with fake_judge_server(_reply) as judge, temporary_tracking(tmp, "monitor-test") as base:
        monkeypatch_module.setenv("FAKE_JUDGE_KEY", KEY)
        settings = base.model_copy(
            update={
                "monitor": base.monitor.model_copy(
                    update={
                        "sample_rate": 1.0,
                        "judge_sample_rate": 1.0,
                        "check_interval_s": 3600,
                        "thresholds": base.monitor.thresholds.model_copy(
                            update={"min_answers": 1, "error_rate": 0.1}
                        ),
                    }
                ),
                "judges": base.judges.model_copy(
                    update={
                        "lm": base.judges.lm.model_copy(
                            update={
                                "model": "openai/fake-judge",
                                "api_base": judge.url + "/v1",
                                "api_key_env": "FAKE_JUDGE_KEY",
                            }
                        )
                    }
                ),
            }
        )

        def factory(s, db, role):
            lm, _ = fake_lm(default_handlers(lambda i: BAD if "broken" in i.get("question", "") else RUTH))
            return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

        app = create_app(settings, agent_factory=factory, auth=False)
        with TestClient(app) as client:
            ok = client.post("/api/ask", json={"question": "Who hit the most home runs in 1927?"}).json()
            failed = client.post("/api/ask", json={"question": "A broken question about 1927?"}).json()
            assert app.state.quality.sampler.drain(120)
            yield client, app, ok, failed, judge


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _scores(trace_id):
    trace = mlflow.get_trace(trace_id)
    return {(a.name, a.source.source_type): a for a in trace.info.assessments}


def test_code_scores_land_on_the_trace(env):
    _, _, ok, failed, _ = env
    scores = _scores(ok["trace_id"])
    assert scores[("valid_sql", "CODE")].value is True
    assert scores[("non_empty_result", "CODE")].value is True
    assert scores[("errored", "CODE")].value is False
    assert scores[("tokens", "CODE")].value == sum(n["tokens"] for n in ok["nodes"]) > 0
    assert scores[("latency_ms", "CODE")].value > 0
    bad = _scores(failed["trace_id"])
    assert failed["status"] == "error"
    assert bad[("valid_sql", "CODE")].value is False and bad[("errored", "CODE")].value is True


def test_judges_score_the_sampled_answers_through_the_configured_lm(env):
    _, _, ok, _, judge = env
    scores = _scores(ok["trace_id"])
    assert scores[("grounding", "LLM_JUDGE")].value == "pass"
    assert scores[("fan_rubric", "LLM_JUDGE")].metadata["version"] == "fan_rubric@v1"
    assert scores[("sql_answers_question", "LLM_JUDGE")].source.source_id == "openai:/fake-judge"
    # The SQL judge is told the database's tables.
    sql_calls = [r for r in judge.requests if "computes the answer" in r["body"]["messages"][0]["content"]]
    assert sql_calls and "- Batting (" in sql_calls[0]["body"]["messages"][0]["content"]


def test_metrics_in_prometheus_text(env):
    client = env[0]
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'sqlagent_answers_total{status="ok"} 1.0' in text
    assert 'sqlagent_answers_total{status="error"} 1.0' in text
    assert 'sqlagent_judge_verdicts_total{judge="grounding",value="pass"} 1.0' in text
    assert 'sqlagent_code_scores_total{scorer="valid_sql",value="false"} 1.0' in text
    assert (
        "sqlagent_answer_latency_seconds_bucket" in text
        and 'sqlagent_lm_tokens_total{kind="read",node="generate"}' in text
    )


def test_api_monitor_rates_and_alerts(env):
    client = env[0]
    r = client.get("/api/monitor", params={"window": "1h"})
    assert r.status_code == 200, r.text
    w = r.json()["windows"][0]
    assert w["answers"] == 2 and w["statuses"] == {"error": 1, "ok": 1}
    assert w["error_rate"] == 0.5 and w["scored"] == 2 and w["valid_sql_rate"] == 0.5
    assert w["judges"]["grounding"] == {"judged": 1, "passed": 1, "pass_rate": 1.0}
    assert any("error rate 0.5 is above 0.1" in a for a in w["alerts"])
    assert client.get("/api/monitor", params={"window": "soon"}).status_code == 422
    assert "Monitor" in client.get("/monitor").text


def test_monitor_check_exits_1_on_an_alert(env, monkeypatch, capsys):
    from agent.apps.cli import main

    settings = env[1].state.settings
    monkeypatch.setenv("SQLAGENT_TRACKING__URI", settings.tracking.uri)
    monkeypatch.setenv("SQLAGENT_TRACKING__EXPERIMENT", settings.tracking.experiment)
    monkeypatch.setenv("SQLAGENT_MONITOR__THRESHOLDS__MIN_ANSWERS", "1")
    assert main(["monitor", "--window", "1h", "--check"]) == 1
    out = capsys.readouterr()
    assert "2 answers" in out.out and "ALERT 1h: error rate 0.5" in out.out
    monkeypatch.setenv("SQLAGENT_MONITOR__THRESHOLDS__ERROR_RATE", "0.9")
    assert main(["monitor", "--window", "1h", "--check"]) == 0
    assert main(["monitor", "--window", "1w"]) == 2


def test_reviewers_label_the_judges_and_alignment_reads_the_labels(env):
    from evals.judges.labels import reviewed_agent_items
    from evals.judges.specs import load_specs

    client, app, ok, _, _ = env
    listed = client.get("/api/judges").json()["judges"]
    assert [j["name"] for j in listed] == [
        "grounding",
        "sql_answers_question",
    ]  # the rubric is fan_rubric's label
    body = {
        "trace_id": ok["trace_id"],
        "value": True,
        "rubric": {"label": "partially", "reason": "no number"},
        "labels": {"grounding": "fail", "sql_answers_question": "pass"},
        "comment": "the answer drops the 60",
    }
    assert client.post("/api/feedback", json=body).status_code == 200
    bad = client.post("/api/feedback", json={**body, "labels": {"grounding": "maybe"}})
    assert bad.status_code == 422 and "'maybe' is not one of pass, fail" in bad.json()["detail"]
    assert client.post("/api/feedback", json={**body, "labels": {"nope": "pass"}}).status_code == 422
    mlflow.flush_trace_async_logging()
    items = reviewed_agent_items([mlflow.get_trace(ok["trace_id"])], load_specs(app.state.settings.judges))
    assert len(items) == 1
    item = items[0]
    assert {k: v.value for k, v in item.labels.items()} == {
        "grounding": "fail",
        "sql_answers_question": "pass",
        "fan_rubric": "partially",
    }
    assert item.labels["fan_rubric"].rationale == "no number"
    assert item.case.rows == [["Babe", "Ruth", 60]] and item.case.sql.startswith("SELECT")
    assert item.id == f"trace:{ok['trace_id']}"
