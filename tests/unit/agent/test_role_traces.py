"""The MLflow trace of a narrowed role's question, read back from the store, holds no hidden table or
column name and no hidden value: not in any span's inputs, outputs, attributes or events (node, tool,
DSPy module, adapter and LM spans alike), nor in the trace's tags and metadata.

test_role_isolation.py checks what the agent sends and returns; the trace is a third reader, and it
holds more (each node's whole state update, every DSPy call with its demos, every look-up's
candidates). Same scripted LM, same questions, same oracle (tests/role_oracle.py); tracing on, in a
throwaway sqlite store.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import SpanType
from mlflow.tracing.constant import TraceMetadataKey

from agent.service import Agent
from evals.feedback import ROLE_TAG
from tests.fake_lm import default_handlers, fake_lm
from tests.role_oracle import hidden_names, leaks, role_secrets
from tests.tracking_store import temporary_tracking
from tests.unit.agent.test_role_isolation import QUESTIONS, ROLES, _agent
from tools.sql.database import open_database

USER = "alice"
CLEMENTE, CLEMENTE_ID = "Where was Roberto Clemente born?", "clemero01"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with temporary_tracking(tmp_path_factory.mktemp("role-traces"), "role-traces") as settings:
        yield settings


def _read_back(settings, results, **search) -> dict[str, Any]:
    """The traces of `results` as the store holds them (not the in-process copies), by trace id."""
    mlflow.flush_trace_async_logging()
    client = MlflowClient(settings.tracking.uri)
    experiment = client.get_experiment_by_name(settings.tracking.experiment).experiment_id
    found = {t.info.trace_id: t for t in client.search_traces(locations=[experiment], **search)}
    wanted = [r.trace_id for r in results]
    assert all(wanted) and set(wanted) <= found.keys(), (wanted, sorted(found))
    return {tid: client.get_trace(tid) for tid in wanted}


@pytest.fixture(scope="module", params=ROLES)
def traced(request, store):
    """Each question asked as the server asks it (a user, the role as a tag), then its trace read."""
    role = request.param
    agent, _ = _agent(store, role)
    assert agent.tracing
    results = [agent.ask(q, user=USER, tags={ROLE_TAG: role}) for q in QUESTIONS]
    traces = _read_back(store, results, filter_string=f"tags.`{ROLE_TAG}` = '{role}'")
    return agent, results, [traces[r.trace_id] for r in results]


def _texts(value: Any) -> list[str]:
    """Every string in a span's or trace's data, keys too, JSON held in a string decoded: a hidden word
    after a newline stays a word (in JSON text "\\nCarolina" it follows the letter n)."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in [str(k), *_texts(v)]]
    if isinstance(value, list | tuple | set):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return _texts(json.loads(value))
        except ValueError:
            pass
    return [] if value is None else [str(value)]


def _seen(trace) -> dict[str, set[str]]:
    """What a reader of the trace sees: each distinct text, with where it is (the trace's info: tags,
    metadata, request and response previews; each span's inputs, outputs, attributes and events).
    One prompt is in several spans (module, adapter, LM): it is searched once."""
    seen: dict[str, set[str]] = {}
    for text in _texts(trace.info.to_dict()):
        seen.setdefault(text, set()).add("trace info")
    for span in trace.data.spans:
        events = [{"name": e.name, "attributes": e.attributes} for e in span.events]
        for text in _texts([span.name, span.inputs, span.outputs, span.attributes, events]):
            seen.setdefault(text, set()).add(span.name)
    return seen


def _leaked(trace, words, **covers) -> dict[str, list[str]]:
    """The words `leaks` finds in the trace, each with the spans holding it."""
    seen = _seen(trace)
    found = leaks("\n".join(seen), words, **covers)
    return {
        w: sorted({where for text, places in seen.items() if w in text for where in places}) for w in found
    }


def _node_spans(trace) -> list:
    return sorted((s for s in trace.data.spans if s.name.startswith("node.")), key=lambda s: s.start_time_ns)


@pytest.fixture(scope="module")
def secrets(traced) -> dict[str, set[str]]:
    """A role's hidden values for the players and team-seasons of QUESTIONS, read with the full
    database (tests/role_oracle.py says which are left out: those the view also shows)."""
    agent, _, _ = traced
    return role_secrets(agent.context.db.role.name, tuple(QUESTIONS))


def test_every_question_has_its_trace_with_a_span_per_node(traced):
    """The leak tests below read real traces: one per question, its root holding the question, one
    `node.<name>` span per node the result lists (a clarification's paused node besides), tool and LM
    spans, and the user who asked."""
    _, results, traces = traced
    for result, trace in zip(results, traces, strict=True):
        roots = [s for s in trace.data.spans if s.parent_id is None]
        assert [s.name for s in roots] == ["sqlagent.ask"] and roots[0].inputs["question"] == result.question
        nodes = _node_spans(trace)
        ran = [s.name.removeprefix("node.") for s in nodes if not s.attributes.get("sqlagent.interrupted")]
        assert ran and ran == [n.name for n in result.nodes], (ran, result.nodes)
        paused = [s.name for s in nodes if s.attributes.get("sqlagent.interrupted")]
        assert paused == (["node.clarify"] if result.status == "clarify" else []), (result.status, paused)
        kinds = {s.span_type for s in trace.data.spans}
        assert {SpanType.TOOL, SpanType.CHAT_MODEL} <= kinds, kinds  # look-ups, and the prompts sent
        assert trace.info.trace_metadata[TraceMetadataKey.TRACE_USER] == USER


def test_traces_hold_no_hidden_name(traced):
    agent, _, traces = traced
    names = hidden_names(agent.context.db)
    assert {"salaries", "birthcity", "namegiven"} <= names
    for trace in traces:
        assert _leaked(trace, names) == {}, trace.info.trace_id


def test_traces_hold_no_hidden_value(traced, secrets):
    _, _, traces = traced
    assert {"George Herman", "Carolina", "33000000"} <= secrets.keys()
    for trace in traces:
        assert _leaked(trace, secrets, covers=secrets) == {}, trace.info.trace_id


def test_the_checks_find_what_public_hides_in_a_default_role_trace(store):
    """The checks can fail on a real trace: under the default role, the SQL the scripted model writes
    for Clemente's birthplace reads People.birthCity, and its row is his birth city; the public role
    hides both. A question asked without a user has no mlflow.trace.user."""
    lm, _ = fake_lm(default_handlers(f"SELECT birthCity FROM People WHERE playerID = '{CLEMENTE_ID}'"))
    agent = Agent(store, lms={"default": lm}, persistent_threads=False)
    result = agent.ask(CLEMENTE)
    assert result.status == "ok" and result.rows, result
    (trace,) = _read_back(store, [result]).values()
    public, secrets = (
        open_database(store.database_config(), "public"),
        role_secrets("public", tuple(QUESTIONS)),
    )
    assert "node.execute" in _leaked(trace, hidden_names(public)).get("birthCity", [])
    assert "tool.run_sql" in _leaked(trace, secrets, covers=secrets).get("Carolina", [])
    assert TraceMetadataKey.TRACE_USER not in trace.info.trace_metadata
