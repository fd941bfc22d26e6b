"""Every step sees the role's view of the database: no prompt, look-up, mapping, clarification,
example, schema text or result of a narrowed role holds a table or column the role may not read.

The LM is scripted (tests/fake_lm.py) and records every prompt it is sent; the database, the value
index, the retriever and the policy are the real ones. The policy is the oracle for what a role
may not read: these tests do not restate config/access.yaml.
"""

from __future__ import annotations

import dspy
import pytest

from agent.config import load_settings
from agent.service import Agent, AskResult
from tests.fake_lm import default_handlers
from tests.role_oracle import (
    Recording,
    RecordingTools,
    denied,
    hidden_names,
    leaks,
    role_secrets,
    visible,
)
from tools.lookup_values import LookupValuesArgs
from tools.schema_info import DescribeSchemaArgs, describe_schema
from tools.sql.database import open_database

ROLES = ["public", "restricted"]
# Words of no question below: a hidden name in a prompt can only come from the agent.
QUESTIONS = [
    "How many home runs did Babe Ruth hit in 1927?",
    "Where was Roberto Clemente born?",  # the bank's example for it reads People.birthCity
    "How much was Alex Rodriguez paid in 2010?",  # ... and for this one, the Salaries table
    "Who is Lynwood Thomas?",  # the given names (People.nameGiven) of Schoolboy Rowe
    "Tell me about John Joseph",  # a given name shared by many players
    "How many games did the Yankees win in 1998?",
]
# Look-ups that match hidden columns of the full database (birthCity/deathCity, nameGiven).
MENTIONS = ["Santo Domingo", "George Herman", "John Joseph", "Lynwood Thomas"]


@pytest.fixture(scope="module")
def settings():
    return load_settings(tracking={"enabled": False})


def _agent(settings, role: str | None) -> tuple[Agent, Recording]:
    engine = Recording(default_handlers("SELECT nameFirst, nameLast FROM People LIMIT 1"))
    lm = dspy.LM("fake/scripted", engine=engine, cache=False)
    agent = Agent(settings, role=role, lms={"default": lm}, persistent_threads=False)
    agent.context.tools = RecordingTools()  # what each look-up returned, for the value tests
    return agent, engine


@pytest.fixture(scope="module", params=ROLES)
def asked(request, settings) -> tuple[Agent, Recording, list[AskResult]]:
    agent, engine = _agent(settings, request.param)
    return agent, engine, [agent.ask(q) for q in QUESTIONS]


def test_the_role_hides_something(asked):
    agent, _, _ = asked
    assert {"salaries", "birthcity", "namegiven"} <= hidden_names(agent.context.db)


def test_prompts_hold_no_hidden_name(asked):
    agent, engine, results = asked
    names = hidden_names(agent.context.db)
    assert engine.prompts, "the fake LM was never asked"
    for prompt in engine.prompts:
        assert leaks(prompt, names) == [], prompt[:3000]


def test_results_and_traces_hold_no_hidden_name(asked):
    """What the CLI's --json, the web page and the trace view show: mappings, clarification, SQL,
    answer and each node's detail."""
    agent, _, results = asked
    names = hidden_names(agent.context.db)
    for result in results:
        assert leaks(result.model_dump_json(), names) == [], result.model_dump_json()[:3000]
        for mapping in result.mappings:
            assert visible(agent.context.db, mapping.table, mapping.matched_column), mapping


@pytest.fixture(scope="module")
def secrets(asked) -> dict[str, set[str]]:
    """The role's hidden values for the players and team-seasons of QUESTIONS, read with the full
    database (tests/role_oracle.py says which are left out: those the view also shows)."""
    agent, _, _ = asked
    return role_secrets(agent.context.db.role.name, tuple(QUESTIONS))


def test_the_questions_touch_hidden_values(secrets):
    """The oracle holds what the questions are about: Babe Ruth's given names, Roberto Clemente's
    birth city, Alex Rodriguez's 2010 salary; not what the user typed (Lynwood Thomas)."""
    assert {"George Herman", "Carolina", "33000000"} <= secrets.keys()
    assert "Lynwood Thomas" not in secrets and "John Joseph" not in secrets


def test_prompts_hold_no_hidden_value(asked, secrets):
    _, engine, _ = asked
    assert engine.prompts, "the fake LM was never asked"
    for prompt in engine.prompts:
        assert leaks(prompt, secrets, covers=secrets) == [], prompt[:3000]


def test_lookups_mappings_and_results_hold_no_hidden_value(asked, secrets):
    """What each look-up returned to the agent, and what a client sees: mappings, clarification,
    SQL, answer, rows and each node's detail."""
    agent, _, results = asked
    looked_up = [r for name, r in agent.context.tools.results if name == "lookup_values"]
    assert looked_up, "no look-up ran"
    for result in looked_up + results:
        text = result.model_dump_json()
        assert leaks(text, secrets, covers=secrets) == [], text[:3000]


def test_no_given_name_resolves(asked):
    """Before the views, 'Who is Lynwood Thomas?' was resolved through People.nameGiven, and
    'John Joseph' became a clarification listing players by their given names."""
    _, _, results = asked
    lynwood, john = results[3], results[4]
    assert lynwood.mappings == []
    assert john.status != "clarify" or "John Joseph (" not in (john.answer or "")


@pytest.mark.parametrize("role", ROLES)
def test_lookups_return_nothing_hidden(settings, role):
    agent, _ = _agent(settings, role)
    ctx = agent.context
    for mention in MENTIONS:
        found = ctx.tools.call("lookup_values", ctx.db, LookupValuesArgs(mention=mention, min_score=0.8))
        hidden = [c for c in found.candidates if not visible(ctx.db, c.table, c.column)]
        assert hidden == [], (mention, hidden)
        assert "George Herman" not in [c.value for c in found.candidates]


@pytest.mark.parametrize("role", ROLES)
def test_examples_and_schema_text_hold_nothing_hidden(settings, role):
    agent, _ = _agent(settings, role)
    ctx = agent.context
    refused = [e.id for e in ctx.retrieve.examples if ctx.db.policy.check(e.sql).code == "access_denied"]
    assert refused == []
    names = hidden_names(ctx.db)
    full = describe_schema(ctx.db, DescribeSchemaArgs()).text  # every table, every description and sample
    assert leaks(full, names) == []
    assert "George Herman" not in full
    described = describe_schema(ctx.db, DescribeSchemaArgs(tables=["Salaries", "People"]))
    assert "Salaries" in described.unknown or not denied(ctx.db, "Salaries")


def test_default_role_keeps_everything(settings):
    """The analyst sees every table, column and value: its prompts are unchanged by the views."""
    db = open_database(settings.database_config())
    assert hidden_names(db) == set()
    columns = {c.column for c in db.values.search("Santo Domingo", min_score=0.8)}
    assert {"birthCity", "deathCity"} <= columns  # the full index is not the public one
    agent, _ = _agent(settings, None)
    assert "Salaries" in describe_schema(db, DescribeSchemaArgs(detail="compact")).text
    assert len(agent.context.retrieve.examples) > len(_agent(settings, "public")[0].context.retrieve.examples)


@pytest.mark.parametrize("role", ROLES)
def test_repair_hints_name_no_hidden_column(settings, role):
    """A misspelt hidden column is not corrected to it, nor suggested to the repair LM."""
    engine = Recording(default_handlers("SELECT nameLast, birthCty FROM People WHERE playerID = 'ruthba01'"))
    lm = dspy.LM("fake/scripted", engine=engine, cache=False)
    agent = Agent(settings, role=role, lms={"default": lm}, persistent_threads=False)
    result = agent.ask("Where was Babe Ruth born?")
    names = hidden_names(agent.context.db)
    assert "repair" in [n.name for n in result.nodes]
    assert leaks(result.model_dump_json(), names) == []
    for prompt in engine.prompts:
        assert leaks(prompt, names) == [], prompt[-1500:]


def test_a_thread_does_not_cross_into_a_narrower_role(settings):
    """A clarification asked under the default role (candidates from People.nameGiven) is not
    answered under the public role on the same thread id: its candidates would become a mapping."""
    full, _ = _agent(settings, None)
    first = full.ask("Tell me about John Joseph", thread_id="shared")
    assert first.status == "clarify"  # the full view offers players by their given names
    public, _ = _agent(settings, "public")
    public.graph = full.graph  # one checkpointer, as the CLI and the server share one file
    reply = public.ask("1", thread_id="shared")
    db = public.context.db
    assert all(visible(db, m.table, m.matched_column) for m in reply.mappings), reply.mappings
    assert leaks(reply.model_dump_json(), hidden_names(db)) == []


def test_the_oracle_finds_a_hidden_word_alone_but_not_inside_a_visible_value():
    """The value tests can fail: a hidden birth city said on its own is a leak, the same word inside
    a visible school or team name is not."""
    covers = {"Carolina": {"university of north carolina"}, "New York": {"new york yankees"}}
    assert leaks("Roberto Clemente was born in Carolina, P.R.", covers, covers=covers) == ["Carolina"]
    assert leaks("He played at the University of North Carolina.", covers, covers=covers) == []
    assert leaks('{"value": "New York Yankees", "birthCity": "New York"}', covers, covers=covers) == [
        "New York"
    ]
