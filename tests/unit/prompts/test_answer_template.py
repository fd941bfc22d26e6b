"""The template answer: small results said from the rows alone, with readable column labels."""

from __future__ import annotations

import pytest

from prompts.answer import template_answer


@pytest.mark.parametrize(
    ("column", "said"),
    [
        ("count_star()", "count: 30."),  # DuckDB's name for COUNT(*)
        ("count(1)", "count: 30."),  # Spark's
        ("count(DISTINCT playerID)", "number of distinct playerID: 30."),
        ("sum(HR)", "total HR: 30."),
        ('sum(b."HR")', "total HR: 30."),
        ("avg(salary)", "average salary: 30."),
        ("max(W)", "highest W: 30."),
        ("total_wins", "total wins: 30."),  # an alias reads as words
        ("HR", "HR: 30."),  # a stored code stays as it is
        ("sum((H + BB))", "sum((H + BB)): 30."),  # an expression keeps the engine's text
    ],
)
def test_a_single_cell_is_said_with_a_readable_label(column: str, said: str) -> None:
    assert template_answer([column], [[30]]) == said


def test_a_person_is_named_first_and_the_rest_follow_with_their_labels() -> None:
    answer = template_answer(["nameFirst", "nameLast", "sum(HR)"], [["Babe", "Ruth", 60]])
    assert answer == "Babe Ruth: total HR 60."


def test_several_rows_are_listed_and_a_cut_result_says_so() -> None:
    rows = [["NYA", 114], ["ATL", 106]]
    assert template_answer(["teamID", "W"], rows) == "2 rows:\n- teamID NYA, W 114\n- teamID ATL, W 106"
    assert template_answer(["teamID", "W"], rows, truncated=True).startswith(
        "2 rows (the result was cut at the row limit):"
    )


def test_no_rows_say_there_is_no_data() -> None:
    assert template_answer(["HR"], []) == "The database has no matching data."
