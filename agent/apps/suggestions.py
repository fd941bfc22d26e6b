"""The questions the ask page opens with: a handful from the configured database's golden set.

The README's own questions come first (tag `readme`), then easy ones, one per SQL template
(evals/templates.py: the same query with other literals counts once), in the file's order: the same list on every load, varied, and each answered by a verified query. A
question whose gold SQL reads what the caller's role may not see is not suggested (the page must
not offer what the role will be refused), nor are multi-turn items and questions with no SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from evals.templates import mask_sql

DEFAULT_COUNT = 6


def suggested_questions(
    golden: Path, reads_hidden: Callable[[str], bool], count: int = DEFAULT_COUNT
) -> list[str]:
    if not golden.is_file():  # a database without a golden set yet (`sqlagent init` writes a skeleton)
        return []
    items = [json.loads(line) for line in golden.read_text(encoding="utf-8").splitlines() if line.strip()]
    usable = [i for i in items if i.get("gold_sql") and i.get("question") and not i.get("turns")]
    ranked = [i for i in usable if "readme" in i.get("tags", [])] + [
        i for i in usable if i.get("difficulty") == "easy" and "readme" not in i.get("tags", [])
    ]
    out: list[str] = []
    seen_templates: set[str] = set()
    for item in ranked:
        template = mask_sql(item["gold_sql"])
        if item["question"] in out or template in seen_templates or reads_hidden(item["gold_sql"]):
            continue
        seen_templates.add(template)
        out.append(item["question"])
        if len(out) == count:
            break
    return out
