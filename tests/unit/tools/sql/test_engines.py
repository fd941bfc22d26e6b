"""The executor interface without a server: choosing the engine from database.url, URL secrets, the
DuckDB engine through the interface, and the prompts that name the engine's dialect."""

from __future__ import annotations

import duckdb
import pytest
from pydantic import ValidationError

from agent.config import load_settings
from prompts.baseline import Baseline
from prompts.generate import Generate, GenerateSQL, sql_signature
from prompts.repair import Repair
from tools.sql.engines import dialect_label, engine_kind, open_engine, redacted, with_password
from tools.sql.engines.base import EngineLimits, SandboxError
from tools.sql.engines.duckdb import DuckDBEngine


@pytest.mark.parametrize(("url", "name", "dialect"), [
    ("data/lahman.duckdb", "duckdb", "duckdb"),
    ("/abs/shop.db", "duckdb", "duckdb"),
    ("duckdb:///abs/shop.duckdb", "duckdb", "duckdb"),
    ("postgresql://reader@host:5432/db", "postgres", "postgres"),
    ("postgres://reader@host/db", "postgres", "postgres"),
])  # fmt: skip
def test_the_url_chooses_the_engine(url, name, dialect):
    kind = engine_kind(url)
    assert (kind.name, kind.dialect) == (name, dialect)


def test_an_unknown_scheme_names_the_known_ones():
    with pytest.raises(ValueError, match=r"no engine serves the scheme 'mysql://'.*postgresql://"):
        engine_kind("mysql://u@h/db")


def test_passwords_are_filled_in_and_never_shown():
    url = with_password("postgresql://reader@db.example.com:5432/lahman", "p@ss:/word")
    assert url == "postgresql://reader:p%40ss%3A%2Fword@db.example.com:5432/lahman"
    assert redacted(url) == "postgresql://reader:***@db.example.com:5432/lahman"
    assert redacted("data/lahman.duckdb") == "data/lahman.duckdb"


def test_the_dialect_comes_from_the_url():
    settings = load_settings()
    assert settings.database_config().dialect == "duckdb"
    assert settings.database_config("postgresql://r@h/db").dialect_label == "PostgreSQL"
    # database.dialect overrides what the policy parses and the prompt names, not the engine.
    override = load_settings(database={"dialect": "postgres"}).database_config()
    assert (override.dialect, engine_kind(override.url).name) == ("postgres", "duckdb")


def test_the_old_database_path_key_says_its_new_name():
    with pytest.raises(ValidationError, match="database.path is now database.url"):
        load_settings(database={"path": "data/lahman.duckdb"})


def test_limits_reach_the_engine():
    limits = (
        load_settings(limits={"query_timeout_s": 3, "work_mem": "8MB", "db_pool_size": 2})
        .database_config()
        .limits
    )
    assert (limits.timeout_s, limits.work_mem, limits.pool_size, limits.require_read_only_role) == (
        3,
        "8MB",
        2,
        True,
    )


@pytest.fixture()
def mini(tmp_path):
    path = tmp_path / "mini.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (id VARCHAR, n INTEGER)")
    con.execute("INSERT INTO t SELECT 'x' || i, i FROM range(25) r(i)")
    con.execute("COMMENT ON TABLE t IS 'numbers'")
    con.close()
    return path


def test_duckdb_through_the_interface(mini):
    with open_engine(str(mini), EngineLimits(max_rows=5)) as engine:
        assert isinstance(engine, DuckDBEngine) and (engine.name, engine.label) == ("mini", "DuckDB")
        assert engine.attachable_file() == mini
        result = engine.execute("SELECT n FROM t ORDER BY n")
        assert (result.row_count, result.truncated) == (5, True)
        batches = list(engine.read("SELECT n FROM t", batch_rows=10))  # the project's SQL: no row cap
        assert [len(b) for b in batches] == [10, 10, 5]
        schema = engine.introspect()
        assert schema.tables[0].comment == "numbers" and schema.tables[0].row_count == 25
        assert schema.fingerprint == engine.fingerprint()
        with pytest.raises(SandboxError) as caught:
            engine.execute("CREATE TABLE u (x INTEGER)")
        assert caught.value.kind == "refused"
        assert [c.ok for c in engine.checks()] == [True]


def test_a_missing_duckdb_file_fails_with_what_to_do(tmp_path):
    with pytest.raises(SandboxError, match="does not exist; build it first") as caught:
        open_engine(str(tmp_path / "nope.duckdb"), EngineLimits())
    assert caught.value.kind == "database"


def test_duckdb_prompts_are_unchanged_and_others_name_their_dialect():
    """DuckDB's SQL prompts are the code's own signature, byte for byte (cached evals stay valid);
    PostgreSQL's differ only where the dialect is named."""
    assert sql_signature("DuckDB") is GenerateSQL
    for module in (Generate(), Repair()):
        (predictor,) = module.predictors()
        assert predictor.signature.instructions == GenerateSQL.instructions
    postgres = sql_signature(dialect_label("postgres")).instructions
    assert "PostgreSQL" in postgres and "DuckDB" not in postgres
    assert postgres.replace("PostgreSQL", "DuckDB") == GenerateSQL.instructions
    (baseline,) = Baseline("PostgreSQL").predictors()
    assert baseline.signature.instructions.startswith("Write one PostgreSQL SQL query")
