"""Reading the DuckDB demo database from a loader that may share a process with the agent."""

from __future__ import annotations

from pathlib import Path

import duckdb


def open_source(source: Path) -> duckdb.DuckDBPyConnection:
    """`source` attached read-only in a private in-memory instance, not `duckdb.connect(path)`: a
    process that already has the file open with other settings (the agent's sandbox does, e.g. in the
    test suite) would refuse a second connect with "a different configuration than existing
    connections"."""
    con = duckdb.connect()
    literal = "'" + str(source).replace("'", "''") + "'"
    con.execute(f"ATTACH {literal} AS source (READ_ONLY)")
    con.execute("USE source")
    return con
