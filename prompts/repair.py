"""Repair: fix a query from the database's or the policy's error message."""

from __future__ import annotations

from collections.abc import Sequence

import dspy

from prompts.generate import question_text
from prompts.sql_text import extract_sql
from tools.sql.entities import EntityMapping


class RepairSQL(dspy.Signature):
    """The SQL query below failed. Read the error and return a corrected DuckDB query that answers the
    question, using only the tables and columns in db_schema. In DuckDB every selected column that is
    not aggregated must appear in GROUP BY; quote column names that start with a digit ("2B").
    Return only the SQL."""

    db_schema: str = dspy.InputField()
    question: str = dspy.InputField()
    failed_sql: str = dspy.InputField()
    error: str = dspy.InputField()
    sql: str = dspy.OutputField(desc="the corrected single SELECT statement")


class Repair(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.repair = dspy.Predict(RepairSQL)

    @staticmethod
    def inputs(
        schema: str, mappings: Sequence[EntityMapping], question: str, failed_sql: str, error: str, hint: str = ""
    ) -> dict[str, str]:
        """The module's inputs from typed values (the node and the optimizer both build them here)."""
        return {"db_schema": schema, "question": question_text(question, mappings), "failed_sql": failed_sql,
                "error": f"{error}\n{hint}" if hint else error}

    def forward(self, db_schema: str, question: str, failed_sql: str, error: str) -> dspy.Prediction:
        pred = self.repair(db_schema=db_schema, question=question, failed_sql=failed_sql, error=error)
        return dspy.Prediction(sql=extract_sql(pred.sql))
