"""A DuckDB file replaced under a running engine (os.replace, as a deploy ships new data): the next
query reads the new file, queries on the old one finish, and the reopened connection is as locked
down as the first (tools/sql/engines/duckdb.py); the Database says when its schema is stale."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import duckdb
import pytest

from agent.config import load_settings
from tools.sql.database import Database
from tools.sql.engines import duckdb as duckdb_engine
from tools.sql.engines.base import EngineLimits, SandboxError
from tools.sql.engines.duckdb import DuckDBEngine


def write_db(path: Path, values: list[int], table: str = "t") -> Path:
    """A DuckDB file holding `values` in `table`(n), put at `path` atomically (a staged file renamed)."""
    staged = path.with_name(path.name + ".new")
    staged.unlink(missing_ok=True)
    con = duckdb.connect(str(staged))
    con.execute(f"CREATE TABLE {table} (n INTEGER, label VARCHAR)")
    con.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(v, f"v{v}") for v in values])
    con.close()
    os.replace(staged, path)
    return path


def numbers(engine: DuckDBEngine) -> list[int]:
    return [row[0] for row in engine.execute("SELECT n FROM t ORDER BY n").rows]


@pytest.fixture()
def db_file(tmp_path: Path) -> Path:
    return write_db(tmp_path / "mini.duckdb", [1, 2, 3])


def test_the_next_query_reads_the_replaced_file(db_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with DuckDBEngine(db_file, EngineLimits()) as engine:
        assert numbers(engine) == [1, 2, 3]
        write_db(db_file, [7, 8])
        with caplog.at_level(logging.WARNING, logger=duckdb_engine.__name__):
            assert numbers(engine) == [7, 8]
            assert numbers(engine) == [7, 8]
        reopened = [r.getMessage() for r in caplog.records if "was replaced" in r.getMessage()]
        assert len(reopened) == 1 and str(db_file) in reopened[0]


def test_a_query_running_on_the_old_file_finishes_before_the_reopen(db_file: Path) -> None:
    with DuckDBEngine(db_file, EngineLimits()) as engine:
        running = engine.read("SELECT n FROM t ORDER BY n", batch_rows=1)  # holds its cursor open
        first = next(running)
        write_db(db_file, [7, 8])
        later: list[object] = []
        asker = threading.Thread(target=lambda: later.append(numbers(engine)))
        asker.start()
        time.sleep(0.3)
        assert asker.is_alive()  # waits for the old file's query instead of closing it under it
        assert [first, *running] == [[(1,)], [(2,)], [(3,)]]  # undisturbed, the old rows to the end
        asker.join(timeout=5)
        assert later == [[7, 8]]


def test_a_query_that_outlasts_the_wait_leaves_the_old_file_serving_until_it_ends(
    db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(duckdb_engine, "REOPEN_GRACE_S", 0.0)
    with DuckDBEngine(db_file, EngineLimits(timeout_s=0.2)) as engine:
        running = engine.read("SELECT n FROM t ORDER BY n", batch_rows=1)
        next(running)
        write_db(db_file, [7, 8])
        started = time.perf_counter()
        assert numbers(engine) == [1, 2, 3]  # waited timeout_s, then answered from the old file
        assert numbers(engine) == [1, 2, 3]
        assert time.perf_counter() - started < 2
        running.close()  # the last query on the old file ends
        assert numbers(engine) == [7, 8]


def test_the_reopened_connection_keeps_every_lock(db_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with DuckDBEngine(db_file, EngineLimits()) as engine:
        write_db(db_file, [7, 8])
        assert numbers(engine) == [7, 8]
        rows = engine.execute(
            "SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), "
            "current_setting('temp_directory')"
        ).rows
        assert rows == [[False, True, ""]]
        monkeypatch.setattr(engine, "_guard", lambda cursor, sql: None)  # the connection's own layer
        for sql in ("SELECT * FROM read_csv('/etc/passwd')", "CREATE TABLE x (a INTEGER)",
                    "DELETE FROM t", "SET enable_external_access = true"):  # fmt: skip
            with pytest.raises(SandboxError) as caught:
                engine.execute(sql)
            assert caught.value.kind == "execution", sql
        assert numbers(engine) == [7, 8]


def test_a_replacement_duckdb_cannot_open_is_a_clear_error_until_a_good_file_comes(db_file: Path) -> None:
    with DuckDBEngine(db_file, EngineLimits()) as engine:
        assert numbers(engine) == [1, 2, 3]
        broken = db_file.with_name("broken")
        broken.write_bytes(b"not a database" * 500)
        os.replace(broken, db_file)
        with pytest.raises(SandboxError) as caught:
            engine.execute("SELECT 1")
        assert caught.value.kind == "database" and str(db_file) in caught.value.message
        write_db(db_file, [9])
        assert numbers(engine) == [9]


def test_a_missing_file_mid_deploy_keeps_the_open_one(db_file: Path) -> None:
    with DuckDBEngine(db_file, EngineLimits()) as engine:
        db_file.unlink()
        assert numbers(engine) == [1, 2, 3]
        write_db(db_file, [4])
        assert numbers(engine) == [4]


def open_db(path: Path, cache: Path) -> Database:
    config = load_settings().database_config(str(path)).model_copy(update={"catalog_cache_dir": cache})
    return Database(config)


def test_the_database_warns_once_when_new_contents_make_its_schema_stale(
    db_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_db(db_file, tmp_path / "cache")
    try:
        assert [t.name for t in db.schema.tables] == ["t"]
        write_db(db_file, [5], table="u")
        with caplog.at_level(logging.WARNING, logger="tools.sql.database"):
            assert db.sandbox.execute("SELECT n FROM u").rows == [[5]]  # the engine reads the new file
            db.sandbox.execute("SELECT 1")
        stale = [r.getMessage() for r in caplog.records if r.name == "tools.sql.database"]
        assert len(stale) == 1 and "Restart the server" in stale[0] and str(db_file) in stale[0]
        assert db.replaced_by == db.engine.fingerprint() != db.full_schema.fingerprint
    finally:
        db.close()


def test_a_copy_with_the_same_fingerprint_leaves_the_schema_current(
    db_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_db(db_file, tmp_path / "cache")
    try:
        staged = db_file.with_name("copy")
        shutil.copy2(db_file, staged)  # what bench/faults.py's replace_database does
        inode = db_file.stat().st_ino
        os.replace(staged, db_file)
        assert db_file.stat().st_ino != inode
        with caplog.at_level(logging.WARNING):
            assert db.sandbox.execute("SELECT count(*) FROM t").rows == [[3]]
        assert [r.name for r in caplog.records] == [duckdb_engine.__name__]  # reopened; nothing stale
        assert db.replaced_by is None
    finally:
        db.close()
