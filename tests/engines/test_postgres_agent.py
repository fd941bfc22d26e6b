"""The whole agent on PostgreSQL (the fake LM writes the SQL): real questions answer as on DuckDB, the
prompt names PostgreSQL, attacks the LM is made to write are stopped, the entity look-ups and the
SQL fixes that query the database work, `make demo ENGINE=postgres`'s path (data/pg_local.py run)
works, and nothing in the database changed."""

from __future__ import annotations

import json
import subprocess
import sys

import dspy
import pytest

import tools.sql.database
from agent.config import load_settings, resolve_path
from agent.service import Agent
from tests.fake_lm import ScriptedEngine, default_handlers
from tests.postgres_server import database_digest

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module", autouse=True)
def own_database_cache():
    mp = pytest.MonkeyPatch()
    mp.setattr(tools.sql.database, "_open", {})
    try:
        yield
    finally:
        for db in tools.sql.database._open.values():
            db.close()
        mp.undo()


@pytest.fixture(scope="module")
def digest_before(pg_demo):
    return database_digest(pg_demo.admin_url)


def _agent(url: str | None, sql: str, mentions: list[str] | None = None) -> tuple[Agent, ScriptedEngine]:
    settings = load_settings(
        tracking={"enabled": False}, limits={"query_timeout_s": 2, "max_repair_attempts": 1}
    )
    engine = ScriptedEngine(default_handlers(sql, mentions))
    lm = dspy.LM("fake/scripted", engine=engine, cache=False)
    return Agent(settings, db_path=url, lms={"default": lm}, persistent_threads=False), engine


def _golden(limit: int = 8) -> list[dict]:
    items = [
        json.loads(line)
        for line in resolve_path("evals/golden.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return [
        i
        for i in items
        if i.get("split") == "test" and i.get("gold_sql") and i.get("expected_status", "ok") == "ok"
    ][:limit]


@pytest.mark.parametrize("item", _golden(), ids=lambda i: i["id"])
def test_a_question_answers_as_on_duckdb(pg_demo, digest_before, item):
    from evals.runner import gold_in_dialect

    results = {}
    for name, url, sql in (
        ("duckdb", None, item["gold_sql"]),
        ("postgres", pg_demo.reader_url, gold_in_dialect(item["gold_sql"], "duckdb", "postgres")),
    ):
        agent, engine = _agent(url, sql)
        results[name] = agent.ask(item["question"])
        generate = next(inputs for key, inputs in engine.calls if key == "sql")
        assert generate  # the SQL step ran with the schema, examples and hints
    duck, pg = results["duckdb"], results["postgres"]
    assert (pg.status, pg.error) == (duck.status, duck.error)
    assert sorted(map(str, pg.rows)) == sorted(map(str, duck.rows))


def test_the_prompt_names_postgresql(pg_demo):
    agent, engine = _agent(pg_demo.reader_url, "SELECT count(*) AS n FROM People")
    captured = []
    complete = engine.complete
    engine.complete = lambda request: captured.append(request.system) or complete(request)
    assert agent.ask("How many people are there?").rows == [[21271]]
    system = next(s for s in captured if "Write one" in (s if isinstance(s, str) else ""))
    assert "Write one PostgreSQL SQL query" in system and "DuckDB" not in system


def test_names_resolve_through_the_value_index(pg_demo):
    """The rewrite step looks 'Babe Ruth' up in the value index copied out of PostgreSQL."""
    agent, _ = _agent(
        pg_demo.reader_url, "SELECT HR FROM Batting WHERE playerID = 'ruthba01' AND yearID = 1927"
    )
    result = agent.ask("How many home runs did Babe Ruth hit in 1927?")
    assert result.rows == [[60]]
    assert any(m.value == "ruthba01" or "ruthba01" in m.hint() for m in result.mappings), result.mappings


@pytest.mark.parametrize(("sql", "status"), [
    ("DELETE FROM People", "refused"),
    ("SELECT pg_read_file('/etc/passwd')", "refused"),
    ("COPY People TO PROGRAM 'id'", "refused"),
    ("SELECT 1; DROP TABLE People", "refused"),
    ("SELECT count(*) FROM People a, People b, People c", "error"),
])  # fmt: skip
def test_an_attack_the_lm_writes_is_stopped(pg_demo, sql, status):
    agent, _ = _agent(pg_demo.reader_url, sql)
    result = agent.ask("Show me the players")
    assert result.status == status and not result.rows, result


def test_make_demo_engine_postgres_path(pg_cluster):
    """`make demo ENGINE=postgres` runs `python -m data.pg_local run -- sqlagent ask ...`: here with the
    cluster the session started, a command that prints what it was given instead of the real LM."""
    probe = (
        "import os; from agent.config import load_settings; print(load_settings().database.url.split('@')[1])"
    )
    done = subprocess.run([sys.executable, "-m", "data.pg_local", "url", "--dir", str(pg_cluster.directory)],
                          capture_output=True, text=True, check=True, cwd=resolve_path("."))  # fmt: skip
    assert done.stdout.strip().startswith("postgresql://sqlagent_reader:")
    from data.pg_local import LocalCluster

    try:
        ran = subprocess.run([sys.executable, "-m", "data.pg_local", "run", "--dir", str(pg_cluster.directory), "--",
                              sys.executable, "-c", probe], capture_output=True, text=True, cwd=resolve_path("."))  # fmt: skip
        assert not LocalCluster(
            pg_cluster.directory
        ).running()  # `run` stops the server when the command ends
    finally:
        LocalCluster(pg_cluster.directory).start()  # for the tests that follow
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"127.0.0.1:{pg_cluster.port}/lahman"


def test_zz_database_untouched(pg_demo, digest_before):
    assert database_digest(pg_demo.admin_url) == digest_before
