"""Scoring: pure functions, no database and no LM. Every rule here is table-tested.

Execution match follows Spider's test-suite evaluation (Zhong et al., 2020):

- Rows are compared as a bag (a multiset: duplicates count), in order only when the gold SQL has an
  ORDER BY at its outermost level (an ORDER BY inside a subquery or CTE does not order the result).
- Columns are matched by content, not by name or position: some permutation of the predicted
  columns must reproduce the gold result. Column names never matter (`SUM(HR)` vs `HR`).
- Strict (the headline number): the prediction has exactly as many columns as the gold result,
  as in Spider. Relaxed (reported next to it): extra predicted columns are allowed when the gold
  columns are found among them (`nameFirst, nameLast, HR` for a gold `HR` still answers "how
  many"). Fewer columns never match.
- Numbers: equal within rel 1e-6 or abs 1e-4 (a gold `ROUND(x, 4)` vs an unrounded prediction).
  Integers and floats compare by value (60 == 60.0); booleans count as 0/1.
- NULL equals NULL and nothing else.
- Two empty results match (when the column rule holds).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

REL_TOL = 1e-6
ABS_TOL = 1e-4
_KEY_DIGITS = 4  # numbers are rounded to this many decimals in the fast (hash) comparison
_MAX_PERMUTATIONS = 20_000  # column assignments tried before giving up (wide, repetitive results)


# --- values ------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))


def values_equal(a: Any, b: Any, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL) -> bool:
    """One cell: NULL == NULL only; numbers within tolerance; anything else by equality."""
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(values_equal(x, y, rel_tol, abs_tol) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def value_key(value: Any) -> tuple:
    """A hashable, sortable key: equal keys imply equal values (numbers rounded to 4 decimals)."""
    if value is None:
        return (0, 0.0, "")
    if _is_number(value):
        return (1, round(float(value), _KEY_DIGITS), "")
    if isinstance(value, str):
        return (2, 0.0, value)
    return (3, 0.0, repr(value))


def rows_equal(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))


# --- results -----------------------------------------------------------------------------------


def _project(rows: Sequence[Sequence[Any]], columns: Sequence[int]) -> list[tuple]:
    return [tuple(row[i] for i in columns) for row in rows]


def bag_equal(gold: Sequence[Sequence[Any]], pred: Sequence[Sequence[Any]]) -> bool:
    """Multiset equality of rows with numeric tolerance."""
    if len(gold) != len(pred):
        return False
    gkeys = [tuple(value_key(v) for v in r) for r in gold]
    pkeys = [tuple(value_key(v) for v in r) for r in pred]
    if Counter(gkeys) == Counter(pkeys):
        return True
    # Rounding can split two values that are within tolerance (0.12344999 vs 0.12345001): sort both
    # sides and compare pairwise, then fall back to greedy matching.
    gs = [r for _, r in sorted(zip(gkeys, gold, strict=True), key=lambda kv: kv[0])]
    ps = [r for _, r in sorted(zip(pkeys, pred, strict=True), key=lambda kv: kv[0])]
    if all(rows_equal(g, p) for g, p in zip(gs, ps, strict=True)):
        return True
    if len(gold) > 2000:
        return False
    unused = list(pred)
    for g in gold:
        for i, p in enumerate(unused):
            if rows_equal(g, p):
                del unused[i]
                break
        else:
            return False
    return True


def list_equal(gold: Sequence[Sequence[Any]], pred: Sequence[Sequence[Any]]) -> bool:
    return len(gold) == len(pred) and all(rows_equal(g, p) for g, p in zip(gold, pred, strict=True))


def _column_compatible(gold_col: list[Any], pred_col: list[Any], ordered: bool) -> bool:
    """A cheap necessary condition for pred column j to stand for gold column i."""
    if ordered:
        return all(values_equal(g, p) for g, p in zip(gold_col, pred_col, strict=True))
    return bag_equal([[v] for v in gold_col], [[v] for v in pred_col])


@dataclass(frozen=True)
class Match:
    """Execution match of one prediction: strict (same column count) and relaxed (extra columns ok)."""

    strict: bool
    relaxed: bool
    reason: str = ""


def _find_assignment(
    gold_rows: Sequence[Sequence[Any]],
    pred_rows: Sequence[Sequence[Any]],
    n_gold: int,
    n_pred: int,
    ordered: bool,
) -> bool:
    """Is there an injective map gold column -> pred column under which the results are equal?"""
    if not gold_rows:
        return True
    gold_cols = [[r[i] for r in gold_rows] for i in range(n_gold)]
    pred_cols = [[r[j] for r in pred_rows] for j in range(n_pred)]
    candidates = [
        [j for j in range(n_pred) if _column_compatible(gold_cols[i], pred_cols[j], ordered)] for i in range(n_gold)
    ]
    if any(not c for c in candidates):
        return False
    compare = list_equal if ordered else bag_equal
    for tried, assignment in enumerate(_assignments(candidates), 1):
        if compare(gold_rows, _project(pred_rows, assignment)):
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


def execution_match(
    gold_columns: Sequence[str],
    gold_rows: Sequence[Sequence[Any]],
    pred_columns: Sequence[str],
    pred_rows: Sequence[Sequence[Any]],
    *,
    ordered: bool,
) -> Match:
    """Compare a predicted result with the gold result (see the module docstring for the rules)."""
    n_gold, n_pred = len(gold_columns), len(pred_columns)
    if gold_rows and any(len(r) != n_gold for r in gold_rows):
        raise ValueError("gold rows do not match the gold column count")
    if pred_rows and any(len(r) != n_pred for r in pred_rows):
        raise ValueError("predicted rows do not match the predicted column count")
    if n_pred < n_gold:
        return Match(False, False, f"{n_pred} columns, expected {n_gold}")
    if len(gold_rows) != len(pred_rows):
        return Match(False, False, f"{len(pred_rows)} rows, expected {len(gold_rows)}")
    if n_gold == 0:
        return Match(n_pred == 0, True, "" if n_pred == 0 else "extra columns")
    found = _find_assignment(gold_rows, pred_rows, n_gold, n_pred, ordered)
    if not found:
        why = "different values" + (" or order" if ordered else "")
        return Match(False, False, why)
    if n_pred == n_gold:
        return Match(True, True, "")
    return Match(False, True, f"{n_pred - n_gold} extra column(s)")


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
    if tree is None:
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


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
) -> ItemScore:
    """Refusal and clarify items are scored on status; answerable items by execution match.

    `gold` is (columns, rows) of the gold SQL, or None when the item has none (predictions only).
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
    match = execution_match(gold[0], gold[1], pred_columns, pred_rows, ordered=ordered)
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
    them (agent.nodes.answer.rows_text): non-empty; no number that is not in the rows or the question;
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
    return score, "Grounded but does not quote the result: mention " + ", ".join(repr(c) for c in missed[:4]) + "."
