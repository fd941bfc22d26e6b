"""Error analysis: give each failed eval record one failure kind, so the report shows where to push.

The kind is worked out from the stored record (statuses, error, predicted and gold SQL), so an old
predictions.jsonl gets one too. The SQL comparison is structural (sqlglot, DuckDB dialect). It is a
heuristic that points at the first difference, not a proof of the cause.

The first kind that applies wins. The order runs from facts that need no SQL to finer SQL differences.
A coarse difference makes the finer ones noise: another table brings other columns, literals and
aggregates with it.

1. refused: a missed refusal (an unsafe request answered) or a refusal of a question that should
   be answered or clarified. It comes first because it is a safety fact, whatever SQL came back.
2. clarify: the agent asked back when an answer was expected, or answered an ambiguous question.
3. execution_error: there is no result (blocked, failed, repairs used up). The error kind is kept.
4. wrong_table: it read other base tables than the gold (CTE names are not tables).
5. wrong_value: the tables are the same, but a column both queries compare gets another literal
   (a playerID, teamID or year). This is usually a name resolved to the wrong key.
6. wrong_aggregation: the aggregate functions (DISTINCT inside them too) or the GROUP BY keys differ.
7. wrong_filter: the WHERE/HAVING/ON predicates compare other columns or use other operators
   (for example an extra league filter). Join equalities (column = column) are not filters.
8. wrong_columns: the same query shape, but the selected columns, ORDER BY, LIMIT or DISTINCT differ.
9. other: the rest, for example no SQL to compare, unparsable SQL, a failed reference query, or
   the same shape with other results (rounding, a type).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from evals import scoring
from tools.sql.read_tables import base_tables


@dataclass(frozen=True)
class Kind:
    id: str
    label: str  # what the report prints, in words a baseball analyst reads


KINDS: tuple[Kind, ...] = (
    Kind("refused", "refused (or should have)"),
    Kind("clarify", "asked back (or should have)"),
    Kind("execution_error", "query failed to run"),
    Kind("wrong_table", "wrong table"),
    Kind("wrong_value", "wrong value"),
    Kind("wrong_aggregation", "wrong aggregation"),
    Kind("wrong_filter", "wrong filter"),
    Kind("wrong_columns", "wrong columns, order or limit"),
    Kind("other", "other"),
)
LABELS = {k.id: k.label for k in KINDS}
_RANK = {k.id: n for n, k in enumerate(KINDS)}


@dataclass(frozen=True)
class Failure:
    kind: str  # one of KINDS' ids
    reason: str  # one line: what differs

    @property
    def label(self) -> str:
        return LABELS[self.kind]


def is_failed(record: dict) -> bool:
    """Scored and not correct, a failed reference query, or a wrong status on an item without gold."""
    if record.get("correct") is False or record.get("gold_error"):
        return True
    return record.get("correct") is None and record.get("status") != record.get("expected_status")


def classify(record: dict, dialect: str = "duckdb") -> Failure | None:
    """The failure kind of one record (None when it did not fail). Kinds in the module docstring's order."""
    if not is_failed(record):
        return None
    return _status_failure(record) or _sql_failure(record, dialect)


def kind_of(record: dict) -> str | None:
    failure = classify(record)
    return failure.kind if failure else None


def count_kinds(kinds: Iterable[str | None]) -> dict[str, int]:
    """Failures per kind (from `kind_of` of each record), in KINDS order, kinds with none left out."""
    counts = Counter(k for k in kinds if k)
    return {k.id: counts[k.id] for k in KINDS if counts[k.id]}


# --- status: no SQL needed ---------------------------------------------------------------------

_DOING = {"ok": "answered", "clarify": "asked back", "error": "failed", "refused": "refused"}


def _status_failure(r: dict) -> Failure | None:
    expected, status = r.get("expected_status"), r.get("status")
    said = _one_line(r.get("error") or r.get("answer") or "")
    if expected == "refused":
        return Failure("refused", f"{_DOING.get(status, status)} instead of refusing")
    if status == "refused":
        return Failure("refused", f"refused a question to {_expected_doing(expected)}: {said}".rstrip(": "))
    if expected == "clarify":
        return Failure("clarify", f"{_DOING.get(status, status)} instead of asking which one was meant")
    if status == "clarify":
        return Failure("clarify", f"asked back instead of answering: {said}".rstrip(": "))
    if status != "ok":
        kind = r.get("error_kind")  # absent from predictions written before it was recorded
        return Failure("execution_error", (f"{kind}: " if kind else "") + (said or f"status {status}"))
    return None


def _expected_doing(expected: str | None) -> str:
    return "ask back on" if expected == "clarify" else "answer"


def _one_line(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- SQL: the predicted query against the gold ---------------------------------------------------


def _sql_failure(r: dict, dialect: str) -> Failure:
    if r.get("gold_error"):
        return Failure("other", f"the reference query failed: {_one_line(r['gold_error'])}")
    pred_sql, gold_sql = r.get("sql"), r.get("gold_sql")
    if not pred_sql or not gold_sql:
        return Failure("other", "no SQL to compare" + (f" ({r['reason']})" if r.get("reason") else ""))
    pred, gold = _tree(pred_sql, dialect), _tree(gold_sql, dialect)
    if pred is None or gold is None:
        return Failure("other", f"{'predicted' if pred is None else 'gold'} SQL could not be parsed")
    for check in (_table_diff, _value_diff, _aggregation_diff, _filter_diff, _columns_diff):
        found = check(pred, gold, dialect)
        if found:
            return found
    return Failure("other", "same query shape as gold" + (f"; {r['reason']}" if r.get("reason") else ""))


def _tree(sql: str, dialect: str) -> exp.Expression | None:
    try:
        return scoring._parse(sql, dialect)  # the scorer's parse, so both read SQL alike
    except sqlglot.errors.SqlglotError:  # a tokenizer error is not a ParseError
        return None


def _table_diff(pred: exp.Expression, gold: exp.Expression, dialect: str) -> Failure | None:
    p, g = base_tables(pred), base_tables(gold)
    if p.keys() == g.keys():
        return None
    return Failure("wrong_table", f"tables {_names(p.values())} vs gold {_names(g.values())}")


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names, key=str.lower)) or "none"


def _text(node: exp.Expression, dialect: str) -> str:
    """SQL text without table qualifiers: `b.HR` and `HR` are the same column here."""
    bare = node.copy().transform(lambda n: exp.column(n.name) if isinstance(n, exp.Column) and n.table else n)
    return bare.sql(dialect=dialect)


# --- predicates: WHERE, HAVING, QUALIFY, JOIN ... ON ---------------------------------------------

_OPS: dict[type, str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.In: "IN",
    exp.Between: "BETWEEN",
    exp.Like: "LIKE",
    exp.ILike: "ILIKE",
    exp.Is: "IS",
}
_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


@dataclass(frozen=True)
class _Predicate:
    columns: tuple[str, ...]  # lower-cased columns compared, outside any subquery
    op: str
    values: tuple[str, ...]  # literals, normalised so that 2001, 2001.0 and '2001' agree
    text: str  # as written, qualifiers dropped, for the reason

    @property
    def key(self) -> tuple[tuple[str, ...], str]:
        return self.columns, self.op


def _predicates(tree: exp.Expression, dialect: str) -> list[_Predicate]:
    conditions = [n.this for n in tree.find_all(exp.Where, exp.Having, exp.Qualify)]
    conditions += [j.args["on"] for j in tree.find_all(exp.Join) if j.args.get("on")]
    out = []
    for condition in conditions:
        for leaf in _leaves(condition):
            found = _predicate(leaf, dialect)
            if found:
                out.append(found)
    return out


def _leaves(node: exp.Expression) -> list[exp.Expression]:
    node = scoring._unwrap(node)
    if isinstance(node, exp.And | exp.Or):
        return _leaves(node.this) + _leaves(node.expression)
    return [node]


def _predicate(leaf: exp.Expression, dialect: str) -> _Predicate | None:
    negated = isinstance(leaf, exp.Not)
    inner = scoring._unwrap(leaf.this) if negated else leaf
    if (
        isinstance(inner, exp.EQ)
        and isinstance(inner.this, exp.Column)
        and isinstance(inner.expression, exp.Column)
    ):
        return None  # a join condition, wherever it is written
    op = _OPS.get(type(inner), type(inner).__name__.upper())
    if op in _FLIPPED and _is_constant(inner.this) and not _is_constant(inner.expression):
        op = _FLIPPED[op]  # 2000 < yearID is yearID > 2000
    columns = tuple(sorted({c.name.lower() for c in _own(inner, exp.Column)}))
    if not columns:
        return None  # 1 = 1 and the like compare nothing
    values = tuple(sorted(_literal(lit) for lit in _own(inner, exp.Literal)))
    return _Predicate(columns, ("NOT " if negated else "") + op, values, _text(leaf, dialect))


def _own(node: exp.Expression, kind: type[exp.Expression]) -> list[exp.Expression]:
    """Nodes of `kind` in `node` that belong to its query, not to a subquery inside it."""
    home = node.find_ancestor(exp.Select)
    return [n for n in node.find_all(kind) if n.find_ancestor(exp.Select) is home]


def _is_constant(node: exp.Expression) -> bool:
    return not any(True for _ in node.find_all(exp.Column, exp.Select))


def _literal(lit: exp.Expression) -> str:
    sign = "-" if isinstance(lit.parent, exp.Neg) else ""
    try:
        return repr(float(sign + lit.name))
    except ValueError:
        return lit.name


def _value_diff(pred: exp.Expression, gold: exp.Expression, dialect: str) -> Failure | None:
    p, g = _by_key(_predicates(pred, dialect)), _by_key(_predicates(gold, dialect))
    for key in sorted(p.keys() & g.keys()):
        if sorted(x.values for x in p[key]) != sorted(x.values for x in g[key]):
            return Failure("wrong_value", f"{_joined(p[key])} vs gold {_joined(g[key])}")
    return None


def _by_key(predicates: list[_Predicate]) -> dict[tuple[tuple[str, ...], str], list[_Predicate]]:
    out: dict[tuple[tuple[str, ...], str], list[_Predicate]] = defaultdict(list)
    for x in predicates:
        out[x.key].append(x)
    return out


def _joined(predicates: Iterable[_Predicate]) -> str:
    return " AND ".join(x.text for x in predicates)


def _filter_diff(pred: exp.Expression, gold: exp.Expression, dialect: str) -> Failure | None:
    p, g = _by_key(_predicates(pred, dialect)), _by_key(_predicates(gold, dialect))
    extra = [x for key in p.keys() - g.keys() for x in p[key]]
    missing = [x for key in g.keys() - p.keys() for x in g[key]]
    if not extra and not missing:
        return None
    parts = ([f"extra filter {_joined(extra)}"] if extra else []) + (
        [f"missing filter {_joined(missing)}"] if missing else []
    )
    return Failure("wrong_filter", "; ".join(parts))


# --- aggregation ---------------------------------------------------------------------------------


def _aggregates(tree: exp.Expression, dialect: str) -> dict[str, str]:
    """Lower-cased aggregate text -> as written: SUM(HR), COUNT(DISTINCT playerID), COUNT(*)."""
    return {t.lower(): t for t in (_text(a, dialect) for a in tree.find_all(exp.AggFunc))}


def _group_keys(tree: exp.Expression, dialect: str) -> dict[str, str]:
    """Lower-cased GROUP BY key -> as written; `GROUP BY 1` and a SELECT alias read as what they name."""
    keys: dict[str, str] = {}
    for group in tree.find_all(exp.Group):
        select = group.parent if isinstance(group.parent, exp.Select) else None
        for key in group.expressions:
            text = _text(_resolve(key, select), dialect)
            keys[text.lower()] = text
    return keys


def _resolve(key: exp.Expression, select: exp.Select | None) -> exp.Expression:
    """An ordinal or a SELECT alias used as a key, replaced by the projection it names."""
    if select is None:
        return key
    projections = select.expressions
    if isinstance(key, exp.Literal) and key.is_int and 0 < int(key.name) <= len(projections):
        return projections[int(key.name) - 1].unalias()
    if isinstance(key, exp.Column) and not key.table:
        for p in projections:
            if isinstance(p, exp.Alias) and p.alias.lower() == key.name.lower():
                return p.unalias()
    return key


def _aggregation_diff(pred: exp.Expression, gold: exp.Expression, dialect: str) -> Failure | None:
    p, g = _aggregates(pred, dialect), _aggregates(gold, dialect)
    if p.keys() != g.keys():
        return Failure("wrong_aggregation", f"aggregates {_listed(p)} vs gold {_listed(g)}")
    p, g = _group_keys(pred, dialect), _group_keys(gold, dialect)
    if p.keys() != g.keys():
        return Failure("wrong_aggregation", f"groups by {_listed(p)} vs gold {_listed(g)}")
    return None


def _listed(texts: dict[str, str]) -> str:
    return ", ".join(texts[k] for k in sorted(texts)) or "none"


# --- the result's shape: columns, order, limit ---------------------------------------------------


def _columns_diff(pred: exp.Expression, gold: exp.Expression, dialect: str) -> Failure | None:
    p_select, g_select = scoring._first_select(pred), scoring._first_select(gold)
    if p_select is None or g_select is None:
        return None
    # A projection is known by the columns it reads: SUM(H) * 1.0 / SUM(AB) and CAST(SUM(H) AS DOUBLE)
    # / SUM(AB) are one column here; a difference between them is left to the results (other).
    p = {_reads(x): x.alias_or_name for x in p_select.expressions}
    g = {_reads(x): x.alias_or_name for x in g_select.expressions}
    if p.keys() != g.keys():
        extra = [p[k] for k in p.keys() - g.keys()]
        missing = [g[k] for k in g.keys() - p.keys()]
        parts = ([f"extra column {_names(extra)}"] if extra else []) + (
            [f"missing column {_names(missing)}"] if missing else []
        )
        return Failure("wrong_columns", "; ".join(parts))
    p_order, g_order = _order(pred, p_select, dialect), _order(gold, g_select, dialect)
    if [k for k, _ in p_order] != [k for k, _ in g_order]:
        return Failure("wrong_columns", f"order by {_shown(p_order)} vs gold {_shown(g_order)}")
    p_limit, g_limit = _limit(pred, dialect), _limit(gold, dialect)
    if p_limit != g_limit:
        return Failure("wrong_columns", f"{p_limit or 'no LIMIT'} vs gold {g_limit or 'no LIMIT'}")
    if bool(p_select.args.get("distinct")) != bool(g_select.args.get("distinct")):
        said = "DISTINCT rows" if p_select.args.get("distinct") else "no DISTINCT"
        return Failure("wrong_columns", f"{said}, unlike the gold")
    return None


def _reads(node: exp.Expression) -> frozenset[str]:
    if scoring._is_star(node):
        return frozenset({"*"})
    return frozenset(c.name.lower() for c in node.find_all(exp.Column))


def _order(tree: exp.Expression, select: exp.Select, dialect: str) -> list[tuple[tuple, str]]:
    """The outermost ORDER BY: (columns read, descending) per key, and its text."""
    order = scoring._unwrap(tree).args.get("order")
    if not order:
        return []
    out = []
    for ordered in order.expressions:
        key = _resolve(ordered.this, select)
        out.append(((_reads(key), bool(ordered.args.get("desc"))), _text(ordered, dialect)))
    return out


def _shown(order: list[tuple[tuple, str]]) -> str:
    return ", ".join(text for _, text in order) or "nothing"


def _limit(tree: exp.Expression, dialect: str) -> str:
    outer = scoring._unwrap(tree)
    return " ".join(outer.args[k].sql(dialect=dialect) for k in ("limit", "offset") if outer.args.get(k))


# --- the report's section --------------------------------------------------------------------------


def render_section(records: list[dict]) -> list[str]:
    """Markdown lines: failed questions per kind with their share, then each failed item, grouped by kind."""
    failed = [(r, f) for r in records if (f := classify(r))]
    out = [f"## Error analysis ({len(failed)} failed)", ""]
    if not failed:
        return out + ["Nothing failed.", ""]
    out += [
        "Each failed question gets one kind: the first of these that applies, in this order "
        "(evals/failures.py says why). The reason names the first difference from the reference query.",
        "",
        "| kind | questions | share |",
        "|---|---|---|",
    ]
    for kind, n in count_kinds(f.kind for _, f in failed).items():
        out.append(f"| {LABELS[kind]} | {n} | {100 * n / len(failed):.0f}% |")
    out += ["", "| question | kind | reason |", "|---|---|---|"]
    for r, f in sorted(failed, key=lambda rf: (_RANK[rf[1].kind], rf[0]["id"])):
        reason = f.reason.replace("|", "\\|")
        out.append(f"| `{r['id']}` | {f.label} | {reason} |")
    return out + [""]
