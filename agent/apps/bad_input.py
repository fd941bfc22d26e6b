"""Say what is wrong with what an application was given, in one line: for the CLI and the MCP server.

Two entry points, both built on the runtime's one text check (agent/text_check.py):
  arguments_problem(arguments, what) - the first string anywhere in a tool's JSON arguments that
                                       `text_problem` refuses, named by its field.
  validation_message(exc, what)      - a pydantic ValidationError (a tool's argument model) as one
                                       sentence, without the input dump and the docs URL.
"""

from __future__ import annotations

from pydantic import ValidationError

from agent.text_check import text_problem

__all__ = ["arguments_problem", "validation_message"]


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
