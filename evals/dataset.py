"""Evaluation datasets: load and validate JSONL items, and fingerprint what was evaluated.

The golden set (evals/golden.jsonl, documented in evals/README.md) is the main one, but any JSONL
file with `id` and `question` per line works. Beyond the golden keys a line may carry:

- `db`: a DuckDB file to ask this item against (relative paths are relative to the dataset file);
- `db_id`: Spider style, resolved to `<dataset dir>/databases/<db_id>/<db_id>.duckdb`;
- `gold_db`: where to run `gold_sql` when it is written for another engine: a `.sqlite` file runs
  the gold query with sqlite3 (read-only). A `db_id` item gets its `.sqlite` sibling when present,
  since Spider's gold SQL is SQLite dialect.

`gold_sql` may be missing or empty: the item is then predicted but not scored (correct = null),
unless `expected_status` is `clarify` or `refused`, which is scored on the status.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class DatasetError(ValueError):
    """A dataset file that cannot be evaluated; the message names the file and line."""


class EvalItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    question: str
    gold_sql: str | None = None
    split: str | None = None
    tags: list[str] = Field(default_factory=list)
    difficulty: str | None = None
    expected_mappings: list[dict[str, Any]] = Field(default_factory=list)
    must_pass: bool = False
    expected_status: Literal["ok", "clarify", "refused"] = "ok"
    turns: list[str] = Field(default_factory=list)
    db: str | None = None
    db_id: str | None = None
    gold_db: str | None = None
    # The dialect gold_sql is written in; on another engine it is transpiled by sqlglot before it runs.
    gold_dialect: str = "duckdb"

    @field_validator("id", "question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @property
    def has_gold(self) -> bool:
        return bool(self.gold_sql and self.gold_sql.strip())


class Dataset(BaseModel):
    path: str
    name: str
    sha256: str  # of the whole file
    items_sha256: str  # of the selected items (after --split/--tag/--limit)
    items: list[EvalItem]
    split: str | None = None
    tag: str | None = None


def _resolve(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _locate_databases(item: EvalItem, base: Path) -> EvalItem:
    updates: dict[str, Any] = {}
    if item.db:
        updates["db"] = _resolve(base, item.db)
    elif item.db_id:
        folder = base / "databases" / item.db_id
        updates["db"] = str((folder / f"{item.db_id}.duckdb").resolve())
        sqlite = folder / f"{item.db_id}.sqlite"
        if not item.gold_db and sqlite.is_file():
            updates["gold_db"] = str(sqlite.resolve())
    if item.gold_db and "gold_db" not in updates:
        updates["gold_db"] = _resolve(base, item.gold_db)
    return item.model_copy(update=updates) if updates else item


def parse_items(text: str, source: str = "<dataset>", base: Path | None = None) -> list[EvalItem]:
    base = base or Path.cwd()
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{source}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(raw, dict):
            raise DatasetError(f"{source}:{number}: expected a JSON object")
        try:
            item = EvalItem.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise DatasetError(f"{source}:{number}: {problems}") from None
        if item.id in seen:
            raise DatasetError(f"{source}:{number}: duplicate id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = number
        items.append(_locate_databases(item, base))
    return items


def items_digest(items: list[EvalItem]) -> str:
    payload = "\n".join(json.dumps(i.model_dump(), sort_keys=True, ensure_ascii=False) for i in items)
    return hashlib.sha256(payload.encode()).hexdigest()


def load_dataset(
    path: str | Path, *, split: str | None = None, limit: int | None = None, tag: str | None = None
) -> Dataset:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Dataset file {path} does not exist.")
    data = path.read_bytes()
    items = parse_items(data.decode("utf-8"), str(path), path.resolve().parent)
    if split:
        splits = sorted({i.split for i in items if i.split})
        items = [i for i in items if i.split == split]
        if not items:
            raise DatasetError(
                f"{path}: no items in split {split!r} (splits: {', '.join(splits) or 'none'})."
            )
    if tag:
        items = [i for i in items if tag in i.tags]
        if not items:
            raise DatasetError(
                f"{path}: no items tagged {tag!r}" + (f" in split {split!r}." if split else ".")
            )
    if limit is not None:
        items = items[: max(0, limit)]
    return Dataset(
        path=str(path),
        name=path.stem,
        sha256=hashlib.sha256(data).hexdigest(),
        items_sha256=items_digest(items),
        items=items,
        split=split,
        tag=tag,
    )
