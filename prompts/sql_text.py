"""Turning an LM's text into one SQL statement (models wrap SQL in fences and add prose)."""

from __future__ import annotations

import re
from functools import cache

from sqlglot.dialects import Dialect

_FENCE = re.compile(r"```(?:sql|duckdb)?\s*(.*?)```", re.IGNORECASE | re.DOTALL)
_START = re.compile(r"\b(WITH|SELECT)\b", re.IGNORECASE)
# DSPy's end marker when a small model writes it on the SQL's own line (the adapter's line-based
# parser leaves it in the field). Only at the very end: the same text inside a string literal is data.
_END_MARKER = re.compile(r"\s*\[\[ ## completed ## \]\]\s*$")


# Text before the first WITH/SELECT is prose to cut ("Here is the query: SELECT ...") unless it
# starts a statement of its own: `INSERT OVERWRITE DIRECTORY '...' SELECT ...` or
# `COPY (SELECT ...) TO ...` must reach the policy whole, not run as the SELECT inside it.
_DIALECTS = ("duckdb", "postgres", "spark")


@cache
def _starts_a_statement(word: str) -> bool:
    for name in _DIALECTS:
        dialect = Dialect.get_or_raise(name)
        try:
            tokens = dialect.tokenize(word)
        except Exception:  # noqa: BLE001 - sqlglot's TokenError: not a SQL word, so prose
            continue
        statement_starts = dialect.parser_class.STATEMENT_PARSERS.keys() | dialect.tokenizer_class.COMMANDS
        if tokens and tokens[0].token_type in statement_starts:
            return True
    return False


def _is_prose(prefix: str) -> bool:
    first = prefix.split(None, 1)[0] if prefix.strip() else ""
    return not first or not _starts_a_statement(first.upper())


def extract_sql(text: str) -> str:
    """The SQL inside the text: the first fenced block, else from the first WITH/SELECT on
    (unless what comes before it is a statement: then all of it, for the policy to judge)."""
    text = _END_MARKER.sub("", (text or "")).strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    elif text.startswith("```"):
        text = text.strip("`").removeprefix("sql").strip()
    start = _START.search(text)
    if start and start.start() > 0 and not re.match(r"\s*\(", text) and _is_prose(text[: start.start()]):
        text = text[start.start() :]
    return text.strip().rstrip(";").strip()
