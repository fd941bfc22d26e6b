"""The sandboxed DuckDB connection (tools/sql/sandbox.py): results, limits, timeout, isolation."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tools.sql.sandbox import ExecutionResult, Sandbox, SandboxError

TIMEOUT_S = 1.0
# The bound proves the query was interrupted (uninterrupted, these run for hours), not how fast:
# speed is for the benches. With 1 s of slack a busy CI machine failed it once (2.5 s).
SLACK_S = 20.0


def build_db(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute(
        'CREATE TABLE Batting (playerID VARCHAR, yearID INTEGER, "2B" INTEGER, avg DECIMAL(5,3),'
        " debut DATE, ts TIMESTAMP, raw BLOB, tags VARCHAR[], info STRUCT(a INTEGER, b VARCHAR),"
        " ratio DOUBLE)"
    )
    con.execute(
        "INSERT INTO Batting VALUES ('ruthba01', 1927, 29, 0.356, DATE '1914-07-11',"
        " TIMESTAMP '1927-09-30 15:00:00', 'ab'::BLOB, ['a', 'b'], {'a': 1, 'b': 'x'}, 'NaN'::DOUBLE)"
    )
    con.execute("CREATE TABLE People (playerID VARCHAR, birthCity VARCHAR)")
    con.execute("INSERT INTO People SELECT 'p' || i, 'city' || i FROM range(50) t(i)")
    con.close()
    return path


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return build_db(tmp_path / "mini.duckdb")


@pytest.fixture()
def sandbox(db_path: Path):
    with Sandbox(db_path, timeout_s=TIMEOUT_S, max_rows=10, memory_limit="256MB", threads=2) as sb:
        yield sb


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_happy_path_types_are_json_friendly(sandbox: Sandbox) -> None:
    result = sandbox.execute("SELECT * FROM Batting")
    assert isinstance(result, ExecutionResult)
    assert result.columns[:3] == ["playerID", "yearID", "2B"]
    row = result.rows[0]
    assert row[:3] == ["ruthba01", 1927, 29]
    assert row[3] == pytest.approx(0.356) and isinstance(row[3], float)
    assert row[4] == "1914-07-11"
    assert row[5] == "1927-09-30T15:00:00"
    assert isinstance(row[6], str)
    assert row[7] == ["a", "b"] and row[8] == {"a": 1, "b": "x"}
    assert row[9] == "nan"
    assert result.row_count == 1 and not result.truncated and result.elapsed_ms >= 0
    json.dumps(result.model_dump())


def test_truncation_at_max_rows(sandbox: Sandbox) -> None:
    result = sandbox.execute("SELECT * FROM People")
    assert result.row_count == 10 and len(result.rows) == 10 and result.truncated
    exact = sandbox.execute("SELECT * FROM People LIMIT 10")
    assert exact.row_count == 10 and not exact.truncated


def test_result_bytes_cap(db_path: Path) -> None:
    with Sandbox(
        db_path, timeout_s=5, max_rows=1000, memory_limit="256MB", threads=1, max_result_bytes=200
    ) as sb:
        result = sb.execute("SELECT repeat('x', 50) FROM range(100)")
    assert result.truncated and 0 < result.row_count < 10


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM range(100000000000) a, range(10) b",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    ],
    ids=["cross_join", "recursive_cte"],
)
def test_runaway_query_is_stopped_and_connection_survives(sandbox: Sandbox, sql: str) -> None:
    start = time.perf_counter()
    with pytest.raises(SandboxError) as info:
        sandbox.execute(sql)
    elapsed = time.perf_counter() - start
    assert info.value.kind == "timeout"
    assert f"{TIMEOUT_S:g} s" in info.value.message
    assert elapsed < TIMEOUT_S + SLACK_S
    assert sandbox.execute("SELECT 42").rows == [[42]]


def test_concurrent_calls_use_separate_cursors(sandbox: Sandbox) -> None:
    results: list[object] = []

    def slow() -> None:
        try:
            sandbox.execute("SELECT count(*) FROM range(100000000000) a, range(10) b")
        except SandboxError as error:
            results.append(error.kind)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.1)
    assert sandbox.execute("SELECT count(*) FROM People").rows == [[50]]  # not blocked by the bomb
    thread.join()
    assert results == ["timeout"]


# (id, SQL, the kind the sandbox raises, how its message starts): file access is stopped by DuckDB
# itself (external access off), everything that is not one SELECT by the statement guard.
RAW_ATTACKS = [
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd')", "execution", "Permission Error"),
    ("read_text", "SELECT * FROM read_text('/etc/hostname')", "execution", "Permission Error"),
    ("glob", "SELECT * FROM glob('/*')", "execution", "Permission Error"),
    ("quoted_path", "SELECT * FROM '/etc/passwd'", "execution", "Catalog Error"),
    ("copy_to", "COPY Batting TO '{dir}/out.csv'", "refused", "Only SELECT statements can run"),
    ("export", "EXPORT DATABASE '{dir}/export'", "refused", "Only SELECT statements can run"),
    ("attach", "ATTACH '{dir}/other.duckdb' AS other", "refused", "Only SELECT statements can run"),
    ("attach_memory", "ATTACH ':memory:' AS m", "refused", "Only SELECT statements can run"),
    ("install", "INSTALL httpfs", "refused", "Only SELECT statements can run"),
    ("load", "LOAD httpfs", "refused", "Only SELECT statements can run"),
    ("set", "SET threads = 1", "refused", "Only SELECT statements can run"),
    ("set_external", "SET enable_external_access = true", "refused", "Only SELECT statements can run"),
    ("pragma", "PRAGMA memory_limit = '10GB'", "refused", "Only SELECT statements can run"),
    ("create_table", "CREATE TABLE x (a INTEGER)", "refused", "Only SELECT statements can run"),
    ("create_temp", "CREATE TEMP TABLE x AS SELECT 1", "refused", "Only SELECT statements can run"),
    ("insert", "INSERT INTO People VALUES ('x', 'y')", "refused", "Only SELECT statements can run"),
    ("delete", "DELETE FROM People", "refused", "Only SELECT statements can run"),
    ("drop", "DROP TABLE People", "refused", "Only SELECT statements can run"),
    ("checkpoint", "CHECKPOINT", "refused", "Only SELECT statements can run"),
    ("vacuum", "VACUUM", "refused", "Only SELECT statements can run"),
    ("call", "CALL checkpoint()", "refused", "Only SELECT statements can run"),
    ("set_variable", "SET VARIABLE x = 1", "refused", "Only SELECT statements can run"),
    ("two_statements", "SELECT 1; DROP TABLE People", "refused", "Exactly one statement"),
]


@pytest.mark.parametrize(
    ("sql", "kind", "message"), [a[1:] for a in RAW_ATTACKS], ids=[a[0] for a in RAW_ATTACKS]
)
def test_raw_attacks_fail_in_the_sandbox(
    sandbox: Sandbox, db_path: Path, sql: str, kind: str, message: str
) -> None:
    before = sha(db_path)
    files_before = sorted(p.name for p in db_path.parent.iterdir())
    with pytest.raises(SandboxError) as info:
        sandbox.execute(sql.format(dir=db_path.parent))
    assert (info.value.kind, info.value.message[: len(message)]) == (kind, message)
    assert "\n" not in info.value.message
    assert sandbox.execute("SELECT count(*) FROM People").rows == [[50]]
    sandbox.close()
    assert sha(db_path) == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == files_before


def test_locked_configuration(sandbox: Sandbox) -> None:
    rows = sandbox.execute(
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
    ).rows
    assert rows == [[False, True]]


def test_execution_error_is_clean(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError) as info:
        sandbox.execute("SELECT nope FROM People")
    assert info.value.kind == "execution"
    assert "nope" in info.value.message and "\n" not in info.value.message


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as info:
        Sandbox(tmp_path / "missing.duckdb", timeout_s=1, max_rows=1, memory_limit="64MB", threads=1)
    assert info.value.kind == "database" and "does not exist" in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_corrupt_database(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.duckdb"
    path.write_bytes(b"not a database" * 500)
    with pytest.raises(SandboxError) as info:
        Sandbox(path, timeout_s=1, max_rows=1, memory_limit="64MB", threads=1)
    assert info.value.kind == "database" and "corrupt.duckdb" in info.value.message


def test_closed_sandbox(db_path: Path) -> None:
    sb = Sandbox(db_path, timeout_s=1, max_rows=1, memory_limit="64MB", threads=1)
    sb.close()
    sb.close()
    with pytest.raises(SandboxError):
        sb.execute("SELECT 1")


CONFIG_LAYER = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "COPY Batting TO '{dir}/out.csv'",
    "EXPORT DATABASE '{dir}/export'",
    "ATTACH '{dir}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "CREATE TABLE x (a INTEGER)",
    "DELETE FROM People",
]


@pytest.mark.parametrize("sql", CONFIG_LAYER)
def test_connection_config_holds_without_statement_guard(
    sandbox: Sandbox, db_path: Path, sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with the statement-type guard switched off, the connection settings refuse these."""
    before = sha(db_path)
    files_before = sorted(p.name for p in db_path.parent.iterdir())
    monkeypatch.setattr(sandbox, "_guard", lambda cursor, sql: None)
    with pytest.raises(SandboxError) as info:
        sandbox.execute(sql.format(dir=db_path.parent))
    assert info.value.kind == "execution"
    sandbox.close()
    assert sha(db_path) == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == files_before


def test_a_query_past_the_memory_limit_says_so(db_path: Path) -> None:
    with Sandbox(db_path, timeout_s=TIMEOUT_S, max_rows=10, memory_limit="32MB", threads=1) as sb:
        with pytest.raises(SandboxError) as info:
            sb.execute("SELECT count(DISTINCT r.range::VARCHAR || 'x') FROM range(20000000) r")
        assert info.value.kind == "execution"
        assert "ran out of memory (limits.memory_limit=32MB)" in info.value.message
        assert sb.execute("SELECT 1 AS one").rows == [[1]]  # the connection survives
