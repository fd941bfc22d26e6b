"""Tool: describe tables of the database (columns, types, comments, sample values, join paths)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from tools.registry import tool
from tools.sql.database import Database
from tools.sql.introspect import quote_identifier

_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!\bvs)\.\s")


def brief(text: str, limit: int) -> str:
    """The first sentence, cut to `limit` characters: prompt tokens are the main cost on a CPU."""
    first = _SENTENCE_END.split(text, maxsplit=1)[0].strip().rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


class DescribeSchemaArgs(BaseModel):
    tables: list[str] | None = Field(None, description="Table names to describe; all tables when omitted.")
    with_comments: bool = Field(True, description="Include table and column descriptions.")


class SchemaDescription(BaseModel):
    tables: list[str]
    text: str = Field(description="Compact DDL-like text for a prompt, with the join paths between the tables.")
    unknown: list[str] = Field(default_factory=list)


@tool(name="describe_schema")
def describe_schema(db: Database, args: DescribeSchemaArgs) -> SchemaDescription:
    """Describe database tables: columns with types, descriptions and sample values, and how they join."""
    schema = db.schema
    wanted = args.tables or [t.name for t in schema.tables]
    found = [t for name in wanted if (t := schema.table(name)) is not None]
    unknown = [name for name in wanted if schema.table(name) is None]
    denied = {c.lower() for c in db.role.denied_columns.get("*", [])}
    blocks = []
    for table in found:
        table_denied = denied | {c.lower() for c in db.role.denied_columns.get(table.name, [])}
        lines = [f"TABLE {table.name} -- {table.comment}" if args.with_comments and table.comment else f"TABLE {table.name}"]
        for col in table.columns:
            if col.name.lower() in table_denied:
                continue
            line = f"  {quote_identifier(col.name)} {col.type}"
            if args.with_comments and col.comment:
                line += f" -- {col.comment}"
            if col.samples and args.with_comments:
                line += f" (e.g. {', '.join(repr(s) for s in col.samples)})"
            lines.append(line)
        blocks.append("\n".join(lines))
    joins = schema.joins_between({t.name for t in found})
    if joins:
        blocks.append("JOINS\n" + "\n".join(f"  {j.sql()}" for j in joins))
    return SchemaDescription(tables=[t.name for t in found], text="\n".join(blocks), unknown=unknown)
