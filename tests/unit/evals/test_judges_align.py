"""The alignment loop on a small labelled set: labelled traces in MLflow, a split, agreement before,
MLflow's SIMBA with the judge's connection kept, agreement after on the held-out labels.

"The model" is scripted: a judge whose instructions do not yet hold the reviewers' rule passes
everything (and guesses when it samples, which is what SIMBA learns from); one whose instructions
hold it follows it. SIMBA's rule writer (a DSPy LM) proposes that rule.
"""

from __future__ import annotations

import random

import pytest

from agent.config import JudgeAlignSettings
from agent.tracing import setup_tracing
from evals.judges.align import align_judge, planned_calls, split
from evals.judges.case import JudgeCase
from evals.judges.labels import Label, LabelledItem, labelled_traces, log_items
from evals.judges.specs import JudgeSpec
from tests.fake_judge_server import fake_judge_server, judge_model
from tests.fake_lm import fake_lm
from tests.tracking_store import temporary_tracking

RULE = "An answer that says WRONG fails."
SPEC = JudgeSpec(
    name="grounding",
    version=3,
    description="d",
    values=["pass", "fail"],
    passing="pass",
    applies_to="answered",
    human_labels=["grounding"],
    instructions="Judge {{ inputs }} against {{ outputs }}.",
)


def _items(n: int = 24) -> list[LabelledItem]:
    items = []
    for i in range(n):
        word = "WRONG" if i % 2 else "RIGHT"
        case = JudgeCase.of(
            f"Question {i}?",
            status="ok",
            sql="SELECT 1",
            columns=["x"],
            rows=[[i]],
            answer=f"x: {i} ({word}).",
        )
        items.append(
            LabelledItem(
                id=f"item-{i}",
                case=case,
                labels={
                    "grounding": Label(
                        value="fail" if word == "WRONG" else "pass", rationale=f"it says {word}"
                    )
                },
                reviewed={"by": "tester"},
            )
        )
    return items


def _model_reply():
    rng = random.Random(0)

    def reply(system, user, body):
        if RULE in system:
            return {"rationale": "rule", "result": "fail" if "WRONG" in user else "pass"}
        if body.get("temperature", 0) > 0:
            return {"rationale": "guess", "result": rng.choice(["pass", "fail"])}
        return {"rationale": "looks fine", "result": "pass"}

    return reply


def _rule_writer():
    lm, engine = fake_lm(
        {
            "discussion": lambda i: {
                "discussion": "The worse run passed a WRONG answer.",
                "module_advice": {"self": RULE},
            }
        }
    )
    return lm, engine


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    with temporary_tracking(tmp_path_factory.mktemp("align"), "align-test") as settings:
        setup_tracing(settings)
        counts = log_items(_items(), "align-test-judge-labels", "test set")
        again = log_items(_items(), "align-test-judge-labels", "test set")
        traces = labelled_traces("align-test-judge-labels")
        yield traces, counts, again


def test_labels_become_traces_with_human_feedback_once(labelled):
    traces, counts, again = labelled
    assert counts == {"logged": 24, "unchanged": 0, "replaced": 0}
    assert again == {"logged": 0, "unchanged": 24, "replaced": 0}
    assert len(traces) == 24
    feedback = [a for t in traces for a in t.info.assessments if a.name == "grounding"]
    assert len(feedback) == 24 and {a.source.source_type for a in feedback} == {"HUMAN"}
    root = traces[0].data._get_root_span()
    assert root.inputs.startswith("Question:") and "Answer:" in root.outputs  # the case as the judges read it


def test_split_is_stratified_and_stable(labelled):
    traces, _, _ = labelled
    a, b = split(traces, SPEC, 0.25, seed=0), split(list(reversed(traces)), SPEC, 0.25, seed=0)
    assert [e.trace.info.trace_id for e in a.heldout] == [e.trace.info.trace_id for e in b.heldout]
    assert sorted(e.label for e in a.heldout) == ["fail"] * 3 + ["pass"] * 3
    assert len(a.train) == 18


def test_alignment_finds_the_reviewers_rule_and_agreement_rises_on_held_out_labels(labelled):
    traces, _, _ = labelled
    opts = JudgeAlignSettings(
        heldout=0.25, max_steps=2, candidates=2, batch_size=6, max_demos=0, temperature=0.7, threads=1, seed=0
    )
    rule_lm, writer = _rule_writer()
    with fake_judge_server(_model_reply()) as server:
        result = align_judge(
            SPEC, traces, judge_model(server), "", opts, rule_lm=rule_lm, labels=("test.jsonl", "abc")
        )
        requests = list(server.requests)
    assert result.before.accuracy == 0.5 and result.before.kappa == 0.0
    assert result.after.accuracy == 1.0 and result.after.kappa == 1.0
    assert result.kept and RULE in result.aligned.instructions
    assert result.aligned.aligned.from_version == 3 and result.aligned.aligned.after == result.after
    assert writer.calls  # SIMBA asked the rule writer
    # Every judge call, SIMBA's included, reached the endpoint with its key; sampling only while exploring.
    assert all(r["headers"]["Authorization"] == "Bearer test-judge-key" for r in requests)
    temperatures = {r["body"]["temperature"] for r in requests}
    assert temperatures == {0.0, 0.7}
    assert len(requests) <= result.planned["total"]


def test_an_aligned_judge_that_agrees_less_on_held_out_labels_is_not_kept(labelled):
    traces, _, _ = labelled
    opts = JudgeAlignSettings(heldout=0.25, max_steps=2, candidates=2, batch_size=6, max_demos=0, seed=0)
    held = {e.trace.data._get_root_span().inputs for e in split(traces, SPEC, 0.25, 0).heldout}
    rule_lm, _ = _rule_writer()
    guess = _model_reply()

    def overfit(system, user, body):  # the rule fits the training labels and gets the held-out ones backwards
        if RULE in system:
            right = "fail" if "WRONG" in user else "pass"
            wrong = {"pass": "fail", "fail": "pass"}[right]
            return {"rationale": "rule", "result": wrong if any(q in user for q in held) else right}
        return guess(system, user, body)

    with fake_judge_server(overfit) as server:
        result = align_judge(SPEC, traces, judge_model(server), "", opts, rule_lm=rule_lm, labels=("t", "d"))
    assert RULE in result.aligned.instructions
    assert result.after.accuracy == 0.0 < result.before.accuracy
    assert not result.kept and "not saved" in result.note


def test_too_few_labels_are_reported_not_aligned(labelled):
    traces, _, _ = labelled
    with fake_judge_server(_model_reply()) as server:
        result = align_judge(
            SPEC, traces[:8], judge_model(server), "", JudgeAlignSettings(), rule_lm=None, labels=("t", "d")
        )
        assert server.requests == []
    assert result.after is None and "at least 10" in result.note


def test_planned_calls_bound_the_run():
    plan = planned_calls(60, 30, JudgeAlignSettings(max_steps=2, candidates=2, batch_size=8))
    assert plan == {
        "before": 30,
        "simba_steps": 2 * (16 + 24),
        "simba_final": 180,
        "after": 30,
        "rule_calls": 6,
        "total": 60 + 80 + 180 + 6,
    }
