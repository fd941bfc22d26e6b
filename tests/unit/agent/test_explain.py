"""Explaining a query on request (agent/explain.py through `Agent.explain`): the module's inputs, the
role's policy before the LM, a failing LM as a result, and the `explain` span on its own trace."""

from __future__ import annotations

import json

import dspy
import mlflow
import pytest

from agent.config import load_settings
from agent.explain import EXPLAIN, EXPLAINS_TAG
from agent.service import PROMPTS_TAG, Agent
from prompts.explain import NO_QUESTION, Explain
from tests.fake_lm import default_handlers, fake_lm
from tests.tracking_store import temporary_tracking
from tests.unit.agent.test_role_isolation import ROLES, Recording, hidden_names, leaks

TOP_1927 = (
    "SELECT p.nameFirst, p.nameLast, SUM(b.HR) AS hr FROM Batting b JOIN People p ON p.playerID = b.playerID "
    "WHERE b.yearID = 1927 GROUP BY p.nameFirst, p.nameLast ORDER BY hr DESC LIMIT 3"
)


@pytest.fixture(scope="module")
def settings():
    return load_settings(tracking={"enabled": False})


def _agent(settings, role=None, handlers=None):
    engine = Recording(handlers or default_handlers("SELECT 1"))
    lm = dspy.LM("fake/scripted", engine=engine, cache=False)
    return Agent(settings, role=role, lms={"default": lm}, persistent_threads=False), engine


def _explain_calls(engine):
    return [inputs for key, inputs in engine.calls if key == "explanation"]


def test_inputs_say_when_there_is_no_question():
    assert Explain.inputs(" SELECT 1 ", "TABLE T", None) == {
        "question": NO_QUESTION,
        "sql": "SELECT 1",
        "db_schema": "TABLE T",
    }
    assert Explain.inputs("SELECT 1", "", "  How many?  ")["question"] == "How many?"


def test_explains_the_checked_query_with_the_schema_of_what_it_reads(settings):
    agent, engine = _agent(settings)
    result = agent.explain(TOP_1927, question="Top hitters of 1927?")
    assert result.status == "ok", result.error
    assert result.explanation == "It reads the Batting and People tables."
    assert result.sql == agent.context.db.policy.check(TOP_1927).sql  # what would run, LIMIT and all
    [sent] = _explain_calls(engine)
    assert sent["question"] == "Top hitters of 1927?" and sent["sql"] == result.sql
    schema = sent["db_schema"]
    assert schema.startswith("TABLE Batting") and "\nTABLE People" in schema
    # Only the columns the query reads, with what they mean; the join path between the two.
    for column in (
        "HR INTEGER -- Home runs",
        "yearID",
        "nameFirst",
        "nameLast",
        "Batting.playerID = People.playerID",
    ):
        assert column in schema
    assert "birthYear" not in schema and "RBI" not in schema and "Salaries" not in schema
    assert result.step.name == EXPLAIN and result.step.tokens > 0 and result.step.tokens_written > 0


def test_a_star_is_explained_with_every_column_it_reads(settings):
    agent, engine = _agent(settings)
    assert agent.explain("SELECT * FROM People LIMIT 1").status == "ok"
    [sent] = _explain_calls(engine)
    assert "birthCity" in sent["db_schema"] and sent["question"] == NO_QUESTION


@pytest.mark.parametrize("role", ROLES)
def test_a_narrowed_role_explains_without_a_hidden_name(settings, role):
    agent, engine = _agent(settings, role)
    names = hidden_names(agent.context.db)
    result = agent.explain(TOP_1927, question="Top hitters of 1927?")
    assert result.status == "ok", result.error
    assert engine.prompts and all(leaks(p, names) == [] for p in engine.prompts)
    assert leaks(result.model_dump_json(), names) == []


@pytest.mark.parametrize(
    ("role", "sql"),
    [
        ("public", "SELECT birthCity FROM People WHERE playerID = 'ruthba01'"),
        ("public", "SELECT * FROM People LIMIT 1"),  # the star reads the hidden columns
        ("public", "SELECT MAX(salary) FROM Salaries"),
        ("restricted", "SELECT name FROM Teams t JOIN Salaries s USING (teamID)"),
        (None, "DELETE FROM People"),
    ],
)
def test_what_the_role_may_not_run_is_refused_not_explained(settings, role, sql):
    agent, engine = _agent(settings, role)
    decision = agent.context.db.policy.check(sql)
    result = agent.explain(sql)
    assert not decision.allowed
    assert (result.status, result.error, result.error_kind) == ("refused", decision.reason, decision.code)
    assert result.explanation is None and result.step.tokens == 0
    assert engine.calls == []  # the LM never saw it


def test_bad_input_and_a_failing_lm_are_results(settings):
    def broken(inputs):
        raise RuntimeError("the model server is down")

    agent, engine = _agent(settings, handlers={"explanation": broken})
    failed = agent.explain("SELECT COUNT(*) FROM Teams")
    assert failed.status == "error" and failed.error_kind == "internal"
    assert "the model server is down" in failed.error and len(failed.error.splitlines()) == 1
    too_long = agent.explain("SELECT 1", question="x" * (settings.limits.max_question_chars + 1))
    assert too_long.error_kind == "bad_input" and "limits.max_question_chars" in too_long.error
    calls = len(engine.calls)
    surrogate = agent.explain("SELECT '\ud800'")
    assert (surrogate.error_kind, surrogate.error) == (
        "bad_input",
        "The SQL is not valid UTF-8 text (a lone surrogate U+D800 at character 9).",
    )
    nul = agent.explain("SELECT 1\x00")  # the same check as the CLI's and MCP's, before the policy
    assert (nul.error_kind, nul.error) == ("bad_input", "The SQL contains a NUL byte (at character 9).")
    assert len(engine.calls) == calls  # the LM never saw either
    silent, _ = _agent(settings, handlers={"explanation": lambda i: {"explanation": "  "}})
    assert silent.explain("SELECT COUNT(*) FROM Teams").error == "The model returned no explanation."


def test_the_explanation_is_its_own_span_on_its_own_trace(tmp_path):
    with temporary_tracking(tmp_path, "explain-test") as settings:
        lm, _ = fake_lm(default_handlers(TOP_1927))
        agent = Agent(settings, lms={"default": lm}, persistent_threads=False)
        asked = agent.ask("Who hit the most home runs in 1927?")
        result = agent.explain(asked.sql, asked.question, user="alice", about=asked.trace_id)
        mlflow.flush_trace_async_logging()
        assert result.status == "ok" and result.trace_id and result.trace_id != asked.trace_id
        trace = mlflow.get_trace(result.trace_id)
    roots = [s for s in trace.data.spans if s.parent_id is None]
    assert [s.name for s in roots] == [EXPLAIN]
    span = roots[0]
    assert span.inputs == {"sql": asked.sql, "question": asked.question}
    assert span.outputs["explanation"] == result.explanation
    assert span.attributes["sqlagent.tokens"] == result.step.tokens > 0
    assert span.attributes["sqlagent.tokens_written"] > 0 and span.attributes["sqlagent.duration_ms"] > 0
    names = {s.name for s in trace.data.spans}
    assert "tool.describe_schema" in names and any(n.startswith("Explain") for n in names)  # DSPy's
    tags = trace.info.tags
    assert tags[EXPLAINS_TAG] == asked.trace_id
    assert json.loads(tags[PROMPTS_TAG]) == {EXPLAIN: "code"}
    assert trace.info.trace_metadata["mlflow.trace.user"] == "alice"
    # Not a question: the review queue and the monitor's answers do not count it.
    assert "sqlagent.status" not in tags and "sqlagent.origin" not in tags
