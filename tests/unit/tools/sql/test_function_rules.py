"""The function allow-list (tools/sql/sql_functions.yaml, tools/sql/function_rules.py): its data stays
sound, and the policy applies it per dialect."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tools.sql.function_rules import (
    GENERAL_REASON,
    dialect_rules,
    family_classes,
    forbidden_function_reason,
    load_rules,
)  # fmt: skip
from tools.sql.policy import Catalog, SqlPolicy

DIALECTS = ["duckdb", "postgres", "spark", "databricks", "snowflake"]
SNAPSHOT = Path(__file__).parent / "data" / "sqlglot_function_families.txt"
CATALOG = Catalog(
    tables={"People": ["playerID", "nameFirst", "nameLast", "debut"], "Batting": ["playerID", "HR", "2B"]}
)


def _parsed_as(name: str, dialect: str) -> set[str]:
    """The classes sqlglot makes of `name(...)` in `dialect`, with 0 to 3 arguments."""
    found = set()
    for n in range(4):
        try:
            select = sqlglot.parse_one(f"SELECT {name}({', '.join(['1'] * n)})", read=dialect)
        except sqlglot.errors.SqlglotError:
            continue
        call = next(select.find_all(exp.Func), None)
        found.add(type(call).__name__ if call is not None else "none")
    return found


@pytest.mark.parametrize("dialect", DIALECTS)
def test_listed_names_run_as_listed(dialect: str) -> None:
    """A listed name is one sqlglot does not know in the dialect, or (in a list shared with another
    dialect: Databricks reads Spark's) one it parses as an allowed class. A name that sqlglot turns
    into a refused class would be listed and refused at once."""
    rules = dialect_rules(dialect)
    allowed = {c.__name__ for c in rules.allowed_classes} | {"Anonymous", "none"}
    parsed = {n: _parsed_as(n, dialect) for n in rules.functions}
    assert sorted(n for n, classes in parsed.items() if not classes <= allowed) == []
    owner = "spark" if dialect == "databricks" else dialect
    assert sorted(n for n in rules.functions if "Anonymous" not in _parsed_as(n, owner)) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_nothing_allowed_is_also_refused_by_name(dialect: str) -> None:
    rules = dialect_rules(dialect)
    names = set(rules.functions | rules.table_functions)
    names |= {n.lower() for c in rules.allowed_classes for n in c.sql_names()}
    assert sorted(n for n in names if forbidden_function_reason(n)) == []


def test_the_value_families_hold_only_reviewed_classes() -> None:
    """A sqlglot upgrade that adds a function class to a value family (string, math, ...) is allowed
    by nobody's decision until it is reviewed: this test names the new classes."""
    reviewed = {line for line in SNAPSHOT.read_text().splitlines() if line and not line.startswith("#")}
    current = {f"{f}.{c.__name__}" for f in load_rules().classes.families for c in family_classes(f)}
    assert sorted(current - reviewed) == [], "review these classes (see the snapshot's header)"
    assert sorted(reviewed - current) == [], "gone from sqlglot: remove them from the snapshot"


def test_refused_classes_stay_refused_everywhere() -> None:
    for dialect in DIALECTS:
        allowed = {c.__name__ for c in dialect_rules(dialect).allowed_classes}
        assert allowed.isdisjoint(load_rules().classes.refused)
        assert {"Secret", "ToFile", "ReadCSV", "ReadParquet", "CurrentUser", "NextValueFor"}.isdisjoint(
            allowed
        )


def test_dialects_are_resolved_through_sqlglot_and_unknown_ones_fail_early() -> None:
    assert dialect_rules("postgres").dialect == "postgres"
    with pytest.raises(ValueError, match="Unknown dialect"):
        SqlPolicy(CATALOG, 10, dialect="postgresql")
    with pytest.raises(
        ValueError, match=r"'bigquery' has no function allow-list; supported: duckdb, postgres"
    ):
        SqlPolicy(CATALOG, 10, dialect="bigquery")


CASES = [
    # (dialect, sql, allowed, fragment of the output SQL or of the reason)
    (
        "duckdb",
        "SELECT nameFirst.upper() FROM People",
        True,
        "nameFirst.upper()",
    ),  # a method call is upper(x)
    (
        "duckdb",
        "SELECT '/etc/passwd'.read_text()",
        False,
        "Function read_text is not allowed: it reads files",
    ),
    ("duckdb", "SELECT main.read_csv('x')", False, "Function read_csv is not allowed"),
    ("duckdb", "SELECT sleep_ms(10)", False, "Function sleep_ms is not allowed: it changes the session"),
    (
        "duckdb",
        "SELECT made_up_function(1)",
        False,
        f"Function made_up_function is not allowed: {GENERAL_REASON}.",
    ),
    (
        "postgres",
        "SELECT pg_catalog.upper(nameFirst) FROM People",
        False,
        "call built-in functions by their plain name",
    ),
    (
        "postgres",
        'SELECT "Age"(debut) FROM People',
        True,
        "SELECT AGE(debut) FROM People",
    ),  # not the function "Age"
    ("postgres", "SELECT version()", False, "Function version is not allowed: it exposes system settings"),
    ("postgres", "SELECT age(debut) FROM People", True, "AGE(debut)"),
    ("postgres", 'SELECT "2B" FROM Batting', True, '"2B"'),  # a quoted name matches the catalog's spelling
    ("postgres", "SELECT nameFirst FROM public.People", True, "public.People"),
    ("postgres", "SELECT nameFirst FROM main.People", False, "only tables of the public schema"),
    (
        "postgres",
        "SELECT playerID FROM Batting QUALIFY ROW_NUMBER() OVER (ORDER BY HR) = 1",
        False,
        "QUALIFY is not postgres SQL",
    ),
    (
        "spark",
        "SELECT playerID FROM Batting QUALIFY ROW_NUMBER() OVER (ORDER BY HR) = 1",
        False,
        "QUALIFY is not spark SQL",
    ),
    (
        "databricks",
        "SELECT playerID FROM Batting QUALIFY ROW_NUMBER() OVER (ORDER BY HR) = 1",
        True,
        "QUALIFY",
    ),
    ("spark", "SELECT * FROM range(5)", True, "RANGE(5)"),
    ("spark", "SELECT range(5)", False, "Function range is not allowed"),  # a row source, not a value
    ("spark", "SELECT nameFirst FROM spark_catalog.default.People", True, "spark_catalog.default.People"),
    ("spark", "SELECT * FROM parquet.`People`", False, "through the parquet data source"),
    (
        "snowflake",
        'SELECT nameFirst, "2B" FROM People JOIN Batting USING (playerID)',
        True,
        "SELECT nameFirst",
    ),
    ("snowflake", "SELECT NAMEFRIST FROM PEOPLE", False, "Unknown column"),
    ("snowflake", "SELECT * FROM '/etc/passwd'", False, "looks like a file path or stage"),
]


@pytest.mark.parametrize(
    ("dialect", "sql", "allowed", "fragment"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_policy_per_dialect(dialect: str, sql: str, allowed: bool, fragment: str) -> None:
    decision = SqlPolicy(CATALOG, 10, dialect=dialect).check(sql)
    assert decision.allowed is allowed, decision.reason
    assert fragment in (decision.sql if allowed else decision.reason or ""), decision.sql or decision.reason


def test_the_catalog_can_name_its_schema() -> None:
    policy = SqlPolicy(CATALOG.model_copy(update={"schema_name": "lahman"}), 10, dialect="postgres")
    assert policy.check("SELECT nameFirst FROM lahman.People").allowed
    assert "only tables of the lahman schema" in (
        policy.check("SELECT nameFirst FROM public.People").reason or ""
    )
