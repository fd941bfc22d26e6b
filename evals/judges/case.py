"""What a judge reads about one answer: the question, and the agent's SQL, rows and answer, as text.

Judges get plain text, not dicts: MLflow's alignment reads a trace's root span inputs and outputs
and hands them to the judge as they are, so a case stored as text in a labelled trace reaches the
judge during alignment exactly as it does in an eval or in monitoring.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from prompts.answer import rows_text

ROWS_SHOWN = 20  # what the answer step reads by default (limits.rows_in_prompt)


class JudgeCase(BaseModel):
    question: str
    earlier_questions: list[str] = Field(default_factory=list)
    status: str
    sql: str | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)  # the first ROWS_SHOWN rows
    row_count: int = 0
    answer: str | None = None

    @classmethod
    def of(
        cls,
        question: str,
        *,
        status: str,
        sql: str | None,
        columns: list[str],
        rows: list[list[Any]],
        answer: str | None,
        row_count: int | None = None,
        earlier: list[str] | None = None,
    ) -> JudgeCase:
        return cls(
            question=question,
            earlier_questions=list(earlier or []),
            status=status,
            sql=sql,
            columns=list(columns),
            rows=[list(r) for r in rows[:ROWS_SHOWN]],
            row_count=len(rows) if row_count is None else row_count,
            answer=answer,
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JudgeCase:
        """From an eval record (predictions.jsonl)."""
        return cls.of(
            record["question"],
            status=record["status"],
            sql=record.get("sql"),
            columns=record.get("columns") or [],
            rows=record.get("rows") or [],
            answer=record.get("answer"),
            row_count=record.get("row_count"),
            earlier=record.get("turns") or [],
        )

    @classmethod
    def from_trace(cls, trace, earlier: list[str] | None = None) -> JudgeCase:
        """From an agent trace: the root span's question and result, the last execute span's rows."""
        from evals import feedback

        root = feedback.root_span(trace)
        inputs = (root.inputs if root else None) or {}
        outputs = (root.outputs if root else None) or {}
        outputs = outputs if isinstance(outputs, dict) else {}
        executed = [s for s in trace.data.spans if s.name == "node.execute" and isinstance(s.outputs, dict)]
        last = executed[-1].outputs if executed else {}
        rows = last.get("rows") or []
        return cls.of(
            inputs.get("question") or "",
            status=outputs.get("status") or "unknown",
            sql=outputs.get("sql"),
            columns=last.get("columns") or outputs.get("columns") or [],
            rows=rows if outputs.get("status") == "ok" else [],
            answer=outputs.get("answer"),
            earlier=earlier,
        )

    @property
    def answered(self) -> bool:
        return self.status == "ok" and bool(self.answer)

    def inputs(self) -> str:
        lines = []
        if self.earlier_questions:
            lines += ["Earlier questions in this conversation:", *(f"- {q}" for q in self.earlier_questions)]
        return "\n".join([*lines, f"Question: {self.question}"])

    def outputs(self) -> str:
        lines = [f"Status: {self.status}"]
        if self.sql:
            lines.append(f"SQL: {self.sql}")
        if self.status == "ok":
            shown = len(self.rows)
            if self.row_count == 0:
                lines.append("Result: no rows")
            else:
                more = f", the first {shown} shown" if self.row_count > shown else ""
                lines.append(f"Result ({self.row_count} row{'s' if self.row_count != 1 else ''}{more}):")
                lines.append(rows_text(self.columns, self.rows, shown))
                if self.row_count > shown:
                    lines.append(f"... {self.row_count - shown} more rows")
        lines.append(f"Answer: {self.answer or '(none)'}")
        return "\n".join(lines)
