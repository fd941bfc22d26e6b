"""The rewrite node on the demo database: what it maps, what it leaves alone, follow-ups and clarifications.

Table-driven like sqlglot's fixtures: (question, the LM's mentions) -> the mappings the node writes.
The LM is scripted (tests/fake_lm.py); the value index and the resolution rules are the real ones.
"""

from __future__ import annotations

import dspy
import pytest

from agent.config import load_settings
from agent.context import AgentContext
from agent.nodes.rewrite import resolve_question, rewrite
from agent.state import AgentState, PendingClarification, Turn
from prompts.optimize.metrics import rewrite_metric
from tests.fake_lm import default_handlers, fake_lm
from tools.builtin import registry
from tools.sql.database import open_database


@pytest.fixture(scope="module")
def settings():
    return load_settings(tracking={"enabled": False})


@pytest.fixture(scope="module")
def db(settings):
    return open_database(settings.database_config())


def _context(settings, db, mentions, standalone=None):
    handlers = default_handlers("SELECT 1", mentions)
    if standalone is not None:
        handlers["standalone_question"] = lambda i: {"standalone_question": standalone}
    lm, engine = fake_lm(handlers)
    return AgentContext(settings=settings, db=db, tools=registry(), lms={"default": lm}), engine


def run(ctx: AgentContext, state: AgentState) -> dict:
    with dspy.context(lm=ctx.lm("rewrite")):
        return rewrite.step(state, ctx)


def pairs(update: dict) -> list[tuple[str, str, str]]:
    return [(m.mention, m.column, m.value) for m in update["mappings"]]


@pytest.mark.parametrize(
    "question, lm_mentions, expected",
    [
        ("How many games did the Yankees win in 1998?", ["Yankees"], [("Yankees", "teamID", "NYA")]),
        # The capitalised-span safety net finds what the LM missed.
        ("How many home runs did Babe Ruth hit in 1927?", [], [("Babe Ruth", "playerID", "ruthba01")]),
        # A misspelt name the LM lists is matched fuzzily.
        (
            "How many home runs did Micky Mantle hit?",
            ["Micky Mantle"],
            [("Micky Mantle", "playerID", "mantlmi01")],
        ),
        # Statistics, years and ordinary words map to nothing.
        ("Who hit the most home runs in 2001?", ["home runs", "2001"], []),
        # One capitalised word the LM did not list is no evidence for a fuzzy neighbour (Rockies).
        ("How many Rookies debuted in 1990?", [], []),
        # A mention the LM invented (not in the question) is ignored.
        ("Who led the league in strikeouts in 1999?", ["Pedro Martinez"], []),
    ],
)
def test_rewrite_maps(settings, db, question, lm_mentions, expected):
    ctx, _ = _context(settings, db, lm_mentions)
    update = run(ctx, AgentState(question=question))
    assert pairs(update) == expected
    assert update["standalone_question"] == question  # a one-turn question is never reworded
    assert update.get("status") != "clarify"


def test_follow_up_reads_the_previous_standalone_question(settings, db):
    ctx, engine = _context(settings, db, [], standalone="Who won the NL MVP in 2001?")
    history = [Turn(question="And AL?", standalone_question="Who won the AL MVP in 2001?")]
    update = run(ctx, AgentState(question="And the NL one?", history=history))
    asked = dict(engine.calls)["standalone_question"]
    assert (
        asked["previous_question"] == "Who won the AL MVP in 2001?"
        and asked["follow_up"] == "And the NL one?"
    )
    assert update["standalone_question"] == "Who won the NL MVP in 2001?"


def test_an_ambiguous_name_asks_and_the_reply_resolves_it(settings, db, monkeypatch):
    ctx, _ = _context(settings, db, ["Ken Griffey"])
    asked = run(ctx, AgentState(question="How many home runs did Ken Griffey hit?"))
    assert asked["status"] == "clarify" and "griffke02" in asked["clarification"]
    pending = asked["pending_clarification"]
    assert isinstance(pending, PendingClarification)
    # The clarify node reads the reply from interrupt(), which returns it when the run resumes
    # (the graph-level pause and resume: tests/unit/agent/test_interrupts.py).
    from agent.nodes import clarify

    shown = []
    monkeypatch.setattr(clarify, "interrupt", lambda payload: shown.append(payload) or "the one from 2005")
    paused = AgentState(
        question="How many home runs did Ken Griffey hit?",
        status="clarify",
        clarification=asked["clarification"],
        pending_clarification=pending,
    )
    answered = clarify.clarify.step(paused, ctx)
    assert shown[0]["kind"] == "clarify" and shown[0]["message"] == asked["clarification"]
    assert pairs(answered) == [("Ken Griffey", "playerID", "griffke02")]
    assert answered["mappings"][0].method == "clarified" and answered["pending_clarification"] is None
    assert answered["standalone_question"] == "How many home runs did Ken Griffey hit?"


def test_the_optimizer_metric_scores_the_nodes_own_resolution(settings, db):
    ctx, _ = _context(settings, db, [])
    question = "How many Rookies debuted in 1990?"
    # The node's rule (an unlisted single word is not fuzzy-matched) holds in the metric too.
    assert resolve_question(question, [], ctx)[1] == []
    example = dspy.Example(question=question, expected_mappings=[], expect_unchanged=True)
    score, feedback = rewrite_metric(ctx, example, dspy.Prediction(standalone_question=question, mentions=[]))
    assert score == 1.0, feedback
