"""Whether a question can be asked at all: one rule for the service, the CLI and the HTTP API."""

from __future__ import annotations

from agent.text_check import text_problem


def question_problem(question: str | None, max_chars: int) -> str | None:
    """One sentence on why `question` cannot be asked, or None. The API checks it before a question
    is queued, so a bad one costs no place in the model's queue; the service checks it again."""
    if not question or not question.strip():
        return "The question is empty: ask something about the database."
    if len(question) > max_chars:
        return f"The question is {len(question)} characters long; the limit is {max_chars} (limits.max_question_chars)."
    return text_problem(question, "The question")
