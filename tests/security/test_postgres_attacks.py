"""Adversarial SQL against the PostgreSQL engine, one layer at a time, on a real server.

Every attack runs three times, each time with one more layer taken away, and states what each does:

engine - through `PostgresEngine.execute` as the read-only role (statement guard, DECLARE'd cursor,
         READ ONLY transaction, the role's grants, statement_timeout), the policy bypassed;
role   - raw as the read-only role in a READ WRITE transaction: the grants alone;
txn    - raw as a role that may write (INSERT/UPDATE/DELETE, CREATE, TEMPORARY) in a READ ONLY
         transaction: the transaction alone.
Outcomes: refused (the engine's statement guard), denied (the server refused: no privilege, a
read-only transaction, not the owner, not allowed there), invalid (it does not exist on this server
or is not PostgreSQL: dblink is not installed, DuckDB's `FROM 'file.csv'` is a syntax error), timeout,
memory (a memory bomb the server stops), rows / no_rows (it
ran: harmless, and rolled back; `test_zz_database_untouched` proves nothing stayed).

The policy (tools/sql/policy.py, parsing as `postgres`, its allow-list) is the first layer and is
checked on its own in `test_policy_refuses`: it refuses every attack but the resource bombs. The
attack SQL of the DuckDB suite (tests/security/test_adversarial_sql.py) runs through the engine too.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres_server import database_digest
from tests.security.test_adversarial_sql import CASES as DUCKDB_CASES
from tests.security.test_adversarial_sql import SANDBOX_MUST_REFUSE
from tools.sql.engines import open_engine
from tools.sql.engines.base import EngineLimits, SandboxError
from tools.sql.policy import Catalog, SqlPolicy

pytestmark = pytest.mark.engines

TIMEOUT_S = 1.0
WRITER = "sqlagent_test_writer"

# (category, sql, engine, role, txn)
ATTACKS: list[tuple[str, str, str, str, str]] = [
    ("files", "SELECT pg_read_file('/etc/passwd')", "denied", "denied", "denied"),
    ("files", "SELECT pg_read_binary_file('/etc/passwd')", "denied", "denied", "denied"),
    ("files", "SELECT * FROM pg_ls_dir('/')", "denied", "denied", "denied"),
    ("files", "SELECT pg_stat_file('/etc/passwd')", "denied", "denied", "denied"),
    ("files", "SELECT lo_import('/etc/passwd')", "denied", "denied", "denied"),
    ("files", "SELECT lo_export(0, '/tmp/sqlagent-pwned')", "denied", "denied", "denied"),
    ("files", "COPY \"People\" TO '/tmp/sqlagent-people.csv'", "refused", "denied", "denied"),
    ("files", "COPY \"People\" FROM '/etc/passwd'", "refused", "denied", "denied"),
    ("files", "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '')", "denied", "denied",
     "denied"),
    ("program", "COPY \"People\" TO PROGRAM 'id > /tmp/sqlagent-pwned'", "refused", "denied", "denied"),
    ("program", "COPY (SELECT 1) TO PROGRAM 'id'", "refused", "denied", "denied"),
    ("network", "SELECT * FROM dblink('host=example.com', 'SELECT 1') AS t(x int)", "invalid", "invalid", "invalid"),
    ("network", "SELECT dblink_exec('dbname=lahman', 'DROP TABLE \"People\"')", "invalid", "invalid", "invalid"),
    ("network", "CREATE EXTENSION dblink", "refused", "denied", "denied"),
    ("network", "CREATE EXTENSION postgres_fdw", "refused", "denied", "denied"),
    # Large objects: any role may create one, even in a READ ONLY transaction; the rollback removes it.
    ("large_objects", "SELECT lo_create(0)", "rows", "rows", "rows"),
    ("large_objects", "SELECT lo_from_bytea(0, 'x')", "rows", "rows", "rows"),
    ("large_objects", "SELECT lo_unlink(1)", "invalid", "invalid", "invalid"),
    # Session settings: set, then rolled back (and DISCARDed before the connection serves again).
    ("settings", "SELECT set_config('statement_timeout', '0', false)", "rows", "rows", "rows"),
    ("settings", "SELECT set_config('default_transaction_read_only', 'off', false)", "rows", "rows", "rows"),
    ("settings", "SELECT set_config('search_path', 'pg_catalog', false)", "rows", "rows", "rows"),
    ("settings", "SELECT set_config('transaction_read_only', 'off', true)", "denied", "rows", "denied"),
    ("settings", "SELECT current_setting('data_directory')", "denied", "denied", "denied"),
    ("settings", "SET ROLE sqlagent_admin", "refused", "denied", "denied"),
    ("settings", "SET SESSION AUTHORIZATION sqlagent_admin", "refused", "denied", "denied"),
    ("settings", "SET TRANSACTION READ WRITE", "refused", "no_rows", "no_rows"),
    ("settings", "RESET ALL", "refused", "no_rows", "no_rows"),
    ("functions", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "refused", "denied", "denied"),
    ("functions", "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "refused", "denied",
     "denied"),
    ("functions", "DO $$ BEGIN EXECUTE 'DROP TABLE \"People\"'; END $$", "refused", "denied", "denied"),
    ("functions", "SELECT query_to_xml('DELETE FROM \"People\"', true, true, '')", "denied", "denied", "denied"),
    ("writes", "WITH d AS (DELETE FROM \"People\" RETURNING *) SELECT count(*) FROM d", "denied", "denied", "denied"),
    ("writes", "SELECT * INTO stolen FROM \"People\"", "denied", "denied", "denied"),
    ("writes", "CREATE TEMP TABLE t AS SELECT 1 AS x", "refused", "denied", "denied"),
    ("writes", "CREATE TABLE lahman.stolen AS SELECT * FROM \"People\"", "refused", "denied", "denied"),
    ("writes", "CREATE TABLE public.stolen (x int)", "refused", "denied", "denied"),
    ("writes", "INSERT INTO \"People\" (\"playerID\") VALUES ('x')", "refused", "denied", "denied"),
    ("writes", "UPDATE \"People\" SET \"nameLast\" = 'x'", "refused", "denied", "denied"),
    ("writes", "DELETE FROM \"People\"", "refused", "denied", "denied"),
    ("writes", "TRUNCATE \"People\"", "refused", "denied", "denied"),
    ("writes", "DROP TABLE \"People\"", "refused", "denied", "denied"),
    ("writes", "ALTER TABLE \"People\" ADD COLUMN x int", "refused", "denied", "denied"),
    ("writes", "COMMENT ON TABLE \"People\" IS 'x'", "refused", "denied", "denied"),
    ("writes", "SELECT \"playerID\" FROM \"People\" FOR UPDATE", "denied", "denied", "denied"),
    ("writes", "SELECT 1; DROP TABLE \"People\"", "refused", "denied", "denied"),
    # The reader holds no grant option: PostgreSQL warns and grants nothing.
    ("writes", "GRANT SELECT ON \"People\" TO PUBLIC", "refused", "no_rows", "denied"),
    ("writes", "LOCK TABLE \"People\" IN ACCESS EXCLUSIVE MODE", "refused", "denied", "no_rows"),
    ("sessions", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "denied", "denied", "denied"),
    ("sessions", "SELECT pg_cancel_backend(pid) FROM pg_stat_activity", "denied", "denied", "denied"),
    ("sessions", "SELECT pg_advisory_lock(1)", "denied", "denied", "denied"),
    ("sessions", "SELECT pg_reload_conf()", "denied", "denied", "denied"),
    ("sessions", "SELECT pg_rotate_logfile()", "denied", "denied", "denied"),
    ("sessions", "LISTEN x", "refused", "no_rows", "no_rows"),
    ("sessions", "PREPARE p AS SELECT 1", "refused", "no_rows", "no_rows"),
    ("bombs", "SELECT pg_sleep(100)", "timeout", "timeout", "timeout"),
    ("bombs", "SELECT pg_sleep_for('100 seconds')", "timeout", "timeout", "timeout"),
    ("bombs", "SELECT set_config('statement_timeout', '0', false), pg_sleep(100)", "timeout", "timeout", "timeout"),
    ("bombs", "SELECT count(*) FROM generate_series(1, 100000000000)", "timeout", "timeout", "timeout"),
    ("bombs", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", "timeout",
     "timeout", "timeout"),
    ("bombs", "SELECT count(*) FROM \"People\" a, \"People\" b, \"People\" c", "timeout", "timeout", "timeout"),
    ("bombs", "SELECT length(repeat('x', 1100000000))", "memory", "memory", "memory"),  # past 1 GB: refused at once
]  # fmt: skip

_DENIED = {"42501", "25006", "0A000", "25001", "42P17"}
_INVALID = {"42883", "42704", "42601", "42P01", "42703", "42846"}
_MEMORY = {"53200", "54000", "53100"}


def _engine_outcome(engine, sql: str) -> str:
    try:
        result = engine.execute(sql)
    except SandboxError as error:
        if error.kind in ("refused", "timeout"):
            return error.kind
        text = error.message.lower()
        if "out of memory" in text:
            return "memory"
        if any(s in text for s in ("permission denied", "read-only transaction", "must be owner", "not allowed",
                                   "must not contain data-modifying", "must be set before any query",
                                   "must be superuser")):  # fmt: skip
            return "denied"
        if any(s in text for s in ("does not exist", "syntax error", "unrecognized configuration parameter",
                                   "cross-database references are not implemented")):  # fmt: skip
            return "invalid"
        return f"execution: {error.message}"
    return "rows" if result.rows else "no_rows"


def _raw_outcome(url: str, sql: str, mode: str) -> str:
    """`sql` as the connection's role in a `mode` transaction, sent as is (simple protocol), rolled back."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"BEGIN TRANSACTION {mode}")
        conn.execute(f"SET LOCAL statement_timeout = '{int(TIMEOUT_S * 1000)}ms'")
        try:
            cursor = conn.execute(sql)
            return "rows" if cursor.description and cursor.fetchall() else "no_rows"
        except psycopg.Error as error:
            state = error.sqlstate or ""
            if state == "57014":
                return "timeout"
            for outcome, states in (("denied", _DENIED), ("invalid", _INVALID), ("memory", _MEMORY)):
                if state in states:
                    return outcome
            return f"{state}: {error}"
        finally:
            conn.execute("ROLLBACK")


@pytest.fixture(scope="module")
def env(pg_demo):
    with psycopg.connect(pg_demo.admin_url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {WRITER}")
        admin.execute(f"CREATE ROLE {WRITER} LOGIN PASSWORD 'writer'")
        admin.execute(f"GRANT CONNECT, TEMPORARY, CREATE ON DATABASE lahman TO {WRITER}")
        admin.execute(f"GRANT USAGE, CREATE ON SCHEMA lahman TO {WRITER}")
        admin.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA lahman TO {WRITER}")
        admin.execute(f"ALTER ROLE {WRITER} SET search_path = lahman")
    writer_url = f"postgresql://{WRITER}:writer@127.0.0.1:{pg_demo.port}/lahman"
    before = database_digest(pg_demo.admin_url)
    with open_engine(
        pg_demo.reader_url, EngineLimits(timeout_s=TIMEOUT_S, max_rows=100, pool_size=2)
    ) as engine:
        yield {"engine": engine, "reader": pg_demo.reader_url, "writer": writer_url, "before": before,
               "admin": pg_demo.admin_url}  # fmt: skip
    with psycopg.connect(pg_demo.admin_url, autocommit=True) as admin:
        admin.execute(f"DROP OWNED BY {WRITER}")
        admin.execute(f"DROP ROLE {WRITER}")


@pytest.mark.parametrize(
    ("category", "sql", "engine", "role", "txn"), ATTACKS, ids=[f"{a[0]}-{i}" for i, a in enumerate(ATTACKS)]
)
def test_each_layer(env, category, sql, engine, role, txn):
    assert _engine_outcome(env["engine"], sql) == engine, "engine"
    assert _raw_outcome(env["reader"], sql, "READ WRITE") == role, "the read-only role's grants alone"
    assert _raw_outcome(env["writer"], sql, "READ ONLY") == txn, "the READ ONLY transaction alone"


# A resource bomb is a valid query: the timeout, not the policy, stops it.
POLICY_REFUSES = [sql for category, sql, *_ in ATTACKS if category != "bombs"]


@pytest.mark.parametrize("sql", POLICY_REFUSES, ids=[s[:40] for s in POLICY_REFUSES])
def test_policy_refuses(sql):
    policy = SqlPolicy(Catalog(tables={"People": ["playerID", "nameFirst", "nameLast"]}), limit_cap=100,
                       dialect="postgres")  # fmt: skip
    assert not policy.check(sql).allowed


@pytest.mark.parametrize(("category", "sql"), [(c, s) for c, s, *_ in DUCKDB_CASES],
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(DUCKDB_CASES)])  # fmt: skip
def test_the_duckdb_suite_through_the_engine(env, category, sql):
    """Every attack of the DuckDB suite, raw through the PostgreSQL engine: a write, command or
    multi-statement attack is refused or denied; anything else fails harmlessly or reads rows."""
    outcome = _engine_outcome(env["engine"], sql)
    if category in SANDBOX_MUST_REFUSE:
        assert outcome in {"refused", "denied"}, outcome
    else:
        assert outcome in {"refused", "denied", "invalid", "timeout", "rows", "no_rows"}, outcome


@pytest.mark.parametrize("sql", [
    "SELECT \"playerID\" FROM \"People\" FOR UPDATE",
    "SELECT lo_import('/etc/passwd')",
    "SELECT set_config('transaction_read_only', 'off', true)",
])  # fmt: skip
def test_the_engine_opens_every_question_read_only_itself(env, sql):
    """Given a login that may write and whose transactions default to read-write (allowed only with
    require_read_only_role: false), the engine's own BEGIN READ ONLY still refuses the write."""
    limits = EngineLimits(timeout_s=TIMEOUT_S, require_read_only_role=False, pool_size=1)
    with open_engine(env["writer"], limits) as engine:
        assert engine.execute("SELECT current_setting('default_transaction_read_only') AS d").rows == [
            ["off"]
        ]
        assert _engine_outcome(engine, sql) == "denied"


def test_a_writable_login_is_refused_by_default(env):
    with pytest.raises(SandboxError, match=f"role {WRITER} can write"):
        open_engine(env["writer"], EngineLimits())


def test_zz_database_untouched(env):
    """After every attack on every layer: the same rows in every table, the same catalog, roles,
    privileges, settings, large objects and extensions."""
    assert database_digest(env["admin"]) == env["before"]
    assert env["engine"].execute('SELECT count(*) FROM "People"').rows == [[21271]]
