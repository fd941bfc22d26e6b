"""Why a query returned no rows, said so that a repair can change the clause at fault.

Told only "the query ran but returned no rows", the 1.5B model wrote the same query again in every
empty-result repair of the golden test and dev splits (2026-12-01: 7 of 7, and the second repair
was then served from the cache). The database can say which clause emptied the result, in
milliseconds:

- a filter value no row has ("no row of AwardsPlayers has awardID = 'WS MVP'"), with the stored
  values closest to it;
- one WHERE condition that leaves nothing when the others still match rows
  ("pp.IPouts >= 150 leaves no rows; without it the query returns 12");
- a join that pairs no rows at all ("Teams JOIN AwardsPlayers ON T1.teamID = T2.playerID"), with
  what each side holds.

Every probe is a read-only query made from parts of the checked query (its own tables, columns and
literals), so it needs no other permission than the query itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from tools.sql.grounding import conjuncts

Run = Callable[[str], Sequence[Sequence[Any]]]  # rows of a read-only query; raises when it fails

_MAX_CONDITIONS = 8  # probes per WHERE: a query rarely has more, and each probe is one more query
_CLOSE_VALUES = 3


def explain_empty(sql: str, run: Run, dialect: str = "duckdb") -> str:
    """One or two sentences on why `sql` returns no rows, or '' when no probe finds the cause."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return ""
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    if select is None:
        return ""
    sources = _sources(select)
    where = select.args.get("where")
    conditions = list(conjuncts(where.this)) if where is not None else []
    for condition in conditions:
        said = _missing_value(condition, sources, run, dialect)
        if said:
            return said
    if conditions:
        said = _blocking_condition(tree, select, conditions[:_MAX_CONDITIONS], run, dialect)
        if said:
            return said
    return _empty_join(select, sources, run, dialect)


def _sources(select: exp.Select) -> dict[str, exp.Table]:
    """Alias (or name), lower-case -> base table read directly by this SELECT."""
    out: dict[str, exp.Table] = {}
    for table in [(select.args.get("from_") or select.args.get("from")), *(select.args.get("joins") or [])]:
        node = table.this if table is not None else None
        if isinstance(node, exp.Table) and node.name:
            out[node.alias_or_name.lower()] = node
    return out


def _table_of(column: exp.Column, sources: dict[str, exp.Table]) -> exp.Table | None:
    if column.table:
        return sources.get(column.table.lower())
    return next(iter(sources.values())) if len(sources) == 1 else None


def _count(run: Run, sql: str) -> int | None:
    try:
        rows = run(f"SELECT COUNT(*) FROM ({sql}) AS probe")
    except Exception:  # a probe that cannot run says nothing; the query itself already ran
        return None
    return int(rows[0][0]) if rows else None


def _missing_value(condition: exp.Expression, sources: dict[str, exp.Table], run: Run, dialect: str) -> str:
    """'No row of T has col = 'v'' for `col = 'v'` / `col IN (...)` whose string values no row holds."""
    if isinstance(condition, exp.EQ):
        column, values = condition.left, [condition.right]
        if isinstance(values[0], exp.Column) and isinstance(column, exp.Literal):
            column, values = values[0], [column]
    elif isinstance(condition, exp.In):
        column, values = condition.this, list(condition.expressions)
    else:
        return ""
    if (
        not isinstance(column, exp.Column)
        or not values
        or not all(isinstance(v, exp.Literal) and v.is_string for v in values)
    ):
        return ""
    table = _table_of(column, sources)
    if table is None:
        return ""
    name = exp.column(column.name, quoted=column.this.quoted)
    source = exp.table_(table.name, db=table.db or None, quoted=table.this.quoted).sql(dialect=dialect)
    target = name.sql(dialect=dialect)
    for value in values:
        literal = value.sql(dialect=dialect)
        found = _count(run, f"SELECT 1 FROM {source} WHERE {target} = {literal} LIMIT 1")
        if found != 0:
            continue
        close = _close_values(run, source, target, value.this)
        said = f"no row of {table.name} has {column.name} = {literal}"
        if close:
            said += "; the stored values closest to it are " + ", ".join(f"'{v}'" for v in close)
        return said[0].upper() + said[1:] + "."
    return ""


def _close_values(run: Run, source: str, column: str, value: str) -> list[str]:
    text = value.replace("'", "''")
    try:
        rows = run(
            f"SELECT v FROM (SELECT DISTINCT CAST({column} AS VARCHAR) AS v FROM {source} WHERE {column} IS NOT NULL) "
            f"ORDER BY (CASE WHEN contains(lower(v), lower('{text}')) OR contains(lower('{text}'), lower(v)) "
            f"THEN 1 ELSE 0 END) + jaro_winkler_similarity(lower(v), lower('{text}')) DESC, v "
            f"LIMIT {_CLOSE_VALUES}"
        )
    except Exception:
        return []
    return [str(r[0]) for r in rows]


def _blocking_condition(
    tree: exp.Expression, select: exp.Select, conditions: list[exp.Expression], run: Run, dialect: str
) -> str:
    """The one WHERE condition without which the query returns rows (when exactly one is)."""
    unblocking: list[tuple[str, int]] = []
    where = select.args["where"]
    limit = select.args.get("limit")
    if limit is not None:
        limit.pop()  # count every row the probe returns, not the first LIMIT of them
    for i, condition in enumerate(conditions):
        rest = [c.copy() for j, c in enumerate(conditions) if j != i]
        if rest:
            where.set("this", exp.and_(*rest))
        else:
            where.pop()
        count = _count(run, tree.sql(dialect=dialect))
        select.set("where", where)
        if count:
            unblocking.append((condition.sql(dialect=dialect), count))
    where.set("this", exp.and_(*conditions))
    if limit is not None:
        select.set("limit", limit)
    if len(unblocking) == 1:
        condition, count = unblocking[0]
        return f"The condition {condition} leaves no rows; without it the query returns {count}."
    if len(unblocking) == 2:
        (first, _), (second, _) = unblocking
        return f"No row meets both {first} and {second}; either one alone with the other conditions returns rows."
    return ""


def _empty_join(select: exp.Select, sources: dict[str, exp.Table], run: Run, dialect: str) -> str:
    """A join whose ON pairs no rows of its two tables, with a sample of what each key holds."""
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        right = join.this
        if on is None or not isinstance(right, exp.Table):
            continue
        aliases = {c.table.lower() for c in on.find_all(exp.Column) if c.table}
        left_alias = next((a for a in aliases if a != right.alias_or_name.lower()), None)
        left = sources.get(left_alias or "")
        if left is None or aliases - {left_alias, right.alias_or_name.lower()}:
            continue
        probe = f"SELECT 1 FROM {left.sql(dialect=dialect)} JOIN {right.sql(dialect=dialect)} ON {on.sql(dialect=dialect)} LIMIT 1"
        if _count(run, probe) != 0:
            continue
        said = f"Joining {left.name} and {right.name} ON {on.sql(dialect=dialect)} pairs no rows"
        samples = []
        first = next(conjuncts(on))  # what the first pair of keys holds is enough to see the mismatch
        for column in first.find_all(exp.Column):
            table = sources.get(column.table.lower()) if column.table else None
            if table is None:
                continue
            try:
                rows = run(
                    f"SELECT DISTINCT {exp.column(column.name, quoted=column.this.quoted).sql(dialect=dialect)} "
                    f"FROM {exp.table_(table.name, quoted=table.this.quoted).sql(dialect=dialect)} "
                    f"WHERE {exp.column(column.name, quoted=column.this.quoted).sql(dialect=dialect)} IS NOT NULL LIMIT 2"
                )
            except Exception:
                continue
            if rows:
                samples.append(
                    f"{table.name}.{column.name} holds values like " + ", ".join(repr(r[0]) for r in rows)
                )
        return said + (": " + "; ".join(dict.fromkeys(samples)) if samples else "") + "."
    return ""
