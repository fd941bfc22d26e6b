"""The Spark engine on a real local Spark (and on Spark Connect, served by the same JVM): results,
limits, the timeout through job cancellation, the statement guard on both code paths, and the demo
warehouse it introspects and indexes as the DuckDB build."""

from __future__ import annotations

import duckdb
import pytest

from agent.config import load_settings, resolve_path
from tools.sql.database import Database
from tools.sql.engines import open_engine
from tools.sql.engines.base import EngineLimits, SandboxError
from tools.sql.engines.duckdb import load_file_schema
from tools.sql.engines.spark import SparkEngine

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module", params=["local", "connect"])
def engine(request, spark_demo):
    url = spark_demo.url if request.param == "local" else spark_demo.connect_url
    with open_engine(url, EngineLimits(timeout_s=20, max_rows=5)) as e:
        yield e


def test_the_urls_open_a_spark_engine(engine):
    assert isinstance(engine, SparkEngine)
    assert (engine.dialect, engine.label) == ("spark", "Spark")
    assert engine.display.endswith(";database=lahman")


def test_rows_are_cut_at_max_rows(engine):
    result = engine.execute("SELECT playerID FROM People ORDER BY playerID")
    assert result.row_count == 5 and result.truncated
    assert result.rows[0] == ["aardsda01"]
    assert engine.execute("SELECT playerID FROM People ORDER BY playerID LIMIT 5").truncated is False


def test_the_byte_budget_cuts_a_wide_result(spark_demo):
    with open_engine(
        spark_demo.url, EngineLimits(timeout_s=30, max_rows=1000, max_result_bytes=2000)
    ) as small:
        result = small.execute("SELECT nameFirst, nameLast, birthCity FROM People LIMIT 500")
    assert result.truncated and 0 < result.row_count < 500


def test_values_are_json_friendly_and_identifiers_case_insensitive(engine):
    result = engine.execute(
        "SELECT p.nameFirst, b.`2B`, avg(b.hr) AS mean_hr, max(debut) AS debut, 9.0 * 2 AS d FROM people p "
        "JOIN BATTING b ON p.PLAYERID = b.playerid WHERE b.yearid = 1927 AND p.nameLast = 'Ruth' "
        "GROUP BY p.nameFirst, b.`2B`"
    )
    assert result.columns == ["nameFirst", "2B", "mean_hr", "debut", "d"]
    assert result.rows == [["Babe", 29, 60.0, "1914-07-11", 18.0]]  # DECIMAL and DATE made JSON-safe


def test_a_slow_query_is_cancelled_at_the_timeout_and_the_session_recovers(engine, spark_demo):
    url = spark_demo.url if engine.classic else spark_demo.connect_url
    with open_engine(url, EngineLimits(timeout_s=2)) as quick, pytest.raises(SandboxError) as caught:
        quick.execute("SELECT count(*) FROM range(0, 1000000000000)")
    assert caught.value.kind == "timeout"
    assert engine.execute("SELECT 1 AS x").rows == [[1]]


@pytest.mark.parametrize("sql", [
    "SELECT 1; SELECT 2",
    "UPDATE People SET nameLast = 'x'",
    "CREATE TABLE stolen AS SELECT * FROM People",
    "SELECT reflect('java.lang.System', 'getenv', 'HOME')",
    "SELECT TRANSFORM(playerID) USING 'cat' AS (x) FROM People",
])  # fmt: skip
def test_the_statement_guard_on_both_code_paths(engine, sql):
    with pytest.raises(SandboxError) as caught:
        engine.execute(sql)
    assert caught.value.kind == "refused", caught.value.message


def test_a_syntax_error_is_the_parsers_message_for_the_repair_step(engine):
    with pytest.raises(SandboxError) as caught:
        engine.execute("SELECT nameFirst FROM People WHERE nameLast =")  # a bare WHERE is an alias
    assert caught.value.kind == "execution" and "PARSE_SYNTAX_ERROR" in caught.value.message


def test_the_fingerprint_is_stable(engine):
    assert engine.fingerprint() == engine.fingerprint()


def test_doctor_checks_say_writes_and_reflection_are_refused(engine):
    checks = {c.name: c for c in engine.checks()}
    assert checks["engine"].ok and checks["engine"].detail.startswith("Spark 4.")
    assert checks["engine write"].ok and checks["engine reflection"].ok


@pytest.fixture(scope="module")
def spark_database(spark_demo):
    """The demo warehouse opened as the agent opens it: introspected and value-indexed through Spark."""
    # The default cache (keyed by the warehouse's fingerprint), shared with the agent's tests: Spark
    # introspects and copies the values out once, not once per test module or run.
    db = Database(load_settings().database_config(spark_demo.url))
    yield db
    db.close()


def _folded(schema):
    """Spark's catalog keeps table names in lower case; everything else must be the DuckDB build's."""
    tables = sorted(
        ({**t.model_dump(), "name": t.name.lower()} for t in schema.tables), key=lambda t: t["name"]
    )
    edges = sorted(
        (j.left.lower(), j.right.lower(), tuple(map(tuple, j.on)), j.declared) for j in schema.joins
    )
    return tables, edges


def test_introspection_equals_the_duckdb_build(spark_database, tmp_path):
    """Same tables, columns, types, COMMENTs, sample values, row counts and join paths."""
    duck = load_file_schema(resolve_path("data/lahman.duckdb"), tmp_path / "duck")
    assert _folded(spark_database.full_schema) == _folded(duck)


def test_the_value_index_equals_the_duckdb_build(spark_database, tmp_path):
    """Copied out through Spark, the index holds the same values as the one built inside DuckDB."""
    settings = load_settings()
    duck = Database(settings.database_config().model_copy(update={"catalog_cache_dir": tmp_path}))
    try:
        rows = {}
        spark_index = spark_database.config.catalog_cache_dir / (
            f"{spark_database.name}-{spark_database.schema.fingerprint}.values.duckdb"
        )
        for name, index in (("duck", next(tmp_path.glob("*.values.duckdb"))), ("spark", spark_index)):
            con = duckdb.connect(str(index), read_only=True)
            rows[name] = con.execute(
                "SELECT lower(tbl), * EXCLUDE (tbl) FROM value_index ORDER BY ALL"
            ).fetchall()
            con.close()
    finally:
        duck.close()
    assert len(rows["spark"]) > 50_000
    assert rows["spark"] == rows["duck"]


def test_the_loader_skips_an_unchanged_build(spark_demo):
    from data.load_spark import load

    report = load(spark_demo.warehouse)
    assert report.skipped and report.tables["People"] == 21271
