"""Repair reuses generate's prompt: the model's prompt cache must serve all of it up to the failure."""

from __future__ import annotations

import dspy

from prompts.generate import Generate, GenerateSQL
from prompts.repair import Repair, failure_text
from prompts.retrieve import Example
from tools.sql.entities import EntityMapping

SCHEMA = "TABLE Teams -- one row per team-season\n  teamID VARCHAR\n  yearID INTEGER\n  W INTEGER -- Wins"
EXAMPLES = [
    Example(
        id="e1",
        question="How many games did Boston win in 2004?",
        sql="SELECT W FROM Teams WHERE teamID = 'BOS' AND yearID = 2004",
    )
]
YANKEES = EntityMapping(
    mention="Yankees",
    table="Teams",
    column="teamID",
    value="NYA",
    matched="New York Yankees",
    matched_column="name",
    score=1.0,
    method="exact",
)
QUESTION = "How many games did the Yankees win in 1998?"


def messages(predictor: dspy.Predict, **inputs: str) -> list[dict]:
    return dspy.ChatAdapter().format(predictor.signature, demos=[], inputs=inputs)


def test_a_repair_prompt_is_the_generate_prompt_with_the_failure_after_the_question():
    generate, repair = Generate(), Repair()
    gen_inputs = Generate.inputs(SCHEMA, EXAMPLES, [YANKEES], QUESTION)
    rep_inputs = Repair.inputs(
        SCHEMA,
        EXAMPLES,
        [YANKEES],
        QUESTION,
        'Unknown column "wins"',
        hint="W is a column of: Teams.W (Wins)",
    )
    gen = messages(generate.generate, **gen_inputs)
    question = failure_text(rep_inputs["question"], rep_inputs["error"])
    rep = messages(repair.repair, **{**{k: rep_inputs[k] for k in gen_inputs}, "question": question})

    assert gen[0] == rep[0]  # the system message: instruction and fields, byte for byte
    head = gen[1]["content"].split("Respond with the corresponding output fields", 1)[0].rstrip()
    assert rep[1]["content"].startswith(head)  # schema, examples, hints and the question itself
    tail = rep[1]["content"][len(head) :]
    assert 'Unknown column "wins"' in tail and "Teams.W (Wins)" in tail
    assert "Teams.teamID = 'NYA'" in rep[1]["content"]  # the value hints reach the repair too


def test_repair_module_reads_the_failure_from_its_own_fields():
    lm = dspy.utils.DummyLM([{"sql": "SELECT W FROM Teams WHERE teamID = 'NYA' AND yearID = 1998"}])
    inputs = Repair.inputs(SCHEMA, EXAMPLES, [YANKEES], QUESTION, "Unknown column")
    with dspy.context(lm=lm):
        pred = Repair()(**inputs)
    assert pred.sql.startswith("SELECT W FROM Teams")
    sent = lm.history[-1]["messages"][-1]["content"]
    assert "A first query for this question failed with: Unknown column\nWrite a query" in sent
    # Shown its failed query, the small model writes it back: the repair prompt does not show it.
    assert "SELECT wins" not in sent


def test_repair_and_generate_share_one_signature_until_one_is_compiled():
    assert Repair().repair.signature.instructions == GenerateSQL.instructions
