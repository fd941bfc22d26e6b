"""A few easy questions through the whole graph with the real embedded model (0.5B in CI).

These check that the prompts, adapters and parsing work with a real model end to end, and that the
demo question gets the right answer (Babe Ruth, 60), as does every question the README suggests
(golden items tagged `readme`, scored the eval's way with `make demo`'s model); they do not measure
accuracy (that is `make eval`). Kept few: on 2 CPU cores a question takes ~20-60 s, the first one 70-90 s (cold start).
The 0.5B model answers the demo question correctly; should it stop doing so, switch that one test to
the 1.5B model (~60 s) rather than loosen it.
"""

from __future__ import annotations

import re

import pytest

from agent.config import load_settings, resolve_path
from agent.lm.models import get_spec, is_cached
from agent.service import Agent
from evals.dataset import load_dataset
from evals.runner import AgentPipeline, evaluate_item

MODEL = "qwen2.5-coder-0.5b"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    # cache=False: every run asks the model, so an old answer in the DSPy cache cannot pass a test.
    settings = load_settings(
        lm={"model": f"embedded/{MODEL}", "cache": False, "max_tokens": 300},
        tracking={"enabled": False},
    )
    try:
        get_spec(MODEL)
    except Exception as exc:  # pragma: no cover - only when the registry is broken
        pytest.fail(f"model registry: {exc}")
    if not is_cached(get_spec(MODEL), settings.embedded.cache_dir):
        from agent.lm.models import assemble

        assemble(get_spec(MODEL), settings.embedded.cache_dir)
    return Agent(settings, persistent_threads=False)


@pytest.fixture(scope="module")
def default_bot():
    # The demo question with the model `make demo` uses (config lm.model): the README promises this answer.
    from agent.lm.embedded import running_servers

    settings = load_settings(lm={"cache": False}, tracking={"enabled": False})
    yield Agent(settings, persistent_threads=False)
    # Servers are per process: stop this one so later tests see only the 0.5B model they start.
    for server in running_servers():
        if server.name != MODEL:
            server.stop()


def test_demo_question_end_to_end(default_bot):
    # The 0.5B model copies a worked example's player id here (playerID = 'ruthba01' for "who hit the
    # most"), the example-leak failure of issue #16; the default 1.5B model answers it.
    result = default_bot.ask("Who hit the most home runs in 1927, and how many?")
    names = [n.name for n in result.nodes]
    assert names[:3] == ["guard", "rewrite", "retrieve"] or names[:2] == ["rewrite", "retrieve"]
    tokens = {n.name: n.tokens for n in result.nodes}
    # The default modes: names found by rules, a one-row answer said by the template, so the one
    # LM call of the question writes the SQL (and the model's usage reaches the timeline).
    assert tokens["generate"] > 0 and tokens["rewrite"] == 0 and tokens.get("answer", 0) == 0, tokens
    assert result.status == "ok", (result.error, result.sql)
    assert result.sql and "select" in result.sql.lower()
    # The answer itself: the first (top) row names Ruth and holds his 60 home runs...
    assert result.rows, result.sql
    top = result.rows[0]
    assert 60 in top, (result.sql, result.rows[:3])
    assert "ruth" in " ".join(str(cell) for cell in top).lower(), (result.sql, result.rows[:3])
    # ...and the sentence the user reads says so.
    assert result.answer and "Ruth" in result.answer, result.answer
    assert re.search(r"(?<![\d.])60(?!\.?\d)", result.answer), result.answer  # "60." ends a sentence


README_ITEMS = load_dataset(resolve_path("evals/golden.jsonl"), tag="readme").items


@pytest.fixture(scope="module")
def readme_pipeline(default_bot):
    # The eval's own path (the item's gold run and scored with evals.scoring), with `make demo`'s model.
    settings = load_settings(lm={"cache": False}, tracking={"enabled": False})
    pipeline = AgentPipeline(settings)
    pipeline.prepare(README_ITEMS)
    return pipeline


@pytest.mark.parametrize("item", README_ITEMS, ids=lambda i: i.id)
def test_every_question_the_readme_suggests_is_answered_right(readme_pipeline, item):
    record = evaluate_item(item, readme_pipeline, max_rows=1000)
    assert record["correct"], (record.get("status"), record.get("sql"), record.get("error"))


def test_entity_is_resolved_with_the_real_model(bot):
    result = bot.ask("How many games did the Yankees win in 1998?")
    assert any(m.value == "NYA" for m in result.mappings), result.mappings
    assert "NYA" in (result.rewritten_question or "")


def test_question_without_entities_is_not_rewritten(bot):
    question = "How many teams played in the 1990 season?"
    result = bot.ask(question)
    assert result.rewritten_question == question
    assert result.mappings == []


def test_unsafe_request_is_refused(bot):
    result = bot.ask("Delete all rows from the People table.")
    assert result.status == "refused", result
