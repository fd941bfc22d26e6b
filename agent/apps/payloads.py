"""The API's request bodies and responses, and what a client is told when a body is wrong: one line.

A validation error is `{"detail": "The corrected_sql contains a NUL byte (at character 9)."}`, not
pydantic's list of dicts with documentation URLs; the web page shows `detail` as it is.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from agent.text_check import text_problem
from tools.run_sql import MAX_SQL_CHARS

MAX_QUESTION = 20_000  # transport bound; the agent's own limit (limits.max_question_chars) answers below it
THREAD_PATTERN = r"^[A-Za-z0-9_.:-]+$"
BAD_TEXT = "is not usable text"  # what _text raises; _one puts text_problem's sentence in its place
BAD_BODY = 'The request body is not valid JSON in UTF-8: send a JSON object, e.g. {"question": "..."}.'


def _text(value: str) -> str:
    """Refuse what no entry point accepts (agent/text_check.py); `_one` says why, naming the field."""
    if text_problem(value, "The text"):
        raise ValueError(BAD_TEXT)
    return value


Text = Annotated[str, AfterValidator(_text)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskIn(Payload):
    question: str = Field(max_length=MAX_QUESTION)  # checked by question_problem, as in the stream's query
    thread_id: str | None = Field(None, min_length=1, max_length=200, pattern=THREAD_PATTERN)
    db: str | None = Field(None, min_length=1, max_length=1000)
    role: str | None = Field(None, min_length=1, max_length=100)


class ExplainIn(Payload):
    sql: Text = Field(min_length=1, max_length=MAX_SQL_CHARS)
    question: str | None = Field(None, max_length=MAX_QUESTION)  # checked by question_problem, as ask's
    trace_id: str | None = Field(
        None, min_length=1, max_length=200
    )  # the turn explained, tagged on its trace
    db: str | None = Field(None, min_length=1, max_length=1000)
    role: str | None = Field(None, min_length=1, max_length=100)


class Rubric(Payload):
    label: Literal["correct", "partially", "wrong"]
    reason: Text | None = Field(None, max_length=2000)


class FeedbackIn(Payload):
    trace_id: str = Field(min_length=1, max_length=200)
    value: StrictBool
    comment: Text | None = Field(None, max_length=4000)
    corrected_sql: Text | None = Field(None, max_length=20_000)
    rubric: Rubric | None = None
    # A reviewer's label for an LLM judge, by judge name (GET /api/judges lists them): {"grounding": "fail"}.
    labels: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=64)]] | None = Field(
        None, max_length=20
    )
    # Ignored: feedback is recorded under the caller (the token's user). Accepted so that an older
    # client that still sends a name is not refused.
    user: str | None = Field(None, max_length=100)


class GoldenIn(Payload):
    trace_id: str = Field(min_length=1, max_length=200)


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate from a malformed question cannot break encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, default=str, separators=(",", ":")
        ).encode()


def _one(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(loc)
    kind, msg = error.get("type", ""), str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "json_invalid":
        return BAD_BODY
    if kind in ("model_attributes_type", "dict_type") and not field:
        return "The request body must be a JSON object."
    if kind == "missing":
        return f"{field or 'the request body'} is required."
    if kind == "extra_forbidden":
        return f"{field} is not a field of this request."
    if kind == "string_unicode" or msg == BAD_TEXT:  # pydantic's check or ours (_text): one wording
        what, value = f"The {field or 'request'}", error.get("input")
        return (isinstance(value, str) and text_problem(value, what)) or f"{what} is not valid UTF-8 text."
    return f"{field}: {msg}" if field else msg


def validation_message(errors: list[dict[str, Any]]) -> str:
    """All problems on one line, bounded (a body with a thousand bad fields is still one line)."""
    text = "; ".join(dict.fromkeys(_one(e) for e in errors)) or "The request is invalid."
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:499] + "…"
