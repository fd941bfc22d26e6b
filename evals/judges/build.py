"""The MLflow judges (`make_judge`), and one verdict per case.

A verdict never raises: an LM that is down or a reply that does not parse is a verdict with an
error, so an eval or the monitor goes on and says how many judge calls failed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from mlflow.genai.judges import make_judge

from evals.judges.case import JudgeCase
from evals.judges.model import JudgeModel
from evals.judges.specs import JudgeSpec
from tools.schema_info import brief
from tools.sql.introspect import DatabaseSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    judge: str
    tag: str  # the judge's version (JudgeSpec.tag)
    value: str | None  # one of the judge's values; None when the call failed
    passed: bool | None
    rationale: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "passed": self.passed,
            "rationale": self.rationale,
            "error": self.error,
            "version": self.tag,
            "seconds": round(self.seconds, 1),
        }


def database_tables(schema: DatabaseSchema) -> str:
    """Every table with its one-line description and its columns: what the SQL judge is told."""
    return "\n".join(
        f"- {t.name}"
        + (f" ({brief(t.comment, 90)})" if t.comment else "")
        + ": "
        + ", ".join(c.name for c in t.columns)
        for t in schema.tables
    )


def applies(spec: JudgeSpec, case: JudgeCase) -> bool:
    if spec.applies_to == "answered":
        return case.answered
    if spec.applies_to == "sql":
        return case.status == "ok" and bool(case.sql)
    return bool(case.answer)


def make(spec: JudgeSpec, model: JudgeModel, tables: str, temperature: float | None = None):
    return make_judge(
        name=spec.name,
        instructions=spec.render(tables),
        description=spec.description,
        feedback_value_type=spec.value_type,
        generate_rationale_first=spec.rationale_first,
        **model.judge_kwargs(temperature),
    )


class JudgePanel:
    """The judges of one configuration, built once and called per case."""

    def __init__(self, specs: list[JudgeSpec], model: JudgeModel, tables: str):
        self.specs = {s.name: s for s in specs}
        self.model = model
        self.tables = tables
        self.judges = {s.name: make(s, model, tables) for s in specs}

    def verdict(self, name: str, case: JudgeCase) -> Verdict | None:
        """None when the judge does not apply to the case (no rows to ground, no SQL)."""
        spec = self.specs[name]
        if not applies(spec, case):
            return None
        started = time.perf_counter()
        try:
            feedback = self.judges[name](inputs=case.inputs(), outputs=case.outputs())
        except Exception as exc:  # noqa: BLE001 - an LM or parse failure is the verdict's error
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            log.warning("judge %s failed: %s", name, message)
            return Verdict(name, spec.tag, None, None, error=message, seconds=time.perf_counter() - started)
        value = feedback.value if feedback.value in spec.values else None
        error = (
            None if value is not None else f"the judge answered {feedback.value!r}, not one of {spec.values}"
        )
        return Verdict(
            name,
            spec.tag,
            value,
            None if value is None else value == spec.passing,
            rationale=feedback.rationale,
            error=error,
            seconds=time.perf_counter() - started,
        )

    def score(self, case: JudgeCase, names: list[str] | None = None) -> dict[str, Verdict]:
        out = {}
        for name in names or list(self.specs):
            verdict = self.verdict(name, case)
            if verdict is not None:
                out[name] = verdict
        return out


def build_panel(
    settings, schema: DatabaseSchema, names: list[str] | None = None, model: str | None = None
) -> JudgePanel:
    """The configured judges (aligned versions when present) for the database of `schema`."""
    from evals.judges import model as judge_model
    from evals.judges.specs import load_specs

    return JudgePanel(
        load_specs(settings.judges, names), judge_model.resolve(settings, model), database_tables(schema)
    )
