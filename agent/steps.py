"""The steps of a question, in the order it meets them: the one table that says which step calls
which DSPy module. A step with a module is an LM step: it runs under its own LM (`lm.nodes.<name>`),
its tokens are counted, its module can be optimized (`sqlagent optimize --module <name>`) and
loaded from prompts/compiled. Adding an LM step: its module in prompts/, its node in agent/nodes/,
one row here, and its edges in agent/graph.py. A step run on request after a turn, outside the
graph (`ON_REQUEST`), is an LM step all the same: its own LM, prompt, optimization and trace span.
"""

from __future__ import annotations

from dataclasses import dataclass

import dspy

from prompts.answer import Answer
from prompts.explain import Explain
from prompts.generate import Generate
from prompts.repair import Repair
from prompts.rewrite import Rewrite


@dataclass(frozen=True)
class Step:
    name: str
    module: type[dspy.Module] | None = None  # None: no LM call (rules, tools, the database)
    summary: str = ""


STEPS: tuple[Step, ...] = (
    Step("guard", summary="refuses injection, writes and out-of-database requests"),
    Step("rewrite", Rewrite, "standalone question; mentions resolved to database values"),
    Step("clarify", summary="asks which entity was meant (interrupt) and reads the reply"),
    Step("retrieve", summary="linked schema, value hints, worked examples"),
    Step("generate", Generate, "one SQL query"),
    Step("safety", summary="the static SQL policy"),
    Step("approve", summary="a person approves the SQL before it runs (limits.approve_sql; interrupt)"),
    Step("execute", summary="the read-only sandbox"),
    Step("repair", Repair, "a failed query fixed from its error"),
    Step("answer", Answer, "a short answer grounded in the rows"),
    Step("finish", summary="a readable message for a turn without rows"),
)
STEP_NAMES = tuple(s.name for s in STEPS)  # the graph's nodes
# Not nodes: run only when asked, after a turn (agent/explain.py), so an unasked one costs nothing.
ON_REQUEST: tuple[Step, ...] = (Step("explain", Explain, "the query in plain words (--explain)"),)
LM_STEPS: dict[str, type[dspy.Module]] = {
    s.name: s.module for s in (*STEPS, *ON_REQUEST) if s.module is not None
}


def step(name: str) -> Step:
    for s in STEPS:
        if s.name == name:
            return s
    raise KeyError(f"no step named {name!r}; the steps are {', '.join(STEP_NAMES)} (agent/steps.py)")


# The modules that write SQL: they are told the engine's dialect (prompts/generate.py).
SQL_STEPS = ("generate", "repair")


def fresh_modules(dialect: str = "DuckDB") -> dict[str, dspy.Module]:
    """One new, uncompiled instance of every LM step's module; `dialect` is the engine's label."""
    return {name: cls(dialect) if name in SQL_STEPS else cls() for name, cls in LM_STEPS.items()}
