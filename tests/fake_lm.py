"""A deterministic fake LM for unit tests.

It answers DSPy's ChatAdapter prompts: it reads the output field names from the system message and
the input fields from the last user message, then asks a handler for the outputs. Handlers are plain
functions keyed by the first output field (`sql`, `mentions`, `answer`, `standalone_question`), so a
test states exactly what "the model" says at every step. Token usage is the prompt length / 4, so
per-node token accounting is testable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

Handler = Callable[[dict[str, str]], dict[str, Any]]
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", re.DOTALL)


def _outputs_of(system: str) -> list[str]:
    part = system.split("Your output fields are:", 1)[-1].split("All interactions will be structured", 1)[0]
    return re.findall(r"\d+\. `(\w+)`", part)


class ScriptedEngine:
    def __init__(self, handlers: dict[str, Handler]):
        self.handlers = handlers
        self.calls: list[tuple[str, dict[str, str]]] = []

    def complete(self, request):
        system = (
            request.system
            if isinstance(request.system, str)
            else "".join(p.text for p in request.system or ())
        )
        # A final assistant message is a prefill (prompts/adapter.py): continue it, as llama.cpp does.
        prefill = request.messages[-1].text or "" if request.messages[-1].role == "assistant" else ""
        asked = request.messages[-2] if prefill else request.messages[-1]
        user = (asked.text or "").split("Respond with the corresponding output fields", 1)[0]
        outputs = _outputs_of(system)
        inputs = {k: v.strip() for k, v in _FIELD.findall(user)}
        key = outputs[0] if outputs else "?"
        self.calls.append((key, inputs))
        if key not in self.handlers:
            raise RuntimeError(f"FakeLM has no handler for output field {key!r}")
        values = self.handlers[key](inputs)
        text = (
            "\n\n".join(
                f"[[ ## {name} ## ]]\n{json.dumps(values[name]) if not isinstance(values[name], str) else values[name]}"
                for name in outputs
            )
            + "\n\n[[ ## completed ## ]]"
        )
        if prefill:
            assert text.startswith(prefill), (prefill, text)
            text = text[len(prefill) :]
            for stop in request.config.stop or ():  # the server cuts the reply where a stop string starts
                text = text.split(stop, 1)[0]
        tokens = (len(system) + len(user)) // 4
        return Response(
            id=None,
            model="fake",
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(
                input_tokens=tokens, output_tokens=len(text) // 4, total_tokens=tokens + len(text) // 4
            ),
        )

    def close(self):
        pass


def fake_lm(handlers: dict[str, Handler]) -> tuple[dspy.LM, ScriptedEngine]:
    engine = ScriptedEngine(handlers)
    return dspy.LM("fake/scripted", engine=engine, cache=False), engine


def default_handlers(
    sql: str | Callable[[dict[str, str]], str], mentions: list[str] | None = None
) -> dict[str, Handler]:
    """The usual script: no follow-up rewriting, given mentions, given SQL, an answer echoing the rows,
    an explanation naming the tables of the schema it was shown."""
    return {
        "standalone_question": lambda i: {"standalone_question": i["follow_up"]},
        "mentions": lambda i: {"mentions": mentions or []},
        "sql": lambda i: {"sql": sql(i) if callable(sql) else sql},
        "answer": lambda i: {
            "answer": "Answer: " + i["rows"].splitlines()[1] if "\n" in i["rows"] else "No data."
        },
        "explanation": lambda i: {"explanation": explain_tables(i["db_schema"])},
    }


def explain_tables(schema: str) -> str:
    tables = re.findall(r"^TABLE (\w+)", schema, re.MULTILINE)
    return f"It reads the {' and '.join(tables)} tables." if tables else ""
