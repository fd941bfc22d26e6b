"""Tool: describe tables of the database (columns, types, comments, sample values, join paths).

The one schema renderer: the retrieve step's compact prompt text and the full description a user or
a tool-calling model asks for both come from here. Both render `db.schema`, the role's view
(tools/sql/role_view.py): a hidden table is an unknown one here, a hidden column is not listed.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from tools.registry import tool
from tools.sql.database import Database
from tools.sql.introspect import ColumnInfo, TableInfo, quote_identifier

_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!\bvs)\.\s")


def brief(text: str, limit: int) -> str:
    """The first sentence, cut to `limit` characters: prompt tokens are the main cost on a CPU."""
    first = _SENTENCE_END.split(text, maxsplit=1)[0].strip().rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


class DescribeSchemaArgs(BaseModel):
    tables: list[str] | None = Field(None, description="Table names to describe; all tables when omitted.")
    with_comments: bool = Field(True, description="Include table and column descriptions.")
    detail: Literal["full", "compact"] = Field(
        "full",
        description="full: every description and sample value; compact: tables in name order, the first "
        "sentence of each description, one sample, each join key described once (a prompt's text).",
    )
    columns: dict[str, list[str]] | None = Field(
        None, description="Only these columns of the named tables (other tables keep all their columns)."
    )
    described: list[str] = Field(
        default_factory=list,
        description="Tables the reader already has: not described again, but their join paths to the "
        "described tables are listed.",
    )


class SchemaDescription(BaseModel):
    tables: list[str]
    text: str = Field(
        description="Compact DDL-like text for a prompt, with the join paths between the tables."
    )
    unknown: list[str] = Field(default_factory=list)


def _full_line(col: ColumnInfo, with_comments: bool) -> str:
    line = f"  {quote_identifier(col.name)} {col.type}"
    if with_comments and col.comment:
        line += f" -- {col.comment}"
    if col.samples and with_comments:
        line += f" (e.g. {', '.join(repr(s) for s in col.samples)})"
    return line


def _compact_line(col: ColumnInfo, describe: bool) -> str:
    line = f"  {quote_identifier(col.name)} {col.type}"
    if describe:
        note = brief(col.comment, 60)
        sample = f"e.g. {col.samples[0]!r}" if col.samples and "e.g" not in note else ""
        if note or sample:
            line += " -- " + " ".join(part for part in (note, sample) if part)
    return line


def _table_line(table: TableInfo, args: DescribeSchemaArgs) -> str:
    if not (args.with_comments and table.comment):
        return f"TABLE {table.name}"
    comment = brief(table.comment, 120) if args.detail == "compact" else table.comment
    return f"TABLE {table.name} -- {comment}"


def _fewest_keys_to_described(joins: list, names: set[str], described: set[str], keep: int = 2) -> list:
    """Joins among the new tables, and for each new table its `keep` simplest joins (fewest key columns)
    to tables already described: one to the names table and one to the team-season usually, not one
    per fact table sharing player, team, year and league (a dozen lines the model rarely needs)."""
    inner = [j for j in joins if j.left in names and j.right in names]
    outward = []
    for name in sorted(names):
        mine = [j for j in joins if name in (j.left, j.right) and ({j.left, j.right} - {name}) <= described]
        outward += sorted(mine, key=lambda j: (len(j.on), j.sql()))[:keep]
    return [j for j in joins if j in inner or j in outward]


@tool(name="describe_schema")
def describe_schema(db: Database, args: DescribeSchemaArgs) -> SchemaDescription:
    """Describe database tables: columns with types, descriptions and sample values, and how they join."""
    schema = db.schema
    wanted = args.tables or [t.name for t in schema.tables]
    found = [t for name in wanted if (t := schema.table(name)) is not None]
    unknown = [name for name in wanted if schema.table(name) is None]
    compact = args.detail == "compact"
    if compact:
        # A stable order (by name) lets llama.cpp reuse the cached prompt prefix across questions.
        found.sort(key=lambda t: t.name)
    names = {t.name for t in found}
    joins = [j for j in schema.joins_between(names | set(args.described)) if {j.left, j.right} & names]
    if compact and args.described:
        joins = _fewest_keys_to_described(joins, names, set(args.described))
    # Compact: a join key means the same thing in every table, so describe it once, name it elsewhere.
    keys = {a.lower() for j in joins for pair in j.on for a in pair} if compact else set()
    described_keys: set[str] = set()
    selected = {name.lower(): {c.lower() for c in cols} for name, cols in (args.columns or {}).items()}
    blocks = []
    for table in found:
        keep = selected.get(table.name.lower())
        lines = [_table_line(table, args)]
        for col in table.columns:
            low = col.name.lower()
            if keep is not None and low not in keep:
                continue
            if compact:
                lines.append(_compact_line(col, args.with_comments and low not in described_keys))
                if low in keys:
                    described_keys.add(low)
            else:
                lines.append(_full_line(col, args.with_comments))
        blocks.append("\n".join(lines))
    if joins:
        blocks.append("JOINS\n" + "\n".join(f"  {j.sql()}" for j in joins))
    return SchemaDescription(tables=[t.name for t in found], text="\n".join(blocks), unknown=unknown)
