"""Filters copied from a worked example (tools/sql/grounding.py): what is dropped, what is kept.

Table-driven: (generated SQL, question, hint values, example SQL) -> the SQL after the check. The
distinct-value counts are those of the demo database's columns (ids and seasons many, flags few).
"""

from __future__ import annotations

import dspy
import pytest

from agent.config import load_settings
from agent.context import AgentContext
from agent.nodes.generate import generate
from agent.state import AgentState
from prompts.retrieve import Example
from tests.fake_lm import default_handlers, fake_lm
from tools.builtin import registry
from tools.sql.database import open_database
from tools.sql.entities import EntityMapping
from tools.sql.grounding import drop_copied_filters

DISTINCT = {"yearid": 154, "playerid": 23000, "teamid": 149, "wswin": 2, "awardid": 30, "lgid": 7}

DH_2022 = (
    "SELECT p.nameFirst, SUM(a.G_dh) AS G_dh FROM Appearances a JOIN People p ON a.playerID = p.playerID "
    "WHERE a.yearID = 2022 GROUP BY ALL ORDER BY G_dh DESC LIMIT 1"
)
RYAN = "SELECT SUM(SO) AS SO FROM Pitching WHERE playerID = 'ryanno01'"
WS = "SELECT COUNT(*) FROM Teams WHERE franchID = 'NYY' AND WSWin = 'Y'"


def check(sql: str, question: str, examples: list[str], hints: tuple[str, ...] = ()) -> str:
    return drop_copied_filters(
        sql, question, hints, examples, lambda c: DISTINCT.get(c.lower(), 500), 100
    ).sql


@pytest.mark.parametrize(
    "sql, question, examples, hints, expected",
    [
        # The season came from the example: dropped, the rest of the WHERE stays.
        (
            "SELECT SUM(a.G_ss) FROM Appearances a WHERE a.yearID = 2022 AND a.playerID = 'smithoz01'",
            "How many games did Ozzie Smith play at shortstop?",
            [DH_2022],
            ("smithoz01",),
            "SELECT SUM(a.G_ss) FROM Appearances AS a WHERE a.playerID = 'smithoz01'",
        ),
        # A player id copied into a question about all players; the WHERE goes with its last conjunct.
        (
            "SELECT yearID FROM Pitching WHERE playerID = 'ryanno01' GROUP BY yearID ORDER BY SUM(SO) DESC LIMIT 1",
            "Which year had the most strikeouts?",
            [RYAN],
            (),
            "SELECT yearID FROM Pitching GROUP BY yearID ORDER BY SUM(SO) DESC LIMIT 1",
        ),
        # The question says the year: kept.
        (
            "SELECT W FROM Teams WHERE yearID = 2022",
            "How many games did they win in 2022?",
            [DH_2022],
            (),
            "SELECT W FROM Teams WHERE yearID = 2022",
        ),
        # A decade names its years.
        (
            "SELECT yearID FROM Batting WHERE yearID BETWEEN 2010 AND 2019",
            "Which year in the 2010s?",
            ["SELECT 1 FROM Batting WHERE yearID BETWEEN 2010 AND 2019"],
            (),
            "SELECT yearID FROM Batting WHERE yearID BETWEEN 2010 AND 2019",
        ),
        # A value hint is the question's own value even when an example used it too.
        (
            "SELECT SUM(SO) FROM Pitching WHERE playerID = 'ryanno01'",
            "Strikeouts by the Ryan Express?",
            [RYAN],
            ("ryanno01",),
            "SELECT SUM(SO) FROM Pitching WHERE playerID = 'ryanno01'",
        ),
        # A flag with few values is a category the question names in its own words: kept.
        (
            "SELECT COUNT(*) FROM Teams WHERE franchID = 'BOS' AND WSWin = 'Y'",
            "How many titles for Boston?",
            [WS],
            ("BOS",),
            "SELECT COUNT(*) FROM Teams WHERE franchID = 'BOS' AND WSWin = 'Y'",
        ),
        # A value no example shows is the model's own (right or wrong): not this check's business.
        (
            "SELECT W FROM Teams WHERE yearID = 1961",
            "How many wins?",
            [DH_2022],
            (),
            "SELECT W FROM Teams WHERE yearID = 1961",
        ),
        # Inside an OR, dropping would change the meaning: kept.
        (
            "SELECT W FROM Teams WHERE yearID = 2022 OR teamID = 'BOS'",
            "Wins?",
            [DH_2022],
            (),
            "SELECT W FROM Teams WHERE yearID = 2022 OR teamID = 'BOS'",
        ),
        # A subquery's WHERE is checked too.
        (
            "SELECT COUNT(*) FROM (SELECT playerID FROM Appearances WHERE yearID = 2022 AND G_ss > 100) s",
            "How many players played 100 games at shortstop?",
            [DH_2022],
            (),
            "SELECT COUNT(*) FROM (SELECT playerID FROM Appearances WHERE G_ss > 100) AS s",
        ),
    ],
)
def test_copied_filters(sql, question, examples, hints, expected):
    assert check(sql, question, examples, hints) == expected


def test_what_was_dropped_is_reported():
    grounded = drop_copied_filters(
        "SELECT 1 FROM Appearances a WHERE a.yearID = 2022 AND a.G > 1",
        "Games?",
        [],
        [DH_2022],
        lambda c: 154,
        100,
    )
    assert [d.condition for d in grounded.dropped] == ["a.yearID = 2022"]
    assert grounded.detail() == "dropped a.yearID = 2022 (copied from a worked example)"
    assert (
        drop_copied_filters("SELEC nonsense", "q", [], [DH_2022], lambda c: 154, 100).sql == "SELEC nonsense"
    )


def test_generate_node_drops_a_copied_season_on_the_demo_database():
    settings = load_settings(tracking={"enabled": False})
    generated = "SELECT SUM(G_ss) AS G_ss FROM Appearances WHERE yearID = 2022 AND playerID = 'smithoz01'"
    lm, _ = fake_lm(default_handlers(generated))
    ctx = AgentContext(
        settings=settings, db=open_database(settings.database_config()), tools=registry(), lms={"default": lm}
    )
    ozzie = EntityMapping(
        mention="Ozzie Smith",
        table="People",
        column="playerID",
        value="smithoz01",
        matched="Ozzie Smith",
        matched_column="nameFull",
        score=1.0,
        method="exact",
    )
    state = AgentState(
        question="How many games did Ozzie Smith play at shortstop?",
        standalone_question="How many games did Ozzie Smith play at shortstop?",
        mappings=[ozzie],
        examples=[Example(id="dh", question="Who played the most games at DH in 2022?", sql=DH_2022)],
    )
    with dspy.context(lm=lm):
        update = generate.step(state, ctx)
    assert update["sql"] == "SELECT SUM(G_ss) AS G_ss FROM Appearances WHERE playerID = 'smithoz01'"
    assert "dropped yearID = 2022 (copied from a worked example)" in update["_detail"]

    settings.generate.drop_copied_filters = False
    with dspy.context(lm=lm):
        assert generate.step(state, ctx)["sql"] == generated
