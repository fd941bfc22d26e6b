"""SQL written into a question: parse it with sqlglot and say whether it would do more than read.

The guard (tools/sql/guard.py) reads English with patterns; SQL it reads with the parser, so that
`COPY Teams TO 'x.csv'`, `ATTACH 'x.duckdb' AS x`, `PRAGMA ...` or `SELECT getenv('HOME')` are
recognised by what they are (the node types and function rules of tools/sql/policy.py), not by a
word that an ordinary question also uses ("copy", "attach", "load").

English parses too: sqlglot reads "delete the ties" as a DELETE and "copy the standings into a
table" as a COPY, and falls back to a raw `Command` for "drop the pitchers". So a span counts as SQL
only when it is written as SQL: fenced (```sql, `...`), or starting with an upper-case statement
keyword, or holding a string literal or a `;` (a path, a stacked statement). `Command` fallbacks are
ignored: the guard's own patterns judge those words.
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp

from tools.sql.policy import FORBIDDEN_NODES, forbidden_function_reason

__all__ = ["sql_refusal"]

_KEYWORDS = (
    "select|with|insert|update|delete|drop|create|alter|copy|attach|detach|install|load|pragma|set|"
    "grant|revoke|truncate|export|call|merge|vacuum|checkpoint|use|summarize|describe|show|kill"
)
_START = re.compile(rf"(?<![\w'\"])(?:{_KEYWORDS})\b", re.IGNORECASE)
_FENCE = re.compile(r"```(?:sql)?\s*(.*?)(?:```|$)|`([^`]+)`", re.IGNORECASE | re.DOTALL)

# What a statement node asks for, in the guard's codes.
# (by name: not every sqlglot version has every node type, as in tools/sql/policy.py).
_OUTSIDE = tuple(
    getattr(exp, n) for n in ("Copy", "Export", "Attach", "Install", "Load", "LoadData", "Pragma", "Show",
                              "Describe", "Summarize", "Use")
    if isinstance(getattr(exp, n, None), type)
)  # fmt: skip
_IGNORED = (exp.Command,)  # sqlglot's fallback for text it cannot read as a statement: English, mostly


def _written_as_sql(span: str, fenced: bool) -> bool:
    keyword = span.split(None, 1)[0] if span.strip() else ""
    return fenced or (keyword.isupper() and len(keyword) > 2) or "'" in span or ";" in span


def _candidates(text: str) -> list[tuple[str, bool]]:
    spans = [(m.group(1) or m.group(2) or "", True) for m in _FENCE.finditer(text)]
    unfenced = _FENCE.sub(" ", text)
    for m in _START.finditer(unfenced):
        rest = unfenced[m.start() :]
        spans.append((rest, False))
        line = rest.split("\n", 1)[0]
        if line != rest:
            spans.append((line, False))
    return [(s.strip(), fenced) for s, fenced in spans if s.strip() and _written_as_sql(s.strip(), fenced)]


def _parse(span: str, dialect: str) -> list[exp.Expression]:
    logging.getLogger("sqlglot").disabled = True  # its fallback warnings are noise here
    try:
        return [s for s in sqlglot.parse(span, dialect=dialect) if s is not None]
    except Exception:  # not SQL after all (ParseError, TokenError): nothing to judge
        return []
    finally:
        logging.getLogger("sqlglot").disabled = False


def sql_refusal(text: str, dialect: str = "duckdb") -> tuple[str, str] | None:
    """(code, what was found) for the first SQL span in `text` that writes or reaches outside the
    database, or None. `text` is the question as typed (case kept: upper-case keywords mark SQL)."""
    for span, _ in _candidates(text):
        for statement in _parse(span, dialect):
            for node in statement.walk():
                if isinstance(node, exp.Func):
                    name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
                    if forbidden_function_reason(str(name)):
                        return "outside_database", f"{str(name).lower()}()"
                if isinstance(node, _IGNORED) or not isinstance(node, FORBIDDEN_NODES):
                    continue
                code = "outside_database" if isinstance(node, _OUTSIDE) else "write_request"
                return code, f"{node.key.upper()} statement"
    return None
