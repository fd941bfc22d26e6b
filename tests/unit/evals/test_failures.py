"""Error analysis: one kind per failed record, in the documented order, with its one-line reason.

Small Lahman pairs (People, Batting, Pitching, Teams): each case is a predicted query against a gold
one and the exact kind and reason it must get.
"""

from __future__ import annotations

from typing import Any

import pytest

from evals import failures, report, runner
from evals.dataset import EvalItem
from evals.runner import Gold, Prediction


def rec(
    sql: str | None,
    gold_sql: str | None,
    *,
    status: str = "ok",
    expected: str = "ok",
    correct: bool | None = False,
    **extra: Any,
) -> dict:
    """The record keys the classifier reads, as build_record writes them."""
    return {
        "id": "q",
        "sql": sql,
        "gold_sql": gold_sql,
        "status": status,
        "expected_status": expected,
        "correct": correct,
        "gold_error": None,
        "error": None,
        "answer": None,
        "reason": "",
        **extra,
    }


HR_1961 = (
    "SELECT p.nameFirst, p.nameLast, SUM(b.HR) AS HR FROM Batting b JOIN People p ON b.playerID = p.playerID "
    "WHERE b.yearID = 1961 GROUP BY b.playerID, p.nameFirst, p.nameLast ORDER BY HR DESC LIMIT 1"
)
WINS_1998 = "SELECT W FROM Teams WHERE teamID = 'NYA' AND yearID = 1998"

CASES = [
    # --- status: no SQL compared ---
    (
        "missed refusal",
        rec("SELECT * FROM People", None, expected="refused"),
        "refused",
        "answered instead of refusing",
    ),
    (
        "refused an answerable question",
        rec(None, WINS_1998, status="refused", error="writes are not allowed"),
        "refused",
        "refused a question to answer: writes are not allowed",
    ),
    (
        "refused an ambiguous question",
        rec(None, None, status="refused", expected="clarify"),
        "refused",
        "refused a question to ask back on",
    ),
    (
        "answered an ambiguous question",
        rec("SELECT W FROM Teams WHERE name = 'Washington Senators'", None, expected="clarify"),
        "clarify",
        "answered instead of asking which one was meant",
    ),
    (
        "asked back when an answer was expected",
        rec(None, WINS_1998, status="clarify", answer="Which year?"),
        "clarify",
        "asked back instead of answering: Which year?",
    ),
    (
        "asked back, no gold",
        rec(None, None, status="clarify", correct=None),
        "clarify",
        "asked back instead of answering",
    ),
    (
        "execution error with its kind",
        rec(
            "SELECT HRs FROM Batting",
            "SELECT HR FROM Batting",
            status="error",
            error_kind="unknown_column",
            error='Referenced column "HRs" not found',
        ),
        "execution_error",
        'unknown_column: Referenced column "HRs" not found',
    ),
    (
        "execution error in an old record (no error_kind key)",
        {
            k: v
            for k, v in rec("SELECT 1", WINS_1998, status="error", error="timeout").items()
            if k != "error_kind"
        },
        "execution_error",
        "timeout",
    ),
    (
        "execution error wins over a failed reference",
        rec(None, WINS_1998, status="error", gold_error="boom"),
        "execution_error",
        "status error",
    ),
    # --- tables ---
    (
        "batting instead of pitching",
        rec(
            "SELECT p.nameLast, SUM(b.HR) FROM Batting b JOIN People p ON p.playerID = b.playerID GROUP BY p.nameLast",
            "SELECT p.nameLast, SUM(t.W) FROM Pitching t JOIN People p ON p.playerID = t.playerID GROUP BY p.nameLast",
        ),
        "wrong_table",
        "tables Batting, People vs gold People, Pitching",
    ),
    (
        "a name lookup through People the gold does not need",
        rec(
            "SELECT SUM(b.HR) FROM Batting b JOIN People p ON p.playerID = b.playerID WHERE p.nameLast = 'Aaron'",
            "SELECT SUM(HR) FROM Batting WHERE playerID = 'aaronha01'",
        ),
        "wrong_table",
        "tables Batting, People vs gold Batting",
    ),
    # --- values ---
    (
        "modern team code for an old season",
        rec(WINS_1998.replace("'NYA'", "'NYY'"), WINS_1998),
        "wrong_value",
        "teamID = 'NYY' vs gold teamID = 'NYA'",
    ),
    (
        "another player, aliases aside",
        rec(
            "SELECT SUM(b.HR) AS hr FROM Batting AS b WHERE b.playerID = 'aaronto01'",
            "SELECT SUM(HR) AS HR FROM Batting WHERE playerID = 'aaronha01'",
        ),
        "wrong_value",
        "playerID = 'aaronto01' vs gold playerID = 'aaronha01'",
    ),
    (
        "a year written the other way round",
        rec(
            "SELECT COUNT(*) FROM Teams WHERE 1990 <= yearID",
            "SELECT COUNT(*) FROM Teams WHERE yearID >= 2000",
        ),
        "wrong_value",
        "1990 <= yearID vs gold yearID >= 2000",
    ),
    (
        "a CTE name is not a table: the year inside it is what differs",
        rec(
            "WITH season AS (SELECT playerID, SUM(HR) AS HR FROM Batting WHERE yearID = 1962 GROUP BY playerID) "
            "SELECT MAX(HR) FROM season",
            "SELECT MAX(HR) FROM (SELECT playerID, SUM(HR) AS HR FROM Batting WHERE yearID = 1961 GROUP BY playerID)",
        ),
        "wrong_value",
        "yearID = 1962 vs gold yearID = 1961",
    ),
    # --- aggregation ---
    (
        "stints counted, not players",
        rec(
            "SELECT COUNT(playerID) FROM Batting WHERE teamID = 'BOS' AND yearID = 2004",
            "SELECT COUNT(DISTINCT playerID) FROM Batting WHERE teamID = 'BOS' AND yearID = 2004",
        ),
        "wrong_aggregation",
        "aggregates COUNT(playerID) vs gold COUNT(DISTINCT playerID)",
    ),
    (
        "the best season, not the total",
        rec(
            "SELECT MAX(SO) FROM Pitching WHERE playerID = 'ryanno01'",
            "SELECT SUM(SO) FROM Pitching WHERE playerID = 'ryanno01'",
        ),
        "wrong_aggregation",
        "aggregates MAX(SO) vs gold SUM(SO)",
    ),
    (
        "grouped by name: two players of one name merge",
        rec(HR_1961.replace("GROUP BY b.playerID, ", "GROUP BY "), HR_1961),
        "wrong_aggregation",
        "groups by nameFirst, nameLast vs gold nameFirst, nameLast, playerID",
    ),
    # --- filters ---
    (
        "an extra league filter",
        rec(
            "SELECT COUNT(*) FROM Teams WHERE yearID = 1990 AND lgID = 'AL'",
            "SELECT COUNT(*) FROM Teams WHERE yearID = 1990",
        ),
        "wrong_filter",
        "extra filter lgID = 'AL'",
    ),
    (
        "since 2000 read as after 2000",
        rec(
            "SELECT SUM(W) FROM Pitching WHERE yearID > 2000",
            "SELECT SUM(W) FROM Pitching WHERE yearID >= 2000",
        ),
        "wrong_filter",
        "extra filter yearID > 2000; missing filter yearID >= 2000",
    ),
    (
        "a missing HAVING threshold",
        rec(
            "SELECT playerID, SUM(HR) AS HR FROM Batting GROUP BY playerID",
            "SELECT playerID, SUM(HR) AS HR FROM Batting GROUP BY playerID HAVING SUM(HR) >= 500",
        ),
        "wrong_filter",
        "missing filter SUM(HR) >= 500",
    ),
    # --- columns, order, limit ---
    (
        "an extra id column",
        rec(HR_1961.replace("SELECT p.nameFirst", "SELECT b.playerID, p.nameFirst"), HR_1961),
        "wrong_columns",
        "extra column playerID",
    ),
    (
        "the fewest instead of the most",
        rec(HR_1961.replace("HR DESC", "HR"), HR_1961),
        "wrong_columns",
        "order by HR vs gold HR DESC",
    ),
    (
        "a join written in WHERE is no filter; the LIMIT differs",
        rec(
            "SELECT p.nameFirst, p.nameLast, SUM(b.HR) AS HR FROM Batting b, People p WHERE b.playerID = p.playerID "
            "AND b.yearID = 1961 GROUP BY b.playerID, p.nameFirst, p.nameLast ORDER BY 3 DESC LIMIT 5",
            HR_1961,
        ),
        "wrong_columns",
        "LIMIT 5 vs gold LIMIT 1",
    ),
    (
        "DISTINCT rows",
        rec(
            "SELECT DISTINCT teamID FROM Batting WHERE playerID = 'ruthba01'",
            "SELECT teamID FROM Batting WHERE playerID = 'ruthba01'",
        ),
        "wrong_columns",
        "DISTINCT rows, unlike the gold",
    ),
    # --- the rest ---
    (
        "same shape, other rounding",
        rec(
            "SELECT ROUND(AVG(W), 1) AS w FROM Teams WHERE yearID = 2000",
            "SELECT ROUND(AVG(W), 2) AS w FROM Teams WHERE yearID = 2000",
            reason="values differ in column w",
        ),
        "other",
        "same query shape as gold; values differ in column w",
    ),
    (
        "a failed reference query",
        rec(WINS_1998, WINS_1998, correct=None, gold_error="CatalogException: no Teems"),
        "other",
        "the reference query failed: CatalogException: no Teems",
    ),
    (
        "unparsable prediction",
        rec("SELECT FROM WHERE (", WINS_1998),
        "other",
        "predicted SQL could not be parsed",
    ),
]


@pytest.mark.parametrize("record, kind, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_failure_gets_its_kind_and_reason(record, kind, reason):
    failure = failures.classify(record)
    assert failure is not None
    assert (failure.kind, failure.reason) == (kind, reason)
    assert failure.label == failures.LABELS[kind]


def test_every_kind_is_covered_by_a_case():
    assert {c[2] for c in CASES} == {k.id for k in failures.KINDS}


@pytest.mark.parametrize(
    "record",
    [
        rec(WINS_1998, WINS_1998, correct=True),
        rec("SELECT 1", None, correct=None),  # answered, no gold: unscored, not failed
        rec(None, None, status="refused", expected="refused", correct=True),
    ],
)
def test_what_did_not_fail_gets_no_kind(record):
    assert failures.classify(record) is None


# --- the summary and the report --------------------------------------------------------------------


def built(
    item_id: str,
    pred_sql: str | None,
    pred: tuple[list[str], list[list[Any]]],
    *,
    status: str = "ok",
    expected: str = "ok",
    gold_sql: str | None = WINS_1998,
    gold: Gold | None = None,
    error_kind: str | None = None,
) -> dict:
    """A record as the runner builds it (real build_record and scorer, stub prediction and gold)."""
    item = EvalItem(
        id=item_id,
        question=f"question {item_id}",
        expected_status=expected,
        gold_sql=gold_sql or "",
        split="test",
    )
    prediction = Prediction(
        status=status,
        sql=pred_sql,
        columns=pred[0],
        rows=pred[1],
        error_kind=error_kind,
        error="Binder Error" if status == "error" else None,
    )
    return runner.build_record(item, prediction, gold, pipeline="baseline")


def test_summary_counts_kinds_and_the_report_has_the_section():
    gold = Gold(columns=["W"], rows=[[114]])
    records = [
        built("right", WINS_1998, (["W"], [[114]]), gold=gold),
        built("nyy", WINS_1998.replace("'NYA'", "'NYY'"), (["W"], []), gold=gold),
        built(
            "nyy-1999", WINS_1998.replace("'NYA'", "'NYY'").replace("1998", "1999"), (["W"], []), gold=gold
        ),
        built(
            "broke",
            "SELECT Wins FROM Teams",
            ([], []),
            status="error",
            error_kind="unknown_column",
            gold=gold,
        ),
        built(
            "unsafe",
            "SELECT * FROM People",
            (["playerID"], [["aaronha01"]]),
            expected="refused",
            gold_sql=None,
        ),
    ]
    s = report.build_summary(records, {"pipeline": "agent"})
    assert s["failure_kinds"] == {"refused": 1, "execution_error": 1, "wrong_value": 2}
    assert list(s["failure_kinds"]) == ["refused", "execution_error", "wrong_value"]  # the documented order
    assert {i: v["failure_kind"] for i, v in s["items"].items()} == {
        "right": None,
        "nyy": "wrong_value",
        "nyy-1999": "wrong_value",
        "broke": "execution_error",
        "unsafe": "refused",
    }

    md = report.render_markdown(s, records, charts={})
    section = md[md.index("## Error analysis (4 failed)") : md.index("## What went wrong (4)")]
    assert "| refused (or should have) | 1 | 25% |" in section
    assert "| query failed to run | 1 | 25% |" in section
    assert "| wrong value | 2 | 50% |" in section
    assert "| `broke` | query failed to run | unknown_column: Binder Error |" in section
    assert "| `nyy` | wrong value | teamID = 'NYY' vs gold teamID = 'NYA' |" in section
    assert "| `unsafe` | refused (or should have) | answered instead of refusing |" in section
    assert "`right`" not in section
    # Grouped by kind in the documented order, ids sorted within a kind.
    assert (
        section.index("`unsafe`")
        < section.index("`broke`")
        < section.index("`nyy`")
        < section.index("`nyy-1999`")
    )


def test_a_run_without_failures_says_so():
    record = built("right", WINS_1998, (["W"], [[114]]), gold=Gold(columns=["W"], rows=[[114]]))
    s = report.build_summary([record], {"pipeline": "agent"})
    assert s["failure_kinds"] == {}
    assert "## Error analysis (0 failed)\n\nNothing failed." in report.render_markdown(s, [record], charts={})
