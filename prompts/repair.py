"""Repair: write the query again, told what went wrong with the first one.

The repair prompt is generate's prompt with the error after the question: the same instruction,
schema, examples and value hints in the same order, so the model's prompt cache serves everything up
to the question and a repair reads only the failure (~100 tokens instead of the whole schema again).
It does not show the failed query: shown it, the 1.5B model wrote it back unchanged in 37 of 37
repairs on the golden test and dev splits (2026-12-01); told only the error ("Managers has no
column WSWin"), it writes a new query. A compiled repair module (`sqlagent optimize --module
repair`) gets its own instruction and loses the prompt sharing, not its correctness.
"""

from __future__ import annotations

from collections.abc import Sequence

import dspy

from prompts.generate import Generate, sql_signature
from prompts.retrieve import Example
from prompts.sql_text import extract_sql
from tools.sql.entities import EntityMapping

FAILURE = """{question}

A first query for this question failed with: {error}
Write a query that avoids that mistake."""


def failure_text(question: str, error: str) -> str:
    """The question field of a repair: the question as generate read it, then what went wrong."""
    return FAILURE.format(question=question, error=error.strip())


class Repair(dspy.Module):
    def __init__(self, dialect: str = "DuckDB") -> None:
        super().__init__()
        self.repair = dspy.Predict(sql_signature(dialect))

    @staticmethod
    def inputs(
        schema: str,
        examples: Sequence[Example],
        mappings: Sequence[EntityMapping],
        question: str,
        error: str,
        hint: str = "",
    ) -> dict[str, str]:
        """Generate's inputs for the same question, plus the error (and where the column really is)."""
        return {
            **Generate.inputs(schema, examples, mappings, question),
            "error": f"{error}\n{hint}" if hint else error,
        }

    def forward(
        self, db_schema: str, examples: str, value_hints: str, question: str, error: str
    ) -> dspy.Prediction:
        pred = self.repair(
            db_schema=db_schema,
            examples=examples,
            value_hints=value_hints,
            question=failure_text(question, error),
        )
        return dspy.Prediction(sql=extract_sql(pred.sql))
