"""A real PostgreSQL server for the tests marked `engines`, started once per session by the project.

`pg_cluster` initdb's a throwaway cluster on a free loopback port (data/pg_local.py; as root it runs as
the `postgres` user) and removes it after the session; `pg_demo` loads the Lahman demo into it
(data/load_postgres.py) and gives the read-only role's URL. Without PostgreSQL's server binaries the
tests are skipped with the reason, unless SQLAGENT_REQUIRE_ENGINES=1 (CI sets it): then they fail.

`database_digest` is what "nothing in the database changed" means: every table's rows (a digest of
the sorted row texts), the catalog (relations, functions, roles and their settings, privileges,
large objects, extensions) of the demo database.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REQUIRE_ENV = "SQLAGENT_REQUIRE_ENGINES"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the engine tests must run here)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class PgDemo:
    admin_url: str  # the cluster's superuser, on the demo database
    reader_url: str  # the read-only role sqlagent connects as
    maintenance_url: str  # the superuser on the `postgres` database (create roles, databases)
    port: int
    reader_password: str


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator:
    from data.pg_local import ClusterError, LocalCluster, find_bindir

    if find_bindir() is None:
        _unavailable("PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql)")
    # Under /tmp, not pytest's tmp_path: as root the server runs as `postgres`, which cannot enter
    # root's private temporary directories.
    directory = Path(tempfile.mkdtemp(prefix="sqlagent-pg-test-"))
    cluster = LocalCluster(directory)
    try:
        started = cluster.start()
    except ClusterError as error:
        cluster.remove()
        _unavailable(f"the throwaway PostgreSQL cluster did not start: {error}")
    try:
        yield started
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def pg_demo(pg_cluster) -> PgDemo:
    from data.load_postgres import load_demo

    reader_url = load_demo(pg_cluster.url(), pg_cluster.reader_password)
    return PgDemo(admin_url=pg_cluster.url("lahman"), reader_url=reader_url, maintenance_url=pg_cluster.url(),
                  port=pg_cluster.port, reader_password=pg_cluster.reader_password)  # fmt: skip


def database_digest(admin_url: str, schema: str = "lahman") -> dict[str, object]:
    """The rows of every table of `schema` and the database's catalog, as comparable values."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' ORDER BY 1", [schema]).fetchall()]  # fmt: skip
        rows = {}
        for table in tables:
            rows[table] = conn.execute(
                f'SELECT count(*), md5(string_agg(md5(t::text), \'\' ORDER BY md5(t::text))) FROM "{schema}"."{table}" t'
            ).fetchone()
        catalog = {
            "relations": conn.execute(
                "SELECT n.nspname, c.relname, c.relkind, c.relowner::regrole::text, coalesce(c.relacl::text, '') "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_toast') AND n.nspname NOT LIKE 'pg_temp%' "
                "AND n.nspname NOT LIKE 'pg_toast_temp%' ORDER BY 1, 2").fetchall(),
            "functions": conn.execute(
                "SELECT p.oid::regprocedure::text, coalesce(p.proacl::text, '') FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', "
                "'information_schema') OR p.proacl IS NOT NULL ORDER BY 1").fetchall(),
            "roles": conn.execute(
                "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls, "
                "coalesce(rolconfig::text, '') FROM pg_roles ORDER BY 1").fetchall(),
            "role_settings": conn.execute("SELECT setdatabase, setrole, setconfig::text FROM pg_db_role_setting "
                                          "ORDER BY 1, 2").fetchall(),
            "schemas": conn.execute("SELECT nspname, coalesce(nspacl::text, '') FROM pg_namespace ORDER BY 1").fetchall(),
            "databases": conn.execute("SELECT datname, coalesce(datacl::text, '') FROM pg_database ORDER BY 1").fetchall(),
            "large_objects": conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone(),
            "extensions": conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall(),
            "comments": conn.execute("SELECT md5(string_agg(description, '|' ORDER BY objoid, objsubid)) "
                                     "FROM pg_description").fetchone(),
        }  # fmt: skip
    return {"rows": rows, "catalog": catalog}
