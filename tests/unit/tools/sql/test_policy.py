"""Table-driven tests of the static SQL policy (tools/sql/policy.py)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from tools.sql.policy import AccessRole, Catalog, PolicyDecision, SqlPolicy, load_roles

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())

CATALOG = Catalog(
    tables={
        "People": ["playerID", "nameFirst", "nameLast", "nameGiven", "birthYear", "birthCity", "deathCity"],
        "Batting": ["playerID", "yearID", "teamID", "G", "H", "2B", "3B", "HR"],
        "Salaries": ["playerID", "yearID", "teamID", "salary"],
        "Teams": ["yearID", "teamID", "name", "W", "L"],
    }
)
CAP = 100
PUBLIC = AccessRole(
    name="public",
    denied_tables=["Salaries"],
    denied_columns={"People": ["birthYear", "birthCity", "deathCity", "nameGiven"]},
)
RESTRICTED = AccessRole(
    name="restricted", allowed_tables=["People", "Batting"], denied_columns={"*": ["teamID"]}
)


@pytest.fixture(scope="module")
def policy() -> SqlPolicy:
    return SqlPolicy(CATALOG, limit_cap=CAP)


@pytest.fixture(scope="module")
def public() -> SqlPolicy:
    return SqlPolicy(CATALOG, limit_cap=CAP, role=PUBLIC)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    """A tiny database with the catalog's tables, to prove that allowed SQL really runs."""
    path = tmp_path_factory.mktemp("policy") / "mini.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE People (playerID VARCHAR, nameFirst VARCHAR, nameLast VARCHAR, nameGiven VARCHAR,"
        " birthYear INTEGER, birthCity VARCHAR, deathCity VARCHAR)"
    )
    con.execute(
        "CREATE TABLE Batting (playerID VARCHAR, yearID INTEGER, teamID VARCHAR, G INTEGER, H INTEGER,"
        ' "2B" INTEGER, "3B" INTEGER, HR INTEGER)'
    )
    con.execute("CREATE TABLE Salaries (playerID VARCHAR, yearID INTEGER, teamID VARCHAR, salary DOUBLE)")
    con.execute("CREATE TABLE Teams (yearID INTEGER, teamID VARCHAR, name VARCHAR, W INTEGER, L INTEGER)")
    con.execute(
        "INSERT INTO People VALUES ('ruthba01','Babe','Ruth','George Herman',1895,'Baltimore',"
        "'New York'), ('aaronha01','Hank','Aaron','Henry Louis',1934,'Mobile','Atlanta')"
    )
    con.execute(
        "INSERT INTO Batting VALUES ('ruthba01',1927,'NYA',151,192,29,8,60),"
        "('aaronha01',1973,'ATL',120,118,12,1,40)"
    )
    con.execute("INSERT INTO Teams VALUES (1927,'NYA','New York Yankees',110,44)")
    return con


ALLOWED = [
    ("simple", "SELECT nameFirst, nameLast FROM People"),
    ("lowercase_names", "select namefirst from people where namelast = 'Ruth'"),
    ("join_aliases", "SELECT p.nameFirst, b.HR FROM People p JOIN Batting b ON p.playerID = b.playerID"),
    ("quoted_2B", 'SELECT playerID, "2B", "3B" FROM Batting WHERE "2B" > 10 ORDER BY "2B" DESC'),
    ("cte", "WITH hr AS (SELECT playerID, SUM(HR) AS total FROM Batting GROUP BY playerID) "
            "SELECT p.nameLast, hr.total FROM hr JOIN People p USING (playerID)"),
    ("cte_named_like_table", "WITH batting AS (SELECT playerID, HR FROM Batting WHERE yearID > 1900) "
                             "SELECT playerID FROM batting"),
    ("recursive_cte", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
                      "SELECT n FROM r"),
    ("window", "SELECT playerID, yearID, RANK() OVER (PARTITION BY yearID ORDER BY HR DESC) AS rk FROM Batting"),
    ("qualify", "SELECT playerID, yearID, HR FROM Batting "
                "QUALIFY ROW_NUMBER() OVER (PARTITION BY yearID ORDER BY HR DESC) = 1"),
    ("union", "SELECT playerID FROM People UNION SELECT playerID FROM Batting"),
    ("except", "SELECT playerID FROM People EXCEPT SELECT playerID FROM Batting"),
    ("subquery_in", "SELECT nameLast FROM People WHERE playerID IN (SELECT playerID FROM Batting WHERE HR > 50)"),
    ("derived_table", "SELECT t.total FROM (SELECT SUM(HR) AS total FROM Batting) AS t"),
    ("correlated_exists", "SELECT nameLast FROM People p WHERE EXISTS "
                          "(SELECT 1 FROM Batting b WHERE b.playerID = p.playerID AND b.HR > 50)"),
    ("ilike_string_funcs", "SELECT UPPER(nameFirst) || ' ' || nameLast AS name FROM People "
                           "WHERE nameLast ILIKE '%ru%' AND LENGTH(nameFirst) > 2"),
    ("cast_date_funcs", "SELECT CAST(yearID AS VARCHAR) AS y, MAKE_DATE(yearID, 1, 1) AS d, "
                        "DATE_TRUNC('year', MAKE_DATE(yearID, 6, 1)) AS t FROM Batting"),
    ("order_limit", "SELECT nameLast FROM People ORDER BY nameLast LIMIT 10"),
    ("offset", "SELECT nameLast FROM People ORDER BY nameLast LIMIT 10 OFFSET 1"),
    ("group_by_having", "SELECT teamID, COUNT(*) AS n FROM Batting GROUP BY teamID HAVING COUNT(*) > 0"),
    ("case_coalesce", "SELECT CASE WHEN HR > 50 THEN 'big' ELSE 'small' END AS k, COALESCE(H, 0) FROM Batting"),
    ("star", "SELECT * FROM People"),
    ("main_schema", "SELECT nameFirst FROM main.People"),
    ("from_first", "FROM People SELECT nameFirst"),
    ("range_generator", "SELECT * FROM range(5)"),
    ("unnest", "SELECT UNNEST([1, 2, 3]) AS x"),
    ("string_looks_like_injection", "SELECT nameLast FROM People WHERE nameLast = '''; DROP TABLE People; --'"),
    ("trailing_semicolon", "SELECT nameFirst FROM People;"),
    ("trailing_comment", "SELECT nameFirst FROM People; -- the first names"),
    ("lambda", "SELECT LIST_TRANSFORM([1, 2], x -> x + 1) AS l"),
    ("percent_in_string", "SELECT nameLast FROM People WHERE nameLast LIKE 'R%'"),
]  # fmt: skip


@pytest.mark.parametrize("sql", [s for _, s in ALLOWED], ids=[i for i, _ in ALLOWED])
def test_allowed(policy: SqlPolicy, db: duckdb.DuckDBPyConnection, sql: str) -> None:
    decision = policy.check(sql)
    assert decision.allowed, decision.reason
    assert decision.code is None and decision.reason is None
    root = sqlglot.parse_one(decision.sql, dialect="duckdb")
    assert isinstance(root, exp.Query | exp.Subquery)
    db.execute(decision.sql).fetchall()  # the normalised SQL runs on DuckDB


REFUSED = [
    ("empty", "", "empty"),
    ("only_semicolons", " ; ; ", "empty"),
    ("only_comment", "-- nothing here", "empty"),
    ("garbage", "SELEC nameFirst FRM People", "parse_error"),
    ("delete", "DELETE FROM People", "not_read_only"),
    ("drop", "DROP TABLE People", "not_read_only"),
    ("insert", "INSERT INTO People (playerID) VALUES ('x')", "not_read_only"),
    ("update", "UPDATE People SET nameFirst = 'x'", "not_read_only"),
    ("create_as", "CREATE TABLE x AS SELECT * FROM People", "not_read_only"),
    ("select_into", "SELECT nameFirst INTO x FROM People", "not_read_only"),
    ("dml_cte", "WITH d AS (DELETE FROM People RETURNING *) SELECT * FROM d", "not_read_only"),
    ("checkpoint", "CHECKPOINT", "not_read_only"),
    ("load", "LOAD httpfs", "not_read_only"),
    ("call", "CALL checkpoint()", "not_read_only"),
    ("explain", "EXPLAIN SELECT 1", "not_read_only"),
    ("pragma", "PRAGMA version", "not_read_only"),
    ("set", "SET threads = 1", "not_read_only"),
    ("attach", "ATTACH 'x.db' AS x", "not_read_only"),
    ("copy", "COPY People TO 'people.csv'", "not_read_only"),
    ("describe", "DESCRIBE People", "not_read_only"),
    ("two_statements", "SELECT 1; DROP TABLE People", "multiple_statements"),
    ("comment_then_drop", "SELECT 1 /* harmless */; DROP TABLE People", "multiple_statements"),
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd')", "forbidden_function"),
    ("read_csv_auto", "SELECT * FROM read_csv_auto('x.csv')", "forbidden_function"),
    ("read_parquet_join", "SELECT * FROM People, read_parquet('x.parquet')", "forbidden_function"),
    ("read_text_method", "SELECT '/etc/passwd'.read_text()", "forbidden_function"),
    ("qualified_read_csv", "SELECT main.read_csv('x')", "forbidden_function"),
    ("glob_in_subquery", "SELECT nameFirst FROM People WHERE playerID IN (SELECT file FROM glob('/*'))",
     "forbidden_function"),
    ("getenv", "SELECT getenv('HOME')", "forbidden_function"),
    ("query_func", "SELECT * FROM query('SELECT 1')", "forbidden_function"),
    ("duckdb_settings", "SELECT * FROM duckdb_settings()", "forbidden_function"),
    ("current_setting", "SELECT current_setting('threads')", "forbidden_function"),
    ("pragma_func", "SELECT * FROM pragma_table_info('People')", "forbidden_function"),
    ("sqlite_scan", "SELECT * FROM sqlite_scan('x.db', 't')", "forbidden_function"),
    ("http", "SELECT http_get('http://example.com')", "forbidden_function"),
    ("unknown_table_function", "SELECT * FROM json_each('{}')", "forbidden_function"),
    ("quoted_path", "SELECT * FROM '/etc/passwd'", "file_path"),
    ("quoted_csv", "SELECT * FROM 'people.csv'", "file_path"),
    ("url", "SELECT * FROM 'https://example.com/x.parquet'", "file_path"),
    ("unknown_table", "SELECT * FROM Playerz", "unknown_table"),
    ("information_schema", "SELECT * FROM information_schema.tables", "system_catalog"),
    ("other_schema", "SELECT * FROM other.People", "unknown_table"),
    ("cte_out_of_scope", "SELECT * FROM (WITH s AS (SELECT 1 AS a) SELECT a FROM s) x, s", "unknown_table"),
    ("unknown_column", "SELECT nameFrist FROM People", "unknown_column"),
    ("unknown_qualified_column", "SELECT p.height FROM People p", "unknown_column"),
    ("unquoted_2B", "SELECT 2B FROM Batting", "unknown_column"),
    ("zero_width", "SELECT\u200b nameFirst FROM People", "invisible_character"),
    ("control_char", "SELECT nameFirst\x00 FROM People", "invisible_character"),
    ("bidi_override", "SELECT nameFirst FROM People -- \u202e", "invisible_character"),
    ("fullwidth_drop", "\uff24\uff32\uff2f\uff30 TABLE People", "not_read_only"),
    ("non_literal_limit", "SELECT nameFirst FROM People LIMIT (SELECT 5)", "invalid_limit"),
    ("percent_limit", "SELECT nameFirst FROM People LIMIT 10%", "invalid_limit"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "code"), [(s, c) for _, s, c in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_refused(policy: SqlPolicy, sql: str, code: str) -> None:
    decision = policy.check(sql)
    assert not decision.allowed
    assert decision.code == code, decision.reason
    assert decision.reason and decision.reason.endswith((".", "?"))
    assert decision.sql == ""


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DELETE FROM People", "found DELETE"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Function read_csv is not allowed: it reads files"),
        ("SELECT * FROM Playerz", "Unknown table 'Playerz'"),
        ("SELECT * FROM Battin", "Did you mean 'Batting'?"),
        ("SELECT nameFrist FROM People", "'nameFrist'"),
        ("LOAD httpfs", "found LOAD"),
        ("CHECKPOINT", "found CHECKPOINT"),
    ],
)
def test_reasons_name_the_offender(policy: SqlPolicy, sql: str, fragment: str) -> None:
    assert fragment in (policy.check(sql).reason or "")


def test_reports_tables_and_columns(policy: SqlPolicy) -> None:
    d = policy.check('select p.namefirst, b."2B" from people p join batting b on p.playerid = b.playerid')
    assert d.tables == ["Batting", "People"]
    assert d.columns == ["Batting.2B", "Batting.playerID", "People.nameFirst", "People.playerID"]


def test_quoted_2b_keeps_quotes(policy: SqlPolicy) -> None:
    d = policy.check('SELECT "2B" FROM Batting')
    assert d.allowed and '"2B"' in d.sql


def test_comments_are_dropped(policy: SqlPolicy) -> None:
    d = policy.check("SELECT nameFirst FROM People -- */ DROP TABLE People")
    assert d.allowed and "DROP" not in d.sql and "--" not in d.sql and "/*" not in d.sql


def test_string_literals_are_kept(policy: SqlPolicy) -> None:
    d = policy.check("SELECT nameFirst FROM People WHERE nameLast = 'O''Neil; DROP TABLE People'")
    assert d.allowed and "'O''Neil; DROP TABLE People'" in d.sql


def test_zero_width_inside_string_is_kept(policy: SqlPolicy) -> None:
    d = policy.check("SELECT nameFirst FROM People WHERE nameLast = 'a\u200bb'")
    assert d.allowed and "a\u200bb" in d.sql


def test_fullwidth_is_normalised(policy: SqlPolicy) -> None:
    d = policy.check("\uff33\uff25\uff2c\uff25\uff23\uff34 nameFirst FROM People")  # ＳＥＬＥＣＴ
    assert d.allowed and d.sql.startswith("SELECT nameFirst")


def test_never_raises_on_bad_input(policy: SqlPolicy) -> None:
    for text in ["(((", "'unterminated", '"', "SELECT " + "(" * 500 + "1" + ")" * 500, "\x00"]:
        assert isinstance(policy.check(text), PolicyDecision)
    assert policy.check(None).allowed is False  # type: ignore[arg-type]


# -- LIMIT cap -------------------------------------------------------------------------------------

LIMITS = [
    ("no_limit", "SELECT nameFirst FROM People", f"LIMIT {CAP}"),
    ("smaller_kept", "SELECT nameFirst FROM People LIMIT 5", "LIMIT 5"),
    ("equal_kept", f"SELECT nameFirst FROM People LIMIT {CAP}", f"LIMIT {CAP}"),
    ("larger_reduced", "SELECT nameFirst FROM People LIMIT 100000", f"LIMIT {CAP}"),
    ("offset_kept", "SELECT nameFirst FROM People LIMIT 5000 OFFSET 10", f"LIMIT {CAP} OFFSET 10"),
    ("limit_all", "SELECT nameFirst FROM People LIMIT ALL", f"LIMIT {CAP}"),
    ("union_outer", "SELECT playerID FROM People UNION SELECT playerID FROM Batting", f"LIMIT {CAP}"),
    ("union_larger", "SELECT 1 UNION ALL SELECT 2 LIMIT 5000", f"LIMIT {CAP}"),
    ("paren_root", "(SELECT nameFirst FROM People) LIMIT 5000", f"LIMIT {CAP}"),
    ("fetch_first", "SELECT nameFirst FROM People FETCH FIRST 5000 ROWS ONLY", f"LIMIT {CAP}"),
    ("cte_outer", "WITH x AS (SELECT nameFirst FROM People LIMIT 5000) SELECT * FROM x", f"LIMIT {CAP}"),
]


@pytest.mark.parametrize(("sql", "expected"), [(s, e) for _, s, e in LIMITS], ids=[i for i, _, _ in LIMITS])
def test_limit_cap(policy: SqlPolicy, sql: str, expected: str) -> None:
    d = policy.check(sql)
    assert d.allowed, d.reason
    assert d.sql.endswith(expected), d.sql


def test_inner_limit_untouched(policy: SqlPolicy) -> None:
    d = policy.check("WITH x AS (SELECT nameFirst FROM People LIMIT 5000) SELECT * FROM x")
    assert "LIMIT 5000" in d.sql


# -- roles -----------------------------------------------------------------------------------------

ROLE_ALLOWED = [
    ("named_columns", "SELECT nameFirst, nameLast FROM People"),
    ("join_other_table", 'SELECT p.nameLast, b."2B" FROM People p JOIN Batting b USING (playerID)'),
    ("star_other_table", "SELECT * FROM Batting"),
    ("star_exclude", "SELECT * EXCLUDE (birthYear, birthCity, deathCity, nameGiven) FROM People"),
    ("star_over_safe_cte", "WITH x AS (SELECT playerID, nameLast FROM People) SELECT * FROM x"),
    ("count_star", "SELECT COUNT(*) FROM People"),
]


@pytest.mark.parametrize("sql", [s for _, s in ROLE_ALLOWED], ids=[i for i, _ in ROLE_ALLOWED])
def test_role_allows(public: SqlPolicy, sql: str) -> None:
    d = public.check(sql)
    assert d.allowed, d.reason


ROLE_REFUSED = [
    ("denied_column", "SELECT birthCity FROM People", "Column 'birthCity' of People is not available"),
    ("denied_in_where", "SELECT nameLast FROM People WHERE birthCity = 'Mobile'", "'birthCity'"),
    ("denied_case_insensitive", "SELECT BIRTHCITY FROM people", "'birthCity'"),
    ("denied_in_cte", "WITH x AS (SELECT nameGiven AS g FROM People) SELECT g FROM x", "'nameGiven'"),
    ("denied_in_window", "SELECT nameLast FROM People QUALIFY RANK() OVER (ORDER BY birthYear) = 1",
     "'birthYear'"),
    ("star", "SELECT * FROM People", "name the columns"),
    ("qualified_star", "SELECT p.* FROM People p JOIN Batting b USING (playerID)", "SELECT *"),
    ("star_in_cte", "WITH x AS (SELECT * FROM People) SELECT nameLast FROM x", "SELECT *"),
    ("star_partial_exclude", "SELECT * EXCLUDE (birthCity) FROM People", "name the columns"),
    ("whole_row", "SELECT p FROM People p", "whole row"),
    ("whole_row_json", "SELECT to_json(People) FROM People", "whole row"),
    ("struct_pack_star", "SELECT struct_pack(p.*) FROM People p", "SELECT *"),
    ("columns_regex", "SELECT COLUMNS('birth.*') FROM People", "COLUMNS"),
    ("positional", "SELECT #6 FROM People", "Positional"),
    ("alias_renames", "SELECT c FROM People AS p(a, b, c)", "Renaming"),
    ("denied_table", "SELECT salary FROM Salaries", "Table Salaries is not available to role 'public'"),
    ("denied_table_in_subquery", "SELECT nameLast FROM People WHERE playerID IN (SELECT playerID FROM Salaries)",
     "Salaries"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sql", "fragment"), [(s, f) for _, s, f in ROLE_REFUSED], ids=[i for i, _, _ in ROLE_REFUSED]
)
def test_role_refuses(public: SqlPolicy, sql: str, fragment: str) -> None:
    d = public.check(sql)
    assert not d.allowed
    assert d.code == "access_denied", d.reason
    assert fragment in (d.reason or ""), d.reason
    assert "public" in (d.reason or "")
    if "*" in sql:  # a star names no column: the refusal must not name the hidden ones either
        assert not any(c in (d.reason or "") for c in ("birthYear", "deathCity", "nameGiven")), d.reason


def test_same_queries_allowed_for_analyst(policy: SqlPolicy) -> None:
    for _, sql, _ in ROLE_REFUSED:
        if "Salaries" in sql or "#6" in sql or "p(a, b, c)" in sql:
            continue
        assert policy.check(sql).allowed, sql


def test_allowed_tables_and_any_table_denial() -> None:
    pol = SqlPolicy(CATALOG, CAP, role=RESTRICTED)
    assert pol.check("SELECT name FROM Teams").code == "access_denied"
    assert pol.check("SELECT teamID FROM Batting").code == "access_denied"
    assert pol.check("SELECT HR FROM Batting").allowed


def test_access_yaml_roles() -> None:
    roles = load_roles(ROOT / "config" / "access.yaml")
    assert {"analyst", "public", "restricted"} <= set(roles)
    assert roles["analyst"].allowed_tables is None and not roles["analyst"].denied_columns
    pol = SqlPolicy(CATALOG, CAP, role=roles["public"])
    assert pol.check("SELECT birthCity FROM People").code == "access_denied"
    assert pol.check("SELECT * FROM Salaries").code == "access_denied"
    assert pol.check("SELECT nameFirst FROM People").allowed
    assert SqlPolicy(CATALOG, CAP, role=roles["analyst"]).check("SELECT * FROM Salaries").allowed


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        # The side of a join that lacks the column, by its alias.
        (
            "SELECT COUNT(*) FROM Batting AS b JOIN Teams AS t ON b.playerID = t.playerID",
            "Unknown column 'playerID': Teams (t) has no column playerID.",
        ),
        # An unqualified name: the tables it was looked for in.
        (
            "SELECT nameFirst, SUM(H) FROM People GROUP BY nameFirst",
            "Unknown column 'H': none of People has a column H.",
        ),
        (
            "SELECT SUM(salary) FROM People p JOIN Batting b ON p.playerID = b.playerID",
            "Unknown column 'salary': none of Batting, People has a column salary.",
        ),
        # A CTE's columns are not the catalog's: the bare sentence, nothing invented.
        ("WITH x AS (SELECT playerID FROM Batting) SELECT x.HR FROM x", "Unknown column 'HR'."),
    ],
    ids=["join-side", "unqualified", "two-tables", "cte"],
)
def test_an_unknown_column_says_where_it_was_looked_for(policy: SqlPolicy, sql: str, reason: str):
    decision = policy.check(sql)
    assert (decision.allowed, decision.code, decision.reason) == (False, "unknown_column", reason)
