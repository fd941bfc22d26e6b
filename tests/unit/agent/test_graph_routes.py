"""Every route through the agent graph, end to end on the real demo database with a scripted LM.

Each test states what "the model" says at every step (tests/fake_lm.py) and checks the status, the
SQL, the rows and the exact sequence of nodes that ran (`AskResult.nodes`, in execution order).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from agent.config import Settings, load_settings, resolve_path
from agent.service import Agent, AskResult
from tests.fake_lm import ScriptedEngine, default_handlers, fake_lm

HR_1927 = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
)
HR_1961 = HR_1927.replace("1927", "1961")
HAPPY = ["guard", "rewrite", "retrieve", "generate", "safety", "execute", "answer"]
EMPTY_SQL = "SELECT nameFirst, nameLast FROM People WHERE nameLast = 'Nobody-At-All'"


@pytest.fixture(scope="module")
def settings() -> Settings:
    # Every LM step calls the LM here, so the script sees each one; the rules/template defaults
    # are covered by test_default_modes_call_the_lm_only_to_write_sql.
    return load_settings(tracking={"enabled": False}, rewrite={"mentions": "lm"}, answer={"mode": "lm"})


def test_default_modes_call_the_lm_only_to_write_sql():
    defaults = load_settings(tracking={"enabled": False})
    assert (defaults.rewrite.mentions, defaults.answer.mode) == ("rules", "auto")
    agent, engine = make_agent(
        defaults,
        default_handlers(
            "SELECT nameFirst, nameLast, HR FROM Batting JOIN People USING (playerID) WHERE yearID = 1927 "
            "ORDER BY HR DESC LIMIT 1"
        ),
    )
    result = agent.ask("How many home runs did Babe Ruth hit in 1927?")
    assert result.status == "ok" and names(result) == HAPPY
    assert [key for key, _ in engine.calls] == ["sql"]
    assert [(m.mention, m.value) for m in result.mappings] == [("Babe Ruth", "ruthba01")]
    assert result.answer == "Babe Ruth: HR 60."
    tokens = {n.name: n.tokens for n in result.nodes}
    assert tokens["rewrite"] == tokens["answer"] == 0 and tokens["generate"] > 0


# tests/fake_lm.py reads the last input field up to the end of the user message, so it carries DSPy's
# closing instruction ("Respond with the corresponding output fields..."); cut it off here.
_TRAILER = "\n\nRespond with the corresponding output fields"


def clean(inputs: dict[str, str]) -> dict[str, str]:
    return {k: v.split(_TRAILER, 1)[0].strip() for k, v in inputs.items()}


def answer_from_rows(inputs: dict[str, str]) -> dict[str, str]:
    lines = inputs["rows"].splitlines()
    return {"answer": "Answer: " + lines[1] if len(lines) > 1 else "No data."}


def make_agent(settings: Settings, handlers: dict[str, Callable[[dict[str, str]], dict[str, Any]]]):
    handlers = {"answer": answer_from_rows, **{k: v for k, v in handlers.items() if k != "answer"}}
    wrapped = {key: (lambda inputs, fn=fn: fn(clean(inputs))) for key, fn in handlers.items()}
    lm, engine = fake_lm(wrapped)
    return Agent(settings, lms={"default": lm}, persistent_threads=False), engine


def names(result: AskResult) -> list[str]:
    return [n.name for n in result.nodes]


def split_sql(generate_sql: str, repair_sql: str | Callable[[dict[str, str]], str]):
    """A `sql` handler that tells generation from repair (a repair's question carries the failure)."""

    def handler(inputs: dict[str, str]) -> dict[str, str]:
        if failure_of(inputs):
            return {"sql": repair_sql(inputs) if callable(repair_sql) else repair_sql}
        return {"sql": generate_sql}

    return handler


def calls_of(engine: ScriptedEngine, key: str) -> list[dict[str, str]]:
    return [clean(inputs) for k, inputs in engine.calls if k == key]


_FAILED = "A first query for this question failed with: "


def failure_of(inputs: dict[str, str]) -> dict[str, str] | None:
    """The error a repair call showed the model, read back from its question field."""
    question = inputs.get("question", "")
    if _FAILED not in question:
        return None
    return {"error": question.split(_FAILED, 1)[1]}


def repair_calls(engine: ScriptedEngine) -> list[dict[str, str]]:
    return [f for c in calls_of(engine, "sql") if (f := failure_of(c))]


def db_digest(settings: Settings) -> str:
    return hashlib.sha256(resolve_path(settings.database.url).read_bytes()).hexdigest()


# --- happy path --------------------------------------------------------------------------------


def test_happy_path(settings):
    agent, engine = make_agent(settings, default_handlers(HR_1927))
    result = agent.ask("Who hit the most home runs in 1927, and how many?")

    assert result.status == "ok", result.error
    assert result.error is None
    assert result.sql is not None and "1927" in result.sql
    assert result.columns == ["nameFirst", "nameLast", "HR"]
    assert result.rows == [["Babe", "Ruth", 60]]
    assert "Babe" in result.answer and "60" in result.answer
    assert names(result) == HAPPY
    tokens = {n.name: n.tokens for n in result.nodes}
    for name in ("rewrite", "generate", "answer"):
        assert tokens[name] > 0, name
    for name in ("guard", "retrieve", "safety", "execute"):
        assert tokens[name] == 0, name
    assert all(n.duration_ms >= 0 for n in result.nodes)
    # No follow-up on a fresh thread: the contextualize step never ran.
    assert calls_of(engine, "standalone_question") == []
    assert result.rewritten_question == result.question


# --- repair ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_sql", "error_kind", "error_text", "route"),
    [
        # The policy rejects it before it runs: no execute for the bad query.
        (
            "SELECT p.nameFirst, p.homers FROM People p",
            "unknown_column",
            "homers",
            ["guard", "rewrite", "retrieve", "generate", "safety", "repair", "safety", "execute", "answer"],
        ),
        # DuckDB rejects it at run time.
        (
            "SELECT nameFirst, count(*) FROM People",
            "execution",
            "GROUP BY",
            [
                "guard",
                "rewrite",
                "retrieve",
                "generate",
                "safety",
                "execute",
                "repair",
                "safety",
                "execute",
                "answer",
            ],
        ),
    ],
    ids=["policy-unknown-column", "duckdb-group-by"],
)
def test_repair_then_success(settings, bad_sql, error_kind, error_text, route):
    handlers = default_handlers("unused")
    handlers["sql"] = split_sql(bad_sql, HR_1927)
    agent, engine = make_agent(settings, handlers)
    result = agent.ask("Who hit the most home runs in 1927, and how many?")

    assert result.status == "ok", result.error
    assert result.rows == [["Babe", "Ruth", 60]]
    assert "1927" in result.sql and "homers" not in result.sql
    assert names(result) == route
    # The node that failed recorded the error kind (policy code or "execution") in its detail.
    assert any(n.detail.startswith(f"{error_kind}:") for n in result.nodes), [n.detail for n in result.nodes]
    repairs = repair_calls(engine)
    assert len(repairs) == 1
    assert error_text.lower() in repairs[0]["error"].lower()
    repair_node = next(n for n in result.nodes if n.name == "repair")
    assert repair_node.tokens > 0


@pytest.mark.parametrize(
    "bad_sql",
    ["SELECT p.homers FROM People p", "SELECT nameFirst, count(*) FROM People"],
    ids=["policy", "execution"],
)
def test_repair_exhausted(settings, bad_sql):
    agent, engine = make_agent(settings, default_handlers(bad_sql))
    result = agent.ask("Who hit the most home runs in 1927, and how many?")

    max_repairs = settings.limits.max_repair_attempts
    assert result.status == "error"
    assert result.rows == []
    assert result.error  # the last error, as the database or the policy gave it
    assert f"after {max_repairs} repair attempts" in result.answer
    assert result.error in result.answer
    assert names(result).count("repair") == max_repairs
    assert names(result)[-1] == "finish"
    assert "answer" not in names(result)
    assert len(calls_of(engine, "answer")) == 0
    assert len(repair_calls(engine)) == max_repairs


@pytest.mark.parametrize("max_repairs", [0, 1, 3])
def test_the_repair_bound_is_read_per_question(settings, max_repairs):
    # One compiled graph, several configurations: the bound comes from the context, not the build.
    limits = settings.limits.model_copy(update={"max_repair_attempts": max_repairs})
    configured = settings.model_copy(update={"limits": limits})
    agent, _ = make_agent(configured, default_handlers("SELECT p.homers FROM People p"))
    result = agent.ask("Who hit the most home runs in 1927, and how many?")
    assert names(result).count("repair") == max_repairs
    assert result.status == "error" and f"after {max_repairs} repair attempts" in result.answer


def test_the_steps_table_matches_the_graph():
    from agent.graph import graph
    from agent.steps import LM_STEPS, ON_REQUEST, STEP_NAMES

    assert set(STEP_NAMES) == set(graph.nodes) - {"__start__"}
    assert set(LM_STEPS) == {"rewrite", "generate", "repair", "answer", "explain"}
    assert not {s.name for s in ON_REQUEST} & set(graph.nodes)  # run when asked, never on every question


# --- refusal -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_sql", "error_kind", "reason"),
    [
        ("DROP TABLE People", "not_read_only", "read-only"),
        ("SELECT * FROM read_csv('/etc/passwd')", "forbidden_function", "read_csv"),
    ],
    ids=["drop", "read-file"],
)
def test_refusal_is_terminal(settings, bad_sql, error_kind, reason):
    before = db_digest(settings)
    agent, engine = make_agent(settings, default_handlers(bad_sql))
    result = agent.ask("Who hit the most home runs in 1927, and how many?")

    assert result.status == "refused"
    assert result.error_kind == error_kind
    assert reason in result.error
    assert result.answer.startswith("I can't run that:")
    assert reason in result.answer
    assert result.rows == []
    assert names(result) == ["guard", "rewrite", "retrieve", "generate", "safety", "finish"]
    assert "repair" not in names(result)
    assert repair_calls(engine) == []
    assert db_digest(settings) == before
    # The database still answers normally afterwards.
    agent2, _ = make_agent(settings, default_handlers("SELECT count(*) AS n FROM People"))
    assert agent2.ask("How many people are in the database?").rows[0][0] > 20_000


# --- empty results -----------------------------------------------------------------------------


def test_empty_result_then_repair(settings):
    handlers = default_handlers("unused")
    handlers["sql"] = split_sql(EMPTY_SQL, HR_1927)
    agent, engine = make_agent(settings, handlers)
    result = agent.ask("Who hit the most home runs in 1927, and how many?")

    assert result.status == "ok", result.error
    assert result.rows == [["Babe", "Ruth", 60]]
    assert names(result) == [
        "guard",
        "rewrite",
        "retrieve",
        "generate",
        "safety",
        "execute",
        "repair",
        "safety",
        "execute",
        "answer",
    ]
    repairs = repair_calls(engine)
    assert len(repairs) == 1
    assert "no rows" in repairs[0]["error"]


def test_empty_result_that_stays_empty_is_answered(settings):
    agent, engine = make_agent(settings, default_handlers(EMPTY_SQL))
    result = agent.ask("Which players are called Nobody-At-All?")

    max_repairs = settings.limits.max_repair_attempts
    assert result.status == "ok"
    assert result.error is None and result.error_kind is None
    assert result.rows == []
    assert result.columns == ["nameFirst", "nameLast"]
    assert result.answer == "No data."
    route = names(result)
    assert route.count("repair") == max_repairs
    assert route.count("execute") == max_repairs + 1
    assert route[-1] == "answer" and "finish" not in route
    # The answer module was told there are no rows (only the header line).
    (answer_call,) = calls_of(engine, "answer")
    assert "\n" not in answer_call["rows"]


# --- clarification -----------------------------------------------------------------------------


@pytest.mark.parametrize("reply", ["2", "the second one"])
def test_clarify_then_answer_on_same_thread(settings, reply):
    griffey_sql = "SELECT sum(HR) AS hr FROM Batting WHERE playerID = 'griffke02'"
    agent, engine = make_agent(settings, default_handlers(griffey_sql, ["Ken Griffey"]))
    thread = uuid.uuid4().hex

    first = agent.ask("How many home runs did Ken Griffey hit?", thread_id=thread)
    assert first.status == "clarify"
    assert names(first) == ["guard", "rewrite"]  # then paused inside clarify, at its interrupt()
    assert first.sql is None and first.rows == []
    assert "griffke01" in first.answer and "griffke02" in first.answer
    assert "1)" in first.answer and "2)" in first.answer
    assert calls_of(engine, "sql") == []

    second = agent.ask(reply, thread_id=thread)  # resumes the paused run with the reply
    assert second.status == "ok", second.error
    assert names(second) == ["clarify", *HAPPY[2:]]
    (mapping,) = second.mappings
    assert (mapping.column, mapping.value, mapping.method) == ("playerID", "griffke02", "clarified")
    assert "griffke02" in second.rewritten_question
    assert second.rewritten_question.startswith("How many home runs did Ken Griffey")
    (generate_call,) = calls_of(engine, "sql")
    assert "griffke02" in generate_call["question"]
    assert "griffke02" in generate_call["value_hints"]
    assert second.rows == [[630]]
    # The reply itself was not sent to the LM as a new question.
    assert len(calls_of(engine, "mentions")) == 1


def test_clarify_reply_that_is_not_an_answer_is_a_new_question(settings):
    agent, engine = make_agent(
        settings, default_handlers("SELECT count(*) FROM Teams WHERE yearID = 1990", ["Ken Griffey"])
    )
    thread = uuid.uuid4().hex
    assert agent.ask("How many home runs did Ken Griffey hit?", thread_id=thread).status == "clarify"
    engine.handlers["mentions"] = lambda i: {"mentions": []}  # no need to clean: ignores its inputs
    result = agent.ask("How many teams played in 1990?", thread_id=thread)
    assert result.status == "ok", result.error
    assert result.rows == [[26]]
    assert result.mappings == []
    assert names(result) == ["clarify", *HAPPY]  # the reply started a turn of its own, guard first


# --- follow-up on a thread ---------------------------------------------------------------------


def test_follow_up_on_thread(settings):
    handlers = default_handlers(lambda i: HR_1961 if "1961" in i["question"] else HR_1927)
    seen: list[dict[str, str]] = []

    def contextualize(inputs: dict[str, str]) -> dict[str, str]:
        seen.append(inputs)
        return {"standalone_question": "Who hit the most home runs in 1961?"}

    handlers["standalone_question"] = contextualize
    agent, engine = make_agent(settings, handlers)
    thread = uuid.uuid4().hex

    first = agent.ask("Who hit the most home runs in 1927?", thread_id=thread)
    assert first.status == "ok" and first.rows == [["Babe", "Ruth", 60]]
    assert seen == []

    second = agent.ask("And in 1961?", thread_id=thread)
    assert seen == [{"previous_question": "Who hit the most home runs in 1927?", "follow_up": "And in 1961?"}]
    assert second.status == "ok", second.error
    assert second.question == "And in 1961?"
    assert second.rewritten_question == "Who hit the most home runs in 1961?"
    assert calls_of(engine, "sql")[-1]["question"] == "Who hit the most home runs in 1961?"
    assert calls_of(engine, "answer")[-1]["question"] == "Who hit the most home runs in 1961?"
    assert second.rows == [["Roger", "Maris", 61]]
    assert names(second) == HAPPY  # only this turn's nodes, not the thread's

    # A new thread has no history: the same follow-up is taken as it is.
    third = agent.ask("And in 1961?", thread_id=uuid.uuid4().hex)
    assert len(seen) == 1
    assert third.rewritten_question == "And in 1961?"


# --- bad input and failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "needle"),
    [("", "empty"), ("   \n\t", "empty"), ("x" * 2001, "max_question_chars")],
    ids=["empty", "blank", "too-long"],
)
def test_bad_input(settings, question, needle):
    assert settings.limits.max_question_chars == 2000
    agent, engine = make_agent(settings, default_handlers(HR_1927))
    result = agent.ask(question)
    assert result.status == "error"
    assert result.error_kind == "bad_input"
    assert needle in result.error
    assert result.answer == result.error
    assert result.nodes == [] and result.sql is None
    assert engine.calls == []


def test_question_at_the_limit_is_accepted(settings):
    agent, engine = make_agent(settings, default_handlers("SELECT 1 AS one"))
    question = "How many teams played in 1990?"
    question += " " * (settings.limits.max_question_chars - len(question))
    assert agent.ask(question).status == "ok"


def test_lm_failure_is_reported_not_raised(settings):
    def boom(inputs: dict[str, str]) -> dict[str, str]:
        raise RuntimeError("model server down")

    handlers = default_handlers(HR_1927)
    handlers["sql"] = boom
    agent, engine = make_agent(settings, handlers)
    result = agent.ask("Who hit the most home runs in 1927?")

    assert result.status == "error"
    assert result.error_kind == "internal"
    assert "model server down" in result.error
    assert "model server down" in result.answer
    assert "Traceback" not in result.answer
    assert result.rows == []
    # The agent is still usable afterwards.
    engine.handlers["sql"] = lambda i: {"sql": HR_1927}
    assert agent.ask("Who hit the most home runs in 1927?").status == "ok"
