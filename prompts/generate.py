"""Generate: SQL from the linked schema, worked examples, resolved values and the question."""

from __future__ import annotations

from collections.abc import Sequence

import dspy

from prompts.retrieve import Example
from prompts.sql_text import extract_sql
from tools.sql.entities import EntityMapping, annotate


def examples_text(examples: Sequence[Example]) -> str:
    return "\n\n".join(f"Question: {e.question}\nSQL: {e.sql}" for e in examples) or "(none)"


def value_hints_text(mappings: Sequence[EntityMapping]) -> str:
    return "\n".join(f"{m.mention} = {m.hint()} (matched '{m.matched}')" for m in mappings) or "(none)"


def question_text(question: str, mappings: Sequence[EntityMapping]) -> str:
    """The question as the SQL-writing modules read it: each resolved name annotated with its value."""
    return annotate(question, list(mappings)) if mappings else question


class GenerateSQL(dspy.Signature):
    """Write one DuckDB SQL query that answers the question.
    - Use only the tables and columns listed in db_schema, joined by the join paths it gives. A column
      listed without a description means the same as the described column of that name.
    - When value_hints map a name to a database value, filter on that exact value (table.column =
      'value') instead of on the name.
    - Totals for an entity ("career", "in total", "all time") add up all of its rows: group by its id,
      not by season or stint.
    - For "most", "highest", "best" or "top N", order by that measure and LIMIT to the number asked
      for; select the measure too.
    - When the answer is a person or a team, select its name columns, not only its id.
    - In DuckDB every selected column that is not aggregated must appear in GROUP BY; quote column
      names that start with a digit ("2B").
    - Follow the style of the examples. Return only the SQL, no explanation."""

    db_schema: str = dspy.InputField(desc="tables, columns with descriptions, and join paths")
    examples: str = dspy.InputField(desc="similar questions with correct SQL")
    value_hints: str = dspy.InputField(desc="names in the question resolved to database values")
    question: str = dspy.InputField()
    sql: str = dspy.OutputField(desc="a single SELECT statement")


def sql_signature(dialect: str = "DuckDB") -> type[dspy.Signature]:
    """GenerateSQL naming the SQL dialect the model writes (the engine's label: DuckDB, PostgreSQL).
    DuckDB's is GenerateSQL itself, byte for byte, so cached and compiled DuckDB prompts stay valid."""
    if dialect == "DuckDB":
        return GenerateSQL
    instructions = GenerateSQL.instructions.replace("DuckDB", dialect)
    if dialect == "Spark":  # Spark quotes names with backticks: "2B" is the string '2B' there
        instructions = instructions.replace('("2B")', '(`2B`; "2B" is a string in Spark)')
    return GenerateSQL.with_instructions(instructions)


class Generate(dspy.Module):
    def __init__(self, dialect: str = "DuckDB") -> None:
        super().__init__()
        self.generate = dspy.Predict(sql_signature(dialect))

    @staticmethod
    def inputs(
        schema: str, examples: Sequence[Example], mappings: Sequence[EntityMapping], question: str
    ) -> dict[str, str]:
        """The module's inputs from typed values: the node and the optimizer both build them here."""
        return {
            "db_schema": schema,
            "examples": examples_text(examples),
            "value_hints": value_hints_text(mappings),
            "question": question_text(question, mappings),
        }

    def forward(self, db_schema: str, examples: str, value_hints: str, question: str) -> dspy.Prediction:
        pred = self.generate(
            db_schema=db_schema, examples=examples, value_hints=value_hints, question=question
        )
        return dspy.Prediction(sql=extract_sql(pred.sql))
