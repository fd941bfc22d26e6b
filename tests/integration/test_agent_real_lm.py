"""A few easy questions through the whole graph with the real embedded model (0.5B in CI).

These check that the prompts, adapters and parsing work with a real model end to end; they do not
measure accuracy (that is `make eval`). Kept few and small: each question is a handful of seconds.
"""

from __future__ import annotations

import pytest

from agent.config import load_settings
from agent.models import get_spec, is_cached
from agent.service import Agent

MODEL = "qwen2.5-coder-0.5b"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    settings = load_settings(
        lm={"model": f"embedded/{MODEL}", "cache": False, "max_tokens": 300},
        tracking={"enabled": False},
    )
    try:
        get_spec(MODEL)
    except Exception as exc:  # pragma: no cover - only when the registry is broken
        pytest.fail(f"model registry: {exc}")
    if not is_cached(get_spec(MODEL), settings.embedded.cache_dir):
        from agent.models import assemble

        assemble(get_spec(MODEL), settings.embedded.cache_dir)
    return Agent(settings, persistent_threads=False)


def test_demo_question_end_to_end(bot):
    result = bot.ask("Who hit the most home runs in 1927, and how many?")
    names = [n.name for n in result.nodes]
    assert names[:3] == ["guard", "rewrite", "retrieve"] or names[:2] == ["rewrite", "retrieve"]
    assert result.status in {"ok", "error"}, result
    assert result.sql and "select" in result.sql.lower()
    assert all(n.tokens > 0 for n in result.nodes if n.name in {"rewrite", "generate"})
    if result.status == "ok":
        assert result.answer


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
