"""Whether typed text is usable text, said in one sentence: one rule for every entry point.

The service, explain, the CLI, the HTTP API and the MCP server all ask `text_problem`: valid UTF-8,
no NUL byte; a name (thread id, role, trace id, model name) is also non-empty, short and free of
control characters. It lives in the runtime so that the runtime's own checks (question_check,
explain) and the applications above it share it.

Undecodable bytes arrive as lone surrogates (Python decodes argv with surrogateescape: byte 0xFF
becomes U+DCFF), so the message can name the byte the user actually typed.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

__all__ = ["MAX_NAME_CHARS", "TextKind", "text_problem"]

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
        if 0xD800 <= code <= 0xDFFF:  # a JSON escape such as \ud800: no text at all
            return f"a lone surrogate U+{code:04X} {_at(i)}"
        if ch == "\ufffd":  # what a lossy decoder (a query string) leaves behind: the bytes are gone
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
