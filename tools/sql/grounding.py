"""Filters copied from a worked example: found with sqlglot and dropped before the query runs.

A small model imitates its worked examples closely, and sometimes too closely: asked how many games
Ozzie Smith played at shortstop, it wrote `WHERE a.yearID = 2022 AND ...` because the example it
was shown ("Who played the most games at designated hitter in 2022?") filtered on 2022. On the
golden test and dev splits a copied value (a season, a player id, a school, a team) was in 11 of
98 generated queries. The check is narrow on purpose. A filter is dropped only when its value

- is a value one of the worked examples the model was shown filters on,
- is not written in the question (a number, a decade such as "the 2010s", a name) and is not a
  resolved value hint,
- is compared to a column with many distinct values (ids, seasons): a flag such as 'Y', a league
  or an award name is a category the question names in its own words ("won the pennant"), not a
  copied entity,
- and is one conjunct of a WHERE clause, so that dropping it leaves the same query without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_DECADE = re.compile(r"\b(1[89]\d0|20\d0)'?s\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class CopiedFilter(BaseModel):
    condition: str  # the conjunct as written, e.g. "a.yearID = 2022"
    value: str


class Grounded(BaseModel):
    sql: str
    dropped: list[CopiedFilter] = []

    def detail(self) -> str:
        return "; ".join(f"dropped {d.condition} (copied from a worked example)" for d in self.dropped)


def _filter_values(sql: str, dialect: str) -> set[str]:
    """The values `sql` compares a column with (not its LIMITs, ROUND digits or arithmetic)."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return set()
    values = set()
    for node in tree.find_all(*_COMPARISONS, exp.Between, exp.In):
        found = _column_and_values(node)
        if found is not None:
            values.update(v.this for v in found[1])
    return values


def example_values(example_sqls: Iterable[str], dialect: str = "duckdb") -> set[str]:
    return set().union(*(_filter_values(sql, dialect) for sql in example_sqls))


def _in_question(value: str, question: str) -> bool:
    low = question.lower()
    if _NUMBER.fullmatch(value):
        if value in _NUMBER.findall(low):
            return True
        # "the 2010s" names every season from 2010 to 2019
        return any(int(d) <= float(value) <= int(d) + 9 for d in _DECADE.findall(low))
    return value.lower() in low


def conjuncts(node: exp.Expression | None) -> Iterator[exp.Expression]:
    """The ANDed conditions of a WHERE or ON, parentheses looked through."""
    if isinstance(node, exp.Paren):
        yield from conjuncts(node.this)
    elif isinstance(node, exp.And):
        yield from conjuncts(node.left)
        yield from conjuncts(node.right)
    elif node is not None:
        yield node


def _column_and_values(condition: exp.Expression) -> tuple[exp.Column, list[exp.Literal]] | None:
    """`col <op> literal` (either side), `col BETWEEN lit AND lit` or `col IN (lit, ...)`."""
    if isinstance(condition, _COMPARISONS):
        left, right = condition.left, condition.right
        if isinstance(left, exp.Column) and isinstance(right, exp.Literal):
            return left, [right]
        if isinstance(right, exp.Column) and isinstance(left, exp.Literal):
            return right, [left]
    if isinstance(condition, exp.Between) and isinstance(condition.this, exp.Column):
        bounds = [condition.args.get("low"), condition.args.get("high")]
        if all(isinstance(b, exp.Literal) for b in bounds):
            return condition.this, bounds  # type: ignore[return-value]
    if isinstance(condition, exp.In) and isinstance(condition.this, exp.Column):
        values = condition.expressions
        if values and all(isinstance(v, exp.Literal) for v in values):
            return condition.this, values
    return None


def drop_copied_filters(
    sql: str,
    question: str,
    hint_values: Iterable[str],
    example_sqls: Iterable[str],
    distinct_values: Callable[[str], int],
    min_distinct: int,
    dialect: str = "duckdb",
) -> Grounded:
    """`sql` without the WHERE conjuncts whose values were copied from an example (see the module
    docstring). `distinct_values(column)` is the most distinct values any table holds in that column."""
    copied = example_values(example_sqls, dialect)
    if not copied:
        return Grounded(sql=sql)
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return Grounded(sql=sql)  # the policy reports what does not parse
    hints = {str(v).lower() for v in hint_values}
    dropped: list[CopiedFilter] = []
    for where in list(tree.find_all(exp.Where)):
        before, kept = len(dropped), []
        for condition in conjuncts(where.this):
            found = _column_and_values(condition)
            if found is not None:
                column, values = found
                leaked = [
                    v.this for v in values
                    if v.this in copied and v.this.lower() not in hints and not _in_question(v.this, question)
                ]  # fmt: skip
                if len(leaked) == len(values) and distinct_values(column.name) >= min_distinct:
                    dropped.append(CopiedFilter(condition=condition.sql(dialect=dialect), value=leaked[0]))
                    continue
            kept.append(condition)
        if len(dropped) == before:
            continue
        if kept:
            where.set("this", exp.and_(*kept))
        else:
            where.pop()
    if not dropped:
        return Grounded(sql=sql)
    return Grounded(sql=tree.sql(dialect=dialect), dropped=dropped)
