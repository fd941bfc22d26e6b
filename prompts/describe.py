"""Describe: draft a table description and one short description per column, for a human to review.

Used by `sqlagent init` (agent/apps/init_db.py), one call per table (a wide table is split into calls of
at most `max_columns` columns). The prompt is kept small on purpose: the embedded model reads about
50 prompt tokens a second on a laptop CPU, so samples are cut short and only the columns that still
need a description are sent. A reply that cannot be parsed never fails the caller: the descriptions
stay empty and `notes` says why.
"""

from __future__ import annotations

import re

import dspy
from pydantic import BaseModel, Field


class ColumnFacts(BaseModel):
    name: str
    type: str
    samples: list[str] = Field(default_factory=list)  # a few values, or a "min..max" range


class DescribeTable(dspy.Signature):
    """Describe a database table for an analyst who writes SQL against it. From the table name, the
    column names, types and sample values, write one sentence saying what a row of the table is, and
    for every listed column a short phrase (at most 12 words) saying what it holds, with its unit or
    code meaning when the samples show it. Do not invent facts the names and samples do not support."""

    table: str = dspy.InputField()
    columns: str = dspy.InputField(desc="one column per line: name TYPE e.g. sample values")
    table_description: str = dspy.OutputField(desc="one sentence: what one row is")
    column_descriptions: dict[str, str] = dspy.OutputField(desc="column name -> short description")


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_FILLER = {"a", "an", "the", "of", "column", "field", "value", "values", "table", "row", "id", "type", "data"}


def informative(text: str, name: str, type_: str = "") -> bool:
    """False for a reply that only repeats the column's name or type ("BIGINT", "Player name")."""
    said = {w.lower() for w in _WORDS.findall(text)}
    given = {w.lower() for w in _WORDS.findall(f"{name} {type_}")}
    return bool(said - given - _FILLER)


def columns_text(columns: list[ColumnFacts], *, max_samples: int = 3, sample_chars: int = 24) -> str:
    lines = []
    for col in columns:
        samples = ", ".join(repr(_cut(s, sample_chars)) for s in col.samples[:max_samples])
        lines.append(f"{col.name} {col.type}" + (f" e.g. {samples}" if samples else ""))
    return "\n".join(lines)


class Describe(dspy.Module):
    def __init__(self, max_columns: int = 12, max_samples: int = 3, sample_chars: int = 24) -> None:
        super().__init__()
        self.describe = dspy.Predict(DescribeTable)
        self.max_columns = max_columns
        self.max_samples = max_samples
        self.sample_chars = sample_chars

    def forward(self, table: str, columns: list[ColumnFacts], describe_table: bool = True) -> dspy.Prediction:
        table_description = ""
        described: dict[str, str] = {}
        notes: list[str] = []
        chunks = [columns[i : i + self.max_columns] for i in range(0, len(columns), self.max_columns)] or [[]]
        for number, chunk in enumerate(chunks):
            if not chunk and not describe_table:
                continue
            try:
                pred = self.describe(
                    table=table,
                    columns=columns_text(chunk, max_samples=self.max_samples, sample_chars=self.sample_chars),
                )
            except Exception as exc:  # an unparseable reply, a server error: keep going, say why
                notes.append(f"the LM reply could not be used ({type(exc).__name__}: {_cut(exc, 160)})")
                continue
            text = pred.table_description if isinstance(pred.table_description, str) else ""
            # A reply that just lists the columns back ("contains the columns a, b, c") says nothing.
            listed = sum(1 for c in columns if c.name.lower() in text.lower())
            if number == 0 and informative(text, table) and listed < 3:
                table_description = _cut(text, 300)
            wanted = {c.name.lower(): c for c in chunk}
            replies = pred.column_descriptions if isinstance(pred.column_descriptions, dict) else {}
            for key, text in replies.items():
                col = wanted.get(str(key).strip().lower())
                if col and isinstance(text, str) and informative(text, col.name, col.type):
                    described[col.name] = _cut(text, 200)
        missing = [c.name for c in columns if c.name not in described]
        if missing and not notes:
            notes.append(f"the LM gave no usable description for {', '.join(missing[:8])}")
        return dspy.Prediction(
            table_description=table_description, column_descriptions=described, notes=notes
        )
