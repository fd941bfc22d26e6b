"""The prefilled adapter: the reply starts inside its one output field and stops where it ends."""

from __future__ import annotations

import dspy
import pytest

from agent.config import load_settings
from prompts.adapter import STOP, PrefilledChatAdapter, adapter_for
from prompts.generate import GenerateSQL
from tests.fake_lm import fake_lm

INPUTS = {
    "db_schema": "TABLE t\n  x INTEGER",
    "examples": "(none)",
    "value_hints": "(none)",
    "question": "How many?",
}


class TwoOutputs(dspy.Signature):
    """Answer."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    confidence: str = dspy.OutputField()


def test_a_single_output_reply_is_prefilled_with_its_marker_and_the_reminder_goes():
    messages = PrefilledChatAdapter().format(GenerateSQL, demos=[], inputs=INPUTS)
    plain = dspy.ChatAdapter().format(GenerateSQL, demos=[], inputs=INPUTS)
    assert messages[-1] == {"role": "assistant", "content": "[[ ## sql ## ]]\n"}
    assert messages[0] == plain[0]  # the system message (instruction, fields, format) is DSPy's own
    assert "Respond with the corresponding output fields" in plain[-1]["content"]
    assert "Respond with the corresponding output fields" not in messages[-2]["content"]
    assert plain[-1]["content"].startswith(messages[-2]["content"])


@pytest.mark.parametrize(
    "reply", ["SELECT COUNT(*) FROM t", "[[ ## sql ## ]]\nSELECT COUNT(*) FROM t\n\n[[ ## completed ## ]]"]
)
def test_a_continued_or_a_complete_reply_parses(reply: str):
    # llama.cpp continues the prefill; a provider that answers with a new message writes the marker.
    assert PrefilledChatAdapter().parse(GenerateSQL, reply) == {"sql": "SELECT COUNT(*) FROM t"}


def test_a_signature_with_two_outputs_is_left_as_dspy_formats_it():
    adapter = PrefilledChatAdapter()
    assert adapter.format(TwoOutputs, demos=[], inputs={"question": "q"}) == dspy.ChatAdapter().format(
        TwoOutputs, demos=[], inputs={"question": "q"}
    )
    with pytest.raises(dspy.utils.exceptions.AdapterParseError):
        adapter.parse(TwoOutputs, "just text")


def test_the_call_stops_where_the_closing_marker_starts():
    lm, engine = fake_lm({"sql": lambda i: {"sql": "SELECT 1"}})
    seen = []
    real = engine.complete

    def spy(request):
        seen.append(request)
        return real(request)

    engine.complete = spy
    with dspy.context(lm=lm, adapter=PrefilledChatAdapter()):
        pred = dspy.Predict(GenerateSQL)(**INPUTS)
    assert pred.sql == "SELECT 1"
    assert STOP in seen[0].config.stop and seen[0].messages[-1].role == "assistant"


@pytest.mark.parametrize(
    ("model", "prefill", "expected"),
    [
        ("embedded/qwen2.5-coder-1.5b", "auto", True),
        ("openai/gpt-4o-mini", "auto", False),
        ("openai/gpt-4o-mini", "on", True),
        ("embedded/qwen2.5-coder-1.5b", "off", False),
    ],
)
def test_prefill_is_on_for_embedded_models_unless_configured(model: str, prefill: str, expected: bool):
    settings = load_settings(lm={"model": model, "prefill": prefill, "nodes": {"answer": {"prefill": "off"}}})
    assert settings.lm.prefills is expected
    assert (
        isinstance(adapter_for(settings.lm.for_node("generate").prefills), PrefilledChatAdapter) is expected
    )
    assert settings.lm.for_node("answer").prefills is False
