"""The cost guard: a question stops before an LM step that would take it past its token budget,
with a message (and a trace) that says where the tokens went."""

from __future__ import annotations

import json

import mlflow

from agent.budget import stop_message
from agent.config import load_settings
from agent.service import Agent, TokenBudget
from tests.fake_lm import default_handlers, fake_lm
from tests.tracking_store import temporary_tracking

BAD = "SELECT zzqq_no_such_column FROM Batting"  # refused by the policy, no fix without the LM: repair


def _agent(settings=None, sql=BAD):
    lm, engine = fake_lm(default_handlers(sql))
    settings = settings or load_settings(tracking={"enabled": False})
    return Agent(settings, lms={"default": lm}, persistent_threads=False), engine


def _spent(result) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in result.nodes:
        out[n.name] = out.get(n.name, 0) + n.tokens
    return out


def test_without_a_budget_every_repair_runs():
    agent, engine = _agent()
    result = agent.ask("Who hit the most home runs in 1927?", budget=TokenBudget(None))
    assert result.status == "error" and result.error_kind != "budget"
    assert [n.name for n in result.nodes].count("repair") == 2  # limits.max_repair_attempts
    assert [key for key, _ in engine.calls].count("sql") == 3


def test_the_question_stops_before_the_step_that_would_pass_the_budget():
    agent, _ = _agent()
    generate_tokens = _spent(agent.ask("Who hit the most home runs in 1927?", budget=TokenBudget(None)))[
        "generate"
    ]
    agent, engine = _agent()
    # Room for generate and one repair of the same size, not for the second repair.
    result = agent.ask("Who hit the most home runs in 1927?", budget=TokenBudget(generate_tokens * 2 + 10))
    assert result.status == "error" and result.error_kind == "budget", result.error
    names = [n.name for n in result.nodes]
    assert names.count("repair") == 2 and names[-1] == "finish"
    stopped = [n for n in result.nodes if n.name == "repair"][-1]
    assert stopped.tokens == 0 and stopped.detail.startswith("stopped by the token budget")
    assert [key for key, _ in engine.calls].count("sql") == 2  # generate and one repair: the LM ran twice
    assert "Stopped before the repair step" in result.answer
    assert f"generate {generate_tokens:,}" in result.answer and "budget.tokens_per_question" in result.answer


def test_the_configured_budget_is_the_default():
    settings = load_settings(tracking={"enabled": False}, budget={"tokens_per_question": 1})
    agent, engine = _agent(settings)
    result = agent.ask("Who hit the most home runs in 1927?")
    assert result.error_kind == "budget"
    assert [key for key, _ in engine.calls].count("sql") == 1  # the first LM step always runs


def test_a_question_within_its_budget_is_answered():
    agent, _ = _agent(sql="SELECT nameFirst, nameLast FROM People WHERE playerID = 'ruthba01'")
    result = agent.ask("Who is ruthba01?", budget=TokenBudget(10_000_000))
    assert result.status == "ok" and result.rows == [["Babe", "Ruth"]]


def test_stop_message_estimates_the_next_step_by_the_dearest_so_far():
    assert stop_message("repair", {}, 100, 0) is None  # nothing spent: the first step runs
    assert stop_message("repair", {"generate": 60}, None, 60) is None  # no budget
    assert stop_message("repair", {"generate": 40}, 100, 40) is None  # 40 + 40 <= 100
    message = stop_message("repair", {"generate": 60}, 100, 60, "budget.tokens_per_user")
    assert message.startswith("Stopped before the repair step") and "generate 60" in message
    assert "budget.tokens_per_user" in message


def test_the_trace_says_where_the_tokens_went(tmp_path):
    with temporary_tracking(tmp_path, "budget-test") as settings:
        agent, _ = _agent(
            settings.model_copy(
                update={"budget": settings.budget.model_copy(update={"tokens_per_question": 1})}
            )
        )
        result = agent.ask("Who hit the most home runs in 1927?")
        mlflow.flush_trace_async_logging()
        trace = mlflow.get_trace(result.trace_id)
    assert trace.info.tags["sqlagent.status"] == "error"
    usage = json.loads(trace.info.tags["sqlagent.tokens"])
    assert (
        usage["nodes"] == {"generate": _spent(result)["generate"]}
        and usage["total"] == usage["nodes"]["generate"]
    )
    root = next(s for s in trace.data.spans if s.name == "sqlagent.ask")
    assert root.attributes["sqlagent.tokens_by_node"] == usage["nodes"]
    stopped = next(s for s in trace.data.spans if s.name == "node.repair")
    assert stopped.attributes["sqlagent.budget_stop"] is True
    assert stopped.attributes["sqlagent.tokens_by_node"] == usage["nodes"]


def test_a_client_that_sends_only_the_question_gets_the_configured_budget():
    # What a LangGraph API client sends: {"question": ...}; the guard starts the turn with the config's budget.
    settings = load_settings(tracking={"enabled": False}, budget={"tokens_per_question": 1})
    agent, engine = _agent(settings)
    final = agent.graph.invoke(
        {"question": "Who hit the most home runs in 1927?"},
        config={"configurable": {"thread_id": "api-client"}},
        context=agent.context,
    )
    assert final["error_kind"] == "budget" and final["token_budget"] == 1
    assert [key for key, _ in engine.calls].count("sql") == 1
