"""Does the golden set's gold SQL mean the same on another engine? Each item's gold (DuckDB SQL) runs on
the DuckDB demo database and, transpiled by sqlglot, on the other engine; the results are compared
the way the eval compares a prediction with its gold (evals/scoring.py's strict execution match,
ORDER BY ties as a bag).

    python -m evals.gold_engines --url postgresql://sqlagent_reader@127.0.0.1:5432/lahman [--split test]
    make gold-engines     # the same on a throwaway local PostgreSQL cluster (data/pg_local.py)

Prints one line per item that does not match, with why, then the counts; `--out FILE` writes them as
JSON. Exit status 1 when an item does not match. A per-engine accuracy is only comparable where the
gold means the same on both engines: this says where it does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pydantic import BaseModel

from agent.config import Settings, load_settings, resolve_path
from evals import scoring
from evals.dataset import EvalItem, load_dataset
from evals.runner import Gold, run_gold
from tools.sql.database import Database, open_database

DEFAULT_REFERENCE = "data/lahman.duckdb"  # the database the golden set was verified on


class GoldComparison(BaseModel):
    id: str
    match: bool
    reason: str = ""
    sql: str | None = None  # the gold as it ran on the other engine


def compare_item(item: EvalItem, reference: Database, other: Database, max_rows: int) -> GoldComparison:
    """The item's gold on `reference` (its own dialect) and on `other` (transpiled), compared."""
    expected: Gold | None = run_gold(item, reference, max_rows)
    got: Gold | None = run_gold(item, other, max_rows)
    if expected is None or got is None:
        return GoldComparison(id=item.id, match=True, reason="no gold SQL")
    if expected.error:
        return GoldComparison(
            id=item.id, match=False, reason=f"fails on {reference.config.dialect}: {expected.error}"
        )
    if got.error:
        return GoldComparison(id=item.id, match=False, reason=f"fails on {other.config.dialect}: {got.error}",
                              sql=got.sql)  # fmt: skip
    result = scoring.execution_match(
        expected.columns, expected.rows, got.columns, got.rows,
        ordered=scoring.has_outer_order_by(expected.sql or "", expected.dialect), order_keys=expected.order_keys,
        gold_sql=expected.sql, pred_sql=got.sql, dialect=expected.dialect, pred_dialect=got.dialect,
    )  # fmt: skip
    return GoldComparison(
        id=item.id, match=result.strict, reason="" if result.strict else result.reason, sql=got.sql
    )


def compare(settings: Settings, url: str, dataset: str, split: str | None,
            reference_url: str = DEFAULT_REFERENCE) -> list[GoldComparison]:  # fmt: skip
    items = [i for i in load_dataset(resolve_path(dataset), split=split).items if i.has_gold and not i.db]
    reference = open_database(settings.database_config(reference_url))
    other = open_database(settings.database_config(url))
    return [compare_item(item, reference, other, settings.limits.max_rows) for item in items]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evals.gold_engines", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("SQLAGENT_DATABASE__URL"),
        help="the other engine's database.url (default: $SQLAGENT_DATABASE__URL)",
    )
    parser.add_argument(
        "--reference", default=DEFAULT_REFERENCE, help="the database the gold was written for"
    )
    parser.add_argument("--dataset", default="evals/golden.jsonl")
    parser.add_argument("--split", default="test", help="a split, or 'all'")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url (or SQLAGENT_DATABASE__URL) is required")
    split = None if args.split == "all" else args.split
    results = compare(load_settings(), args.url, args.dataset, split, args.reference)
    for r in results:
        if not r.match:
            print(f"{r.id}: {r.reason}")
    matched = sum(r.match for r in results)
    print(f"{matched}/{len(results)} gold queries return the same rows on both engines")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([r.model_dump() for r in results], indent=1) + "\n")
    return 0 if matched == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
