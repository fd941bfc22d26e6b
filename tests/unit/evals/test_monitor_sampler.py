"""The sampler off the request path: the sample rates, a full queue dropping (and counting) answers,
judges waiting while a question is running, and the thresholds of a window."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from agent.config_sections import MonitorSettings, MonitorThresholds
from agent.state import NodeRun
from evals.monitor import sampler as sampler_module
from evals.monitor.metrics import Metrics
from evals.monitor.sampler import Sampler
from evals.monitor.scorers import code_scores
from evals.monitor.windows import WindowStats, alerts, window_seconds


def _result(trace_id="tr-1", status="ok", sql="SELECT 1", rows=((1,),), error_kind=None):
    return SimpleNamespace(
        trace_id=trace_id,
        status=status,
        sql=sql,
        rows=[list(r) for r in rows],
        columns=["x"],
        error_kind=error_kind,
        question="Q?",
        answer="x: 1.",
        thread_id="t1",
        nodes=[NodeRun(name="generate", duration_ms=5.0, tokens=120)],
    )


def _draws(*values):
    it = itertools.cycle(values)
    return lambda: next(it)


def test_only_the_sampled_share_is_queued():
    s = Sampler(
        MonitorSettings(sample_rate=0.5), Metrics(), wait_for_trace=lambda t: True, draw=_draws(0.2, 0.7)
    )
    assert s.offer(_result("a"), 10) is True
    assert s.offer(_result("b"), 10) is False
    assert s.queued == 1


def test_a_full_queue_drops_and_counts_without_blocking():
    metrics = Metrics()
    s = Sampler(MonitorSettings(queue_size=2), metrics, wait_for_trace=lambda t: True)  # no worker started
    assert [s.offer(_result(str(i)), 1) for i in range(4)] == [True, True, False, False]
    assert metrics.dropped._value.get() == 2
    assert b"sqlagent_monitor_dropped_total 2.0" in metrics.exposition()


def test_answers_without_a_trace_are_not_sampled():
    s = Sampler(MonitorSettings(), Metrics(), wait_for_trace=lambda t: True)
    assert s.offer(_result(trace_id=None), 1) is False


def test_judges_wait_while_a_question_runs(monkeypatch):
    logged, calls, busy_checks = [], [], []
    monkeypatch.setattr(sampler_module.mlflow, "log_feedback", lambda **kw: logged.append(kw))
    monkeypatch.setattr(sampler_module, "earlier_questions", lambda result: [])
    monkeypatch.setattr(sampler_module, "IDLE_POLL_S", 0)

    def busy():  # a question runs for the first three looks, then the model is free
        busy_checks.append(len(calls))
        return len(busy_checks) <= 3

    class Panel:
        specs = {"grounding": None}
        model = SimpleNamespace(uri="openai:/fake")

        def verdict(self, name, case):
            calls.append(len(busy_checks))
            return SimpleNamespace(value="pass", rationale="ok", tag="grounding@v1", passed=True, error=None)

    s = Sampler(
        MonitorSettings(judge_sample_rate=1.0, judges=["grounding"]),
        Metrics(),
        wait_for_trace=lambda t: True,
        panel=Panel,
        busy=busy,
    )
    s.start()
    assert s.offer(_result(), 12.5)
    assert s.drain(30)
    s.close()
    assert calls == [4]  # called once, after three busy looks and one free one
    judged = [kw for kw in logged if kw["source"].source_type == "LLM_JUDGE"]
    assert [(kw["name"], kw["value"], kw["metadata"]["passed"]) for kw in judged] == [
        ("grounding", "pass", "true")
    ]
    assert {kw["name"] for kw in logged if kw["source"].source_type == "CODE"} >= {
        "valid_sql",
        "tokens",
        "latency_ms",
    }


def test_code_scores_of_each_ending():
    def named(result):
        return {s.name: s.value for s in code_scores(result, 3.0)}

    ok = named(_result())
    assert ok["valid_sql"] is True and ok["non_empty_result"] is True and ok["tokens"] == 120
    empty = named(_result(rows=()))
    assert empty["non_empty_result"] is False
    refused = named(_result(status="refused", sql=None, rows=(), error_kind="outside"))
    assert refused["refused"] is True and "valid_sql" not in refused and "non_empty_result" not in refused
    failed = named(_result(status="error", rows=(), error_kind="unknown_column"))
    assert failed["valid_sql"] is False and failed["errored"] is True


def test_thresholds_raise_alerts_only_with_enough_answers():
    limits = MonitorThresholds(
        min_answers=3, error_rate=0.2, p95_latency_ms=1000, judge_pass_rate={"grounding": 0.8}
    )
    stats = WindowStats(
        window="1h",
        since="",
        answers=4,
        error_rate=0.5,
        latency_p95_ms=900,
        judges={"grounding": {"judged": 3, "passed": 1, "pass_rate": 0.333}},
    )
    found = alerts(stats, limits)
    assert len(found) == 2
    assert found[0].startswith("1h: error rate 0.5 is above 0.2 (monitor.thresholds.error_rate)")
    assert "grounding pass rate 0.333 is below 0.8" in found[1]
    assert alerts(WindowStats(window="1h", since="", answers=2, error_rate=1.0), limits) == []


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_windows(text, seconds):
    assert window_seconds(text) == seconds


def test_a_bad_window_says_what_a_window_is():
    with pytest.raises(ValueError, match="15m, 1h, 7d"):
        window_seconds("1w")
