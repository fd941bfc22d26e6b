"""Pinned answers: the result each golden item's gold SQL returned when it was last reviewed.

A gold query that silently starts returning something else (an edited gold, a changed data build, a
corrected Lahman row) would move every accuracy number without anyone deciding it. The pins in
`evals/golden_answers.jsonl` (one line per answerable item: columns, row count, a digest of the
rows and three of its rows in clear, for review) make that change show up in `tests/unit/evals/test_golden_set.py`.

    python -m evals.pinned           # check: exit 1 and list the items whose result changed
    python -m evals.pinned --write   # re-pin every item (review the diff before committing it)
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HEAD_ROWS = 3  # rows kept in clear on each pin line (the smallest, in sorted order)
_DIGITS = 6  # floats are rounded before hashing, so a last-bit difference is not a change


def _canonical(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        rounded = round(value, _DIGITS)
        return int(rounded) if rounded.is_integer() else rounded
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def result_digest(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """sha256 of the columns and the bag of rows. Rows are sorted first: rows tied on the gold's
    ORDER BY key come back in any order, and the order itself is the scorer's business."""
    lines = sorted(json.dumps(_canonical(list(r)), sort_keys=True, default=str) for r in rows)
    payload = json.dumps([list(columns), lines], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def pin(item_id: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    return {
        "id": item_id,
        "columns": list(columns),
        "row_count": len(rows),
        "sha256": result_digest(columns, rows),
        # The first rows in a stable order (tied rows come back in any order), for a reviewer.
        "head": sorted((_canonical(list(r)) for r in rows), key=lambda r: json.dumps(r, default=str))[
            :HEAD_ROWS
        ],
    }


def read_pins(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    pins = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {p["id"]: p for p in pins}


def write_pins(path: Path, pins: Sequence[dict[str, Any]]) -> None:
    lines = [json.dumps(p, ensure_ascii=False) for p in sorted(pins, key=lambda p: p["id"])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def differences(current: dict[str, Any], pinned: dict[str, Any] | None) -> str:
    """'' when the result is the pinned one, else what changed, for a reader."""
    if pinned is None:
        return "not pinned yet"
    changes = []
    if current["columns"] != pinned["columns"]:
        changes.append(f"columns {pinned['columns']} -> {current['columns']}")
    if current["row_count"] != pinned["row_count"]:
        changes.append(f"{pinned['row_count']} -> {current['row_count']} rows")
    if current["sha256"] != pinned["sha256"]:
        changes.append(f"rows differ (rows now begin {current['head']}, pinned {pinned['head']})")
    return "; ".join(changes)


def current_pins(golden: Path, db: Any) -> list[dict[str, Any]]:
    """Run every answerable item's gold on `db` (a tools.sql.database.Database) and pin the result."""
    items = [json.loads(line) for line in golden.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for item in items:
        if item.get("expected_status", "ok") != "ok" or not item.get("gold_sql"):
            continue
        result = db.sandbox.execute(item["gold_sql"])
        out.append(pin(item["id"], result.columns, result.rows))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from agent.config import PROJECT_ROOT, load_settings
    from tools.sql.database import open_database

    parser = argparse.ArgumentParser(prog="python -m evals.pinned", description=__doc__.split("\n\n")[0])
    parser.add_argument("--golden", default=str(PROJECT_ROOT / "evals" / "golden.jsonl"))
    parser.add_argument("--pins", default=str(PROJECT_ROOT / "evals" / "golden_answers.jsonl"))
    parser.add_argument("--write", action="store_true", help="re-pin every item")
    args = parser.parse_args(argv)
    settings = load_settings(tracking={"enabled": False})
    db = open_database(settings.database_config())
    pins = current_pins(Path(args.golden), db)
    if args.write:
        write_pins(Path(args.pins), pins)
        print(f"Pinned {len(pins)} answers in {args.pins}: review `git diff {args.pins}` before committing.")
        return 0
    old = read_pins(Path(args.pins))
    changed = [(p["id"], why) for p in pins if (why := differences(p, old.get(p["id"])))]
    stale = sorted(set(old) - {p["id"] for p in pins})
    for item_id, why in changed:
        print(f"{item_id}: {why}")
    for item_id in stale:
        print(f"{item_id}: pinned, but no longer an answerable item of {args.golden}")
    print(f"{len(pins)} answers checked, {len(changed)} changed, {len(stale)} stale pins.")
    return 1 if changed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
