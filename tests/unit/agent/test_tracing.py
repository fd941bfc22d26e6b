"""Tracing: one MLflow trace per question, with our node and tool spans, in a throwaway sqlite store."""

from __future__ import annotations

import mlflow
import pytest

from agent.service import Agent
from tests.fake_lm import fake_lm
from tests.tracking_store import temporary_tracking

SQL = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
)
NODES = ["guard", "rewrite", "retrieve", "generate", "safety", "execute", "answer"]


def _handlers():
    return {
        "standalone_question": lambda i: {"standalone_question": i["follow_up"]},
        "mentions": lambda i: {"mentions": ["Yankees"]},
        "sql": lambda i: {"sql": SQL},
        "answer": lambda i: {"answer": "Babe Ruth hit 60."},
    }


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    with temporary_tracking(tmp_path_factory.mktemp("tracking"), "test") as settings:
        lm, engine = fake_lm(_handlers())
        agent = Agent(settings, lms={"default": lm}, persistent_threads=False)
        assert agent.tracing is True
        assert mlflow.get_tracking_uri() == settings.tracking.uri
        yield agent, engine


@pytest.fixture(scope="module")
def asked(traced):
    agent, engine = traced
    result = agent.ask("Who hit the most home runs in 1927 for the Yankees, and how many?")
    mlflow.flush_trace_async_logging()
    return result


@pytest.fixture(scope="module")
def trace(asked):
    assert asked.trace_id, "Agent.ask returned no trace id with tracking enabled"
    found = mlflow.get_trace(asked.trace_id)
    assert found is not None
    return found


def _spans(trace, name: str):
    return [s for s in trace.data.spans if s.name == name]


def test_question_answered_with_a_trace(asked):
    assert asked.status == "ok", asked.error
    assert asked.rows == [["Babe", "Ruth", 60]]
    assert [n.name for n in asked.nodes] == NODES
    assert asked.trace_id and not asked.trace_id.startswith("tr-no-op")


def test_one_trace_with_root_span(trace, asked):
    roots = [s for s in trace.data.spans if s.parent_id is None]
    assert [s.name for s in roots] == ["sqlagent.ask"]
    root = roots[0]
    assert root.inputs["question"] == asked.question
    assert root.inputs["thread_id"] == asked.thread_id
    assert root.outputs["status"] == "ok"
    assert root.attributes["sqlagent.status"] == "ok"
    assert trace.info.trace_id == asked.trace_id
    # Exactly one trace was logged for the question in this experiment.
    found = mlflow.search_traces(return_type="list")
    assert [t.info.trace_id for t in found] == [asked.trace_id]


def test_node_spans_in_order(trace):
    nodes = [s for s in trace.data.spans if s.name.startswith("node.")]
    assert [s.name for s in sorted(nodes, key=lambda s: s.start_time_ns)] == [f"node.{n}" for n in NODES]
    for span in nodes:
        assert span.attributes["sqlagent.node"] == span.name.removeprefix("node.")
        assert span.end_time_ns >= span.start_time_ns
    tokens = {s.name: s.attributes["sqlagent.tokens"] for s in nodes}
    assert tokens["node.generate"] > 0 and tokens["node.execute"] == 0


def test_node_spans_belong_to_the_root(trace):
    by_id = {s.span_id: s for s in trace.data.spans}
    root = next(s for s in trace.data.spans if s.parent_id is None)
    for span in trace.data.spans:
        if span.name.startswith(("node.", "tool.")):
            parent = span
            while parent.parent_id is not None:
                parent = by_id[parent.parent_id]
            assert parent.span_id == root.span_id, span.name


def test_tool_spans(trace):
    lookups = _spans(trace, "tool.lookup_values")
    assert lookups, [s.name for s in trace.data.spans]
    assert any(s.inputs["mention"] == "Yankees" for s in lookups)
    (run_sql,) = _spans(trace, "tool.run_sql")
    assert "1927" in run_sql.inputs["sql"]
    assert run_sql.outputs["status"] == "ok"
    assert run_sql.outputs["rows"] == [["Babe", "Ruth", 60]]
    by_id = {s.span_id: s for s in trace.data.spans}
    assert by_id[run_sql.parent_id].name == "node.execute"
    assert all(by_id[s.parent_id].name == "node.rewrite" for s in lookups)


def test_rewrite_span_records_the_mappings(trace):
    (rewrite,) = _spans(trace, "node.rewrite")
    mappings = rewrite.outputs["mappings"]
    assert [(m["mention"], m["column"], m["value"]) for m in mappings] == [("Yankees", "teamID", "NYA")]
    assert rewrite.outputs["standalone_question"] == rewrite.inputs["question"]
    (generate,) = _spans(trace, "node.generate")
    assert generate.outputs["sql"].startswith("SELECT")
    # The question generate's module read carries the resolved value beside the name.
    sent = [
        s.inputs["question"]
        for s in trace.data.spans
        if s.parent_id == generate.span_id and isinstance(s.inputs, dict) and "question" in s.inputs
    ]
    assert sent and "NYA" in sent[0]


def test_trace_timeline_reads_the_nodes_back(traced, asked, trace):
    from agent.apps.trace_view import trace_timeline

    agent, _ = traced
    view = trace_timeline(agent.settings, asked.trace_id)
    assert view["status"] == "ok"
    assert view["question"] == asked.question
    assert [n["name"] for n in view["nodes"]] == [n.name for n in asked.nodes]
    rewrite = next(n for n in view["nodes"] if n["name"] == "rewrite")
    assert "NYA" in rewrite["detail"]
    assert next(n for n in view["nodes"] if n["name"] == "generate")["tokens"] > 0


def test_unknown_trace_id_is_a_clear_error(traced):
    from agent.apps.trace_view import trace_timeline

    agent, _ = traced
    with pytest.raises(LookupError, match="No trace"):
        trace_timeline(agent.settings, "tr-00000000000000000000000000000000")
