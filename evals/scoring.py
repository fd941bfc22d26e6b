"""Scoring: pure functions, no database and no LM. Every rule here is table-tested, and evals/README.md
("Scoring") says where each one follows Spider's test-suite evaluation (Zhong et al., 2020) and where
it deviates from it.

Execution match of a predicted result against the gold result:

- Rows are compared as a bag (a multiset: duplicates count), in order only when the gold SQL has an
  ORDER BY at its outermost level (an ORDER BY inside a subquery or CTE does not order the result).
- Tie groups: under an outer ORDER BY, consecutive gold rows with equal ORDER BY key values form a
  tie group. The predicted rows at the same positions must equal the group as a bag (two players
  tied at 30 HR may come in either order); the groups themselves must come in the gold's order. The
  runner supplies the key values (`order_keys`); without them the order is total. Ties at a LIMIT
  boundary (the gold kept one of two tied rows, the prediction the other) are not handled here: the
  golden set is checked for them instead.
- Columns are matched by content, not by position: some one-to-one map of the gold columns onto the
  predicted columns must reproduce the gold result.
- Strict (the headline number): the prediction has exactly as many columns as the gold result, as in
  Spider, and names never matter (`SUM(HR)` vs `HR`). Relaxed (reported next to it): a strict match,
  or, when the prediction has extra columns, a match in which every gold column is mapped to a
  predicted column with the same output name (case-insensitive, quotes stripped), that reads the same
  source columns (gold `SUM(HR) AS HR` vs `HR` or `SUM(HR) AS total_hr`) or that is the same
  expression. Source columns come from the SQL texts when they are given (followed through CTE and
  subquery aliases), else from the result's column names. So `nameFirst, nameLast, HR` for a gold
  `SUM(HR) AS HR` still answers "how many", while a `SELECT *` of the wrong team does not pass because
  some other column happens to hold the gold value. Fewer columns never match.
- Numbers: two integers must be equal exactly (a payroll off by $100 is wrong); booleans count as the
  integers 0/1. Any other pair of numbers (float vs float, int vs float) is equal within rel 1e-6 or
  abs 1e-4, the default tolerance: 60 == 60.0, 60 != 60.4.
- ROUND: a gold output column whose outermost expression is `ROUND(x, d)` (`ROUND(x)`: d = 0; a CAST
  around it is looked through, and so is a CTE or subquery column) accepts any number within half a
  unit of its last kept digit, 0.5 * 10**-d: gold ROUND(x, 3) = 0.357 matches an unrounded 0.35678,
  not 0.3589. It only ever widens the default (d >= 4 keeps abs 1e-4), and for d < 0 it applies to
  integers too (ROUND(x, -2) = 12300 matches 12345). The tolerance belongs to the gold column,
  whichever predicted column is mapped to it. In an outer set operation a column counts as rounded
  only when every branch rounds it (the coarsest d wins); a CTE that is one is read by its first branch.
- NULL equals NULL and nothing else; strings and other values compare by type and equality
  (case-sensitive).
- Two empty results match (when the column rule holds).
- A truncated result (cut by the sandbox's row or size cap) never counts as correct: a truncated
  prediction is wrong (score_item), a truncated gold is a gold error (evals/runner.py).
"""

from __future__ import annotations

import functools
import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from tools.sql.read_tables import base_tables

REL_TOL = 1e-6
ABS_TOL = 1e-4
_EPS = 1e-9  # float noise at a ROUND boundary: 0.3575 - 0.357 is not exactly 0.0005
_KEY_DIGITS = 4  # numbers are rounded to this many decimals in the fast (sorted) comparison
_MAX_PERMUTATIONS = 20_000  # column assignments tried before giving up (wide, repetitive results)
_MAX_ALIAS_DEPTH = 8  # CTE/subquery aliases followed from an output column to what it reads


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How close a predicted number must be to the gold number of one column."""

    rel_tol: float = REL_TOL
    abs_tol: float = ABS_TOL
    int_tol: float = 0.0  # two integers: |a - b| <= int_tol, so exactly equal by default


DEFAULT_TOLERANCE = Tolerance()


def round_tolerance(digits: int) -> Tolerance:
    """The tolerance of a gold `ROUND(x, digits)` column: half a unit of its last kept digit, never
    narrower than the default (which the fast comparison's 4-decimal keys rely on)."""
    half = 0.5 * 10.0**-digits + _EPS
    return Tolerance(rel_tol=REL_TOL, abs_tol=max(ABS_TOL, half), int_tol=half if digits < 0 else 0.0)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def values_equal(
    a: Any, b: Any, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL, *, int_tol: float = 0.0
) -> bool:
    """One cell: NULL == NULL only; two integers exactly (within `int_tol`); other numbers within
    tolerance; lists element by element; anything else by type and equality."""
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        if isinstance(a, int) and isinstance(b, int):
            return abs(a - b) <= int_tol  # integer arithmetic: exact at any size, unlike float()
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(
            values_equal(x, y, rel_tol, abs_tol, int_tol=int_tol) for x, y in zip(a, b, strict=True)
        )
    return type(a) is type(b) and a == b


def _cell_equal(a: Any, b: Any, tol: Tolerance) -> bool:
    return values_equal(a, b, tol.rel_tol, tol.abs_tol, int_tol=tol.int_tol)


def value_key(value: Any) -> tuple:
    """A hashable, sortable key: equal keys imply equal values under the default tolerance (floats
    rounded to 4 decimals; integers kept whole, so that big ones stay apart)."""
    if value is None:
        return (0, 0, "")
    if _is_number(value):
        if isinstance(value, int):
            return (1, int(value), "")
        return (1, round(value, _KEY_DIGITS), "")
    if isinstance(value, str):
        return (2, 0, value)
    return (3, 0, repr(value))


def _row_key(row: Sequence[Any]) -> tuple:
    return tuple(value_key(v) for v in row)


def _tolerances(tolerances: Sequence[Tolerance] | None, width: int) -> list[Tolerance]:
    if tolerances is None:
        return [DEFAULT_TOLERANCE] * width
    if len(tolerances) != width:
        raise ValueError(f"{len(tolerances)} column tolerances for rows of {width} columns")
    return list(tolerances)


def rows_equal(a: Sequence[Any], b: Sequence[Any], tolerances: Sequence[Tolerance] | None = None) -> bool:
    """Two rows cell by cell; `tolerances` holds one per column (default: DEFAULT_TOLERANCE)."""
    if len(a) != len(b):
        return False
    tols = _tolerances(tolerances, len(a))
    return all(_cell_equal(x, y, t) for x, y, t in zip(a, b, tols, strict=True))


# --- bags of rows ------------------------------------------------------------------------------


def bag_equal(
    gold: Sequence[Sequence[Any]],
    pred: Sequence[Sequence[Any]],
    tolerances: Sequence[Tolerance] | None = None,
) -> bool:
    """Multiset equality of rows, each cell within its column's tolerance."""
    if len(gold) != len(pred):
        return False
    if not gold:
        return True
    tols = _tolerances(tolerances, len(gold[0]))
    # Fast path: sort both sides by key and compare pairwise. Every pair is still checked with its
    # column tolerances, so a "yes" here is always right; a "no" is only a hint.
    gs = sorted(gold, key=_row_key)
    ps = sorted(pred, key=_row_key)
    if all(rows_equal(g, p, tols) for g, p in zip(gs, ps, strict=True)):
        return True
    # Tolerance is not transitive and a key can split two values within it (0.357 vs 0.35678 under a
    # gold ROUND(x, 3)), so the answer is a perfect matching of gold rows onto predicted rows.
    return _perfect_matching(gold, pred, tols)


def _exact_part(row: Sequence[Any]) -> tuple:
    """What must be equal exactly for two rows to match: every cell but numbers (and lists, which
    hold numbers), which are compared with tolerance."""
    out: list[Any] = []
    for v in row:
        if _is_number(v):
            out.append("#")
        elif isinstance(v, list | tuple):
            out.append(("[]", len(v)))
        elif v is None or isinstance(v, str):
            out.append(value_key(v))
        else:
            out.append(("?", type(v).__name__))
    return tuple(out)


def _perfect_matching(
    gold: Sequence[Sequence[Any]], pred: Sequence[Sequence[Any]], tols: list[Tolerance]
) -> bool:
    groups: dict[tuple, tuple[list[Sequence[Any]], list[Sequence[Any]]]] = {}
    for row in gold:
        groups.setdefault(_exact_part(row), ([], []))[0].append(row)
    for row in pred:
        part = _exact_part(row)
        if part not in groups:
            return False
        groups[part][1].append(row)
    return all(len(g) == len(p) and _match_group(g, p, tols) for g, p in groups.values())


def _radius(x: float, tol: Tolerance) -> float:
    """An upper bound of |x - y| over every y that can match x (a search window, not the test)."""
    rel = tol.rel_tol * abs(x) / (1 - tol.rel_tol) if tol.rel_tol < 1 else math.inf
    return max(tol.abs_tol, tol.int_tol, rel) * (1 + 1e-9) + 1e-12


def _hashable(value: Any) -> Any:
    """An exact, hashable stand-in for a cell: identical cells (type and value) share it."""
    if isinstance(value, list | tuple):
        return ("[]", *(_hashable(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("?", repr(value))
    return (type(value).__name__, value)


def _distinct(rows: list[Sequence[Any]]) -> tuple[list[Sequence[Any]], list[int]]:
    """Identical rows once each, with their counts (they have the same matches, so one decision)."""
    counts: Counter = Counter()
    first: dict[tuple, Sequence[Any]] = {}
    for row in rows:
        key = tuple(_hashable(v) for v in row)
        counts[key] += 1
        first.setdefault(key, row)
    return [first[k] for k in counts], list(counts.values())


def _match_group(gold: list[Sequence[Any]], pred: list[Sequence[Any]], tols: list[Tolerance]) -> bool:
    """Rows that agree on everything but numbers: a perfect matching of the gold rows onto the
    predicted rows, identical rows taken together and candidates searched within a window."""
    gold_rows, gold_counts = _distinct(gold)
    pred_rows, pred_counts = _distinct(pred)
    numeric = [i for i, v in enumerate(gold_rows[0]) if _is_number(v)]
    order: list[int] = list(range(len(pred_rows)))
    values: list[float] = []
    col = None
    if numeric:  # the window is on the numeric column that tells the rows apart best
        col = max(numeric, key=lambda i: len({value_key(r[i]) for r in gold_rows}))
        order.sort(key=lambda j: float(pred_rows[j][col]))
        values = [float(pred_rows[j][col]) for j in order]
    adjacency: list[list[int]] = []
    for g in gold_rows:
        if col is None:
            window = order
        else:
            x = float(g[col])
            r = _radius(x, tols[col])
            window = order[bisect_left(values, x - r) : bisect_right(values, x + r)]
        candidates = [j for j in window if rows_equal(g, pred_rows[j], tols)]
        if not candidates:
            return False
        adjacency.append(candidates)
    return _transport(gold_counts, pred_counts, adjacency)


def _transport(supply: list[int], demand: list[int], adjacency: list[list[int]]) -> bool:
    """Can every unit on the left go along an edge to a unit on the right (a perfect b-matching, by
    breadth-first augmenting paths; the totals are equal)?"""
    flow: list[dict[int, int]] = [{} for _ in supply]  # flow[left][right]
    senders: list[dict[int, int]] = [{} for _ in demand]  # senders[right][left] = flow[left][right]
    left_free, right_free = list(supply), list(demand)
    for start in range(len(supply)):
        while left_free[start] > 0:
            reached_by: dict[int, int] = {}  # right -> the left it was reached from
            gives_up: dict[int, int | None] = {start: None}  # left -> the right it would send less to
            queue = deque([start])
            end = None
            while queue and end is None:
                left = queue.popleft()
                for right in adjacency[left]:
                    if right in reached_by:
                        continue
                    reached_by[right] = left
                    if right_free[right] > 0:
                        end = right
                        break
                    for other, sent in senders[right].items():
                        if sent > 0 and other not in gives_up:
                            gives_up[other] = right
                            queue.append(other)
            if end is None:
                return False
            path: list[tuple[int, int, int]] = []  # (left, right, +1 more flow / -1 less)
            amount = min(left_free[start], right_free[end])
            right = end
            while True:
                left = reached_by[right]
                path.append((left, right, 1))
                back = gives_up[left]
                if back is None:
                    break
                path.append((left, back, -1))
                amount = min(amount, flow[left][back])
                right = back
            for left, right, sign in path:
                flow[left][right] = flow[left].get(right, 0) + sign * amount
                senders[right][left] = flow[left][right]
            left_free[start] -= amount
            right_free[end] -= amount
    return True


def list_equal(
    gold: Sequence[Sequence[Any]],
    pred: Sequence[Sequence[Any]],
    tolerances: Sequence[Tolerance] | None = None,
) -> bool:
    return len(gold) == len(pred) and all(
        rows_equal(g, p, tolerances) for g, p in zip(gold, pred, strict=True)
    )


# --- tie groups --------------------------------------------------------------------------------


def tie_groups(order_keys: Sequence[Sequence[Any]]) -> list[tuple[int, int]]:
    """[start, end) runs of consecutive rows whose ORDER BY key values are equal."""
    groups = []
    start = 0
    for i in range(1, len(order_keys) + 1):
        if i == len(order_keys) or list(order_keys[i]) != list(order_keys[start]):
            groups.append((start, i))
            start = i
    return groups


def _segments(
    n_rows: int, ordered: bool, order_keys: Sequence[Sequence[Any]] | None
) -> list[tuple[int, int]]:
    """The row ranges compared as bags: all rows; one row each (a total order); or the tie groups."""
    if not ordered:
        return [(0, n_rows)] if n_rows else []
    if order_keys is None:
        return [(i, i + 1) for i in range(n_rows)]
    if len(order_keys) != n_rows:
        raise ValueError(f"order_keys has {len(order_keys)} rows, the gold result {n_rows}")
    return tie_groups(order_keys)


def _segments_equal(
    gold: Sequence[Sequence[Any]],
    pred: Sequence[Sequence[Any]],
    segments: list[tuple[int, int]],
    tols: list[Tolerance],
) -> bool:
    return all(bag_equal(gold[s:e], pred[s:e], tols) for s, e in segments)


# --- results -----------------------------------------------------------------------------------


def _project(rows: Sequence[Sequence[Any]], columns: Sequence[int]) -> list[tuple]:
    return [tuple(row[i] for i in columns) for row in rows]


@dataclass(frozen=True)
class Match:
    """Execution match of one prediction: strict (same column count) and relaxed (extra columns ok)."""

    strict: bool
    relaxed: bool
    reason: str = ""


def _content_candidates(
    gold_rows: Sequence[Sequence[Any]],
    pred_rows: Sequence[Sequence[Any]],
    n_gold: int,
    n_pred: int,
    segments: list[tuple[int, int]],
    tols: list[Tolerance],
) -> list[list[int]]:
    """For each gold column, the predicted columns that hold its values (a necessary condition)."""
    gold_cols = [[(r[i],) for r in gold_rows] for i in range(n_gold)]
    pred_cols = [[(r[j],) for r in pred_rows] for j in range(n_pred)]
    return [
        [j for j in range(n_pred) if _segments_equal(gold_cols[i], pred_cols[j], segments, [tols[i]])]
        for i in range(n_gold)
    ]


def _find_assignment(
    gold_rows: Sequence[Sequence[Any]],
    pred_rows: Sequence[Sequence[Any]],
    candidates: list[list[int]],
    segments: list[tuple[int, int]],
    tols: list[Tolerance],
) -> bool:
    """Is there a one-to-one map gold column -> one of its candidate pred columns under which the
    results are equal?"""
    if any(not c for c in candidates):
        return False
    if not gold_rows:
        return any(True for _ in _assignments(candidates))
    for tried, assignment in enumerate(_assignments(candidates), 1):
        if _segments_equal(gold_rows, _project(pred_rows, assignment), segments, tols):
            return True
        if tried >= _MAX_PERMUTATIONS:
            return False
    return False


def _assignments(candidates: list[list[int]]) -> Iterable[tuple[int, ...]]:
    """Injective choices, one candidate per gold column (depth-first, identity-like first)."""
    if all(len(c) == 1 for c in candidates):
        chosen = tuple(c[0] for c in candidates)
        if len(set(chosen)) == len(chosen):
            yield chosen
        return
    n = len(candidates)

    def walk(i: int, used: tuple[int, ...]) -> Iterable[tuple[int, ...]]:
        if i == n:
            yield used
            return
        for j in candidates[i]:
            if j not in used:
                yield from walk(i + 1, (*used, j))

    yield from walk(0, ())


def column_tolerances(
    gold_sql: str | None, gold_columns: Sequence[str], dialect: str = "duckdb"
) -> list[Tolerance]:
    """One tolerance per gold column: from its outermost ROUND(x, d), else the default."""
    return [
        round_tolerance(c.round_digits) if c.round_digits is not None else DEFAULT_TOLERANCE
        for c in output_columns(gold_sql, gold_columns, dialect)
    ]


def execution_match(
    gold_columns: Sequence[str],
    gold_rows: Sequence[Sequence[Any]],
    pred_columns: Sequence[str],
    pred_rows: Sequence[Sequence[Any]],
    *,
    ordered: bool,
    order_keys: Sequence[Sequence[Any]] | None = None,
    gold_sql: str | None = None,
    pred_sql: str | None = None,
    dialect: str = "duckdb",
    pred_dialect: str = "duckdb",
) -> Match:
    """Compare a predicted result with the gold result (see the module docstring for the rules).

    `order_keys` (one list of ORDER BY key values per gold row) turns ties into bags when `ordered`;
    `gold_sql` gives each gold column its ROUND tolerance and, with `pred_sql`, the source columns
    the relaxed view matches on. Without them: a total order, the default tolerance, names only.
    """
    n_gold, n_pred = len(gold_columns), len(pred_columns)
    if gold_rows and any(len(r) != n_gold for r in gold_rows):
        raise ValueError("gold rows do not match the gold column count")
    if pred_rows and any(len(r) != n_pred for r in pred_rows):
        raise ValueError("predicted rows do not match the predicted column count")
    if n_pred < n_gold:
        return Match(False, False, f"{n_pred} columns, expected {n_gold}")
    if len(gold_rows) != len(pred_rows):
        return Match(False, False, f"{len(pred_rows)} rows, expected {len(gold_rows)}")
    segments = _segments(len(gold_rows), ordered, order_keys)
    if n_gold == 0:
        return Match(n_pred == 0, True, "" if n_pred == 0 else "extra columns")
    gold_out = output_columns(gold_sql, gold_columns, dialect)
    tols = [
        round_tolerance(c.round_digits) if c.round_digits is not None else DEFAULT_TOLERANCE for c in gold_out
    ]
    by_content = _content_candidates(gold_rows, pred_rows, n_gold, n_pred, segments, tols)
    different = "different values" + (" or order" if ordered else "")
    if n_pred == n_gold:
        if _find_assignment(gold_rows, pred_rows, by_content, segments, tols):
            return Match(True, True, "")
        return Match(False, False, different)
    extra = f"{n_pred - n_gold} extra column(s)"
    pred_out = output_columns(pred_sql, pred_columns, pred_dialect)
    unnamed = [
        gold_columns[i] for i, g in enumerate(gold_out) if not any(same_column(g, p) for p in pred_out)
    ]
    if unnamed:
        return Match(
            False, False, f"{extra}, none named like or reading the same columns as {', '.join(unnamed)}"
        )
    by_name = [[j for j in c if same_column(gold_out[i], pred_out[j])] for i, c in enumerate(by_content)]
    if _find_assignment(gold_rows, pred_rows, by_name, segments, tols):
        return Match(False, True, extra)
    return Match(False, False, f"{extra}; {different} in the columns named like the gold's")


# --- SQL structure (sqlglot) ---------------------------------------------------------------------


def _parse(sql: str, dialect: str) -> exp.Expression | None:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError:
        return None
    return tree


def has_outer_order_by(sql: str, dialect: str = "duckdb") -> bool:
    """Does the statement's result have a defined order (ORDER BY at the outermost level)?"""
    tree = _parse(sql, dialect)
    if tree is None:
        return "order by" in sql.lower()  # unparsable gold: err on the side of checking the order
    while isinstance(tree, exp.Subquery | exp.Paren):
        if tree.args.get("order"):
            return True
        tree = tree.this
    return bool(tree.args.get("order"))


def sql_tables(sql: str, dialect: str = "duckdb") -> set[str]:
    """Base tables a statement reads (CTE names excluded), as written (case kept)."""
    tree = _parse(sql, dialect)
    return set() if tree is None else set(base_tables(tree).values())


@dataclass(frozen=True)
class OutputColumn:
    """One result column as far as its SQL tells: what the relaxed view and the ROUND tolerance use."""

    name: str  # the result's column name, lower-case, quotes stripped
    sources: frozenset[str] = frozenset()  # the column names it reads (lower-case), through aliases
    expression: str | None = None  # its expression without alias or table qualifiers (None: no SQL)
    round_digits: int | None = None  # d when its outermost expression is ROUND(x, d)


def same_column(gold: OutputColumn, pred: OutputColumn) -> bool:
    """May the relaxed view map this gold column onto this predicted column? Same name, same source
    columns, or the same expression; content is checked separately."""
    if gold.name == pred.name:
        return True
    if gold.sources and gold.sources == pred.sources:
        return True
    return gold.expression is not None and gold.expression == pred.expression


def output_columns(sql: str | None, names: Sequence[str], dialect: str = "duckdb") -> list[OutputColumn]:
    """One entry per result column: from the SQL when it parses and its outer SELECT lists exactly
    these columns (no `*`), else from the names alone (a name like `sum(HR)` still reads HR)."""
    described = _describe_sql(sql, dialect) if sql else None
    if described is None or len(described) != len(names):
        return [OutputColumn(_norm_name(n), _name_sources(n)) for n in names]
    return [OutputColumn(_norm_name(n), *d) for n, d in zip(names, described, strict=True)]


class _Described(NamedTuple):
    sources: frozenset[str]
    expression: str | None
    round_digits: int | None


def _norm_name(name: str) -> str:
    return name.strip().strip("\"'`").lower()


@functools.lru_cache(maxsize=1024)
def _name_sources(name: str) -> frozenset[str]:
    # DuckDB names an unaliased expression column by its text (`sum(HR)`): parse it when it looks
    # like a call, so that the name says what it reads. Anything else reads the column it names.
    if "(" in name:
        try:
            node = sqlglot.parse_one(name, read="duckdb")
        except sqlglot.errors.SqlglotError:
            node = None
        if node is not None:
            found = frozenset(c.name.lower() for c in node.find_all(exp.Column) if c.name)
            if found:
                return found
    return frozenset({_norm_name(name)})


def _unwrap(tree: exp.Expression) -> exp.Expression:
    while isinstance(tree, exp.Subquery | exp.Paren):
        tree = tree.this
    return tree


def _is_star(projection: exp.Expression) -> bool:
    return isinstance(projection, exp.Star) or (
        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
    )


def _leaf_scopes(scope: Scope) -> list[Scope]:
    """The SELECT scopes of a set operation, left to right (a plain SELECT: itself)."""
    if scope.set_operation_scopes:
        return [leaf for branch in scope.set_operation_scopes for leaf in _leaf_scopes(branch)]
    return [scope]


@functools.lru_cache(maxsize=1024)
def _describe_sql(sql: str, dialect: str) -> tuple[_Described, ...] | None:
    tree = _parse(sql, dialect)
    if tree is None:
        return None
    try:
        root = build_scope(_unwrap(tree))
    except Exception:  # sqlglot cannot scope every query DuckDB runs: fall back to the names
        return None
    if root is None:
        return None
    branches: list[list[_Described]] = []
    for scope in _leaf_scopes(root):
        select = scope.expression
        if not isinstance(select, exp.Select) or any(_is_star(p) for p in select.selects):
            return None
        branches.append([_describe_projection(p.unalias(), scope) for p in select.selects])
    if len({len(b) for b in branches}) != 1:
        return None
    if len(branches) == 1:
        return tuple(branches[0])
    merged = []
    for cols in zip(*branches, strict=True):
        digits = [c.round_digits for c in cols]
        rounded = min(d for d in digits if d is not None) if all(d is not None for d in digits) else None
        merged.append(_Described(frozenset().union(*(c.sources for c in cols)), None, rounded))
    return tuple(merged)


def _describe_projection(expr: exp.Expression, scope: Scope) -> _Described:
    return _Described(
        frozenset(_sources(expr, scope, 0)), _expression_text(expr), _round_digits(_follow(expr, scope))
    )


def _derived(scope: Scope, column: exp.Column) -> tuple[exp.Expression, Scope] | None:
    """The expression behind a column of a CTE or derived table, with the scope it is written in."""
    sources = {str(k).lower(): v for k, v in scope.sources.items()}
    table = column.table.lower()
    candidates = [sources[table]] if table in sources else ([] if table else list(sources.values()))
    name = column.name.lower()
    for source in candidates:
        if not isinstance(source, Scope):
            continue
        leaf = _leaf_scopes(source)[0]  # a set operation's columns are named by its first branch
        if not isinstance(leaf.expression, exp.Select):
            continue
        for p in leaf.expression.selects:
            if not _is_star(p) and p.alias_or_name.lower() == name:
                return p.unalias(), leaf
    return None


def _sources(expr: exp.Expression, scope: Scope, depth: int) -> set[str]:
    out: set[str] = set()
    for col in expr.find_all(exp.Column):
        if isinstance(col.this, exp.Star) or not col.name:
            continue
        hit = _derived(scope, col) if depth < _MAX_ALIAS_DEPTH else None
        if hit is None:
            out.add(col.name.lower())
        else:  # a CTE column reads what its own expression reads (a literal there: keep the name)
            out |= _sources(hit[0], hit[1], depth + 1) or {col.name.lower()}
    return out


def _follow(expr: exp.Expression, scope: Scope) -> exp.Expression:
    """A bare column of a CTE or derived table, replaced by the expression it stands for."""
    for _ in range(_MAX_ALIAS_DEPTH):
        if not isinstance(expr, exp.Column):
            break
        hit = _derived(scope, expr)
        if hit is None:
            break
        expr, scope = hit
    return expr


def _round_digits(expr: exp.Expression) -> int | None:
    while isinstance(expr, exp.Cast | exp.Paren):  # ROUND(x, 2)::DOUBLE keeps ROUND's precision
        expr = expr.this
    if not isinstance(expr, exp.Round):
        return None
    digits = expr.args.get("decimals")
    if digits is None:
        return 0
    sign = 1
    if isinstance(digits, exp.Neg):
        sign, digits = -1, digits.this
    if isinstance(digits, exp.Literal) and not digits.is_string and digits.this.isdigit():
        return sign * int(digits.this)
    return None  # ROUND(x, some_expression): the precision is unknown, keep the default


def _expression_text(expr: exp.Expression) -> str:
    bare = expr.copy()
    for col in bare.find_all(exp.Column):
        for part in ("table", "db", "catalog"):
            col.set(part, None)
    return bare.sql(dialect="duckdb").lower()


# --- ORDER BY keys of a gold (the runner runs them) ---------------------------------------------


class OrderKeyError(ValueError):
    """The ORDER BY key values of a gold can neither be read off its result nor added to it."""


@dataclass(frozen=True)
class OrderKeyPlan:
    """Where a gold's ORDER BY key values are: `positions` index the result's columns; a position
    at or past the column count indexes an extra projection that `query` (the gold with its missing
    keys appended to the SELECT list) adds at the end. `query` is None when no key is missing."""

    positions: tuple[int, ...]
    query: str | None = None


def _ordered_node(tree: exp.Expression) -> exp.Expression | None:
    """The node that carries the outermost ORDER BY (through wrapping parentheses), if any."""
    while True:
        if tree.args.get("order"):
            return tree
        if not isinstance(tree, exp.Subquery | exp.Paren):
            return None
        tree = tree.this


def _first_select(tree: exp.Expression) -> exp.Select | None:
    tree = _unwrap(tree)
    while isinstance(tree, exp.SetOperation):
        tree = _unwrap(tree.this)
    return tree if isinstance(tree, exp.Select) else None


def _output_position(
    key: exp.Expression, projections: list[exp.Expression], columns: Sequence[str]
) -> int | None:
    """The result column an ORDER BY expression is: an ordinal, a select alias, the same expression,
    or (after a `*`) a result column name."""
    if isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit():
        k = int(key.this)
        return k - 1 if 1 <= k <= len(columns) else None
    bare_name = key.name.lower() if isinstance(key, exp.Column) and not key.table else None
    listed = len(projections) == len(columns) and not any(_is_star(p) for p in projections)
    if listed:
        if bare_name:  # an alias wins over a column of the same name, as in DuckDB
            for i, p in enumerate(projections):
                if isinstance(p, exp.Alias) and p.alias.lower() == bare_name:
                    return i
        text = key.sql(dialect="duckdb").lower()
        for i, p in enumerate(projections):
            if p.unalias().sql(dialect="duckdb").lower() == text:
                return i
        if bare_name:
            for i, p in enumerate(projections):
                if p.alias_or_name.lower() == bare_name:
                    return i
    if bare_name:
        hits = [i for i, c in enumerate(columns) if _norm_name(c) == bare_name]
        if len(hits) == 1:
            return hits[0]
    return None


def order_key_plan(sql: str, columns: Sequence[str], dialect: str = "duckdb") -> OrderKeyPlan | None:
    """How to get the gold's ORDER BY key values for each of its result rows (None: no outer ORDER
    BY). Raises OrderKeyError, saying why, when they can only be had by changing the result."""
    tree = _parse(sql, dialect)
    if tree is None:
        raise OrderKeyError("the gold SQL does not parse")
    node = _ordered_node(tree)
    if node is None:
        return None
    select = _first_select(node)
    projections = list(select.selects) if select is not None else []
    positions: list[int] = []
    missing: list[exp.Expression] = []
    for ordered in node.args["order"].expressions:
        key = ordered.this
        pos = _output_position(key, projections, columns)
        if pos is None:
            missing.append(key)
            pos = len(columns) + len(missing) - 1
        positions.append(pos)
    if not missing:
        return OrderKeyPlan(tuple(positions))
    if not isinstance(node, exp.Select):
        raise OrderKeyError(
            "its ORDER BY names an expression that is not an output column of a set operation"
        )
    if node.args.get("distinct"):
        raise OrderKeyError("SELECT DISTINCT: an added ORDER BY column would change the rows")
    group = node.args.get("group")
    if group is not None and group.args.get("all"):
        raise OrderKeyError("GROUP BY ALL: an added ORDER BY column would change the groups")
    augmented = tree.copy()
    target = _ordered_node(augmented)
    if not isinstance(target, exp.Select):  # a copy has the shape of its original; never expected
        raise OrderKeyError("the copied gold lost its ORDER BY")
    for i, key in enumerate(missing):
        target.select(exp.alias_(key.copy(), f"__order_key_{i}", quoted=True), copy=False)
    return OrderKeyPlan(tuple(positions), augmented.sql(dialect=dialect))


# --- per-node scores ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlap:
    """true positives, predicted count, expected count; precision/recall are None when undefined."""

    tp: int
    predicted: int
    expected: int

    @property
    def precision(self) -> float | None:
        return self.tp / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.expected if self.expected else None


def _mapping_key(m: Any) -> tuple[str, str]:
    get = m.get if isinstance(m, dict) else (lambda k: getattr(m, k, None))
    return (str(get("column") or "").lower(), str(get("value") or "").strip().lower())


def mapping_overlap(expected: Sequence[Any], predicted: Sequence[Any]) -> Overlap:
    """Rewrite mappings vs expected_mappings on (column, value): the table may differ, because the
    agent filters on the hub table (Teams.teamID) where the gold mapping names another one."""
    exp_keys = Counter(_mapping_key(m) for m in expected)
    pred_keys = Counter(_mapping_key(m) for m in predicted)
    tp = sum((exp_keys & pred_keys).values())
    return Overlap(tp, sum(pred_keys.values()), sum(exp_keys.values()))


def table_recall(gold_tables: Iterable[str], linked_tables: Iterable[str]) -> float | None:
    gold = {t.lower() for t in gold_tables}
    if not gold:
        return None
    linked = {t.lower() for t in linked_tables}
    return len(gold & linked) / len(gold)


def status_match(expected_status: str, status: str | None) -> bool:
    return (status or "") == expected_status


# --- aggregates --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no values."""
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


# --- one item ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemScore:
    """What the report and the gate need about one item. `correct` is None when there is no gold."""

    correct: bool | None
    correct_relaxed: bool | None
    reason: str
    status_ok: bool


def score_item(
    *,
    expected_status: str,
    status: str | None,
    gold: tuple[Sequence[str], Sequence[Sequence[Any]]] | None,
    gold_error: str | None,
    pred_columns: Sequence[str],
    pred_rows: Sequence[Sequence[Any]],
    ordered: bool,
    pred_truncated: bool = False,
    order_keys: Sequence[Sequence[Any]] | None = None,
    gold_sql: str | None = None,
    pred_sql: str | None = None,
    dialect: str = "duckdb",
) -> ItemScore:
    """Refusal and clarify items are scored on status; answerable items by execution match.

    `gold` is (columns, rows) of the gold SQL, or None when the item has none (predictions only).
    A truncated prediction is wrong: the rows past the cap are unknown, so it cannot be compared.
    `order_keys`, `gold_sql` and `pred_sql` go to execution_match (tie groups, ROUND tolerance,
    the relaxed view's column names); `dialect` is the gold's (the prediction is DuckDB).
    """
    status_ok = status_match(expected_status, status)
    if expected_status != "ok":
        why = "" if status_ok else f"status {status}, expected {expected_status}"
        return ItemScore(status_ok, status_ok, why, status_ok)
    if gold_error:
        return ItemScore(None, None, f"gold SQL failed: {gold_error}", status_ok)
    if gold is None:
        return ItemScore(None, None, "no gold SQL", status_ok)
    if status != "ok":
        return ItemScore(False, False, f"status {status}", status_ok)
    if pred_truncated:
        why = f"result truncated at {len(pred_rows)} rows (the cap), cannot be compared"
        return ItemScore(False, False, why, status_ok)
    match = execution_match(
        gold[0],
        gold[1],
        pred_columns,
        pred_rows,
        ordered=ordered,
        order_keys=order_keys,
        gold_sql=gold_sql,
        pred_sql=pred_sql,
        dialect=dialect,
    )
    return ItemScore(match.strict, match.relaxed, match.reason, status_ok)


# --- answer grounding ------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![A-Za-z_\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?![\d])")
_NEGATIVE = re.compile(r"\b(no|none|not|nothing|zero)\b|n't", re.IGNORECASE)


def numbers_in(text: str) -> list[tuple[float, int]]:
    """(value, decimals) of every number written in the text ('1,234' -> 1234, '.356' -> 0.356)."""
    out = []
    for m in _NUMBER.finditer(text):
        raw = m.group(0).replace(",", "")
        if not raw or raw in ("-", ".", "-."):
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        decimals = len(raw.split(".", 1)[1]) if "." in raw else 0
        out.append((value, decimals))
    return out


def _same_number(written: tuple[float, int], actual: float) -> bool:
    value, decimals = written
    return math.isclose(value, actual, rel_tol=1e-9, abs_tol=0.5 * 10 ** (-decimals) + 1e-9)


def _table(rows_text: str) -> tuple[list[list[str]], int | None]:
    lines = rows_text.splitlines()
    more = None
    if lines and lines[-1].startswith("... ") and lines[-1].endswith(" more rows"):
        more = int(re.sub(r"\D", "", lines.pop()) or 0)
    return [line.split(" | ") for line in lines[1:]], more


def answer_grounding(question: str, rows_text: str, answer: str) -> tuple[float, str]:
    """(score in 0..1, feedback) for an answer against the rows it was given, as the answer node saw
    them (prompts.answer.rows_text): non-empty; no number that is not in the rows or the question;
    the first row's values quoted (half the score). No rows: the answer must say there is no data."""
    answer = (answer or "").strip()
    if not answer:
        return 0.0, "The answer is empty."
    rows, more = _table(rows_text)
    if not rows:
        if _NEGATIVE.search(answer):
            return 1.0, "Correct: says there is no matching data."
        return 0.0, "There are no rows: the answer must say that the database has no matching data."
    allowed = [v for row in rows for cell in row for v, _ in numbers_in(cell)]
    allowed += [v for v, _ in numbers_in(question)] + [float(len(rows))]
    if more is not None:
        allowed += [float(more), float(len(rows) + more)]
    invented = [w for w in numbers_in(answer) if not any(_same_number(w, a) for a in allowed)]
    if invented:
        shown = ", ".join(f"{v:g}" for v, _ in invented[:4])
        return 0.0, f"The answer states numbers that are not in the rows ({shown}); quote the rows exactly."
    first = [c for c in rows[0] if c and c != "NULL"]
    written = numbers_in(answer)
    low = answer.lower()
    quoted = []
    for cell in first:
        values = numbers_in(cell)
        if values and len(values) == 1 and re.fullmatch(r"-?[\d.,]+", cell.strip()):
            hit = any(_same_number(w, values[0][0]) for w in written)
        else:
            hit = cell.lower() in low
        quoted.append(hit)
    coverage = sum(quoted) / len(quoted) if quoted else 1.0
    score = 0.5 + 0.5 * min(1.0, 2 * coverage)
    if score == 1.0:
        return 1.0, "Grounded: quotes the rows."
    missed = [c for c, hit in zip(first, quoted, strict=True) if not hit]
    return score, "Grounded but does not quote the result: mention " + ", ".join(
        repr(c) for c in missed[:4]
    ) + "."
