"""Adversarial SQL straight through the Spark engine (the policy bypassed), in local mode and through
Spark Connect, on the real demo warehouse.

Outcomes: refused (the engine's statement guard: not one query, or a plan that reflects, runs a
script, calls a UDF or reads a non-catalog source), invalid (Spark cannot parse or resolve it: no
such function or table, e.g. a file path with spark.sql.runSQLOnFiles off), timeout, rows / no_rows
(it ran, and is harmless: a read of the catalog tables or of a constant). The Spark attacks of
tests/security/data/sql_attacks.jsonl (the policy's suite), these extra ones, and the DuckDB suite's
write, command and multi-statement SQL all run here. Afterwards every file of the warehouse (the
table files and the catalog's Derby files) is byte-identical, the session's catalog lists the same
tables, functions and views, and no file appeared where an attack tried to write one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.security.test_adversarial_sql import CASES as DUCKDB_CASES
from tests.security.test_adversarial_sql import SANDBOX_MUST_REFUSE
from tests.spark_warehouse import warehouse_digest
from tools.sql.engines import open_engine
from tools.sql.engines.base import EngineLimits, SandboxError

pytestmark = pytest.mark.engines

OUT = "/tmp/sqlagent-spark-attack"  # where the write attacks aim; must not exist afterwards
SUITE = Path(__file__).parent / "data" / "sql_attacks.jsonl"
SPARK_SUITE = [json.loads(line)["sql"] for line in SUITE.read_text().splitlines()
               if line.strip() and "spark" in json.loads(line)["dialects"]]  # fmt: skip

# What the engine does with the suite's attacks that its guard does not refuse itself.
NOT_REFUSED = {
    "SELECT * FROM read_files('/etc')": "invalid",  # no such table function in Apache Spark
    "SELECT * FROM parquet.`/data/people.parquet`": "invalid",  # runSQLOnFiles=false: not a table
    "SELECT * FROM csv.`/etc/passwd`": "invalid",
    "SELECT * FROM json.`people`": "invalid",
    "SELECT * FROM text.`/etc/passwd`": "invalid",
    "SELECT * FROM delta.`/tmp/t`": "invalid",
    "SELECT * FROM `/etc/passwd`": "invalid",
    "SELECT * FROM read_kafka(bootstrapServers => 'evil.example:9092', subscribe => 't')": "invalid",  # Databricks'
    "SELECT default.evil_udf(nameFirst) FROM People": "invalid",  # no such function (none can be registered)
    # Harmless reads the policy refuses anyway: a table's file names, partition ids, the parser's
    # keywords, the user name.
    "SELECT input_file_name() FROM People": "rows",
    "SELECT spark_partition_id() FROM People": "rows",
    "SELECT * FROM sql_keywords()": "rows",
    "SELECT * FROM People WHERE nameFirst = current_user()": "no_rows",
}

# (sql, outcome): attacks beyond the policy's suite.
EXTRA: list[tuple[str, str]] = [
    ("SELECT system.builtin.reflect('java.lang.System', 'getenv', 'HOME')", "refused"),
    ("SELECT * FROM (SELECT java_method('java.lang.System', 'exit', 1))", "refused"),
    ("WITH a AS (SELECT reflect('java.lang.System', 'getenv', 'PATH') AS x) SELECT * FROM a", "refused"),
    ("SELECT transform(array(1), x -> reflect('java.lang.System', 'getenv', 'HOME')) AS y", "refused"),
    (
        "SELECT nameFirst FROM People WHERE playerID IN (SELECT try_reflect('java.lang.System', 'getenv', 'HOME'))",
        "refused",
    ),
    (
        "SELECT (SELECT max(reflect('java.lang.Thread', 'sleep', 100000L)) FROM People) AS x",
        "invalid",
    ),  # Spark:
    # a non-deterministic aggregate argument ("SELECT (SELECT reflect(...))" is refused above)
    ("SELECT TRANSFORM(*) USING 'id' FROM People", "refused"),
    ("FROM People SELECT TRANSFORM(playerID) USING 'touch /tmp/sqlagent-spark-attack'", "refused"),
    (f"INSERT OVERWRITE LOCAL DIRECTORY '{OUT}' STORED AS TEXTFILE SELECT * FROM People", "refused"),
    (f"CREATE TABLE stolen USING parquet LOCATION '{OUT}' AS SELECT * FROM People", "refused"),
    (
        "CREATE TEMPORARY VIEW j USING org.apache.spark.sql.jdbc OPTIONS (url 'jdbc:derby:memory:x;create=true', "
        "dbtable 'SYS.SYSTABLES')",
        "refused",
    ),
    ("CREATE TEMPORARY VIEW f USING text OPTIONS (path '/etc/passwd')", "refused"),
    ("CREATE OR REPLACE TEMPORARY FUNCTION f() RETURNS INT RETURN 1", "refused"),
    ("SET spark.sql.runSQLOnFiles=true", "refused"),
    ("RESET", "refused"),
    ("CACHE TABLE People", "refused"),
    ("UNCACHE TABLE People", "refused"),
    ("REFRESH TABLE People", "refused"),
    ("MSCK REPAIR TABLE People", "refused"),
    ("ANALYZE TABLE People COMPUTE STATISTICS", "refused"),
    ("ALTER TABLE People SET TBLPROPERTIES ('x' = 'y')", "refused"),
    ("COMMENT ON TABLE People IS 'x'", "refused"),
    ("DROP DATABASE lahman CASCADE", "refused"),
    ("USE default", "refused"),
    ("DECLARE VARIABLE v INT DEFAULT 1", "refused"),
    ("EXECUTE IMMEDIATE 'DROP TABLE People'", "refused"),
    ("BEGIN DROP TABLE People; END", "refused"),
    ("EXPLAIN SELECT 1", "refused"),
    ("SHOW TABLES", "refused"),
    ("DESCRIBE People", "refused"),
    ("SELECT 1) AS q; DROP TABLE People; SELECT * FROM (SELECT 1", "refused"),
    ("SELECT 1 /* */; DROP TABLE People", "refused"),
    ("SELECT 1 -- ; DROP TABLE People", "rows"),
    (
        "SELECT xpath_string('<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>', 'a') AS x",
        "rows",
    ),  # the entity is not resolved: the value is ''
    ("SELECT count(*) FROM range(10)", "rows"),
    # Nested loops Spark could not stop once running (spark_guard point 3): refused before they run.
    ("SELECT count(*) FROM People a, People b, People c", "refused"),
    ("SELECT count(*) FROM People a CROSS JOIN People b", "refused"),
    ("SELECT count(*) FROM People a JOIN People b ON a.birthYear < b.birthYear", "refused"),
    ("SELECT count(*) FROM People a JOIN (SELECT avg(height) AS h FROM People) s ON a.height > s.h", "rows"),
]


@pytest.fixture(scope="module")
def before(spark_demo):
    return warehouse_digest(spark_demo.warehouse)


@pytest.fixture(scope="module", params=["local", "connect"])
def engine(request, spark_demo, before):
    url = spark_demo.url if request.param == "local" else spark_demo.connect_url
    # 30 s: the first call of a table function such as sql_keywords() plans for ~11 s on 2 cores
    with open_engine(url, EngineLimits(timeout_s=30, max_rows=50)) as e:
        yield e


def _outcome(engine, sql: str) -> tuple[str, str]:
    try:
        result = engine.execute(sql)
    except SandboxError as error:
        kind = {"refused": "refused", "timeout": "timeout"}.get(error.kind, "invalid")
        return kind, error.message
    return ("rows" if result.rows else "no_rows"), str(result.rows[:2])


@pytest.mark.parametrize("sql", SPARK_SUITE)
def test_the_policy_suites_spark_attacks(engine, sql):
    outcome, detail = _outcome(engine, sql)
    assert outcome == NOT_REFUSED.get(sql, "refused"), detail


@pytest.mark.parametrize(("sql", "expected"), EXTRA)
def test_spark_attacks(engine, sql, expected):
    outcome, detail = _outcome(engine, sql)
    assert outcome == expected, detail
    if sql.startswith("SELECT xpath_string"):
        assert detail == "[['']]"


@pytest.mark.parametrize(
    "sql", [sql for category, sql, *_ in DUCKDB_CASES if category in SANDBOX_MUST_REFUSE]
)
def test_the_duckdb_suites_writes_and_commands_cannot_run(engine, sql):
    outcome, detail = _outcome(engine, sql)
    assert outcome in {"refused", "invalid"}, detail


def test_zz_no_job_outlives_the_attacks(engine, spark_demo):
    """The Connect server runs in this process's JVM: its jobs show on the local session's tracker too."""
    from tools.sql.engines.spark_session import local_session

    tracker = local_session(spark_demo.warehouse, threads=2, memory_limit="1GB").sparkContext.statusTracker()
    deadline = time.monotonic() + 30  # a cancelled job's tasks take a moment to wind down
    while tracker.getActiveStageIds() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert list(tracker.getActiveStageIds()) == []


def test_zz_nothing_changed(engine, spark_demo, before):
    assert warehouse_digest(spark_demo.warehouse) == before
    session = engine.session()
    assert sorted(t.name for t in session.catalog.listTables("lahman")) == sorted(
        name.lower() for name in json.loads((spark_demo.warehouse / "_build_info.json").read_text())["tables"]
    )
    assert [t.name for t in session.catalog.listTables("default")] == []
    assert [
        f.name for f in session.catalog.listFunctions("lahman") if not f.isTemporary and f.namespace
    ] == []
    assert not Path(OUT).exists()
