"""Whether a question can be asked at all: one rule for the service, the CLI and the HTTP API."""

from __future__ import annotations


def not_utf8(text: str) -> bool:
    """A lone surrogate (an undecodable byte of argv, a JSON escape such as \\ud800) or U+FFFD, which
    is what an invalid byte in a query string decodes to."""
    return "\ufffd" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def question_problem(question: str | None, max_chars: int) -> str | None:
    """One sentence on why `question` cannot be asked, or None. The API checks it before a question
    is queued, so a bad one costs no place in the model's queue; the service checks it again."""
    if not question or not question.strip():
        return "The question is empty: ask something about the database."
    if len(question) > max_chars:
        return f"The question is {len(question)} characters long; the limit is {max_chars} (limits.max_question_chars)."
    if not_utf8(question):
        return "The question is not valid UTF-8 text."
    if "\x00" in question:
        return "The question contains a NUL byte."
    return None
