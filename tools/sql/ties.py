"""Everyone tied at the top, when the question asks for ties: `ORDER BY x DESC LIMIT 1` keeps one
of them at random.

Asked "Which players have the most All-Star selections? Include everyone tied at the top.", the
model orders and keeps one row (Stan Musial; Hank Aaron and Willie Mays have as many). When the
question says tie, tied or ties, the outer query's LIMIT N becomes `QUALIFY RANK() OVER (ORDER BY
<the same keys>) <= N`: the first N ranks, every row of a rank kept, the order and the columns
unchanged.
"""

from __future__ import annotations

import re

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

_TIES = re.compile(r"\b(ties|tied|tie|tying)\b", re.IGNORECASE)


class KeptTies(BaseModel):
    sql: str
    detail: str = ""


def keep_ties(sql: str, question: str, dialect: str = "duckdb") -> KeptTies:
    if not _TIES.search(question):
        return KeptTies(sql=sql)
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return KeptTies(sql=sql)
    if not isinstance(tree, exp.Select):
        return KeptTies(sql=sql)
    order, limit = tree.args.get("order"), tree.args.get("limit")
    if order is None or limit is None or tree.args.get("offset") is not None or tree.args.get("qualify"):
        return KeptTies(sql=sql)
    count = limit.expression
    if not (isinstance(count, exp.Literal) and count.is_int) or int(count.this) > 100:
        return KeptTies(sql=sql)  # a LIMIT that is a page, not "the top N"
    rank = exp.Window(this=exp.Anonymous(this="RANK"), order=order.copy())
    limit.pop()
    tree.set("qualify", exp.Qualify(this=exp.LTE(this=rank, expression=count.copy())))
    return KeptTies(
        sql=tree.sql(dialect=dialect),
        detail=f"kept every row tied within the top {count.this} (the question asks for ties)",
    )
