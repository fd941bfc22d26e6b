"""The eval in MLflow: the items as a registered evaluation dataset, and a `mlflow.genai.evaluate` run.

`mlflow.genai.evaluate` calls `predict_fn` once per row; ours runs the item through the pipeline
(so the agent's trace is the row's trace, with its node spans), runs the gold SQL and scores it,
keeps the full record for the files, and returns the outputs the code scorers read. Rows run one
at a time (MLFLOW_GENAI_EVAL_MAX_WORKERS=1): the embedded llama.cpp model has a single slot.

Failures of MLflow itself (the store, the evaluate harness) never lose the eval: the runner
evaluates whatever is left without MLflow and the CLI prints a warning. An exception from our own
code inside predict_fn is re-raised after the harness returns, because it is a bug, not MLflow's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Feedback
from mlflow.genai.scorers import scorer

from evals.dataset import Dataset, EvalItem

_EVAL_ENV = {
    "MLFLOW_GENAI_EVAL_MAX_WORKERS": "1",
    # The harness otherwise calls predict_fn once more on the first row to see if it traces itself.
    "MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION": "true",
}


class PredictFnError(RuntimeError):
    """Our own code failed inside predict_fn (re-raised: a bug, not an MLflow problem)."""


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- dataset -----------------------------------------------------------------------------------


def dataset_name(dataset: Dataset) -> str:
    return f"sqlagent-{dataset.name}" + (f"-{dataset.split}" if dataset.split else "")


def eval_row(item: EvalItem) -> dict[str, Any]:
    expectations: dict[str, Any] = {"expected_status": item.expected_status}
    if item.has_gold:
        expectations["gold_sql"] = item.gold_sql
    if item.expected_mappings:
        expectations["expected_mappings"] = item.expected_mappings
    if item.must_pass:
        expectations["must_pass"] = True
    inputs: dict[str, Any] = {"item_id": item.id, "question": item.question}
    if item.turns:
        inputs["turns"] = item.turns
    return {"inputs": inputs, "expectations": expectations}


def register_dataset(dataset: Dataset, experiment_id: str | None = None) -> tuple[str, str]:
    """Create (or reuse, by name) the MLflow evaluation dataset and merge the items in; idempotent."""
    from mlflow.exceptions import MlflowException
    from mlflow.genai import datasets

    name = dataset_name(dataset)
    try:
        ds = datasets.get_dataset(name=name)
    except MlflowException:
        ds = datasets.create_dataset(
            name=name,
            experiment_id=experiment_id,
            tags={"source": dataset.path, "split": dataset.split or "all"},
        )
    ds.merge_records([eval_row(i) for i in dataset.items])
    return name, ds.dataset_id


# --- scorers (code only: they read what the runner already scored) --------------------------


def _feedback(value: Any, rationale: str = "") -> Feedback | None:
    if value is None:
        return None
    return Feedback(value=value, rationale=rationale or None)


@scorer
def execution_match(outputs: dict) -> Feedback | None:
    """The result rows match the gold query's (strict: same number of columns)."""
    if outputs.get("expected_status", "ok") != "ok":
        return None
    return _feedback(outputs.get("correct"), outputs.get("reason", ""))


@scorer
def execution_match_relaxed(outputs: dict) -> Feedback | None:
    """Like execution_match, but extra predicted columns are allowed (the gold's matched by name); a side
    figure, not a correct answer: the extra columns may hold anything."""
    if outputs.get("expected_status", "ok") != "ok":
        return None
    return _feedback(outputs.get("correct_relaxed"))


@scorer
def status_match(outputs: dict, expectations: dict) -> bool:
    """ok / clarify / refused as expected."""
    return outputs.get("status") == expectations.get("expected_status", "ok")


@scorer
def mapping_recall(outputs: dict) -> Feedback | None:
    """Share of the expected entity mappings (column, value) the rewrite step produced."""
    m = outputs.get("mapping") or {}
    return _feedback(m.get("recall"))


@scorer
def schema_link_recall(outputs: dict) -> Feedback | None:
    """Share of the gold query's tables in the agent's linked schema."""
    return _feedback(outputs.get("schema_link_recall"))


@scorer
def sql_valid(outputs: dict) -> Feedback | None:
    """The final SQL passed the policy and ran."""
    return _feedback(outputs.get("sql_valid"))


SCORERS = [
    execution_match,
    execution_match_relaxed,
    status_match,
    mapping_recall,
    schema_link_recall,
    sql_valid,
]
_OUTPUT_KEYS = (
    "status",
    "sql",
    "answer",
    "columns",
    "correct",
    "correct_relaxed",
    "reason",
    "expected_status",
    "mapping",
    "schema_link_recall",
    "sql_valid",
    "latency_ms",
    "tokens",
    "judges",
)


def outputs_of(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: record.get(k) for k in _OUTPUT_KEYS}
    out["rows"] = record.get("rows", [])[:10]
    return out


# --- the run -----------------------------------------------------------------------------------


def evaluate_with_mlflow(
    items: list[EvalItem],
    evaluate_item: Callable[[EvalItem], dict[str, Any]],
    *,
    run_name: str,
    params: dict[str, Any],
    on_record: Callable[[dict[str, Any]], None] | None = None,
    extra_scorers: list | None = None,
) -> tuple[dict[str, dict[str, Any]], str | None, str | None]:
    """Run the items inside mlflow.genai.evaluate. Returns (records by id, run id, warning).

    Items missing from the result (MLflow failed before reaching them) are the caller's to finish.
    """
    by_id = {i.id: i for i in items}
    records: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []

    @mlflow.trace(name="eval.item")
    def predict_fn(item_id: str, question: str, turns: list[str] | None = None) -> dict[str, Any]:
        try:
            record = evaluate_item(by_id[item_id])
        except BaseException as exc:
            errors.append(exc)
            raise
        records[item_id] = record
        if on_record:
            on_record(record)
        return outputs_of(record)

    run_id: str | None = None
    warning: str | None = None
    try:
        with _env(_EVAL_ENV), mlflow.start_run(run_name=run_name) as run:
            run_id = run.info.run_id
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.genai.evaluate(
                data=[eval_row(i) for i in items],
                predict_fn=predict_fn,
                scorers=SCORERS + list(extra_scorers or []),
            )
    except Exception as exc:  # the store, the harness: warn and let the caller finish without MLflow
        if errors:
            raise PredictFnError(f"evaluating an item failed: {errors[0]!r}") from errors[0]
        warning = f"mlflow.genai.evaluate failed ({type(exc).__name__}: {exc}); the eval went on without it"
    if errors:
        raise PredictFnError(f"evaluating an item failed: {errors[0]!r}") from errors[0]
    return records, run_id, warning


def log_outputs(run_id: str, summary: dict[str, Any], out_dir: Path) -> None:
    """Attach the headline numbers and the report files to the evaluate run.

    `execution_accuracy` is over the answerable items only; refusal/clarify items are `status_accuracy`.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    metrics = {
        "execution_accuracy": summary.get("execution_accuracy"),
        "execution_accuracy_extra_columns_allowed": summary.get("execution_accuracy_extra_columns_allowed"),
        "status_accuracy": summary.get("status_accuracy"),
        "gold_errors": len(summary["counts"].get("gold_errors", [])),
        "latency_p50_ms": summary["latency_ms"].get("p50"),
        "latency_p95_ms": summary["latency_ms"].get("p95"),
        "tokens_total": summary["tokens"].get("total"),
        "mapping_recall": summary["nodes"]["rewrite"].get("mapping_recall"),
        "schema_link_recall": summary["nodes"]["retrieve"].get("schema_link_recall"),
        "sql_validity": summary["nodes"]["generate"].get("sql_validity"),
        "repair_rate": summary["nodes"]["repair"].get("repair_rate"),
        "answer_grounding": summary["nodes"].get("answer", {}).get("grounding"),
    }
    for tag, group in summary.get("by_tag", {}).items():
        if group.get("accuracy") is not None:
            metrics[f"accuracy_tag_{tag}"] = group["accuracy"]
    for key, value in metrics.items():
        if value is not None:
            client.log_metric(run_id, f"sqlagent.{key}", float(value))
    commit = (summary.get("git") or {}).get("commit")
    tags = {
        "sqlagent.lm": summary.get("lm"),
        "sqlagent.pipeline": summary.get("pipeline"),
        "sqlagent.dataset_sha256": summary.get("dataset", {}).get("items_sha256"),
        "mlflow.source.git.commit": commit,
    }
    for key, value in tags.items():
        if value:
            client.set_tag(run_id, key, str(value))
    for name in ("summary.json", "report.md", "predictions.jsonl"):
        if (out_dir / name).is_file():
            client.log_artifact(run_id, str(out_dir / name))
    for png in sorted(out_dir.glob("*.png")):
        client.log_artifact(run_id, str(png))
    if any((out_dir / "charts").glob("*.png")):  # the results' charts, where report.md links them
        client.log_artifacts(run_id, str(out_dir / "charts"), artifact_path="charts")
