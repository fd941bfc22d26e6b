"""The regression gate: pure comparisons of two summaries."""

from __future__ import annotations

import copy

import pytest

from evals.gate import compare


def summary(acc: float, items: dict[str, bool | None], must_pass: tuple[str, ...] = (), **extra) -> dict:
    return {
        "pipeline": "agent",
        "lm": "embedded/qwen2.5-coder-1.5b",
        "dataset": {"items_sha256": "abc"},
        "execution_accuracy": acc,
        "execution_accuracy_relaxed": acc + 5,
        "nodes": {"rewrite": {"mapping_recall": 80.0, "mapping_precision": 90.0},
                  "retrieve": {"schema_link_recall": 95.0}, "generate": {"sql_validity": 97.0}},
        "items": {i: {"correct": c, "must_pass": i in must_pass} for i, c in items.items()},
        **extra,
    }


BASE = summary(50.0, {"a": True, "b": False, "c": True, "d": None}, must_pass=("a",))


def test_identical_passes():
    result = compare(copy.deepcopy(BASE), BASE)
    assert result.passed
    assert (result.to_wrong, result.to_right, result.dropped, result.must_pass_failed) == ([], [], [], [])
    assert "PASS" in result.text() and "No item changed" in result.text()


@pytest.mark.parametrize(
    "acc, tolerance, passed",
    [(48.0, 2.0, True), (47.9, 2.0, False), (45.0, 5.0, True), (60.0, 2.0, True), (49.5, 0.0, False)],
)
def test_tolerance_on_execution_accuracy(acc, tolerance, passed):
    current = summary(acc, {"a": True, "b": False, "c": True, "d": None}, must_pass=("a",))
    result = compare(current, BASE, tolerance=tolerance)
    assert result.passed is passed
    assert ("execution_accuracy" in result.dropped) is (not passed)


def test_flips_are_listed_but_do_not_fail_alone():
    current = summary(50.0, {"a": True, "b": True, "c": False, "d": True}, must_pass=("a",))
    result = compare(current, BASE)
    assert result.passed
    assert result.to_wrong == ["c"] and result.to_right == ["b"]  # d had no gold before: not a flip
    text = result.text()
    assert "Correct -> wrong (1): c" in text and "Wrong -> correct (1): b" in text


def test_must_pass_failure_fails_even_within_tolerance():
    current = summary(50.0, {"a": False, "b": True, "c": True, "d": None}, must_pass=("a",))
    result = compare(current, BASE)
    assert not result.passed
    assert result.must_pass_failed == ["a"] and result.to_wrong == ["a"]
    assert "Must-pass items that failed: a" in result.text()


def test_must_pass_flag_from_the_baseline_counts():
    current = summary(50.0, {"a": False, "b": True, "c": True})  # flag lost in the current run
    assert compare(current, BASE).must_pass_failed == ["a"]


def test_other_metrics_shown_not_gated_by_default():
    current = copy.deepcopy(BASE)
    current["nodes"]["rewrite"]["mapping_recall"] = 40.0
    assert compare(current, BASE).passed
    gated = compare(current, BASE, gated=("execution_accuracy", "mapping_recall"))
    assert not gated.passed and gated.dropped == ["mapping_recall"]
    assert "mapping_recall" in gated.text() and "-40.0" in gated.text()


def test_missing_new_items_and_warnings():
    current = summary(50.0, {"a": True, "b": False, "e": True}, must_pass=("a",), lm="openai/gpt-4o-mini")
    current["dataset"]["items_sha256"] = "def"
    result = compare(current, BASE)
    assert result.missing == ["c", "d"] and result.new == ["e"]
    assert any("digest" in w for w in result.warnings)
    assert any("lm differs" in w for w in result.warnings)


def test_metric_missing_now_fails_when_gated():
    current = copy.deepcopy(BASE)
    current["execution_accuracy"] = None
    assert not compare(current, BASE).passed
