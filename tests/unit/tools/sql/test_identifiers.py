"""Identifiers read as DuckDB reads them, on an engine that folds or matches case (PostgreSQL): the
rewrite the PostgreSQL engine applies, and the policy's check of the same names."""

from __future__ import annotations

import pytest

from tools.sql.engines.identifiers import CatalogSpelling
from tools.sql.policy import Catalog, SqlPolicy

CATALOG = {
    "Batting": ["playerID", "yearID", "HR", "2B"],
    "HallOfFame": ["playerID", "yearid", "votedBy"],
    "People": ["playerID", "nameFirst"],
}
SPELLING = CatalogSpelling(CATALOG)


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT nameFirst FROM People", 'SELECT "nameFirst" FROM "People"'),
    ('SELECT p.namefirst, b."2b" FROM people p JOIN BATTING b ON p.PLAYERID = b.playerid WHERE b.yearid = 1927',
     'SELECT p."nameFirst", b."2B" FROM "People" AS p JOIN "Batting" AS b ON p."playerID" = b."playerID" '
     'WHERE b."yearID" = 1927'),
    # The column of the table the qualifier names: HallOfFame spells it yearid, Batting yearID.
    ("SELECT h.yearID, b.yearid FROM HallOfFame h JOIN Batting b USING (playerid)",
     'SELECT h."yearid", b."yearID" FROM "HallOfFame" AS h JOIN "Batting" AS b USING ("playerID")'),
    # An alias like a column is spelled like it, where it is defined and where it is used.
    ("SELECT playerID, sum(hr) AS hr FROM Batting GROUP BY 1 ORDER BY hr DESC",
     'SELECT "playerID", SUM("HR") AS "HR" FROM "Batting" GROUP BY 1 ORDER BY "HR" DESC'),
    ("SELECT Batting.yearID FROM batting", 'SELECT "Batting"."yearID" FROM "Batting"'),
    # A CTE and its own names are left as written.
    ("WITH t AS (SELECT playerid AS pid FROM batting) SELECT t.pid FROM t",
     'WITH t AS (SELECT "playerID" AS pid FROM "Batting") SELECT t.pid FROM t'),
])  # fmt: skip
def test_names_take_the_catalogs_spelling(sql, expected):
    assert SPELLING.resolve(sql, "postgres") == expected


@pytest.mark.parametrize("sql", ['SELECT "playerID" FROM "People"', "SELECT 1 AS x", "SELECT 1; SELECT 2",
                                 "SELEC nonsense ((("])  # fmt: skip
def test_sql_already_spelled_or_unreadable_is_unchanged(sql):
    assert SPELLING.resolve(sql, "postgres") == sql


def test_the_policy_reads_quoted_names_case_insensitively_on_postgres():
    """Quoted "2b" or "people" name Batting's 2B and People on PostgreSQL too, as the engine runs them."""
    policy = SqlPolicy(Catalog(tables=CATALOG), limit_cap=10, dialect="postgres")
    for sql in ['SELECT "2B" FROM Batting', 'SELECT "2b" FROM "batting"', 'SELECT "nameFirst" FROM "People"']:
        decision = policy.check(sql)
        assert decision.allowed, (sql, decision.reason)
    assert policy.check('SELECT "nope" FROM Batting').code == "unknown_column"
