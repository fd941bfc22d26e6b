"""Tool-sprawl lint: a registry stays small, typed, described, and free of overlapping tools."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from pydantic import BaseModel

from tools.registry import Tool, ToolRegistry

NAME_SIMILARITY = 0.75
DESCRIPTION_SIMILARITY = 0.6
ARGUMENT_OVERLAP = 0.8
_STOP = {
    "a",
    "an",
    "the",
    "of",
    "to",
    "and",
    "or",
    "for",
    "in",
    "on",
    "with",
    "by",
    "from",
    "one",
    "it",
    "its",
}


class LintProblem(BaseModel):
    rule: str
    tools: list[str]
    message: str


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def _fields(tool: Tool) -> set[str]:
    return set(tool.args_model.model_fields) if tool.args_model else set()


def lint(registry: ToolRegistry, budget: int) -> list[LintProblem]:
    tools = list(registry)
    problems: list[LintProblem] = []
    if len(tools) > budget:
        problems.append(LintProblem(
            rule="budget", tools=[t.name for t in tools],
            message=f"{len(tools)} tools exceed the budget of {budget}: retire or merge one before adding another.",
        ))  # fmt: skip
    for t in tools:
        if len(t.description.split()) < 4:
            problems.append(
                LintProblem(
                    rule="description",
                    tools=[t.name],
                    message=f"{t.name}: needs a one-sentence description (its docstring).",
                )
            )
        if t.args_model is None or t.result_model is None:
            problems.append(
                LintProblem(
                    rule="types",
                    tools=[t.name],
                    message=f"{t.name}: arguments and result must be pydantic models.",
                )
            )
    for i, a in enumerate(tools):
        for b in tools[i + 1 :]:
            pair = [a.name, b.name]
            name_sim = SequenceMatcher(None, a.name, b.name).ratio()
            if name_sim >= NAME_SIMILARITY:
                problems.append(
                    LintProblem(
                        rule="overlap-name",
                        tools=pair,
                        message=f"{a.name} and {b.name} have similar names ({name_sim:.2f}).",
                    )
                )
            desc_sim = _jaccard(_words(a.description), _words(b.description))
            if desc_sim >= DESCRIPTION_SIMILARITY:
                problems.append(
                    LintProblem(
                        rule="overlap-description",
                        tools=pair,
                        message=f"{a.name} and {b.name} describe the same job ({desc_sim:.2f}).",
                    )
                )
            fa, fb = _fields(a), _fields(b)
            arg_sim = _jaccard(fa, fb)
            if fa and fb and arg_sim >= ARGUMENT_OVERLAP:
                problems.append(
                    LintProblem(
                        rule="overlap-arguments",
                        tools=pair,
                        message=f"{a.name} and {b.name} take the same arguments {sorted(fa & fb)}.",
                    )
                )
    return problems
