"""Unknown columns with one obvious fix (tools/sql/column_fixes.py), and the repair node that uses them
before it asks the model."""

from __future__ import annotations

import pytest

from agent.config import load_settings
from agent.context import AgentContext
from agent.nodes.repair import repair
from agent.state import AgentState
from tests.fake_lm import default_handlers, fake_lm
from tools.builtin import registry
from tools.sql.column_fixes import fix_unknown_columns
from tools.sql.database import open_database

COLUMNS = {
    "Teams": ["yearID", "teamID", "franchID", "WSWin", "W", "name"],
    "Managers": ["playerID", "yearID", "teamID", "W"],
    "People": ["playerID", "nameFirst", "nameLast"],
    "Salaries": ["playerID", "yearID", "salary"],
    "AwardsPlayers": ["playerID", "awardID", "yearID", "lgID"],
}


@pytest.mark.parametrize(
    "sql, expected, detail",
    [
        # On the wrong alias: the one table of the query that has WSWin.
        (
            "SELECT T1.yearID FROM Teams AS T1 JOIN Managers AS T2 ON T1.teamID = T2.teamID WHERE T2.WSWin = 'Y'",
            "SELECT T1.yearID FROM Teams AS T1 JOIN Managers AS T2 ON T1.teamID = T2.teamID WHERE T1.WSWin = 'Y'",
            "T2.WSWin -> T1.WSWin",
        ),
        # Misspelt: the same name once case and underscores are ignored.
        (
            "SELECT T1.name_first, T2.salary FROM People AS T1 JOIN Salaries AS T2 ON T1.playerID = T2.playerID",
            "SELECT T1.nameFirst, T2.salary FROM People AS T1 JOIN Salaries AS T2 ON T1.playerID = T2.playerID",
            "T1.name_first -> T1.nameFirst",
        ),
        # An alias the query never defined.
        (
            "SELECT p.nameFirst FROM AwardsPlayers a JOIN People p1 ON a.playerID = p1.playerID",
            "SELECT p1.nameFirst FROM AwardsPlayers AS a JOIN People AS p1 ON a.playerID = p1.playerID",
            "p.nameFirst -> p1.nameFirst",
        ),
    ],
)
def test_one_obvious_fix(sql, expected, detail):
    fixed = fix_unknown_columns(sql, COLUMNS)
    assert fixed.sql == expected
    assert fixed.detail() == detail


@pytest.mark.parametrize(
    "sql",
    [
        # Two tables have W: which one the question meant is the model's call.
        "SELECT T3.W FROM Teams AS T1 JOIN Managers AS T2 ON T1.teamID = T2.teamID JOIN Salaries T3 ON 1 = 1",
        # A join on the wrong column is a wrong join, not a typo.
        "SELECT T1.yearID FROM Teams AS T1 JOIN People AS T2 ON T1.playerID = T2.playerID",
        # No table has anything like it.
        "SELECT homers FROM Teams",
        # Known columns, a select alias in ORDER BY, a subquery's and a CTE's columns: nothing to fix.
        "SELECT W AS wins FROM Teams ORDER BY wins",
        "SELECT s.total FROM (SELECT SUM(W) AS total FROM Teams) AS s",
        "WITH c AS (SELECT playerID, COUNT(*) AS n FROM AwardsPlayers GROUP BY playerID) SELECT c.n FROM c",
        "not sql at all (",
    ],
)
def test_no_fix(sql):
    assert fix_unknown_columns(sql, COLUMNS).fixes == []


def _state(sql: str, error: str) -> AgentState:
    q = "When did the Red Sox win their first World Series after 1918?"
    return AgentState(
        question=q,
        standalone_question=q,
        sql=sql,
        error=error,
        error_kind="unknown_column",
        linked_tables=["Teams", "Managers"],
    )


def test_repair_node_fixes_an_alias_without_the_lm_and_asks_it_otherwise():
    settings = load_settings(tracking={"enabled": False})
    lm, engine = fake_lm(
        default_handlers("SELECT MIN(yearID) FROM Teams WHERE teamID = 'BOS' AND WSWin = 'Y'")
    )
    ctx = AgentContext(
        settings=settings, db=open_database(settings.database_config()), tools=registry(), lms={"default": lm}
    )
    wrong_alias = (
        "SELECT T1.yearID FROM Teams AS T1 JOIN Managers AS T2 ON T1.teamID = T2.teamID "
        "WHERE T1.yearID > 1918 AND T1.teamID = 'BOS' AND T2.WSWin = 'Y' ORDER BY T1.yearID LIMIT 1"
    )
    update = repair.step(
        _state(wrong_alias, "Unknown column 'WSWin': Managers (T2) has no column WSWin."), ctx
    )
    assert "T1.WSWin = 'Y'" in update["sql"] and update["repairs"] == 1
    assert "fixed without the LM: T2.WSWin -> T1.WSWin" in update["_detail"]
    assert engine.calls == []

    # Nothing fits "homers": the model is asked, told the error, not shown the failed query.
    import dspy

    with dspy.context(lm=lm):
        update = repair.step(_state("SELECT homers FROM Teams", "Unknown column 'homers'."), ctx)
    assert update["sql"].startswith("SELECT MIN(yearID)")
    assert len(engine.calls) == 1


# --- joins on part of a key (tools/sql/join_keys.py), on the demo database's own uniqueness -------


@pytest.fixture(scope="module")
def lahman():
    settings = load_settings(tracking={"enabled": False})
    return open_database(settings.database_config())


def _complete(db, sql: str):
    from tools.sql.join_keys import complete_join_keys

    keys = {c.lower() for j in db.schema.joins for pair in j.on for c in pair}
    return complete_join_keys(sql, db.schema.table_columns(), keys, db.unique_on)


@pytest.mark.parametrize(
    "sql, expected",
    [
        # Teams is one row per team-season: a team id alone matches every season.
        (
            "SELECT T1.name FROM Teams AS T1 INNER JOIN SeriesPost AS T2 ON T1.teamID = T2.teamIDwinner "
            "WHERE T2.yearID = 2016 AND T2.round = 'WS'",
            "SELECT T1.name FROM Teams AS T1 INNER JOIN SeriesPost AS T2 ON T1.teamID = T2.teamIDwinner "
            "AND T1.yearID = T2.yearID WHERE T2.yearID = 2016 AND T2.round = 'WS'",
        ),
        (
            "SELECT t.name FROM Managers m JOIN Teams t ON m.teamID = t.teamID WHERE m.playerID = 'ripkeca99'",
            "SELECT t.name FROM Managers AS m JOIN Teams AS t ON m.teamID = t.teamID AND m.yearID = t.yearID "
            "WHERE m.playerID = 'ripkeca99'",
        ),
    ],
)
def test_a_join_on_part_of_a_key_is_completed(lahman, sql, expected):
    completed = _complete(lahman, sql)
    assert completed.sql == expected
    assert completed.detail().startswith("joined also on ")


@pytest.mark.parametrize(
    "sql",
    [
        # People is unique on playerID already.
        "SELECT p.nameLast FROM Batting b JOIN People p ON b.playerID = p.playerID",
        # Batting and Pitching have stints: yearID does not make either side unique, so it is not added.
        "SELECT b.playerID FROM Batting b JOIN Pitching pi ON b.playerID = pi.playerID",
        # The full key is there.
        "SELECT t.name FROM Batting b JOIN Teams t ON b.teamID = t.teamID AND b.yearID = t.yearID",
        # An unknown column is the policy's business.
        "SELECT 1 FROM Teams t JOIN AllstarFull a ON t.playerID = a.playerID",
    ],
)
def test_joins_left_alone(lahman, sql):
    assert _complete(lahman, sql).added == []


def test_a_name_column_is_read_from_the_lookup_table_that_has_it(lahman):
    # Managers has no nameFirst; People, joined on playerID, has: the join is added, the GROUP BY
    # on the key gets the looked-up columns DuckDB wants listed.
    sql = (
        "SELECT m.nameFirst, m.nameLast, COUNT(*) AS n FROM Managers m WHERE m.yearID = 2023 "
        "GROUP BY m.playerID ORDER BY n DESC"
    )
    fixed = fix_unknown_columns(
        sql, lahman.schema.table_columns(), joins=lahman.schema.joins, unique_on=lahman.unique_on
    )
    assert fixed.sql == (
        "SELECT p.nameFirst, p.nameLast, COUNT(*) AS n FROM Managers AS m JOIN People AS p ON m.playerID = p.playerID "
        "WHERE m.yearID = 2023 GROUP BY m.playerID, p.nameFirst, p.nameLast ORDER BY n DESC"
    )
    assert fixed.detail() == "m.nameFirst -> p.nameFirst; m.nameLast -> p.nameLast"
    assert lahman.policy.check(fixed.sql).allowed
    # Without the join paths there is no lookup to read from.
    assert fix_unknown_columns(sql, lahman.schema.table_columns()).fixes == []


# --- joins nothing reads (tools/sql/unused_joins.py) ----------------------------------------------

SCHOOLS = {
    "university": ["School_ID", "School", "Location", "Affiliation"],
    "basketball_match": ["Team_ID", "School_ID", "Team_Name", "ACC_Percent"],
}


@pytest.mark.parametrize(
    "sql, expected",
    [
        (
            "SELECT T1.School, T1.Location FROM university AS T1 INNER JOIN basketball_match AS T2 "
            "ON T1.School_ID = T2.School_ID WHERE T1.Affiliation = 'Public'",
            "SELECT T1.School, T1.Location FROM university AS T1 WHERE T1.Affiliation = 'Public'",
        ),
        # Unqualified names that only the first table has.
        (
            "SELECT School FROM university JOIN basketball_match ON university.School_ID = basketball_match.School_ID",
            "SELECT School FROM university",
        ),
    ],
)
def test_a_join_nothing_reads_is_dropped(sql, expected):
    from tools.sql.unused_joins import drop_unused_joins

    dropped = drop_unused_joins(sql, SCHOOLS)
    assert dropped.sql == expected
    assert dropped.detail().startswith("dropped the join to ")


@pytest.mark.parametrize(
    "sql",
    [
        # Read in the select list, the WHERE, another join's condition, or maybe by an unqualified name.
        "SELECT T2.Team_Name FROM university T1 JOIN basketball_match T2 ON T1.School_ID = T2.School_ID",
        "SELECT T1.School FROM university T1 JOIN basketball_match T2 ON T1.School_ID = T2.School_ID "
        "WHERE T2.ACC_Percent > 0.5",
        "SELECT T1.School FROM university T1 JOIN basketball_match T2 ON T1.School_ID = T2.School_ID "
        "JOIN university T3 ON T3.School_ID = T2.School_ID WHERE T3.Location = 'x'",
        "SELECT T1.School, Team_Name FROM university T1 JOIN basketball_match T2 ON T1.School_ID = T2.School_ID",
        # SELECT *, a LEFT join, USING: left alone.
        "SELECT * FROM university T1 JOIN basketball_match T2 ON T1.School_ID = T2.School_ID",
        "SELECT T1.School FROM university T1 LEFT JOIN basketball_match T2 ON T1.School_ID = T2.School_ID",
        "SELECT T1.School FROM university T1 JOIN basketball_match T2 USING (School_ID)",
    ],
)
def test_a_join_something_reads_stays(sql):
    from tools.sql.unused_joins import drop_unused_joins

    assert drop_unused_joins(sql, SCHOOLS).dropped == []
