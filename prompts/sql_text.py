"""Turning an LM's text into one SQL statement (models wrap SQL in fences and add prose)."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:sql|duckdb)?\s*(.*?)```", re.IGNORECASE | re.DOTALL)
_START = re.compile(r"\b(WITH|SELECT)\b", re.IGNORECASE)
# DSPy's end marker when a small model writes it on the SQL's own line (the adapter's line-based
# parser leaves it in the field). Only at the very end: the same text inside a string literal is data.
_END_MARKER = re.compile(r"\s*\[\[ ## completed ## \]\]\s*$")


def extract_sql(text: str) -> str:
    """The SQL inside the text: the first fenced block, else from the first WITH/SELECT on."""
    text = _END_MARKER.sub("", (text or "")).strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    elif text.startswith("```"):
        text = text.strip("`").removeprefix("sql").strip()
    start = _START.search(text)
    if start and start.start() > 0 and not re.match(r"\s*\(", text):
        text = text[start.start() :]
    return text.strip().rstrip(";").strip()
