"""Execution match and the per-node scores, table-driven (no LM; the gold runner on a tiny
temporary DuckDB / SQLite file)."""

from __future__ import annotations

import itertools
import random
import sqlite3
import time
from types import SimpleNamespace

import duckdb
import pytest

from evals import scoring
from evals.dataset import EvalItem
from evals.runner import Gold, Prediction, build_record, run_gold
from evals.scoring import (
    OrderKeyError,
    execution_match,
    has_outer_order_by,
    mapping_overlap,
    order_key_plan,
    score_item,
    sql_tables,
    tie_groups,
)
from tools.sql.sandbox import Sandbox

C2 = ["a", "b"]

# (name, gold_columns, gold_rows, pred_columns, pred_rows, ordered, strict, relaxed)
MATCH_CASES = [
    ("identical", C2, [[1, "x"], [2, "y"]], C2, [[1, "x"], [2, "y"]], False, True, True),
    ("names ignored", ["HR"], [[60]], ["SUM(HR)"], [[60]], False, True, True),
    ("bag: order ignored", C2, [[1, "x"], [2, "y"]], C2, [[2, "y"], [1, "x"]], False, True, True),
    ("list: order matters", C2, [[1, "x"], [2, "y"]], C2, [[2, "y"], [1, "x"]], True, False, False),
    ("list: same order", C2, [[1, "x"], [2, "y"]], C2, [[1, "x"], [2, "y"]], True, True, True),
    ("duplicates count", ["a"], [[1], [1], [2]], ["a"], [[1], [2], [2]], False, False, False),
    ("duplicates equal", ["a"], [[1], [1], [2]], ["a"], [[1], [2], [1]], False, True, True),
    ("missing duplicate", ["a"], [[1], [1]], ["a"], [[1]], False, False, False),
    ("column permutation", C2, [[1, "x"], [2, "y"]], ["b", "a"], [["x", 1], ["y", 2]], False, True, True),
    ("permutation, ordered", C2, [[1, "x"], [2, "y"]], ["b", "a"], [["x", 1], ["y", 2]], True, True, True),
    ("permutation must be consistent", C2, [[1, 2], [3, 4]], C2, [[2, 1], [3, 4]], False, False, False),
    ("same-valued columns swap", C2, [[1, 1], [2, 2]], C2, [[1, 1], [2, 2]], False, True, True),
    ("fewer columns never match", ["n", "hr"], [["Ruth", 60]], ["hr"], [[60]], False, False, False),
    ("extra column: relaxed only", ["hr"], [[60]], ["n", "hr"], [["Ruth", 60]], False, False, True),
    ("extra columns, wrong values", ["hr"], [[60]], ["n", "hr"], [["Ruth", 61]], False, False, False),
    (
        "extra column, permuted, ordered",
        C2,
        [[1, "x"], [2, "y"]],
        ["id", "b", "a"],
        [[9, "x", 1], [8, "y", 2]],
        True,
        False,
        True,
    ),
    ("float within abs tolerance", ["avg"], [[0.3421]], ["avg"], [[0.34214999]], False, True, True),
    # Without the gold SQL the scorer cannot see a ROUND: the default tolerance (SQL_MATCH_CASES has it).
    (
        "no gold SQL: 3-place gold vs 4-place pred",
        ["avg"],
        [[0.342]],
        ["avg"],
        [[0.3422]],
        False,
        False,
        False,
    ),
    ("abs tolerance boundary", ["avg"], [[0.342]], ["avg"], [[0.34209]], False, True, True),
    ("float rel tolerance big", ["x"], [[1e12]], ["x"], [[1e12 + 100]], False, True, True),
    ("float beyond tolerance", ["x"], [[1.0]], ["x"], [[1.001]], False, False, False),
    ("int equals float", ["hr"], [[60]], ["hr"], [[60.0]], False, True, True),
    ("int vs float off by .4", ["hr"], [[60]], ["hr"], [[60.4]], False, False, False),
    ("int vs float within default", ["hr"], [[60]], ["hr"], [[60.00001]], False, True, True),
    (
        "integers exact: payroll off by $100",
        ["payroll"],
        [[222997792]],
        ["payroll"],
        [[222997892]],
        False,
        False,
        False,
    ),
    (
        "integers exact: payroll equal",
        ["payroll"],
        [[222997792]],
        ["payroll"],
        [[222997792]],
        False,
        True,
        True,
    ),
    ("integers exact beyond float precision", ["x"], [[2**53]], ["x"], [[2**53 + 1]], False, False, False),
    ("integers exact in a bag", ["x"], [[10**9], [1]], ["x"], [[1], [10**9 + 1]], False, False, False),
    ("big float vs int within rel tolerance", ["x"], [[10**12]], ["x"], [[1e12 + 100]], False, True, True),
    (
        "rounding boundary still bag-equal",
        ["x"],
        [[0.12344999], [1.0]],
        ["x"],
        [[1.0], [0.12345001]],
        False,
        True,
        True,
    ),
    ("number vs string differ", ["y"], [[1927]], ["y"], [["1927"]], False, False, False),
    ("NULL equals NULL", C2, [[None, 1]], C2, [[None, 1]], False, True, True),
    ("NULL vs zero", C2, [[None, 1]], C2, [[0, 1]], False, False, False),
    ("NULL vs empty string", ["a"], [[None]], ["a"], [[""]], False, False, False),
    ("NULLs in a bag", ["a"], [[None], [1]], ["a"], [[1], [None]], False, True, True),
    ("both empty", C2, [], C2, [], False, True, True),
    ("both empty, fewer columns", C2, [], ["a"], [], False, False, False),
    ("both empty, extra columns", ["a"], [], C2, [], False, False, True),
    ("empty vs rows", ["a"], [], ["a"], [[1]], False, False, False),
    ("row count differs", ["a"], [[1]], ["a"], [[1], [1]], False, False, False),
    ("strings case-sensitive", ["t"], [["NYA"]], ["t"], [["nya"]], False, False, False),
    ("booleans as numbers", ["b"], [[True]], ["b"], [[1]], False, True, True),
    ("booleans as 0/1 exactly", ["b"], [[True]], ["b"], [[2]], False, False, False),
    (
        "relaxed without SQL: names, case and quotes ignored",
        ["HR"],
        [[60]],
        ["n", '"hr"'],
        [["Ruth", 60]],
        False,
        False,
        True,
    ),
    (
        "relaxed without SQL: no column of that name",
        ["hr"],
        [[60]],
        ["n", "w"],
        [["Ruth", 60]],
        False,
        False,
        False,
    ),
    (
        "relaxed without SQL: an expression name reads HR",
        ["HR"],
        [[60]],
        ["n", "sum(HR)"],
        [["Ruth", 60]],
        False,
        False,
        True,
    ),
]


@pytest.mark.parametrize(
    "gold_cols, gold_rows, pred_cols, pred_rows, ordered, strict, relaxed",
    [c[1:] for c in MATCH_CASES],
    ids=[c[0] for c in MATCH_CASES],
)
def test_execution_match(gold_cols, gold_rows, pred_cols, pred_rows, ordered, strict, relaxed):
    m = execution_match(gold_cols, gold_rows, pred_cols, pred_rows, ordered=ordered)
    assert (m.strict, m.relaxed) == (strict, relaxed), m.reason
    if not m.strict:
        assert m.reason


def test_wide_repetitive_result_terminates():
    cols = [f"c{i}" for i in range(8)]
    gold = [[0] * 8 for _ in range(5)]
    pred = [[0] * 8 for _ in range(4)] + [[0] * 7 + [1]]
    assert not execution_match(cols, gold, cols, pred, ordered=False).strict


def test_rows_must_fit_columns():
    with pytest.raises(ValueError):
        execution_match(["a"], [[1, 2]], ["a"], [[1]], ordered=False)


AARON = "SELECT SUM(HR) AS HR FROM Batting WHERE playerID = 'aaronha01'"
AARON_NAMED = (
    "SELECT p.nameFirst, p.nameLast, SUM(b.HR) AS HR FROM Batting b JOIN People p "
    "ON b.playerID = p.playerID WHERE b.playerID = 'aaronha01' GROUP BY p.nameFirst, p.nameLast"
)
NYA_WINS = "SELECT W FROM Teams WHERE yearID = 1998 AND teamID = 'NYA'"
BOS_STAR = "SELECT * FROM Teams WHERE yearID = 1998 AND teamID = 'BOS'"
STAR_COLS = ["yearID", "teamID", "W", "L", "HRA"]
BA = "SELECT nameLast, ROUND(CAST(SUM(H) AS DOUBLE) / SUM(AB), 3) AS BA FROM Batting GROUP BY nameLast"
RND = "SELECT ROUND(x, 3) AS v FROM t"

# (name, gold_sql, gold_columns, gold_rows, pred_sql, pred_columns, pred_rows, strict, relaxed); unordered
SQL_MATCH_CASES = [
    # ROUND(x, d) in the gold: within half a unit of the last kept digit.
    ("ROUND 3: unrounded pred", RND, ["v"], [[0.357]], None, ["v"], [[0.35678]], True, True),
    ("ROUND 3: off by .0019", RND, ["v"], [[0.357]], None, ["v"], [[0.3589]], False, False),
    ("ROUND 3: off by .002", RND, ["v"], [[0.357]], None, ["v"], [[0.359]], False, False),
    ("ROUND 3: half a unit is in", RND, ["v"], [[0.357]], None, ["v"], [[0.3575]], True, True),
    ("ROUND 3: just past half a unit", RND, ["v"], [[0.357]], None, ["v"], [[0.35751]], False, False),
    (
        "ROUND 3, DuckDB cast syntax",
        "SELECT ROUND(x, 3)::DOUBLE AS v FROM t",
        ["v"],
        [[0.357]],
        None,
        ["v"],
        [[0.35678]],
        True,
        True,
    ),
    ("ROUND with no digits", "SELECT ROUND(x) AS v FROM t", ["v"], [[3.0]], None, ["v"], [[3.4]], True, True),
    (
        "ROUND with no digits, off by .6",
        "SELECT ROUND(x) AS v FROM t",
        ["v"],
        [[3.0]],
        None,
        ["v"],
        [[3.6]],
        False,
        False,
    ),
    (
        "ROUND -2 on integers",
        "SELECT ROUND(x, -2) AS v FROM t",
        ["v"],
        [[12300]],
        None,
        ["v"],
        [[12345]],
        True,
        True,
    ),
    (
        "ROUND -2 on integers, off",
        "SELECT ROUND(x, -2) AS v FROM t",
        ["v"],
        [[12300]],
        None,
        ["v"],
        [[12351]],
        False,
        False,
    ),
    (
        "ROUND 0 keeps integers exact",
        "SELECT ROUND(x) AS v FROM t",
        ["v"],
        [[12]],
        None,
        ["v"],
        [[13]],
        False,
        False,
    ),
    (
        "ROUND 6 never narrower than the default",
        "SELECT ROUND(x, 6) AS v FROM t",
        ["v"],
        [[0.123456]],
        None,
        ["v"],
        [[0.12350]],
        True,
        True,
    ),
    (
        "ROUND through a CTE column",
        "WITH s AS (SELECT ROUND(x, 3) AS r FROM t) SELECT r FROM s",
        ["r"],
        [[0.357]],
        None,
        ["r"],
        [[0.35678]],
        True,
        True,
    ),
    (
        "ROUND only in one union branch",
        "SELECT ROUND(x, 3) AS v FROM t UNION ALL SELECT y FROM u",
        ["v"],
        [[0.357]],
        None,
        ["v"],
        [[0.35678]],
        False,
        False,
    ),
    (
        "ROUND tolerance follows the column map",
        BA,
        ["nameLast", "BA"],
        [["Aaron", 0.305]],
        None,
        ["ba", "name"],
        [[0.30512, "Aaron"]],
        True,
        True,
    ),
    (
        "ROUND tolerance is per column",
        "SELECT ROUND(x, 3) AS a, y AS b FROM t",
        ["a", "b"],
        [[0.357, 0.25]],
        None,
        ["a", "b"],
        [[0.3568, 0.2503]],
        False,
        False,
    ),
    (
        "ROUND bag: keys split, values within",
        RND,
        ["v"],
        [[0.357], [0.358]],
        None,
        ["v"],
        [[0.35812], [0.35678]],
        True,
        True,
    ),
    (
        "ROUND bag: a matching, not sorted pairs",
        "SELECT ROUND(x, 1) AS a, n FROM t",
        ["a", "n"],
        [[0.5, 1], [0.5, 2]],
        None,
        ["a", "n"],
        [[0.54, 1], [0.46, 2]],
        True,
        True,
    ),
    # Relaxed: extra columns only when named like the gold column or reading the same columns.
    (
        "nameFirst, nameLast, HR for SUM(HR) AS HR",
        AARON,
        ["HR"],
        [[755]],
        AARON_NAMED,
        ["nameFirst", "nameLast", "HR"],
        [["Hank", "Aaron", 755]],
        False,
        True,
    ),
    (
        "extra columns, same source under another alias",
        AARON,
        ["HR"],
        [[755]],
        "SELECT playerID, SUM(HR) AS total_hr FROM Batting WHERE playerID = 'aaronha01' GROUP BY playerID",
        ["playerID", "total_hr"],
        [["aaronha01", 755]],
        False,
        True,
    ),
    (
        "extra columns, source through a CTE",
        AARON,
        ["HR"],
        [[755]],
        "WITH s AS (SELECT playerID, SUM(HR) AS total FROM Batting GROUP BY playerID) "
        "SELECT playerID, total FROM s WHERE playerID = 'aaronha01'",
        ["playerID", "total"],
        [["aaronha01", 755]],
        False,
        True,
    ),
    (
        "extra columns, same expression",
        "SELECT COUNT(*) AS franchises FROM TeamsFranchises",
        ["franchises"],
        [[30]],
        "SELECT 'active' AS kind, COUNT(*) FROM TeamsFranchises",
        ["kind", "count_star()"],
        [["active", 30]],
        False,
        True,
    ),
    (
        "extra columns, the value in another column",
        AARON,
        ["HR"],
        [[755]],
        "SELECT nameLast, SUM(G) AS games FROM Batting GROUP BY nameLast",
        ["nameLast", "games"],
        [["Aaron", 755]],
        False,
        False,
    ),
    (
        "SELECT * of the wrong team",
        NYA_WINS,
        ["W"],
        [[114]],
        BOS_STAR,
        STAR_COLS,
        [[1998, "BOS", 92, 70, 114]],
        False,
        False,
    ),
    (
        "SELECT * of the wrong team, no SQL",
        None,
        ["W"],
        [[114]],
        None,
        STAR_COLS,
        [[1998, "BOS", 92, 70, 114]],
        False,
        False,
    ),
    (
        "SELECT * of the right team",
        NYA_WINS,
        ["W"],
        [[114]],
        "SELECT * FROM Teams WHERE yearID = 1998 AND teamID = 'NYA'",
        STAR_COLS,
        [[1998, "NYA", 114, 48, 156]],
        False,
        True,
    ),
    (
        "strict ignores names",
        AARON,
        ["HR"],
        [[755]],
        "SELECT SUM(G) AS games FROM Batting",
        ["games"],
        [[755]],
        True,
        True,
    ),
]


@pytest.mark.parametrize(
    "gold_sql, gold_cols, gold_rows, pred_sql, pred_cols, pred_rows, strict, relaxed",
    [c[1:] for c in SQL_MATCH_CASES],
    ids=[c[0] for c in SQL_MATCH_CASES],
)
def test_execution_match_with_sql(
    gold_sql, gold_cols, gold_rows, pred_sql, pred_cols, pred_rows, strict, relaxed
):
    m = execution_match(
        gold_cols, gold_rows, pred_cols, pred_rows, ordered=False, gold_sql=gold_sql, pred_sql=pred_sql
    )
    assert (m.strict, m.relaxed) == (strict, relaxed), m.reason
    if not m.strict:
        assert m.reason


HR3 = [["Ruth", 30], ["Gehrig", 30], ["Foxx", 25]]
KEYS3 = [[30], [30], [25]]
HR4 = [["Ruth", 30], ["Gehrig", 30], ["Foxx", 25], ["Ott", 25]]
KEYS4 = [[30], [30], [25], [25]]

# (name, gold_rows, order_keys, pred_columns, pred_rows, strict); gold columns name, hr; ordered
TIE_CASES = [
    ("ties in gold order", HR3, KEYS3, ["n", "hr"], HR3, True),
    ("ties swapped", HR3, KEYS3, ["n", "hr"], [["Gehrig", 30], ["Ruth", 30], ["Foxx", 25]], True),
    ("non-tied swap", HR3, KEYS3, ["n", "hr"], [["Foxx", 25], ["Ruth", 30], ["Gehrig", 30]], False),
    (
        "ties swapped without keys: a total order",
        HR3,
        None,
        ["n", "hr"],
        [["Gehrig", 30], ["Ruth", 30], ["Foxx", 25]],
        False,
    ),
    (
        "two tie groups, each swapped",
        HR4,
        KEYS4,
        ["n", "hr"],
        [["Gehrig", 30], ["Ruth", 30], ["Ott", 25], ["Foxx", 25]],
        True,
    ),
    (
        "a row moved across tie groups",
        HR4,
        KEYS4,
        ["n", "hr"],
        [["Ruth", 30], ["Ott", 25], ["Gehrig", 30], ["Foxx", 25]],
        False,
    ),
    (
        "a wrong member of a tie group",
        HR3,
        KEYS3,
        ["n", "hr"],
        [["Ruth", 30], ["Foxx", 30], ["Gehrig", 25]],
        False,
    ),
    (
        "ties swapped, columns permuted",
        HR3,
        KEYS3,
        ["hr", "n"],
        [[30, "Gehrig"], [30, "Ruth"], [25, "Foxx"]],
        True,
    ),
    (
        "keys need not be output columns",
        HR3,
        [["a"], ["b"], ["b"]],
        ["n", "hr"],
        [["Ruth", 30], ["Foxx", 25], ["Gehrig", 30]],
        True,
    ),
    ("all rows tied", HR3, [[1], [1], [1]], ["n", "hr"], [["Foxx", 25], ["Gehrig", 30], ["Ruth", 30]], True),
]


@pytest.mark.parametrize(
    "gold_rows, order_keys, pred_cols, pred_rows, strict",
    [c[1:] for c in TIE_CASES],
    ids=[c[0] for c in TIE_CASES],
)
def test_ties_compare_as_bags(gold_rows, order_keys, pred_cols, pred_rows, strict):
    m = execution_match(["name", "hr"], gold_rows, pred_cols, pred_rows, ordered=True, order_keys=order_keys)
    assert m.strict is strict, m.reason


@pytest.mark.parametrize("seed", range(5))
def test_bag_equal_agrees_with_brute_force(seed):
    """Tolerance is not transitive: the bag comparison must find a row matching whenever one exists."""
    rng = random.Random(seed)
    tols = [scoring.round_tolerance(1), scoring.DEFAULT_TOLERANCE]
    for _ in range(300):
        gold = [[rng.choice([0.1, 0.15, 0.2, 0.3]), rng.choice([1, 2])] for _ in range(rng.randint(1, 6))]
        pred = [
            [
                g[0] + rng.choice([-0.05, -0.04, 0.0, 0.03, 0.05, 0.06]),
                g[1] if rng.random() < 0.9 else 3 - g[1],
            ]
            for g in gold
        ]
        rng.shuffle(pred)
        brute = any(
            all(scoring.rows_equal(g, pred[j], tols) for g, j in zip(gold, perm, strict=True))
            for perm in itertools.permutations(range(len(gold)))
        )
        assert scoring.bag_equal(gold, pred, tols) is brute, (gold, pred)


def test_repetitive_rows_compare_quickly():
    # 1000 identical rows against 999 of them and one other: decided per distinct row, not per row pair.
    gold = [[0] * 6 for _ in range(1000)]
    pred = [[0] * 6 for _ in range(999)] + [[0] * 5 + [1]]
    started = time.perf_counter()
    assert not execution_match(list("abcdef"), gold, list("abcdef"), pred, ordered=False).strict
    assert time.perf_counter() - started < 10


def test_order_keys_must_fit_the_gold():
    with pytest.raises(ValueError, match="order_keys has 2 rows"):
        execution_match(["name", "hr"], HR3, ["n", "hr"], HR3, ordered=True, order_keys=KEYS3[:2])


@pytest.mark.parametrize(
    "keys, groups",
    [
        ([], []),
        ([[1]], [(0, 1)]),
        ([[1], [1], [2]], [(0, 2), (2, 3)]),
        ([[1, "a"], [1, "b"]], [(0, 1), (1, 2)]),
        ([[None], [None], [3]], [(0, 2), (2, 3)]),
        ([[2], [1], [2]], [(0, 1), (1, 2), (2, 3)]),
    ],
)
def test_tie_groups(keys, groups):
    assert tie_groups(keys) == groups


# (sql, result columns, positions, extra query expected)
ORDER_PLANS = [
    ("SELECT a FROM t", ["a"], None, False),
    ("SELECT name, hr FROM t ORDER BY hr DESC", ["name", "hr"], (1,), False),
    (
        "SELECT name, SUM(HR) AS total FROM t GROUP BY name ORDER BY total DESC, 1",
        ["name", "total"],
        (1, 0),
        False,
    ),
    (
        "SELECT p.nameLast, b.HR FROM t b JOIN p ORDER BY b.HR DESC, nameLast",
        ["nameLast", "HR"],
        (1, 0),
        False,
    ),
    ("SELECT name, SUM(HR) AS hr FROM t GROUP BY name ORDER BY SUM(HR) DESC", ["name", "hr"], (1,), False),
    ("SELECT HR AS x, SUM(HR) AS HR FROM t GROUP BY 1 ORDER BY HR", ["x", "HR"], (1,), False),  # alias first
    ("SELECT * FROM t ORDER BY W DESC", ["teamID", "W"], (1,), False),
    ("SELECT a FROM t UNION ALL SELECT b FROM u ORDER BY a", ["a"], (0,), False),
    ("(SELECT a FROM t ORDER BY a)", ["a"], (0,), False),
    ("SELECT name FROM t ORDER BY hr DESC", ["name"], (1,), True),
    ("SELECT name, hr FROM t ORDER BY yearID, hr DESC", ["name", "hr"], (2, 1), True),
]


@pytest.mark.parametrize("sql, columns, positions, query", ORDER_PLANS)
def test_order_key_plan(sql, columns, positions, query):
    plan = order_key_plan(sql, columns)
    if positions is None:
        assert plan is None
        return
    assert plan.positions == positions
    assert (plan.query is not None) is query
    if query:
        assert plan.query.count("__order_key_") >= 1 and "ORDER BY" in plan.query


@pytest.mark.parametrize(
    "sql, why",
    [
        ("SELECT DISTINCT a FROM t ORDER BY b", "DISTINCT"),
        ("SELECT a, SUM(b) FROM t GROUP BY ALL ORDER BY c", "ALL"),
        ("SELECT a FROM t UNION SELECT a FROM u ORDER BY b", "set operation"),
        ("SELECT ( ORDER BY", "parse"),
    ],
)
def test_order_key_plan_refuses(sql, why):
    with pytest.raises(OrderKeyError, match=why):
        order_key_plan(sql, ["a"])


@pytest.mark.parametrize(
    "sql, ordered",
    [
        ("SELECT a FROM t", False),
        ("SELECT a FROM t ORDER BY a", True),
        ("SELECT a FROM t ORDER BY a DESC LIMIT 1", True),
        ("SELECT a FROM (SELECT a FROM t ORDER BY a) s", False),
        ("WITH x AS (SELECT a FROM t ORDER BY a LIMIT 5) SELECT a FROM x", False),
        ("WITH x AS (SELECT a FROM t) SELECT a FROM x ORDER BY a", True),
        ("SELECT a FROM t UNION ALL SELECT a FROM u", False),
        ("SELECT a FROM t UNION ALL SELECT a FROM u ORDER BY a", True),
        ("SELECT a FROM t WHERE a IN (SELECT a FROM u ORDER BY a LIMIT 3)", False),
        ("(SELECT a FROM t ORDER BY a)", True),
        ("SELECT a, ROW_NUMBER() OVER (ORDER BY a) FROM t", False),
    ],
)
def test_outer_order_by(sql, ordered):
    assert has_outer_order_by(sql) is ordered


@pytest.mark.parametrize(
    "sql, tables",
    [
        ("SELECT SUM(HR) FROM Batting WHERE playerID = 'aaronha01'", {"Batting"}),
        ("SELECT p.nameFirst FROM Batting b JOIN People p ON b.playerID = p.playerID", {"Batting", "People"}),
        (
            "WITH a AS (SELECT playerID FROM AllstarFull) SELECT * FROM a JOIN People USING (playerID)",
            {"AllstarFull", "People"},
        ),
        ("SELECT name FROM Teams WHERE teamID IN (SELECT teamID FROM SeriesPost)", {"Teams", "SeriesPost"}),
        ("this is not sql (", set()),
    ],
)
def test_sql_tables(sql, tables):
    assert sql_tables(sql) == tables


def _m(column, value, table="People"):
    return {"mention": "x", "table": table, "column": column, "value": value}


@pytest.mark.parametrize(
    "expected, predicted, tp, precision, recall",
    [
        ([_m("playerID", "ruthba01")], [_m("playerID", "ruthba01")], 1, 1.0, 1.0),
        ([_m("teamID", "NYA", "Teams")], [_m("teamID", "NYA", "Batting")], 1, 1.0, 1.0),  # table may differ
        ([_m("teamID", "NYA")], [_m("franchID", "NYA")], 0, 0.0, 0.0),  # the column may not
        ([_m("playerID", "ruthba01")], [], 0, None, 0.0),
        ([], [_m("playerID", "ruthba01")], 0, 0.0, None),
        ([_m("playerID", "a"), _m("playerID", "b")], [_m("playerID", "a")], 1, 1.0, 0.5),
        ([_m("playerID", "a")], [_m("playerID", "a"), _m("teamID", "NYA")], 1, 0.5, 1.0),
        ([_m("playerID", "RuthBa01")], [_m("playerid", "ruthba01")], 1, 1.0, 1.0),
    ],
)
def test_mapping_overlap(expected, predicted, tp, precision, recall):
    o = mapping_overlap(expected, predicted)
    assert (o.tp, o.precision, o.recall) == (tp, precision, recall)


def test_table_recall():
    assert scoring.table_recall({"Batting", "People"}, ["batting", "Teams"]) == 0.5
    assert scoring.table_recall(set(), ["Batting"]) is None


@pytest.mark.parametrize(
    "values, q, expected",
    [
        ([], 50, None),
        ([5], 95, 5.0),
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4, 5], 95, 4.8),
        ([3, 1, 2], 0, 1.0),
    ],
)
def test_percentile(values, q, expected):
    assert scoring.percentile(values, q) == (pytest.approx(expected) if expected is not None else None)


GOLD = (["hr"], [[755]])


@pytest.mark.parametrize(
    "kwargs, correct, relaxed",
    [
        ({"expected_status": "refused", "status": "refused"}, True, True),
        (
            {"expected_status": "refused", "status": "ok", "pred_columns": ["hr"], "pred_rows": [[755]]},
            False,
            False,
        ),
        ({"expected_status": "clarify", "status": "clarify"}, True, True),
        ({"expected_status": "clarify", "status": "ok"}, False, False),
        (
            {
                "expected_status": "ok",
                "status": "ok",
                "gold": GOLD,
                "pred_columns": ["x"],
                "pred_rows": [[755]],
            },
            True,
            True,
        ),
        ({"expected_status": "ok", "status": "error", "gold": GOLD}, False, False),
        ({"expected_status": "ok", "status": "clarify", "gold": GOLD}, False, False),
        (
            {
                "expected_status": "ok",
                "status": "ok",
                "gold": None,
                "pred_columns": ["x"],
                "pred_rows": [[1]],
            },
            None,
            None,
        ),
        (
            {"expected_status": "ok", "status": "ok", "gold": None, "gold_error": "execution: boom"},
            None,
            None,
        ),
        (
            {
                "expected_status": "ok",
                "status": "ok",
                "gold": GOLD,
                "pred_columns": ["x"],
                "pred_rows": [[755]],
                "pred_truncated": True,
            },
            False,
            False,
        ),
        (
            {
                "expected_status": "ok",
                "status": "ok",
                "gold": GOLD,
                "pred_columns": ["n", "HR"],
                "pred_rows": [["Aaron", 755]],
                "gold_sql": AARON,
                "pred_sql": AARON_NAMED.replace("p.nameFirst, ", ""),
            },
            False,
            True,
        ),
    ],
)
def test_score_item(kwargs, correct, relaxed):
    args = {"gold": None, "gold_error": None, "pred_columns": [], "pred_rows": [], "ordered": False, **kwargs}
    s = score_item(**args)
    assert (s.correct, s.correct_relaxed) == (correct, relaxed)


def test_truncated_prediction_says_why():
    s = score_item(
        expected_status="ok",
        status="ok",
        gold=GOLD,
        gold_error=None,
        pred_columns=["hr"],
        pred_rows=[[755]],
        ordered=False,
        pred_truncated=True,
    )
    assert s.correct is False and "truncated at 1 rows" in s.reason and "cannot be compared" in s.reason


# --- the gold runner: truncation and ORDER BY keys, on a tiny database ----------------------------

HITTERS = [
    ("Ruth", "NYA", 30, 1927),
    ("Gehrig", "NYA", 30, 1927),
    ("Foxx", "PHA", 25, 1927),
    ("Ott", "NY1", 18, 1927),
]


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory):
    """A stand-in for tools.sql.database.Database: what run_gold touches (its sandbox and dialect)."""
    path = tmp_path_factory.mktemp("gold") / "tiny.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (name VARCHAR, team VARCHAR, hr INTEGER, yearID INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", HITTERS)
    con.close()

    def make(max_rows: int = 100):
        sandbox = Sandbox(path, timeout_s=10, max_rows=max_rows, memory_limit="256MB", threads=1)
        return SimpleNamespace(sandbox=sandbox, config=SimpleNamespace(dialect="duckdb"))

    return make


@pytest.fixture(scope="module")
def tiny_sqlite(tmp_path_factory):
    path = tmp_path_factory.mktemp("gold") / "tiny.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (name TEXT, team TEXT, hr INTEGER, yearID INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", HITTERS)
    con.commit()
    con.close()
    return str(path)


def _item(sql: str, **extra) -> EvalItem:
    return EvalItem(id="x", question="Who hit the most home runs?", gold_sql=sql, **extra)


# (gold_sql, columns, order_keys, note expected)
GOLD_RUNS = [
    ("SELECT name, hr FROM t", ["name", "hr"], None, False),
    ("SELECT name, hr FROM t ORDER BY hr DESC", ["name", "hr"], [[30], [30], [25], [18]], False),
    ("SELECT name FROM t ORDER BY hr DESC", ["name"], [[30], [30], [25], [18]], False),
    (
        "SELECT name, hr FROM t ORDER BY team, hr DESC",
        ["name", "hr"],
        [["NY1", 18], ["NYA", 30], ["NYA", 30], ["PHA", 25]],
        False,
    ),
    ("SELECT team, SUM(hr) AS hr FROM t GROUP BY ALL ORDER BY MAX(name)", ["team", "hr"], None, True),
]


@pytest.mark.parametrize("sql, columns, order_keys, note", GOLD_RUNS)
def test_run_gold_order_keys(tiny_db, sql, columns, order_keys, note):
    gold = run_gold(_item(sql), tiny_db(), max_rows=100)
    assert gold.error is None
    assert gold.columns == columns and all(len(r) == len(columns) for r in gold.rows)
    assert gold.order_keys == order_keys
    assert bool(gold.note) is note
    if note:
        assert "total order" in gold.note and "GROUP BY ALL" in gold.note


def test_run_gold_sqlite_order_keys(tiny_sqlite):
    gold = run_gold(_item("SELECT name FROM t ORDER BY hr DESC", gold_db=tiny_sqlite), None, max_rows=100)
    assert (gold.dialect, gold.columns, gold.order_keys) == ("sqlite", ["name"], [[30], [30], [25], [18]])


def test_truncated_gold_is_a_gold_error(tiny_db, tiny_sqlite):
    duck = run_gold(_item("SELECT name FROM t"), tiny_db(max_rows=2), max_rows=2)
    lite = run_gold(_item("SELECT name FROM t", gold_db=tiny_sqlite), None, max_rows=2)
    for gold in (duck, lite):
        assert gold.error == "gold result truncated at 2 rows: raise limits.max_rows or narrow the gold"
    s = score_item(
        expected_status="ok",
        status="ok",
        gold=None,
        gold_error=duck.error,
        pred_columns=["name"],
        pred_rows=[["Ruth"]],
        ordered=False,
    )
    assert s.correct is None and "truncated" in s.reason
    assert run_gold(_item("SELECT name FROM t", gold_db=tiny_sqlite), None, max_rows=4).error is None


# (pred rows, truncated, correct): gold `SELECT name, hr FROM t ORDER BY hr DESC`
RECORDS = [
    ([["Ruth", 30], ["Gehrig", 30], ["Foxx", 25], ["Ott", 18]], False, True),
    ([["Gehrig", 30], ["Ruth", 30], ["Foxx", 25], ["Ott", 18]], False, True),  # a tie, either order
    ([["Ruth", 30], ["Foxx", 25], ["Gehrig", 30], ["Ott", 18]], False, False),
    ([["Ruth", 30], ["Gehrig", 30], ["Foxx", 25], ["Ott", 18]], True, False),  # same rows, but cut
]


@pytest.mark.parametrize("rows, truncated, correct", RECORDS)
def test_build_record_uses_ties_and_truncation(tiny_db, rows, truncated, correct):
    item = _item("SELECT name, hr FROM t ORDER BY hr DESC")
    gold = run_gold(item, tiny_db(), max_rows=100)
    pred = Prediction(
        status="ok",
        sql="SELECT name, hr FROM t ORDER BY hr DESC",
        columns=["name", "hr"],
        rows=rows,
        truncated=truncated,
    )
    record = build_record(item, pred, gold, pipeline="baseline")
    assert (record["correct"], record["ordered"]) == (correct, True), record["reason"]
    assert record["gold_note"] is None
    if truncated:
        assert "truncated at 4 rows" in record["reason"]


def test_build_record_relaxed_by_name():
    item = _item(NYA_WINS)
    gold = Gold(columns=["W"], rows=[[114]])
    pred = Prediction(status="ok", sql=BOS_STAR, columns=STAR_COLS, rows=[[1998, "BOS", 92, 70, 114]])
    record = build_record(item, pred, gold, pipeline="baseline")
    assert (record["correct"], record["correct_relaxed"]) == (False, False), record["reason"]
