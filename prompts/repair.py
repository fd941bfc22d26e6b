"""Repair: fix a query from the database's or the policy's error message.

The repair prompt is generate's prompt with the failed query and its error after the question: the
same instruction, schema, examples and value hints in the same order, so the model's prompt cache
serves everything up to the question and a repair reads only the failure (~100 tokens instead of
the whole schema again). A compiled repair module (`sqlagent optimize --module repair`) gets its own
instruction and loses that sharing, not its correctness.
"""

from __future__ import annotations

from collections.abc import Sequence

import dspy

from prompts.generate import Generate, GenerateSQL
from prompts.retrieve import Example
from prompts.sql_text import extract_sql
from tools.sql.entities import EntityMapping

FAILURE = """{question}

This query was tried and failed:
{failed_sql}
Error: {error}
Read the error and write a corrected query that answers the question."""


def failure_text(question: str, failed_sql: str, error: str) -> str:
    """The question field of a repair: the question as generate read it, then what went wrong."""
    return FAILURE.format(question=question, failed_sql=failed_sql.strip(), error=error.strip())


class Repair(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.repair = dspy.Predict(GenerateSQL)

    @staticmethod
    def inputs(
        schema: str, examples: Sequence[Example], mappings: Sequence[EntityMapping], question: str,
        failed_sql: str, error: str, hint: str = "",
    ) -> dict[str, str]:
        """Generate's inputs for the same question, plus the failure."""
        return {**Generate.inputs(schema, examples, mappings, question), "failed_sql": failed_sql,
                "error": f"{error}\n{hint}" if hint else error}

    def forward(
        self, db_schema: str, examples: str, value_hints: str, question: str, failed_sql: str, error: str
    ) -> dspy.Prediction:
        pred = self.repair(db_schema=db_schema, examples=examples, value_hints=value_hints,
                           question=failure_text(question, failed_sql, error))
        return dspy.Prediction(sql=extract_sql(pred.sql))
