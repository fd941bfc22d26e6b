"""Baseline: the same LM asked zero-shot with the full schema, the yardstick for the agent.

No rewrite, no retrieval, no worked examples, no value hints, no repair: what a plain "schema +
question -> SQL" prompt gets right is the floor every agent step has to beat (evals/baseline_pipeline.py).
"""

from __future__ import annotations

import dspy

from prompts.sql_text import extract_sql


class BaselineSQL(dspy.Signature):
    """Write one DuckDB SQL query that answers the question, using only the tables and columns in
    db_schema. Return only the SQL, no explanation."""

    db_schema: str = dspy.InputField(desc="every table with its columns and types, and the join keys")
    question: str = dspy.InputField()
    sql: str = dspy.OutputField(desc="a single SELECT statement")


class Baseline(dspy.Module):
    def __init__(self, dialect: str = "DuckDB") -> None:
        super().__init__()
        signature = BaselineSQL if dialect == "DuckDB" else BaselineSQL.with_instructions(
            BaselineSQL.instructions.replace("DuckDB", dialect))  # fmt: skip
        self.generate = dspy.Predict(signature)

    def forward(self, db_schema: str, question: str) -> dspy.Prediction:
        pred = self.generate(db_schema=db_schema, question=question)
        return dspy.Prediction(sql=extract_sql(pred.sql))
