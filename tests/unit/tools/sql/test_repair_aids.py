"""What the repair step is told, or fixes by itself, on the demo database: why a result is empty
(tools/sql/empty_result.py), a column neither grouped nor aggregated (tools/sql/group_fixes.py), the
table that has every column a query reads from the wrong one (tools/sql/unknown_columns.py), and a
lookup table joined under an alias the query used but never defined (tools/sql/column_fixes.py)."""

from __future__ import annotations

import dspy
import pytest
from sqlglot import parse_one

from agent.config import load_settings
from agent.context import AgentContext
from agent.nodes.repair import column_hint, repair
from agent.state import AgentState
from tests.fake_lm import default_handlers, fake_lm
from tools.builtin import registry
from tools.sql.column_fixes import fix_unknown_columns
from tools.sql.database import open_database
from tools.sql.empty_result import explain_empty
from tools.sql.group_fixes import fix_ungrouped, ungrouped_column
from tools.sql.unknown_columns import replacement_tables


@pytest.fixture(scope="module")
def lahman():
    settings = load_settings(tracking={"enabled": False})
    return open_database(settings.database_config())


def _run(db):
    return lambda sql: db.sandbox.execute(sql).rows


# --- why a result is empty -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql, expected",
    [
        # A value no row holds, with the stored values closest to it.
        (
            "SELECT p.nameFirst FROM Batting b JOIN People p ON b.playerID = p.playerID "
            "WHERE p.nameFirst = 'Ken' AND p.nameLast = 'Griffy Jr.'",
            "No row of People has nameLast = 'Griffy Jr.'; the stored values closest to it are 'Griffey'",
        ),
        (
            "SELECT playerID FROM AwardsPlayers WHERE awardID IN ('Cy Young') AND yearID = 1990",
            "No row of AwardsPlayers has awardID = 'Cy Young'; the stored values closest to it are 'Cy Young Award'",
        ),
        # One condition that leaves nothing (every school of the table is in the USA).
        (
            "SELECT name_full FROM Schools WHERE country <> 'USA'",
            "The condition country <> 'USA' leaves no rows; without it the query returns ",
        ),
        # Two conditions that hold separately but never together (no 2001 postseason pitcher
        # reached 150 outs; one of the 1880s did), LIMIT or not.
        (
            "SELECT playerID FROM PitchingPost WHERE yearID = 2001 AND IPouts >= 150 LIMIT 1",
            "No row meets both yearID = 2001 and IPouts >= 150",
        ),
        (
            "SELECT playerID FROM Managers WHERE yearID = 2023 AND plyrMgr = 'Y'",
            "No row meets both yearID = 2023 and plyrMgr = 'Y'",
        ),
        # A join between keys of different kinds, with what each holds.
        (
            "SELECT T1.name FROM Teams AS T1 JOIN AwardsPlayers AS T2 ON T1.teamID = T2.playerID "
            "WHERE T2.yearID = 2009",
            "Joining Teams and AwardsPlayers ON T1.teamID = T2.playerID pairs no rows: Teams.teamID holds values like",
        ),
    ],
)
def test_an_empty_result_is_explained(lahman, sql, expected):
    assert not _run(lahman)(sql)
    assert explain_empty(sql, _run(lahman)).startswith(expected)


def test_an_empty_result_without_a_culprit_says_nothing(lahman):
    # Each condition alone with the others still matches nothing: no single clause to blame.
    sql = "SELECT playerID FROM Batting WHERE HR > 100 AND yearID = 1800"
    assert explain_empty(sql, _run(lahman)) == ""
    assert explain_empty("SELEC nonsense", _run(lahman)) == ""


def test_the_repair_prompt_says_which_clause_emptied_the_result(lahman):
    settings = load_settings(tracking={"enabled": False})
    lm, engine = fake_lm(default_handlers("SELECT name_full FROM Schools WHERE state = 'ON'"))
    ctx = AgentContext(settings=settings, db=lahman, tools=registry(), lms={"default": lm})
    q = "Which schools are outside the USA?"
    state = AgentState(
        question=q,
        standalone_question=q,
        error_kind="empty_result",
        sql="SELECT name_full FROM Schools WHERE country <> 'USA'",
        error="The query ran but returned no rows.",
    )
    with dspy.context(lm=lm):
        repair.step(state, ctx)
    prompt = str(engine.calls[-1])
    assert "The condition country <> 'USA' leaves no rows" in prompt
    assert "SELECT name_full FROM Schools WHERE country" not in prompt  # the failed query is still not shown


# --- neither grouped nor aggregated ------------------------------------------------------------------


def _types(db):
    return {t.name.lower(): {c.name.lower(): c.type for c in t.columns} for t in db.schema.tables}


def _binder_error(db, sql: str) -> str:
    with pytest.raises(Exception) as caught:
        db.sandbox.execute(sql)
    return str(caught.value)


@pytest.mark.parametrize(
    "sql, expected, detail",
    [
        # A per-row statistic on a many-rows table: summed, which makes the ERA formula per pitcher.
        (
            "SELECT p.nameLast, ROUND(9.0 * ER / (IPouts / 3.0), 2) AS ERA FROM Pitching pi JOIN People p "
            "ON pi.playerID = p.playerID WHERE pi.yearID = 2022 GROUP BY pi.playerID, p.nameLast ORDER BY ERA LIMIT 1",
            "SELECT p.nameLast, ROUND(9.0 * SUM(ER) / (SUM(IPouts) / 3.0), 2) AS ERA FROM Pitching AS pi JOIN People AS p "
            "ON pi.playerID = p.playerID WHERE pi.yearID = 2022 GROUP BY pi.playerID, p.nameLast ORDER BY ERA LIMIT 1",
            "ER -> SUM(ER); IPouts -> SUM(IPouts)",
        ),
        # A name on the table that has one row per group: grouped.
        (
            "SELECT p.nameFirst, MAX(p.debut) AS d FROM People p JOIN Batting b ON p.playerID = b.playerID "
            "WHERE b.yearID = 2024 GROUP BY p.playerID ORDER BY d LIMIT 1",
            "SELECT p.nameFirst, MAX(p.debut) AS d FROM People AS p JOIN Batting AS b ON p.playerID = b.playerID "
            "WHERE b.yearID = 2024 GROUP BY p.playerID, p.nameFirst ORDER BY d LIMIT 1",
            "p.nameFirst added to GROUP BY",
        ),
    ],
)
def test_an_ungrouped_column_is_grouped_or_summed(lahman, sql, expected, detail):
    error = _binder_error(lahman, sql)
    assert ungrouped_column(error) is not None
    fixed = fix_ungrouped(sql, error, _types(lahman), lahman.unique_on)
    assert (fixed.sql, fixed.detail) == (expected, detail)
    assert _run(lahman)(fixed.sql)


def test_other_errors_are_left_to_the_model(lahman):
    sql = "SELECT nameFirst FROM People WHERE a = b = c"
    assert ungrouped_column("Parser Error: Chained comparisons are not supported") is None
    assert (
        fix_ungrouped(sql, "Parser Error: Chained comparisons", _types(lahman), lahman.unique_on).detail == ""
    )


def test_the_repair_node_groups_without_the_lm(lahman):
    settings = load_settings(tracking={"enabled": False})
    lm, engine = fake_lm(default_handlers("SELECT 1"))
    ctx = AgentContext(settings=settings, db=lahman, tools=registry(), lms={"default": lm})
    sql = "SELECT playerID, W FROM Pitching WHERE yearID = 1995 GROUP BY playerID ORDER BY 2 DESC LIMIT 1"
    q = "Who won the most games in 1995?"
    state = AgentState(
        question=q, standalone_question=q, sql=sql, error_kind="execution", error=_binder_error(lahman, sql)
    )
    update = repair.step(state, ctx)
    assert "SUM(W)" in update["sql"] and "fixed without the LM: W -> SUM(W)" in update["_detail"]
    assert engine.calls == []


# --- the table to read instead -------------------------------------------------------------------------


def _catalog(db):
    columns = db.schema.table_columns()
    return {t.lower(): {c.lower(): c for c in cols} for t, cols in columns.items()}, {
        t.lower(): t for t in columns
    }


def test_the_tables_that_have_every_column_read_from_the_wrong_one(lahman):
    catalog, tables = _catalog(lahman)
    tree = parse_one("SELECT W, L FROM Teams WHERE yearID = 2000 AND playerID = 'martipe02'", read="duckdb")
    wrong, fits = replacement_tables(tree, "playerID", catalog, tables)
    assert wrong == "Teams" and "Pitching" in fits and "Managers" in fits and "Batting" not in fits  # no L
    tree = parse_one(
        "SELECT SUM(T1.W) FROM Teams AS T1 WHERE T1.plyrMgr = 'Y' AND T1.yearID = 1998", read="duckdb"
    )
    assert replacement_tables(tree, "plyrMgr", catalog, tables) == ("Teams", ["Managers"])


def test_the_column_hint_names_the_table_to_read_instead(lahman):
    settings = load_settings(tracking={"enabled": False})
    ctx = AgentContext(settings=settings, db=lahman, tools=registry(), lms={})
    sql = "SELECT SUM(W) AS W FROM Teams WHERE teamID = 'NYA' AND plyrMgr = 'Y'"
    hint = column_hint(ctx, "Unknown column 'plyrMgr': none of Teams has a column plyrMgr.", ["Teams"], sql)
    assert hint.startswith(
        "Teams has no plyrMgr; tables with plyrMgr and every other column the query reads "
        "from Teams: Managers."
    )


# --- an alias used but never defined ------------------------------------------------------------------


def test_a_lookup_table_is_joined_under_the_alias_the_query_used(lahman):
    sql = "SELECT DISTINCT p.nameFirst, p.nameLast FROM AwardsPlayers AS a1 WHERE a1.awardID = 'Most Valuable Player'"
    fixed = fix_unknown_columns(
        sql, lahman.schema.table_columns(), joins=lahman.schema.joins, unique_on=lahman.unique_on
    )
    assert fixed.sql == (
        "SELECT DISTINCT p.nameFirst, p.nameLast FROM AwardsPlayers AS a1 JOIN People AS p "
        "ON a1.playerID = p.playerID WHERE a1.awardID = 'Most Valuable Player'"
    )
    assert fixed.detail().startswith("p.nameFirst -> p.nameFirst (joined People AS p)")
    # The same with the table joined to itself (back-to-back awards).
    sql = (
        "SELECT p.nameLast FROM AwardsPlayers AS a1 JOIN AwardsPlayers AS a2 ON a1.playerID = a2.playerID "
        "WHERE a1.yearID = a2.yearID - 1"
    )
    fixed = fix_unknown_columns(
        sql, lahman.schema.table_columns(), joins=lahman.schema.joins, unique_on=lahman.unique_on
    )
    assert (
        "JOIN People AS p ON a1.playerID = p.playerID" in fixed.sql and lahman.policy.check(fixed.sql).allowed
    )
    # Teams has no join path to People: nothing to join, the model is asked.
    sql = "SELECT COUNT(*) FROM Teams WHERE WSWin = 'Y' AND p.playerID = 'jeterde01'"
    assert (
        fix_unknown_columns(
            sql, lahman.schema.table_columns(), joins=lahman.schema.joins, unique_on=lahman.unique_on
        ).fixes
        == []
    )


# --- everyone tied at the top (tools/sql/ties.py) ------------------------------------------------------


def test_a_question_that_asks_for_ties_keeps_every_row_tied_at_the_top(lahman):
    from tools.sql.ties import keep_ties

    sql = (
        "SELECT p.nameFirst, p.nameLast, COUNT(*) AS games FROM AllstarFull a JOIN People p "
        "ON a.playerID = p.playerID GROUP BY a.playerID, p.nameFirst, p.nameLast ORDER BY games DESC LIMIT 1"
    )
    kept = keep_ties(sql, "Who has the most All-Star selections? Include everyone tied at the top.")
    assert "QUALIFY RANK() OVER (ORDER BY games DESC) <= 1 ORDER BY games DESC" in kept.sql
    assert "LIMIT" not in kept.sql and kept.detail.startswith("kept every row tied")
    rows = _run(lahman)(lahman.policy.check(kept.sql).sql)
    assert len(rows) == 3 and {r[2] for r in rows} == {24}  # Aaron, Mays and Musial: 24 each
    # No tie asked for, no ORDER BY, or a page-sized LIMIT: the query is left as written.
    assert keep_ties(sql, "Who has the most All-Star selections?").sql == sql
    assert keep_ties("SELECT name FROM Teams LIMIT 1", "any tie?").detail == ""
    assert keep_ties("SELECT name FROM Teams ORDER BY W DESC LIMIT 500", "ties?").detail == ""
