"""Property tests: `SqlPolicy.check` never raises and never allows anything but one read-only query,
in every dialect: DuckDB with the most examples, the others with fewer (same properties, same grammar)."""

from __future__ import annotations

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from tools.sql.function_rules import dialect_rules
from tools.sql.policy import FORBIDDEN_NODES, Catalog, PolicyDecision, SqlPolicy, forbidden_function_reason

CATALOG = Catalog(
    tables={
        "People": ["playerID", "nameFirst", "nameLast", "birthCity"],
        "Batting": ["playerID", "yearID", "HR", "2B"],
    }
)
CAP = 50
POLICY = SqlPolicy(CATALOG, limit_cap=CAP)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OTHER_DIALECTS = ["postgres", "spark", "databricks", "snowflake"]
POLICIES = {d: SqlPolicy(CATALOG, limit_cap=CAP, dialect=d) for d in OTHER_DIALECTS}
OTHER_SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYWORDS = [
    "SELECT", "FROM", "WHERE", "WITH", "RECURSIVE", "AS", "UNION", "ALL", "EXCEPT", "INTERSECT", "JOIN",
    "ON", "USING", "GROUP BY", "ORDER BY", "HAVING", "QUALIFY", "LIMIT", "OFFSET", "INSERT", "INTO",
    "VALUES", "UPDATE", "SET", "DELETE", "DROP", "TABLE", "CREATE", "ALTER", "ATTACH", "DETACH", "COPY",
    "TO", "EXPORT", "DATABASE", "INSTALL", "LOAD", "PRAGMA", "CALL", "CHECKPOINT", "VACUUM", "USE",
    "EXPLAIN", "DESCRIBE", "SUMMARIZE", "PIVOT", "RETURNING", "MACRO", "TEMP", "VIEW", "OR", "REPLACE",
    "NOT", "NULL", "AND", "IN", "EXISTS", "CASE", "WHEN", "THEN", "ELSE", "END", "OVER", "PARTITION",
    "EXCLUDE", "COLUMNS", "DISTINCT", "LATERAL", "FETCH", "FIRST", "ROWS", "ONLY", "BEGIN", "COMMIT",
]  # fmt: skip
IDENTIFIERS = [
    "People", "Batting", "playerID", "nameFirst", "birthCity", "HR", '"2B"', "2B", "t", "x", "r", "p",
    "read_csv", "read_text", "glob", "getenv", "duckdb_settings", "query", "range", "unnest",
    "generate_series", "'/etc/passwd'", "'x.csv'", "information_schema.tables", "main.People",
    "count", "sum", "upper", "\uff24\uff32\uff2f\uff30", "\u200b",
    "pg_read_file", "lo_import", "dblink", "set_config", "pg_sleep", "reflect", "java_method", "read_files",
    "parquet.`/etc/passwd`", "`/tmp/x`", "@stage", "public.People", "default.People", "PROGRAM", "JAR",
    "TRANSFORM", "USING", "FUNCTION", "TEMPORARY", "ADD", "OVERWRITE", "DIRECTORY", "FOR UPDATE", "LATERAL VIEW",
    "explode", "TABLE(", "FLATTEN", "pg_catalog.pg_authid", "current_user", "version",
]  # fmt: skip
PUNCTUATION = ["(", ")", ",", ";", "*", "=", "<", ">", "+", "-", ".", "'", '"', "--", "/*", "*/", "::",
               "->", "||", "1", "42", "100000", "'a'", "$$", "#1", "%", "\n"]  # fmt: skip

grammarish = st.lists(
    st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(IDENTIFIERS), st.sampled_from(PUNCTUATION)),
    min_size=1,
    max_size=25,
).map(" ".join)
select_prefixed = st.tuples(
    st.sampled_from(
        [
            "SELECT * FROM People",
            "SELECT nameFirst FROM People",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
            "SELECT 1",
        ]
    ),  # fmt: skip
    grammarish,
).map(" ".join)


def assert_safe(decision: PolicyDecision, dialect: str = "duckdb") -> None:
    assert isinstance(decision, PolicyDecision)
    if not decision.allowed:
        assert decision.code and decision.reason
        return
    statements = [s for s in sqlglot.parse(decision.sql, dialect=dialect) if s is not None]
    assert len(statements) == 1
    root = statements[0]
    if isinstance(root, exp.Subquery):
        assert isinstance(root.unnest(), exp.Query)
    else:
        assert isinstance(root, exp.Select | exp.SetOperation)
    for node in root.walk():
        assert not isinstance(node, FORBIDDEN_NODES), type(node).__name__
        if isinstance(node, exp.Func):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            assert forbidden_function_reason(name) is None, name
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            assert "/" not in node.name and "." not in node.name
    assert dialect_rules(dialect).tree_refusal(root) is None  # every call on the dialect's allow-list
    limit = root.args.get("limit")
    assert isinstance(limit, exp.Limit)
    assert int(limit.expression.this) <= CAP


@SETTINGS
@given(st.text(max_size=200))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    assert_safe(POLICY.check(text))


@SETTINGS
@given(grammarish)
def test_never_allows_unsafe_grammarish(text: str) -> None:
    assert_safe(POLICY.check(text))


@SETTINGS
@given(select_prefixed)
def test_never_allows_unsafe_select_prefixed(text: str) -> None:
    assert_safe(POLICY.check(text))


STRATEGIES = {"text": st.text(max_size=200), "grammarish": grammarish, "select_prefixed": select_prefixed}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("dialect", OTHER_DIALECTS)
@OTHER_SETTINGS
@given(data=st.data())
def test_never_allows_unsafe_in_other_dialects(dialect: str, strategy: str, data: st.DataObject) -> None:
    text = data.draw(STRATEGIES[strategy])
    assert_safe(POLICIES[dialect].check(text), dialect)
