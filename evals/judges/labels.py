"""Reviewers' labels as MLflow traces: one trace per labelled answer, one human feedback per judge.

A labelled trace lives in the experiment `<tracking.experiment>-judge-labels`. Its root span
(`sqlagent.judge_case`) holds the case as the judges read it (evals/judges/case.py), and each label
is a HUMAN feedback named after its judge, which is what MLflow's alignment reads. They come from:

- a labelled set file (labels/*.jsonl, reviewed by hand; `sqlagent judges load-labels`), and
- the review queue: agent traces on which a reviewer gave a judge's label (the review page's rubric
  is fan_rubric's); each becomes a labelled trace that names its source trace.

Loading is idempotent: an item whose labels did not change is not logged again; one that changed is
replaced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import AssessmentSource, SpanType
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals.judges.case import JudgeCase
from evals.judges.specs import JudgeSpec

CASE_SPAN = "sqlagent.judge_case"
ID_TAG = "sqlagent.label_id"  # the labelled set's item id, or trace:<source trace id>
DIGEST_TAG = "sqlagent.label_digest"  # the case and labels it was logged with
SOURCE_TAG = "sqlagent.label_source"  # where it came from: the set file, or the review queue


class LabelError(ValueError):
    pass


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str
    rationale: str = Field(min_length=1)


class LabelledItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    case: JudgeCase
    labels: dict[str, Label]
    source: dict[str, Any] = Field(default_factory=dict)  # which run it came from
    reviewed: dict[str, Any] = Field(default_factory=dict)  # by whom, when, how
    gold_sql: str | None = None  # the reference query the reviewer compared with (not shown to judges)

    @property
    def digest(self) -> str:
        payload = {
            "case": self.case.model_dump(),
            "labels": {k: v.model_dump() for k, v in sorted(self.labels.items())},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_labels(path: Path, specs: list[JudgeSpec]) -> list[LabelledItem]:
    """The labelled set; every label must name a judge and one of its values."""
    values = {s.name: s.values for s in specs}
    items, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = LabelledItem.model_validate_json(line)
        except ValidationError as exc:
            raise LabelError(f"{path}:{number}: {' '.join(str(exc).split())[:300]}") from exc
        for judge, label in item.labels.items():
            if judge in values and label.value not in values[judge]:
                raise LabelError(
                    f"{path}:{number}: {judge} label {label.value!r} is not one of {values[judge]}"
                )
        if item.id in seen:
            raise LabelError(f"{path}:{number}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def labels_experiment(main_experiment: str) -> str:
    return f"{main_experiment}-judge-labels"


def _experiment_id(name: str) -> str:
    experiment = mlflow.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else mlflow.create_experiment(name)


def labelled_traces(experiment: str) -> list:
    """Every labelled trace of the labels experiment, with its spans and assessments."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    traces = mlflow.search_traces(locations=[found.experiment_id], return_type="list")
    return [t for t in traces if (t.info.tags or {}).get(ID_TAG)]


def log_items(items: list[LabelledItem], experiment: str, source: str) -> dict[str, int]:
    """Log each item as a labelled trace unless it is there with the same digest. Returns counts."""
    existing = {(t.info.tags or {}).get(ID_TAG): t for t in labelled_traces(experiment)}
    experiment_id = _experiment_id(experiment)
    counts = {"logged": 0, "unchanged": 0, "replaced": 0}
    stale, new = [], []
    for item in items:
        old = existing.get(item.id)
        if old is not None and (old.info.tags or {}).get(DIGEST_TAG) == item.digest:
            counts["unchanged"] += 1
            continue
        if old is not None:
            stale.append(old.info.trace_id)
            counts["replaced"] += 1
        else:
            counts["logged"] += 1
        new.append((item, _log_case(item, experiment_id, source)))
    if new:
        mlflow.flush_trace_async_logging()  # the traces must be in the store before feedback lands on them
    for item, trace_id in new:
        _log_labels(item, trace_id, source)
    if stale:
        mlflow.MlflowClient().delete_traces(experiment_id=experiment_id, trace_ids=stale)
    return counts


def _log_case(item: LabelledItem, experiment_id: str, source: str) -> str:
    span = mlflow.start_span_no_context(
        name=CASE_SPAN,
        span_type=SpanType.EVALUATOR,
        inputs=item.case.inputs(),
        experiment_id=experiment_id,
        tags={ID_TAG: item.id, DIGEST_TAG: item.digest, SOURCE_TAG: source},
    )
    if str(span.trace_id).startswith("tr-no-op") or not span.trace_id:
        raise LabelError("tracing is off (tracking.enabled): labelled traces cannot be written")
    span.set_outputs(item.case.outputs())
    span.set_attributes({"sqlagent.case": item.case.model_dump(), "sqlagent.label_source": item.source})
    span.end()
    return span.trace_id


def _log_labels(item: LabelledItem, trace_id: str, source: str) -> None:
    reviewer = str(item.reviewed.get("by") or "reviewer")
    for judge, label in item.labels.items():
        mlflow.log_feedback(
            trace_id=trace_id,
            name=judge,
            value=label.value,
            rationale=label.rationale,
            source=AssessmentSource(source_type="HUMAN", source_id=reviewer),
            metadata={"labelled_set": source},
        )


def human_label(trace, spec: JudgeSpec) -> tuple[str, str | None] | None:
    """The latest valid human label for this judge on the trace (value, rationale), read from the
    judge's own name first, then its other label names (fan_rubric: the review page's user_rubric)."""
    assessments = [
        a
        for a in trace.info.assessments or []
        if a.feedback is not None
        and getattr(a, "valid", True) is not False
        and getattr(a.source, "source_type", None) == "HUMAN"
    ]
    for name in spec.human_labels:
        found = sorted((a for a in assessments if a.name == name), key=lambda a: a.create_time_ms or 0)
        if found and str(found[-1].value) in spec.values:
            return str(found[-1].value), found[-1].rationale
    return None


def reviewed_agent_items(
    traces: list, specs: list[JudgeSpec], earlier: dict[str, list[str]] | None = None
) -> list[LabelledItem]:
    """Agent traces from the review queue on which a reviewer labelled at least one judge."""
    items = []
    for trace in traces:
        labels = {}
        for spec in specs:
            found = human_label(trace, spec)
            if found:
                labels[spec.name] = Label(value=found[0], rationale=found[1] or "(no reason given)")
        if not labels:
            continue
        reviewers = sorted(
            {
                a.source.source_id
                for a in trace.info.assessments or []
                if getattr(a.source, "source_type", None) == "HUMAN" and a.source.source_id
            }
        )
        case = JudgeCase.from_trace(trace, (earlier or {}).get(trace.info.trace_id))
        items.append(
            LabelledItem(
                id=f"trace:{trace.info.trace_id}",
                case=case,
                labels=labels,
                source={"trace_id": trace.info.trace_id},
                reviewed={"by": ", ".join(reviewers) or "reviewer", "how": "review page"},
            )
        )
    return items
