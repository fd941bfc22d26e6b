"""Tokens per node: read (processed), cached (served by the prompt cache), written (completion).

The fake engine reports usage the way DSPy's lm15 OpenAI client parses llama.cpp's (and OpenAI's)
`usage.prompt_tokens_details.cached_tokens`: as `Usage.cache_read_tokens`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from types import SimpleNamespace

import dspy
import pytest

from agent.nodes import instrument
from agent.nodes.instrument import TokenCounts, node, token_counts, usage_counts
from agent.state import AgentState, NodeRun
from tests.fake_lm import ScriptedEngine


class CachingEngine(ScriptedEngine):
    """ScriptedEngine that says `cached` of each prompt came from the prompt cache (None: not reported)."""

    def __init__(self, handlers, cached: int | None):
        super().__init__(handlers)
        self.cached = cached

    def complete(self, request):
        response = super().complete(request)
        usage = dataclasses.replace(response.usage, cache_read_tokens=self.cached)
        return dataclasses.replace(response, usage=usage)


class Echo(dspy.Signature):
    """Echo."""

    question: str = dspy.InputField()
    sql: str = dspy.OutputField()


def _lm(cached: int | None, cache: bool = False) -> tuple[dspy.LM, CachingEngine]:
    engine = CachingEngine({"sql": lambda i: {"sql": "SELECT 1"}}, cached)
    return dspy.LM("fake/caching", engine=engine, cache=cache), engine


def _run(step, lm: dspy.LM, calls: int = 1) -> dict:
    def fn(state, ctx):
        for n in range(calls):
            dspy.Predict(Echo)(question=f"{state.question} ({n})")
        return {"_detail": "done"}

    ctx = SimpleNamespace(lm=lambda name: lm, adapter=lambda name: dspy.ChatAdapter())
    return node(step)(fn)(AgentState(question="How many?"), SimpleNamespace(context=ctx))


# --- usage dicts -------------------------------------------------------------------------------


def test_llama_cpp_usage_splits_the_prompt_into_read_and_cached():
    # What lm.history[-1]["usage"] holds for a call to llama.cpp's server (measured).
    usage = {
        "prompt_tokens": 174,
        "completion_tokens": 11,
        "total_tokens": 185,
        "prompt_tokens_details": {"cached_tokens": 135},
        "completion_tokens_details": None,
    }
    assert usage_counts(usage) == TokenCounts(read=39, cached=135, written=11, total=185)


def test_a_provider_reporting_no_cache_reads_the_whole_prompt():
    assert usage_counts({"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}) == TokenCounts(
        50, 0, 5, 55
    )
    details_none = {"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": None}
    assert usage_counts(details_none) == TokenCounts(50, 0, 5, 55)  # no total: prompt + completion


def test_odd_usage_values_do_not_break_the_count():
    assert usage_counts({}) == TokenCounts()
    assert (
        usage_counts({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 99}}).read == 0
    )  # clipped
    assert (
        usage_counts({"prompt_tokens": 10, "prompt_tokens_details": SimpleNamespace(cached_tokens=4)}).cached
        == 4
    )
    assert usage_counts({"prompt_tokens": "x", "completion_tokens": None}) == TokenCounts()


def test_usage_of_several_lms_is_summed():
    by_lm = {
        "a": {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 4}},
        "b": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
    }
    assert token_counts(by_lm) == TokenCounts(read=26, cached=4, written=3, total=33)
    assert token_counts({}) == TokenCounts()


# --- the node wrapper --------------------------------------------------------------------------


def test_node_run_records_read_cached_written():
    lm, engine = _lm(cached=30)
    update = _run("generate", lm, calls=2)
    (run,) = update["nodes"]
    assert isinstance(run, NodeRun) and run.detail == "done"
    assert len(engine.calls) == 2
    assert run.tokens_cached == 60
    assert run.tokens_read > 0 and run.tokens_written > 0
    assert run.tokens == run.tokens_read + run.tokens_cached + run.tokens_written


def test_no_cached_count_means_everything_was_read():
    lm, _ = _lm(cached=None)
    (run,) = _run("generate", lm)["nodes"]
    assert run.tokens_cached == 0 and run.tokens_read > 0
    assert run.tokens == run.tokens_read + run.tokens_written


def test_a_node_without_lm_has_no_tokens():
    def fn(state, ctx):
        return {}

    (run,) = node("safety")(fn)(AgentState(question="q"), SimpleNamespace(context=SimpleNamespace()))["nodes"]
    assert (run.tokens, run.tokens_read, run.tokens_cached, run.tokens_written) == (0, 0, 0, 0)


@pytest.fixture
def memory_cache():
    """DSPy's response cache in memory only, for one test (the global cache is put back)."""
    saved = dspy.cache
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    try:
        yield
    finally:
        dspy.cache = saved


def test_a_dspy_cache_hit_counts_no_tokens(memory_cache):
    lm, engine = _lm(cached=10, cache=True)
    (first,) = _run("generate", lm)["nodes"]
    (second,) = _run("generate", lm)["nodes"]
    assert len(engine.calls) == 1  # the second answer came from DSPy's cache
    assert first.tokens_read > 0
    assert (second.tokens, second.tokens_read, second.tokens_cached, second.tokens_written) == (0, 0, 0, 0)


def test_the_span_carries_the_split(monkeypatch):
    seen: dict = {}

    class Span:
        def set_inputs(self, value): ...

        def set_outputs(self, value): ...

        def set_attributes(self, attrs):
            seen.update(attrs)

    @contextlib.contextmanager
    def start_span(name, span_type=None):
        seen["name"] = name
        yield Span()

    monkeypatch.setattr(instrument.mlflow, "start_span", start_span)
    lm, _ = _lm(cached=7)
    (run,) = _run("rewrite", lm)["nodes"]
    assert seen["name"] == "node.rewrite"
    assert seen["sqlagent.tokens"] == run.tokens
    assert (
        seen["sqlagent.tokens_read"],
        seen["sqlagent.tokens_cached"],
        seen["sqlagent.tokens_written"],
    ) == (run.tokens_read, 7, run.tokens_written)
