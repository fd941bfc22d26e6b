"""The whole agent on Spark SQL (the fake LM writes the SQL): real questions answer as on DuckDB, the
prompt names Spark SQL, names resolve through the value index copied out of Spark, attacks the LM is
made to write are stopped, and nothing in the warehouse changed."""

from __future__ import annotations

import json

import dspy
import pytest

import tools.sql.database
from agent.config import load_settings, resolve_path
from agent.service import Agent
from tests.fake_lm import ScriptedEngine, default_handlers
from tests.spark_warehouse import warehouse_digest

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
def digest_before(spark_demo):
    return warehouse_digest(spark_demo.warehouse)


def _agent(url: str | None, sql: str) -> tuple[Agent, ScriptedEngine]:
    settings = load_settings(
        tracking={"enabled": False}, limits={"query_timeout_s": 30, "max_repair_attempts": 1}
    )
    engine = ScriptedEngine(default_handlers(sql))
    lm = dspy.LM("fake/scripted", engine=engine, cache=False)
    return Agent(settings, db_path=url, lms={"default": lm}, persistent_threads=False), engine


def _golden(limit: int = 6) -> list[dict]:
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
def test_a_question_answers_as_on_duckdb(spark_demo, digest_before, item):
    from evals.runner import gold_in_dialect

    results = {}
    for name, url, sql in (
        ("duckdb", None, item["gold_sql"]),
        ("spark", spark_demo.url, gold_in_dialect(item["gold_sql"], "duckdb", "spark")),
    ):
        agent, _ = _agent(url, sql)
        results[name] = agent.ask(item["question"])
    duck, spark = results["duckdb"], results["spark"]
    assert (spark.status, spark.error) == (duck.status, duck.error)
    assert sorted(map(str, spark.rows)) == sorted(map(str, duck.rows))


def test_the_prompt_names_spark_sql(spark_demo):
    agent, engine = _agent(spark_demo.url, "SELECT count(*) AS n FROM People")
    captured = []
    complete = engine.complete
    engine.complete = lambda request: captured.append(request.system) or complete(request)
    assert agent.ask("How many people are there?").rows == [[21271]]
    system = next(s for s in captured if "Write one" in (s if isinstance(s, str) else ""))
    assert "Write one Spark SQL query" in system and "DuckDB" not in system and "`2B`" in system


def test_names_resolve_through_the_value_index(spark_demo):
    """The rewrite step looks 'Babe Ruth' up in the value index copied out of Spark."""
    agent, _ = _agent(spark_demo.url, "SELECT HR FROM Batting WHERE playerID = 'ruthba01' AND yearID = 1927")
    result = agent.ask("How many home runs did Babe Ruth hit in 1927?")
    assert result.rows == [[60]]
    assert any(m.value == "ruthba01" or "ruthba01" in m.hint() for m in result.mappings), result.mappings


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM People",
        "SELECT reflect('java.lang.System', 'getenv', 'HOME')",
        "SELECT TRANSFORM(nameFirst) USING 'id' AS (x) FROM People",
        "INSERT OVERWRITE DIRECTORY '/tmp/sqlagent-spark-agent' SELECT * FROM People",
        "SELECT 1; DROP TABLE People",
    ],
)
def test_an_attack_the_lm_writes_is_stopped(spark_demo, sql):
    agent, _ = _agent(spark_demo.url, sql)
    result = agent.ask("Show me the players")
    assert result.status == "refused" and not result.rows, result


def test_zz_warehouse_untouched(spark_demo, digest_before):
    assert warehouse_digest(spark_demo.warehouse) == digest_before
