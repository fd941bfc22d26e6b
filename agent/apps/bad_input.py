"""Say what is wrong with text a user typed, in one line: for the CLI, and for the HTTP API to reuse.

Two entry points:
  text_problem(value, what, kind)  - the checks every piece of typed text gets before any work:
                                     valid UTF-8, no NUL byte; a name (thread id, role, trace id, model
                                     name) is also non-empty, short and free of control characters.
  validation_message(exc, what)    - a pydantic ValidationError (a tool's argument model, a request
                                     body) as one sentence, without the input dump and the docs URL.

Undecodable bytes arrive as lone surrogates (Python decodes argv with surrogateescape: byte 0xFF
becomes U+DCFF), so the message can name the byte the user actually typed.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from pydantic import ValidationError

__all__ = ["MAX_NAME_CHARS", "TextKind", "arguments_problem", "text_problem", "validation_message"]

MAX_NAME_CHARS = 200
# text: a question or SQL (whitespace and newlines are content); name: an identifier-like value;
# path: a file name (any bytes but NUL are legal on POSIX, so a non-UTF-8 path is left to the OS).
TextKind = Literal["text", "name", "path"]


def _at(i: int) -> str:
    return f"at character {i + 1}"


def _encoding_problem(value: str) -> str | None:
    for i, ch in enumerate(value):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte itself
            return f"byte 0x{code - 0xDC00:02X} {_at(i)}"
        if 0xD800 <= code <= 0xDFFF:
            return f"a lone surrogate U+{code:04X} {_at(i)}"
        if ch == "\ufffd":  # what a lossy decoder leaves behind: the original bytes are gone
            return f"U+FFFD, the mark of a failed decoding, {_at(i)}"
    return None


def text_problem(value: str, what: str, kind: TextKind = "text") -> str | None:
    """None when `value` is usable text, else one sentence starting with `what` ("The SQL", "--thread")."""
    if kind != "path":
        bad = _encoding_problem(value)
        if bad:
            return f"{what} is not valid UTF-8 text ({bad})."
    nul = value.find("\x00")
    if nul >= 0:
        return f"{what} contains a NUL byte ({_at(nul)})."
    if kind != "name":
        return None
    if not value.strip():
        return f"{what} is empty."
    if len(value) > MAX_NAME_CHARS:
        return f"{what} is {len(value)} characters long; the limit is {MAX_NAME_CHARS}."
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Cf"):
            return f"{what} contains a control character (U+{ord(ch):04X} {_at(i)})."
    return None


def arguments_problem(arguments: object, what: str, path: str = "") -> str | None:
    """The first string anywhere in a tool's JSON arguments that `text_problem` refuses, named by its
    field ("The run_sql argument 'sql' contains a NUL byte"), or None. A model's argument types are
    too loose to say it (pydantic lets U+FFFD and NUL through), and an MCP client can send anything."""
    if isinstance(arguments, str):
        return text_problem(arguments, f"{what} argument {path!r}" if path else what)
    if isinstance(arguments, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in arguments.items())
    elif isinstance(arguments, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(arguments))
    else:
        return None
    for where, value in items:
        if problem := arguments_problem(value, what, where):
            return problem
    return None


def validation_message(exc: ValidationError, what: str) -> str:
    """The first problem of a ValidationError as one sentence about `what` (+ how many more)."""
    errors = exc.errors(include_url=False)
    if not errors:
        return f"{what} is not valid."
    first = errors[0]
    kind, ctx, value = first.get("type", ""), first.get("ctx") or {}, first.get("input")
    field = ".".join(str(part) for part in first.get("loc", ()))
    if kind == "string_unicode" and isinstance(value, str):
        sentence = text_problem(value, what) or f"{what} is not valid UTF-8 text."
    elif kind == "string_too_short" and ctx.get("min_length") == 1:
        sentence = f"{what} is empty."
    elif kind == "string_too_long" and isinstance(value, str):
        sentence = f"{what} is {len(value)} characters long; the limit is {ctx.get('max_length')}."
    else:
        msg = str(first.get("msg", "is not valid")).rstrip(".")
        sentence = f"{what}{f' ({field})' if field else ''}: {msg[:1].lower()}{msg[1:]}."
    more = len(errors) - 1
    return sentence if not more else f"{sentence[:-1]} (and {more} more problem{'s' if more > 1 else ''})."
