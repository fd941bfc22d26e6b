"""The SQL policy in every dialect: each engine's own attacks refused, analytical queries allowed.

Data (tests/security/data):
- sql_attacks.jsonl: {"dialects": [...] or ["*"], "sql", "code", "names", "why"}: the policy code the
  attack must get and a fragment its reason must contain (the function, statement or table it names).
  PostgreSQL file, large-object, dblink, settings, sleep and session functions, COPY ... PROGRAM;
  Spark reflection, jars, UDFs, file data sources, script transforms; Databricks secrets, HTTP, AI
  functions; DuckDB file and system functions; Snowflake stages and account metadata.
- sql_analytical.jsonl: {"dialect", "sql"}: read-only analytical queries written for that engine
  (aggregates, windows, text, dates, arrays, JSON, conditionals, its table functions) that must pass.
Every gold SQL of evals/golden.jsonl (all splits), transpiled from DuckDB by sqlglot, must pass in
every dialect, as the golden test split is run on each engine.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tools.sql.policy import FORBIDDEN_NODES, Catalog, SqlPolicy

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
DATA = Path(__file__).parent / "data"
DIALECTS = ["duckdb", "postgres", "spark", "databricks", "snowflake"]
CATALOG = Catalog(
    tables={
        "People": ["playerID", "nameFirst", "nameLast", "birthYear", "birthCity", "debut"],
        "Batting": ["playerID", "yearID", "teamID", "G", "AB", "H", "HR", "2B"],
        "Teams": ["yearID", "teamID", "name", "W", "L", "attendance"],
    }
)
POLICIES = {d: SqlPolicy(CATALOG, limit_cap=100, dialect=d) for d in DIALECTS}


def _jsonl(name: str) -> list[dict]:
    return [
        json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


ATTACKS = [
    (dialect, a["sql"], a["code"], a["names"])
    for a in _jsonl("sql_attacks.jsonl")
    for dialect in (DIALECTS if a["dialects"] == ["*"] else a["dialects"])
]
ANALYTICAL = [(q["dialect"], q["sql"]) for q in _jsonl("sql_analytical.jsonl")]


def _gold() -> list[tuple[str, str]]:
    items = [
        json.loads(line)
        for line in (ROOT / "evals" / "golden.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return [(it["id"], it["gold_sql"]) for it in items if it.get("gold_sql")]


def _assert_read_only(sql: str, dialect: str) -> None:
    (root,) = [s for s in sqlglot.parse(sql, dialect=dialect) if s is not None]
    assert not [type(n).__name__ for n in root.walk() if isinstance(n, FORBIDDEN_NODES)]


@pytest.mark.parametrize(
    ("dialect", "sql", "code", "names"), ATTACKS, ids=[f"{d}-{i}" for i, (d, *_) in enumerate(ATTACKS)]
)
def test_attack(dialect: str, sql: str, code: str, names: str) -> None:
    decision = POLICIES[dialect].check(sql)
    if code == "allowed":  # the attack is defused by rewriting (a quoted name written back as the built-in)
        assert decision.allowed, decision.reason
        _assert_read_only(decision.sql, dialect)
        assert '"' not in decision.sql, decision.sql
        return
    assert (decision.allowed, decision.code) == (False, code), decision.reason or decision.sql
    assert names.lower() in (decision.reason or "").lower(), decision.reason
    assert decision.reason.endswith("."), decision.reason


@pytest.mark.parametrize(
    ("dialect", "sql"), ANALYTICAL, ids=[f"{d}-{i}" for i, (d, _) in enumerate(ANALYTICAL)]
)
def test_analytical_query_is_allowed(dialect: str, sql: str) -> None:
    decision = POLICIES[dialect].check(sql)
    assert decision.allowed, decision.reason
    _assert_read_only(decision.sql, dialect)
    assert POLICIES[dialect].check(decision.sql).sql == decision.sql  # the output is a fixed point


def test_every_engine_has_its_attacks_and_queries() -> None:
    attacks = Counter(d for d, *_ in ATTACKS)
    queries = Counter(d for d, _ in ANALYTICAL)
    assert all(attacks[d] >= 10 and queries[d] >= 25 for d in DIALECTS), (attacks, queries)


@pytest.fixture(scope="module")
def lahman_tables() -> dict[str, list[str]]:
    """The demo database's tables, read through the process's shared Database (DuckDB refuses a
    second in-process connection to one file with a different configuration)."""
    from agent.config import load_settings  # noqa: PLC0415 - tests may reach any layer
    from tools.sql.database import open_database  # noqa: PLC0415

    db = ROOT / "data" / "lahman.duckdb"
    if not db.is_file():
        pytest.skip(
            f"{db.relative_to(ROOT)} is missing: build it with `.venv/bin/python -m data.build_lahman`"
        )
    return open_database(
        load_settings(tracking={"enabled": False}).database_config(db)
    ).full_schema.table_columns()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_gold_sql_passes_in_every_dialect(lahman_tables: dict[str, list[str]], dialect: str) -> None:
    """Every gold query of every split (the train split is the worked-example bank), written in the
    dialect by sqlglot: no legitimate query is refused."""
    policy = SqlPolicy(Catalog(tables=lahman_tables), limit_cap=1000, dialect=dialect)
    gold = _gold()
    refused = {}
    for item_id, sql in gold:
        text = sql if dialect == "duckdb" else sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
        decision = policy.check(text)
        if decision.allowed:
            assert isinstance(sqlglot.parse_one(decision.sql, dialect=dialect), exp.Query)
        else:
            refused[item_id] = decision.reason
    assert len(gold) >= 200 and refused == {}
