"""Whether the PostgreSQL login sqlagent connects as can do anything but read: its attributes, its
privileges, and a real write tried in a READ WRITE transaction that is rolled back. The engine
refuses to open with such a login (database.require_read_only_role) and `sqlagent doctor` reports it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql as pgsql

from tools.sql.engines.base import EngineCheck
from tools.sql.engines.postgres_catalog import VISIBLE

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def role_checks(connect: Connect, user: str) -> list[EngineCheck]:
    """What the login `user` may do beyond reading, as one doctor line (ok when nothing)."""
    problems: list[str] = []
    with connect() as conn:
        attrs = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        flags = [n for n, on in zip(("SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS", "REPLICATION"), attrs,
                                    strict=True) if on]  # fmt: skip
        if flags:
            problems.append(f"has {', '.join(flags)} (ALTER ROLE {user} NO{' NO'.join(flags)})")
        writable = conn.execute(_WRITABLE_SQL).fetchall()
        if writable:
            problems.append(
                "may change "
                + ", ".join(f"{t} ({p})" for t, p in writable[:5])
                + f" (REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ... FROM {user})"
            )
        creatable = conn.execute(_CREATE_SQL).fetchall()
        if creatable:
            problems.append(
                "may create objects in "
                + ", ".join(r[0] for r in creatable)
                + f" (REVOKE CREATE ON SCHEMA/DATABASE ... FROM {user}, and FROM PUBLIC)"
            )
        attempt = _try_write(conn)
        if attempt:
            problems.append(attempt)
        read_only = conn.execute("SHOW default_transaction_read_only").fetchone()[0]
    if problems:
        return [EngineCheck(name="read-only role", ok=False,
                            detail=f"role {user} can write: " + "; ".join(problems)
                                   + ". Give sqlagent a role that can only read (data/postgres_reader.sql).")]  # fmt: skip
    note = "" if read_only == "on" else (f"; default_transaction_read_only is off (ALTER ROLE {user} SET "
                                        "default_transaction_read_only = on)")  # fmt: skip
    return [EngineCheck(name="read-only role", ok=True,
                        detail=f"role {user}: SELECT only, a write was refused{note}")]  # fmt: skip


def _try_write(conn: psycopg.Connection) -> str | None:
    """Create a table and update an exposed one (WHERE false) in a READ WRITE transaction that is
    rolled back; None when the server refused both."""
    done = []
    table = conn.execute(f"SELECT t.table_name FROM information_schema.tables t WHERE {VISIBLE} "
                         "AND t.table_type = 'BASE TABLE' ORDER BY 1 LIMIT 1").fetchone()  # fmt: skip
    column = None
    if table:
        column = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = ANY (current_schemas(false)) ORDER BY ordinal_position LIMIT 1",
            [table[0]],
        ).fetchone()
    attempts = [pgsql.SQL("CREATE TABLE sqlagent_doctor_probe (x integer)")]
    if table and column:
        attempts.append(pgsql.SQL("UPDATE {t} SET {c} = {c} WHERE false").format(
            t=pgsql.Identifier(table[0]), c=pgsql.Identifier(column[0])))  # fmt: skip
    for statement in attempts:
        conn.execute("BEGIN TRANSACTION READ WRITE")
        try:
            conn.execute(statement)
            done.append(statement.as_string(conn))
        except psycopg.Error:
            pass  # refused: what we want
        finally:
            conn.execute("ROLLBACK")
    return f"the server accepted {'; '.join(done)} (rolled back)" if done else None


_WRITABLE_SQL = (
    "SELECT format('%I.%I', t.table_schema, t.table_name), p.privilege FROM information_schema.tables t "
    "CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege) "
    "WHERE t.table_schema NOT IN ('pg_catalog', 'information_schema') "
    "AND has_table_privilege(format('%I.%I', t.table_schema, t.table_name), p.privilege) ORDER BY 1, 2"
)
_CREATE_SQL = (
    "SELECT 'schema ' || n.nspname FROM pg_catalog.pg_namespace n WHERE has_schema_privilege(n.oid, 'CREATE') "
    "AND n.nspname NOT LIKE 'pg\\_%' "
    "UNION ALL SELECT 'database ' || current_database() || ' (' || p || ')' FROM unnest(ARRAY['CREATE', 'TEMPORARY']) p "
    "WHERE has_database_privilege(current_database(), p)"
)
