"""Table and column descriptions kept in an editable YAML file, laid over the database's own comments.

`sqlagent init` drafts the file (agent/apps/init_db.py); a human reviews it. Retrieval reads descriptions
from the schema, so applying the file to the introspected schema is all it takes to use them:

    tables:
      College:
        description: One row per college.
        draft: true            # written by the LM, not reviewed yet (informational)
        source: lm             # lm | database | human | none (informational)
        columns:
          enr: {description: Number of enrolled students., draft: true, source: lm}
          cName: {description: College name., override: true}   # replaces a non-empty DB comment

A YAML entry fills an empty database comment; it replaces a non-empty one only with `override: true`.
An entry may also be a plain string (the description). Names match case-insensitively; entries for
tables or columns the database does not have are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tools.sql.introspect import DatabaseSchema


class DescriptionsError(ValueError):
    """A descriptions file that cannot be read; the message names the file."""


def _entry(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {"description": "", "override": False}
    if isinstance(value, str):
        return {"description": value.strip(), "override": False}
    if not isinstance(value, dict):
        raise DescriptionsError(f"{where}: expected a mapping or a string, got {type(value).__name__}")
    text = value.get("description") or ""
    if not isinstance(text, str):
        raise DescriptionsError(f"{where}.description: expected a string")
    return {"description": text.strip(), "override": bool(value.get("override", False))}


def load_descriptions(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """{table: {"description", "override", "columns": {column: {"description", "override"}}}}.

    No path, or a file that does not exist, gives {} (the database comments alone).
    """
    if path is None or not Path(path).is_file():
        return {}
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DescriptionsError(f"{path}: not valid YAML ({exc})") from None
    tables = data.get("tables", {}) if isinstance(data, dict) else None
    if not isinstance(tables, dict):
        raise DescriptionsError(f"{path}: expected a top-level `tables:` mapping")
    out: dict[str, dict[str, Any]] = {}
    for name, value in tables.items():
        where = f"{path.name}: tables.{name}"
        entry = _entry(value, where)
        columns = value.get("columns") if isinstance(value, dict) else None
        if columns is not None and not isinstance(columns, dict):
            raise DescriptionsError(f"{where}.columns: expected a mapping of column names")
        entry["columns"] = {str(c): _entry(v, f"{where}.columns.{c}") for c, v in (columns or {}).items()}
        out[str(name)] = entry
    return out


def _merged(comment: str, entry: dict[str, Any] | None) -> str:
    if not entry or not entry["description"]:
        return comment
    return entry["description"] if entry["override"] or not comment.strip() else comment


def apply_descriptions(schema: DatabaseSchema, descriptions: dict[str, dict[str, Any]]) -> DatabaseSchema:
    """A copy of the schema with the YAML descriptions laid over the database comments.

    The fingerprint is unchanged: it identifies the data (and the value index built from it).
    """
    if not descriptions:
        return schema
    by_table = {name.lower(): entry for name, entry in descriptions.items()}
    result = schema.model_copy(deep=True)
    for table in result.tables:
        entry = by_table.get(table.name.lower())
        if entry is None:
            continue
        table.comment = _merged(table.comment, entry)
        columns = {name.lower(): col for name, col in entry.get("columns", {}).items()}
        for column in table.columns:
            column.comment = _merged(column.comment, columns.get(column.name.lower()))
    return result
