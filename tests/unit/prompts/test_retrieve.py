"""Retrieval: which tables a question links to, and how much schema text reaches the prompt."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from agent.config import load_settings
from agent.context import AgentContext
from agent.nodes.retrieve import linked_schema_text
from tools.builtin import registry
from tools.sql.database import open_database


def context(settings, path: str | None = None) -> AgentContext:
    return AgentContext(
        settings=settings, db=open_database(settings.database_config(path)), tools=registry(), lms={}
    )


@pytest.fixture(scope="module")
def demo():
    # The linked part alone (no stable tables): what these tests look at is the linker and the renderer.
    return context(load_settings(tracking={"enabled": False}, retrieval={"stable_tables": []}))


@pytest.fixture(scope="module")
def stable():
    return context(load_settings(tracking={"enabled": False}))


def test_every_prompt_starts_with_the_same_stable_schema(stable):
    from agent.nodes.retrieve import stable_schema

    tables, text = stable_schema(stable)
    assert {"People", "Batting", "Teams"} <= set(tables) and tables == sorted(tables)
    assert len(text) <= stable.settings.retrieval.stable_schema_chars
    for question in [
        "How many games did the Yankees win in 1998?",
        "Who managed the Yankees in 1998?",
        "What was the highest salary paid in 2015?",
        "Tell me something nice",
    ]:
        linked = stable.retrieve.link_tables(question, [], tables)
        assert not set(linked) & set(tables) and len(linked) <= stable.settings.retrieval.max_linked_tables
        schema = linked_schema_text(stable, question, linked)
        assert schema.startswith(text)  # the cached prefix: byte for byte the same
    # A table the question adds is joined to the stable ones it connects to.
    extra = linked_schema_text(stable, "What was the highest salary paid in 2015?", ["Salaries"])[len(text) :]
    assert "Salaries" not in tables
    joins = extra.split("JOINS\n", 1)[1].splitlines()
    # Its simplest joins to what the prompt already shows: the names table and the team-season, not
    # one per fact table sharing player, team, year and league.
    assert "TABLE Salaries" in extra and [j.strip() for j in joins] == [
        "People.playerID = Salaries.playerID",
        "Salaries.lgID = Teams.lgID AND Salaries.teamID = Teams.teamID AND Salaries.yearID = Teams.yearID",
    ]


def test_named_stable_tables_override_the_choice():
    ctx = context(load_settings(tracking={"enabled": False}, retrieval={"stable_tables": ["Teams", "Nope"]}))
    from agent.nodes.retrieve import stable_schema

    tables, text = stable_schema(ctx)
    assert tables == ["Teams"] and text.startswith("TABLE Teams")


def test_a_batting_question_links_batting_and_the_people_names(demo):
    tables = demo.retrieve.link_tables("Who hit the most home runs in 1927?", [])
    assert "Batting" in tables and "People" in tables


def test_a_question_that_names_no_table_gets_a_few_central_tables_not_the_whole_schema(demo):
    question = "Tell me something nice"
    tables = demo.retrieve.link_tables(question, [])
    assert 1 <= len(tables) <= demo.settings.retrieval.max_tables + 1
    assert "People" in tables  # the table most others join to
    text = linked_schema_text(demo, question, tables)
    assert len(text) < 4000 and text.count("TABLE ") == len(tables)


def test_a_join_key_is_described_once(demo):
    question = "How many home runs did Babe Ruth hit in 1927?"
    text = linked_schema_text(demo, question, ["Batting", "People"])
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("playerID ")]
    assert len(lines) == 2
    assert sum(" -- " in ln for ln in lines) == 1  # the other mention is just the name and type
    assert "Batting.playerID = People.playerID" in text


def test_no_tables_means_no_schema_text(demo):
    assert linked_schema_text(demo, "anything", []) == ""


def test_columns_without_descriptions_have_no_empty_comment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "club.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE club (club_id INTEGER PRIMARY KEY, name VARCHAR)")
    con.execute("INSERT INTO club VALUES (1, 'Rovers'), (2, 'Bells')")
    con.close()
    monkeypatch.setenv("SQLAGENT_DATABASE__CATALOG_CACHE_DIR", str(tmp_path / "catalogs"))
    ctx = context(load_settings(tracking={"enabled": False}), str(path))
    text = linked_schema_text(ctx, "Which clubs are there?", ["club"])
    assert "club_id INTEGER" in text
    assert not any(ln.rstrip().endswith("--") for ln in text.splitlines()), text
    # The demo bank's examples read Batting, People...: none of them is shown on this database.
    assert ctx.retrieve.examples == []
    assert ctx.retrieve.similar_examples("How many home runs did Babe Ruth hit?") == []


def test_the_demo_bank_keeps_every_example_on_its_own_database(demo):
    from agent.config import resolve_path
    from prompts.retrieve import load_examples

    bank = load_examples(resolve_path(demo.settings.retrieval.example_bank))
    assert len(demo.retrieve.examples) == len(bank) > 50


def test_repair_hint_names_the_table_that_has_an_unknown_column(demo):
    from agent.nodes.repair import column_hint

    hint = column_hint(demo, "Unknown column 'WSWin'.", ["BattingPost", "People"])
    assert "Teams.WSWin" in hint
    hint = column_hint(demo, "Unknown column 'salary'.", ["Batting", "People"])
    assert "Salaries.salary" in hint and "Join with:" in hint and "Salaries.playerID" in hint


def test_repair_hint_suggests_real_names_for_an_invented_column(demo):
    from agent.nodes.repair import column_hint

    hint = column_hint(demo, "Unknown column 'name_first'.", ["People"])
    assert hint.startswith("No table has a column name_first.") and "nameFirst" in hint
    assert column_hint(demo, "Binder Error: something else", ["People"]) == ""


def test_examples_are_chosen_by_the_kind_of_entity_too(demo):
    from prompts.retrieve import Example, Retrieve, literal_filter_columns

    team = Example(id="team", question="What was the Amazin's win total in 1969?",
                   sql="SELECT W FROM Teams WHERE teamID = 'NYN' AND yearID = 1969")  # fmt: skip
    pitcher = Example(id="pitcher", question="What was Greg Maddux's win total in 1995?",
                      sql="SELECT SUM(W) AS W FROM Pitching WHERE playerID = 'maddugr01' AND yearID = 1995")  # fmt: skip
    assert (
        literal_filter_columns(team.sql) == ["teamid"]
        and literal_filter_columns("SELECT 1 WHERE x = 2") == []
    )
    retrieve = Retrieve(demo.db.schema, [team, pitcher], k=1)
    # As the rewrite annotates it for the generate step, which is what retrieval reads.
    question = "What was Pedro Martinez (People.playerID = 'martipe02')'s win total in 2000?"
    # The same words in both: alone they pick the shorter team question; the value hint (a player)
    # picks the pitcher's example, whose SQL reads the player's wins and not his team's.
    assert [e.id for e in retrieve.similar_examples(question)] == ["team"]
    assert [e.id for e in retrieve.similar_examples(question, ["playerID"])] == ["pitcher"]
    assert [e.id for e in retrieve(question=question, entity_tables=["People"],
                                    entity_columns=["playerID"]).examples] == ["pitcher"]  # fmt: skip
