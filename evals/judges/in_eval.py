"""The judges in `sqlagent eval`: a verdict per judge on each record, and their summary and report.

Off unless asked (`sqlagent eval --judges`, or judges.in_eval): each judge is one more LM call per
answered item. The verdicts go into the record (`judges`), so predictions.jsonl, summary.json and
report.md carry them beside execution match, and MLflow's evaluate run has a scorer per judge.
"""

from __future__ import annotations

from typing import Any

from mlflow.entities import Feedback
from mlflow.genai.scorers import scorer

from evals.judges.build import JudgePanel, database_tables
from evals.judges.case import JudgeCase
from evals.judges.model import JudgeModel
from evals.judges.specs import JudgeSpec


class EvalJudges:
    """One panel per database the eval's items use (the SQL judge is told that database's tables)."""

    def __init__(self, specs: list[JudgeSpec], model: JudgeModel):
        self.specs, self.model = specs, model
        self._panels: dict[str, JudgePanel] = {}

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def score(self, record: dict[str, Any], schema) -> dict[str, dict[str, Any]]:
        panel = self._panels.get(schema.path)
        if panel is None:
            panel = self._panels[schema.path] = JudgePanel(self.specs, self.model, database_tables(schema))
        return {name: v.as_dict() for name, v in panel.score(JudgeCase.from_record(record)).items()}


def mlflow_scorers(names: list[str]) -> list:
    """A code scorer per judge for mlflow.genai.evaluate: it reports the verdict already in the record."""

    def make(name: str):
        @scorer(name=f"judge_{name}")
        def read(outputs: dict) -> Feedback | None:
            verdict = (outputs.get("judges") or {}).get(name)
            if not verdict or verdict.get("value") is None:
                return None
            return Feedback(
                value=verdict["value"],
                rationale=verdict.get("rationale"),
                metadata={"version": verdict.get("version"), "passed": verdict.get("passed")},
            )

        return read

    return [make(n) for n in names]
