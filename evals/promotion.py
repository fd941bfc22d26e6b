"""Promote a reviewed trace into the golden set: a new verified `train` item, also merged into MLflow.

The item follows evals/README.md: id (slug of the question + short hash of it), question, gold_sql,
split "train", tags ["from-feedback"], difficulty "medium". An item whose template (evals/templates.py)
is already held out in dev or test joins that split instead: in train it would be its twin's worked
example, and the split would leak. Its SQL is the human correction (`expected_sql` expectation) if there is one, else the
agent's SQL when the latest human feedback accepted it. The SQL must pass the safety policy and
return rows before the file is touched. The file stays sorted by (split, id) and is replaced
atomically; the MLflow evaluation dataset merge is keyed by the inputs, so it is idempotent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import mlflow

from evals import feedback
from tools.run_sql import RunSqlArgs, run_sql
from tools.sql.database import Database

SPLIT = "train"
TAG = "from-feedback"
DIFFICULTY = "medium"
_lock = threading.Lock()


class PromotionError(ValueError):
    """The trace cannot be promoted (not reviewed, no usable SQL): a 422."""


class DuplicateItem(ValueError):
    """The question is already in the golden set: a 409."""

    def __init__(self, message: str, item_id: str):
        super().__init__(message)
        self.item_id = item_id


def normalize_question(question: str) -> str:
    return " ".join(question.split())


def item_id(question: str) -> str:
    text = normalize_question(question)
    slug = "-".join(re.findall(r"[a-z0-9]+", text.lower()))[:48].strip("-") or "question"
    digest = hashlib.sha256(text.lower().encode("utf-8")).hexdigest()[:6]
    return f"{slug}-{digest}"


def clean_sql(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def check_sql(db: Database, sql: str) -> dict[str, Any]:
    """Run SQL through the policy and the read-only sandbox. Raises PromotionError with the reason."""
    sql = clean_sql(sql)
    if not sql:
        raise PromotionError("The SQL is empty.")
    try:
        result = run_sql(db, RunSqlArgs(sql=sql))
    except ValueError as exc:  # RunSqlArgs length limits
        raise PromotionError(str(exc)) from None
    if result.status != "ok":
        raise PromotionError(f"{result.error_kind}: {result.error}")
    return {
        "sql": sql,
        "checked_sql": result.sql,
        "columns": result.columns,
        "rows": result.rows,
        "truncated": result.truncated,
    }


def read_items(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_items(path: Path, items: list[dict[str, Any]]) -> None:
    items = sorted(items, key=lambda it: (it.get("split", ""), it.get("id", "")))
    text = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".golden-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def candidate(trace) -> tuple[str, str, str]:
    """(question, sql, source) of a reviewed trace, or PromotionError."""
    info = feedback.summary(trace)
    question = normalize_question(info["question"] or "")
    if not info["is_agent_trace"] or not question:
        raise PromotionError("The trace is not an agent question (no sqlagent.ask root span).")
    if info["expected_sql"]:
        return question, info["expected_sql"], "corrected"
    if info["feedback"] and info["feedback"]["value"] is True and info["sql"]:
        return question, info["sql"], "accepted"
    raise PromotionError(
        "The trace is not reviewed yet: accept its SQL (thumbs up) or give a corrected SQL first."
    )


def split_for(new: dict[str, Any], items: list[dict[str, Any]]) -> str:
    """train, unless the new item shares a template group with held-out (dev/test) items."""
    from evals.templates import template_groups

    for group in template_groups([*items, new]):
        if new["id"] in group.ids:
            held_out = [s for s in ("test", "dev") if s in group.splits]
            return held_out[0] if held_out else SPLIT
    return SPLIT


def promote(trace, db: Database, golden_path: Path) -> dict[str, Any]:
    question, sql, source = candidate(trace)
    checked = check_sql(db, sql)
    if not checked["rows"]:
        raise PromotionError("The SQL returned no rows: a golden item must return rows.")
    sql = checked["sql"]
    if not re.match(r"(?is)^(select|with)\b", sql):
        raise PromotionError("The gold SQL must be one SELECT or WITH query.")
    if ";" in sql:
        raise PromotionError("The gold SQL must be one statement without ';'.")
    new = {
        "id": item_id(question),
        "question": question,
        "gold_sql": sql,
        "split": SPLIT,
        "tags": [TAG],
        "difficulty": DIFFICULTY,
    }
    with _lock:
        items = read_items(golden_path)
        wanted = question.lower()
        for it in items:
            if it.get("id") == new["id"] or normalize_question(str(it.get("question", ""))).lower() == wanted:
                raise DuplicateItem(
                    f"The question is already in the golden set as {it.get('id')!r}.", it.get("id")
                )
        new["split"] = split_for(new, items)
        _write_items(golden_path, [*items, new])
    mlflow.set_trace_tag(trace.info.trace_id, feedback.GOLDEN_TAG, new["id"])
    try:
        dataset = register(golden_path, new)
    except Exception as exc:  # the file is the source of truth; the MLflow copy can be re-merged later
        dataset = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "item": new,
        "source": source,
        "rows": checked["rows"][:20],
        "columns": checked["columns"],
        "golden_path": str(golden_path),
        "dataset": dataset,
    }


def register(golden_path: Path, item: dict[str, Any]) -> dict[str, Any]:
    """Merge the item into the MLflow evaluation dataset of the golden file (idempotent)."""
    from evals.dataset import Dataset, EvalItem
    from evals.mlflow_log import register_dataset

    ds = Dataset(
        path=str(golden_path),
        name=golden_path.stem,
        sha256="",
        items_sha256="",
        items=[EvalItem.model_validate(item)],
    )
    name, dataset_id = register_dataset(ds)
    return {"name": name, "dataset_id": dataset_id}
