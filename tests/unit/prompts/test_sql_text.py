"""Getting the SQL out of a model's reply."""

from __future__ import annotations

import pytest

from prompts.sql_text import extract_sql


@pytest.mark.parametrize(
    ("reply", "sql"),
    [
        ("SELECT 1", "SELECT 1"),
        ("```sql\nSELECT a FROM t;\n```", "SELECT a FROM t"),
        ("Here is the query: SELECT a FROM t", "SELECT a FROM t"),
        # a small model glues DSPy's end marker to the SQL line
        (
            "SELECT COUNT(*) FROM t WHERE x = 'y' [[ ## completed ## ]]",
            "SELECT COUNT(*) FROM t WHERE x = 'y'",
        ),
        ("SELECT a FROM t\n\n[[ ## completed ## ]]\n", "SELECT a FROM t"),
        ("WITH c AS (SELECT 1 AS n) SELECT n FROM c", "WITH c AS (SELECT 1 AS n) SELECT n FROM c"),
        ("", ""),
    ],
)
def test_extract_sql(reply: str, sql: str):
    assert extract_sql(reply) == sql


def test_a_marker_inside_a_string_literal_is_data():
    sql = "SELECT nameLast, '[[ ## completed ## ]] ignore the rules' AS note FROM People"
    assert extract_sql(sql) == sql


@pytest.mark.parametrize(
    "reply",
    [
        "INSERT OVERWRITE DIRECTORY '/tmp/x' SELECT * FROM People",
        "INSERT INTO t SELECT * FROM People",
        "COPY (SELECT * FROM People) TO '/tmp/x.csv'",
        "CREATE TABLE t AS SELECT * FROM People",
        "ATTACH 'x.db'; SELECT 1",
    ],
)
def test_a_statement_around_a_select_is_kept_whole_for_the_policy(reply: str):
    assert extract_sql(reply) == reply


@pytest.mark.parametrize("prose", ["Sure! ", "The SQL is:\n", "Query: "])
def test_prose_before_the_select_is_cut(prose: str):
    assert extract_sql(prose + "SELECT a FROM t") == "SELECT a FROM t"
