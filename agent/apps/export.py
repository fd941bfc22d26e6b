"""A result's rows as a file to take away: CSV, Parquet or JSON, for the CLI and the web app alike.

Rows arrive as the sandbox hands them out (tools/sql/sandbox.py `to_jsonable`): None, bool, int,
float, str, or a list/dict for DuckDB's nested types. CSV writes a nested value as its JSON text and
NULL as an empty field; Parquet keeps each column's type when its values share one and stores the
column as text when they do not (a UNION of a number and a string), rather than refusing the file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

Format = Literal["table", "json", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("table", "json", "csv", "parquet")
BINARY: frozenset[Format] = frozenset({"parquet"})
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
_BY_SUFFIX: dict[str, Format] = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def format_for(path: str | Path) -> Format | None:
    """The format a file name asks for (`rows.csv` -> csv), or None for another suffix."""
    return _BY_SUFFIX.get(Path(path).suffix.lower())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def rows_csv(columns: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def _column(values: list[Any]):
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: text keeps every value readable
        return pa.array([None if v is None else _cell(v) for v in values], type=pa.string())


def rows_parquet(columns: list[str], rows: list[list[Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [_column([row[i] for row in rows]) for i in range(len(columns))]
    table = pa.Table.from_arrays(arrays, names=list(columns))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def rows_file(fmt: Literal["csv", "parquet"], columns: list[str], rows: list[list[Any]]) -> bytes:
    return rows_parquet(columns, rows) if fmt == "parquet" else rows_csv(columns, rows).encode("utf-8")
