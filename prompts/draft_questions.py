"""Draft questions: a handful of question/SQL pairs for a new database's golden-set skeleton.

Used by `sqlagent init`. The pairs are drafts: init runs each query once and records whether it
executed, and a human verifies the answers before the items count as golden. A malformed reply
gives no pairs and a note, never an exception.
"""

from __future__ import annotations

import dspy
from pydantic import BaseModel

from prompts.sql_text import extract_sql


class QuestionSQL(BaseModel):
    question: str
    sql: str


class DraftQuestionPairs(dspy.Signature):
    """Write realistic questions an analyst would ask about this database, each with one DuckDB SQL
    query that answers it. Use only the tables and columns in db_schema and the join paths it gives.
    Mix simple counts and filters with a few joins, aggregations and rankings. Each question must be
    answerable by its query alone."""

    db_schema: str = dspy.InputField(desc="tables, columns with descriptions, and join paths")
    count: int = dspy.InputField(desc="how many pairs to write")
    pairs: list[QuestionSQL] = dspy.OutputField()


class DraftQuestions(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict(DraftQuestionPairs)

    def forward(self, db_schema: str, count: int = 6) -> dspy.Prediction:
        try:
            pred = self.draft(db_schema=db_schema, count=count)
            raw = pred.pairs if isinstance(pred.pairs, list) else []
        except Exception as exc:  # an unparseable reply, a server error
            text = " ".join(str(exc).split())[:160]
            return dspy.Prediction(
                pairs=[], notes=[f"the LM reply could not be used ({type(exc).__name__}: {text})"]
            )
        pairs: list[QuestionSQL] = []
        seen: set[str] = set()
        for item in raw:
            if isinstance(item, dict):
                item = QuestionSQL(question=str(item.get("question", "")), sql=str(item.get("sql", "")))
            if not isinstance(item, QuestionSQL):
                continue
            question, sql = " ".join(item.question.split()), extract_sql(item.sql)
            if question and sql and question.lower() not in seen:
                seen.add(question.lower())
                pairs.append(QuestionSQL(question=question, sql=sql))
        notes = [] if pairs else ["the LM gave no usable question/SQL pair"]
        return dspy.Prediction(pairs=pairs[:count], notes=notes)
