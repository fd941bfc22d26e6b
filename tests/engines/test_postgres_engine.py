"""The PostgreSQL engine on a real server: results, limits, timeout, isolation between questions, and
the demo database it introspects and indexes exactly as the DuckDB build."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import psycopg
import pytest

from agent.config import load_settings, resolve_path
from tools.sql.database import Database
from tools.sql.engines import open_engine
from tools.sql.engines.base import EngineLimits, SandboxError
from tools.sql.engines.duckdb import load_file_schema
from tools.sql.engines.postgres import PostgresEngine

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def engine(pg_demo):
    with open_engine(pg_demo.reader_url, EngineLimits(timeout_s=1, max_rows=5, pool_size=2)) as e:
        yield e


def test_the_url_opens_a_postgres_engine(engine):
    assert isinstance(engine, PostgresEngine)
    assert (engine.dialect, engine.label) == ("postgres", "PostgreSQL")
    assert "@" in engine.display and ":" not in engine.display.split("@")[0].removeprefix(
        "postgresql://"
    )  # no password


def test_rows_are_streamed_and_cut_at_max_rows(engine):
    result = engine.execute("SELECT playerID FROM People ORDER BY playerID")
    assert result.row_count == 5 and result.truncated and len(result.rows) == 5
    assert engine.execute("SELECT playerID FROM People ORDER BY playerID LIMIT 5").truncated is False


def test_the_byte_budget_cuts_a_wide_result(pg_demo):
    limits = EngineLimits(timeout_s=5, max_rows=1000, max_result_bytes=2000)
    with open_engine(pg_demo.reader_url, limits) as small:
        result = small.execute("SELECT nameFirst, nameLast, birthCity FROM People LIMIT 500")
    assert result.truncated and 0 < result.row_count < 500


def test_values_are_json_friendly_and_identifiers_case_insensitive(engine):
    result = engine.execute(
        'SELECT p.namefirst, b."2b", avg(b.hr) AS mean_hr, max(debut) AS debut FROM people p '
        "JOIN BATTING b ON p.PLAYERID = b.playerid WHERE b.yearid = 1927 AND p.nameLast = 'Ruth' "
        'GROUP BY p.namefirst, b."2b"'
    )
    assert result.columns == ["nameFirst", "2B", "mean_hr", "debut"]  # the catalog's spelling
    assert result.rows == [["Babe", 29, 60.0, "1914-07-11"]]


def test_a_slow_query_is_cancelled_at_the_timeout_and_the_pool_recovers(engine):
    with pytest.raises(SandboxError) as caught:
        engine.execute("SELECT count(*) FROM People a, People b, People c")
    assert caught.value.kind == "timeout"
    assert engine.execute("SELECT 1 AS x").rows == [[1]]


def test_disabling_the_timeout_inside_the_query_does_not_help(engine):
    with pytest.raises(SandboxError) as caught:
        engine.execute("SELECT set_config('statement_timeout', '0', false), pg_sleep(30)")
    assert caught.value.kind == "timeout"


def test_nothing_carries_over_from_one_question_to_the_next(engine):
    """A session setting, a prepared statement or a held cursor of one question is gone in the next:
    the transaction is rolled back and the connection DISCARDed before it serves again."""
    for _ in range(3):  # every pooled connection
        engine.execute("SELECT set_config('search_path', 'pg_catalog', false) AS s")
        engine.execute("SELECT set_config('work_mem', '1GB', false) AS s")
    for _ in range(3):
        assert engine.execute("SELECT current_setting('search_path') AS s").rows == [["lahman"]]
        assert engine.execute("SELECT current_setting('work_mem') AS s").rows == [["64MB"]]
        assert engine.execute("SELECT current_setting('transaction_read_only') AS s").rows == [["on"]]


def test_every_question_runs_in_a_read_only_transaction(engine):
    assert engine.execute("SELECT current_setting('transaction_read_only') AS ro").rows == [["on"]]
    with pytest.raises(SandboxError) as caught:
        engine.execute("SELECT playerID FROM People FOR UPDATE")
    assert "read-only transaction" in caught.value.message


def test_concurrent_questions_share_the_pool(engine):
    results, errors = [], []

    def ask(i: int) -> None:
        try:
            results.append(
                engine.execute(f"SELECT count(*) FROM Batting WHERE yearID = {1990 + i}").rows[0][0]
            )
        except SandboxError as error:
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 6 and all(n > 0 for n in results)


def test_the_statement_guard(engine):
    with pytest.raises(SandboxError) as caught:
        engine.execute("SELECT 1; SELECT 2")
    assert caught.value.kind == "refused"
    with pytest.raises(SandboxError) as caught:
        engine.execute("UPDATE People SET nameLast = 'x'")
    assert caught.value.kind == "refused"


def test_introspection_equals_the_duckdb_build(engine, tmp_path):
    """Same tables, columns, types, comments, sample values, row counts and join paths: retrieval,
    descriptions, roles and the prompts see the same database on both engines."""
    duck = load_file_schema(resolve_path("data/lahman.duckdb"), tmp_path / "duck")
    pg = engine.introspect()
    assert [t.model_dump() for t in pg.tables] == [t.model_dump() for t in duck.tables]
    edges = lambda s: sorted((j.left, j.right, tuple(map(tuple, j.on)), j.declared) for j in s.joins)  # noqa: E731
    assert edges(pg) == edges(duck)


def test_the_value_index_equals_the_duckdb_build(pg_demo, tmp_path):
    """Copied out through the engine, the index holds the same values as the one built inside DuckDB."""
    settings = load_settings()
    tables = {}
    for name, url in (("duck", None), ("pg", pg_demo.reader_url)):
        config = settings.database_config(url).model_copy(update={"catalog_cache_dir": tmp_path / name})
        db = Database(config)
        try:
            index = next((tmp_path / name).glob("*.values.duckdb"))
            con = duckdb.connect(str(index), read_only=True)
            tables[name] = con.execute("SELECT * FROM value_index ORDER BY ALL").fetchall()
            con.close()
        finally:
            db.close()
    assert len(tables["pg"]) > 50_000
    assert tables["pg"] == tables["duck"]


def test_the_fingerprint_changes_when_the_data_does(pg_demo, engine):
    before = engine.fingerprint()
    assert engine.fingerprint() == before
    with psycopg.connect(pg_demo.admin_url, autocommit=True) as admin:
        admin.execute(
            'UPDATE lahman."Parks" SET parkalias = parkalias WHERE parkkey = (SELECT min(parkkey) FROM lahman."Parks")'
        )
        admin.execute("SELECT pg_stat_force_next_flush()")
    assert engine.fingerprint() != before


def test_a_closed_engine_says_so(pg_demo):
    e = open_engine(pg_demo.reader_url, EngineLimits())
    e.close()
    with pytest.raises(SandboxError) as caught:
        e.execute("SELECT 1")
    assert caught.value.kind == "database"


def test_the_loader_skips_an_unchanged_build(pg_demo):
    from data.load_postgres import load_demo

    said: list[str] = []
    url = load_demo(pg_demo.maintenance_url, pg_demo.reader_password, progress=said.append)
    assert url == pg_demo.reader_url
    assert any("not reloaded" in line for line in said), said
    with open_engine(url, EngineLimits()) as again:
        assert again.execute("SELECT count(*) FROM People").rows == [[21271]]


def test_the_demo_loader_needs_the_build(tmp_path, pg_demo):
    from data.load_postgres import load

    with pytest.raises(FileNotFoundError, match="build it first"):
        load(pg_demo.maintenance_url, source=Path(tmp_path / "nope.duckdb"))
