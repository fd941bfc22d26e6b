"""Trainsets: each golden item run up to a module's inputs, turned into `dspy.Example`s.

- rewrite: the question (and the previous turn of a multi-turn item); labels are expected_mappings,
  the `no-rewrite` tag and clarify items.
- generate: the agent's own rewrite (LM) and retrieve steps on each item, then `Generate.inputs`, as
  the generate node builds them: db_schema, examples, value_hints and the annotated question. These inputs are cached in a JSON
  file (out/optimize/inputs-<lm>.json) keyed by item, LM and the rewrite module's state, so re-runs
  only pay for the module being optimized.
- repair: each item's gold SQL corrupted (prompts/optimize/corrupt.py) until the agent's own path
  (policy + sandbox) rejects it; the real error message is the input.
- answer: the gold SQL's rows rendered as the answer node renders them (no LM needed).
- explain: each gold SQL as the policy checked it, with the schema text of what it reads, built by
  the agent's own `explain_inputs` (no LM needed); the metric reads the query itself.

Leakage: the worked-example bank is the golden `train` split, so a train item would find itself
among its own retrieved examples (question *and* gold SQL in the prompt). `Retrieve.excluding`
hides the item (by id and by question text) while its inputs are built.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dspy

from evals import scoring
from evals.dataset import EvalItem
from prompts.optimize.corrupt import corruptions

SPLITS = ("train", "dev", "test")
INPUT_FIELDS = {
    "rewrite": ("question", "previous_question"),
    "generate": ("db_schema", "examples", "value_hints", "question"),
    "repair": ("db_schema", "examples", "value_hints", "question", "error"),
    "answer": ("question", "columns", "rows"),
    "explain": ("question", "sql", "db_schema"),
}
CACHE_VERSION = 2  # 2: inputs come from the agent's own steps, with the mappings


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _previous(item: EvalItem) -> str | None:
    return item.turns[-1] if item.turns else None


def _gold_mentions(item: EvalItem) -> list[str] | None:
    if item.expected_status != "ok" or item.turns:
        return None
    if item.expected_mappings:
        return list(dict.fromkeys(m["mention"] for m in item.expected_mappings))
    return [] if "no-rewrite" in item.tags else None


def rewrite_examples(items: list[EvalItem]) -> list[dspy.Example]:
    out = []
    for item in items:
        if item.expected_status == "refused":
            continue
        ex = dspy.Example(
            id=item.id,
            split=item.split,
            question=item.question,
            previous_question=_previous(item),
            expected_mappings=item.expected_mappings,
            expect_clarify=item.expected_status == "clarify",
            expect_unchanged="no-rewrite" in item.tags,
            # The gold output of the `extract` step where the golden set fixes it (used only by
            # --optimizer labeled): the annotated names of a one-turn question, as written, or none
            # for a `no-rewrite` one. Other items may name things nobody annotated: no label.
            mentions=_gold_mentions(item),
        )
        out.append(ex.with_inputs(*INPUT_FIELDS["rewrite"]))
    return out


class InputCache:
    """A JSON file of pipeline inputs per item; written after every new entry (a stopped run keeps them)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, Any] = {}
        if path and path.is_file():
            data = json.loads(path.read_text())
            if data.get("version") == CACHE_VERSION:
                self.entries = data.get("entries", {})
        self.hits = self.misses = 0

    def get(self, key: str) -> Any:
        found = self.entries.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: str, value: Any) -> None:
        self.entries[key] = value
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps({"version": CACHE_VERSION, "entries": self.entries}, indent=1, default=str)
            )
            tmp.replace(self.path)


def _run(step: Any, state: Any, ctx: Any) -> Any:
    """One step of the agent, its own function, on a state (no graph, no span)."""
    update = {k: v for k, v in step.step(state, ctx).items() if k != "_detail"}
    return state.model_copy(update=update)


def pipeline_inputs(item: EvalItem, ctx: Any) -> dict[str, Any]:
    """The generate step's inputs for one item, from the agent's own rewrite and retrieve steps."""
    from agent.nodes.retrieve import retrieve
    from agent.nodes.rewrite import rewrite
    from agent.state import AgentState, Turn
    from prompts.generate import Generate

    history = [Turn(question=t, standalone_question=t) for t in item.turns]
    state = AgentState(question=item.question, history=history)
    with dspy.context(lm=ctx.lm("rewrite")):
        state = _run(rewrite, state, ctx)
    if state.status == "clarify":
        return {
            "clarify": state.pending_clarification.ambiguity.mention,
            "standalone": state.standalone_question,
        }
    with ctx.retrieve.excluding({item.id}):
        state = _run(retrieve, state, ctx)
    return {
        "standalone": state.standalone_question,
        **Generate.inputs(state.linked_schema, state.examples, state.mappings, state.standalone_question),
        "example_ids": [e.id for e in state.examples],
        "mappings": [m.model_dump() for m in state.mappings],
        "linked_tables": state.linked_tables,
    }


def inputs_key(item: EvalItem, ctx: Any, lm_name: str) -> str:
    settings = ctx.settings
    return digest(
        {
            "item": [item.id, item.question, item.turns],
            "lm": lm_name,
            "rewrite": ctx.module("rewrite").dump_state(),
            "retrieval": settings.retrieval.model_dump(),
            "db": ctx.db.url,
            "bank": [e.id for e in ctx.retrieve.examples],
        }
    )


def answerable(items: list[EvalItem]) -> list[EvalItem]:
    return [i for i in items if i.expected_status == "ok" and i.has_gold and not i.gold_db]


def collect_inputs(
    items: list[EvalItem], ctx: Any, cache: InputCache, lm_name: str, tick: Callable[[], None] | None = None
) -> dict[str, dict[str, Any]]:
    out = {}
    for item in answerable(items):
        key = inputs_key(item, ctx, lm_name)
        found = cache.get(key)
        if found is None:
            found = pipeline_inputs(item, ctx)
            cache.put(key, found)
        out[item.id] = found
        if tick:
            tick()
    return out


def generate_examples(items: list[EvalItem], inputs: dict[str, dict[str, Any]]) -> list[dspy.Example]:
    out = []
    for item in answerable(items):
        got = inputs.get(item.id)
        if not got or "clarify" in got:  # the agent would ask back: nothing for generate to do
            continue
        ex = dspy.Example(
            id=item.id,
            split=item.split,
            gold_sql=item.gold_sql,
            ordered=scoring.has_outer_order_by(item.gold_sql),
            **{k: got[k] for k in INPUT_FIELDS["generate"]},
        )
        out.append(ex.with_inputs(*INPUT_FIELDS["generate"]))
    return out


def repair_examples(
    items: list[EvalItem], inputs: dict[str, dict[str, Any]], runner: Any
) -> list[dspy.Example]:
    """One broken query per item (kinds rotate over items), kept only when it really fails."""
    out = []
    for n, item in enumerate(answerable(items)):
        got = inputs.get(item.id)
        if not got or "clarify" in got:
            continue
        for kind, broken in corruptions(item.gold_sql or "", start=n):
            _, _, error = runner.run(broken)
            if error:
                # got holds Generate.inputs for this item: Repair.inputs is those plus the error. The
                # broken query is a label (the metric refuses it back), not an input the model sees.
                inputs = {**{k: got[k] for k in INPUT_FIELDS["generate"]}, "error": error.split(": ", 1)[-1]}
                ex = dspy.Example(
                    id=f"{item.id}#{kind}",
                    split=item.split,
                    kind=kind,
                    gold_sql=item.gold_sql,
                    ordered=scoring.has_outer_order_by(item.gold_sql),
                    failed_sql=broken,
                    **inputs,
                )
                out.append(ex.with_inputs(*INPUT_FIELDS["repair"]))
                break
    return out


def answer_examples(items: list[EvalItem], runner: Any, rows_in_prompt: int) -> list[dspy.Example]:
    from prompts.answer import rows_text

    out = []
    for item in answerable(items):
        if item.turns:
            continue  # the question alone is not what the answer node sees
        columns, rows, error = runner.run(item.gold_sql)
        if error:
            continue
        ex = dspy.Example(
            id=item.id,
            split=item.split,
            question=item.question,
            columns=columns,
            rows=rows_text(columns, rows, rows_in_prompt),
        )
        out.append(ex.with_inputs(*INPUT_FIELDS["answer"]))
    return out


def explain_examples(items: list[EvalItem], ctx: Any) -> list[dspy.Example]:
    from agent.explain import explain_inputs

    out = []
    for item in answerable(items):
        decision = ctx.db.policy.check(item.gold_sql or "")
        if item.turns or not decision.allowed:  # a follow-up's question alone is not what was asked
            continue
        ex = dspy.Example(id=item.id, split=item.split, **explain_inputs(ctx, decision, item.question))
        out.append(ex.with_inputs(*INPUT_FIELDS["explain"]))
    return out


def by_split(examples: list[dspy.Example]) -> dict[str, list[dspy.Example]]:
    return {s: [e for e in examples if e.split == s] for s in SPLITS}
