"""Execution match and the per-node scores, table-driven (no database, no LM)."""

from __future__ import annotations

import pytest

from evals import scoring
from evals.scoring import execution_match, has_outer_order_by, mapping_overlap, score_item, sql_tables

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
    ("extra column, permuted, ordered", C2, [[1, "x"], [2, "y"]], ["id", "b", "a"], [[9, "x", 1], [8, "y", 2]], True,
     False, True),
    ("float within abs tolerance", ["avg"], [[0.3421]], ["avg"], [[0.34214999]], False, True, True),
    ("gold rounded to 3 places, pred not", ["avg"], [[0.342]], ["avg"], [[0.3422]], False, False, False),
    ("abs tolerance boundary", ["avg"], [[0.342]], ["avg"], [[0.34209]], False, True, True),
    ("float rel tolerance big", ["x"], [[1e12]], ["x"], [[1e12 + 100]], False, True, True),
    ("float beyond tolerance", ["x"], [[1.0]], ["x"], [[1.001]], False, False, False),
    ("int equals float", ["hr"], [[60]], ["hr"], [[60.0]], False, True, True),
    ("rounding boundary still bag-equal", ["x"], [[0.12344999], [1.0]], ["x"], [[1.0], [0.12345001]], False, True,
     True),
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
        ("WITH a AS (SELECT playerID FROM AllstarFull) SELECT * FROM a JOIN People USING (playerID)",
         {"AllstarFull", "People"}),
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
    [([], 50, None), ([5], 95, 5.0), ([1, 2, 3, 4], 50, 2.5), ([1, 2, 3, 4, 5], 95, 4.8), ([3, 1, 2], 0, 1.0)],
)
def test_percentile(values, q, expected):
    assert scoring.percentile(values, q) == (pytest.approx(expected) if expected is not None else None)


GOLD = (["hr"], [[755]])


@pytest.mark.parametrize(
    "kwargs, correct, relaxed",
    [
        ({"expected_status": "refused", "status": "refused"}, True, True),
        ({"expected_status": "refused", "status": "ok", "pred_columns": ["hr"], "pred_rows": [[755]]}, False, False),
        ({"expected_status": "clarify", "status": "clarify"}, True, True),
        ({"expected_status": "clarify", "status": "ok"}, False, False),
        ({"expected_status": "ok", "status": "ok", "gold": GOLD, "pred_columns": ["x"], "pred_rows": [[755]]}, True,
         True),
        ({"expected_status": "ok", "status": "error", "gold": GOLD}, False, False),
        ({"expected_status": "ok", "status": "clarify", "gold": GOLD}, False, False),
        ({"expected_status": "ok", "status": "ok", "gold": None, "pred_columns": ["x"], "pred_rows": [[1]]}, None,
         None),
        ({"expected_status": "ok", "status": "ok", "gold": None, "gold_error": "execution: boom"}, None, None),
    ],
)
def test_score_item(kwargs, correct, relaxed):
    args = {"gold": None, "gold_error": None, "pred_columns": [], "pred_rows": [], "ordered": False, **kwargs}
    s = score_item(**args)
    assert (s.correct, s.correct_relaxed) == (correct, relaxed)
