"""Metrics for the four prompt modules, each returning (score in 0..1, feedback text).

- generate and repair: execution match of the predicted SQL with the gold SQL, both run through the
  agent's own path (SQL policy + sandbox via the run_sql tool), compared with evals.scoring. Repair
  counts only when the query is fixed *and* correct.
- rewrite: the mentions go through the same resolution as the rewrite node (capitalised spans added,
  longest first, agent.nodes.rewrite.resolve_mentions) and the mappings are compared with
  expected_mappings on (column, value); `no-rewrite` items must keep the question and map nothing;
  clarify items must come out ambiguous.
- answer: grounded in the rows: non-empty, no number that is not in the rows (or the question), and
  the first row's values quoted.

The feedback names what went wrong ("returned 12 rows, expected 1; missing column nameLast") so GEPA's
reflection has something to work with; `score_only` / `with_feedback` adapt a metric to DSPy's two
metric signatures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import dspy

from evals import scoring
from tools.run_sql import RunSqlArgs

MetricFn = Callable[[Any, dspy.Example, Any], tuple[float, str]]


# --- running SQL the agent's way -----------------------------------------------------------------


class SqlRunner:
    """Runs SQL through the run_sql tool (policy + sandbox) and remembers results (the gold runs once)."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self._cache: dict[str, tuple[list[str], list[list[Any]], str | None]] = {}

    def run(self, sql: str) -> tuple[list[str], list[list[Any]], str | None]:
        sql = (sql or "").strip()
        if not sql:
            return [], [], "the model returned no SQL"
        if sql not in self._cache:
            result = self.ctx.tools.call("run_sql", self.ctx.db, RunSqlArgs(sql=sql[:20_000]))
            if result.status == "ok":
                self._cache[sql] = (result.columns, result.rows, None)
            else:
                self._cache[sql] = ([], [], f"{result.error_kind}: {result.error}")
        return self._cache[sql]


def _short(value: Any, limit: int = 160) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sql_feedback(runner: SqlRunner, example: dspy.Example, sql: str) -> tuple[float, str]:
    """1.0 when the SQL's result matches the gold SQL's (strict execution match), with the why."""
    gold_cols, gold_rows, gold_error = runner.run(example.gold_sql)
    if gold_error:
        return 0.0, f"(the gold SQL itself failed: {gold_error})"
    cols, rows, error = runner.run(sql)
    hint = f" A correct query: {example.gold_sql}"
    if error:
        return 0.0, f"The query failed: {_short(error, 300)}.{hint}"
    match = scoring.execution_match(gold_cols, gold_rows, cols, rows, ordered=bool(example.get("ordered")))
    if match.strict:
        return 1.0, "Correct: the result matches the expected rows."
    notes = []
    if len(rows) != len(gold_rows):
        notes.append(f"returned {len(rows)} rows, expected {len(gold_rows)}")
    have = {c.lower() for c in cols}
    missing = [c for c in gold_cols if c.lower() not in have]
    if missing and len(cols) < len(gold_cols) + 1:
        notes.append("missing column " + ", ".join(missing))
    if len(cols) != len(gold_cols):
        notes.append(f"{len(cols)} columns, expected {len(gold_cols)} ({', '.join(gold_cols)})")
    if match.relaxed and not notes:
        notes.append("the right rows with extra columns")
    if not notes:
        notes.append(match.reason or "different values")
        if gold_rows and rows:
            notes.append(f"first row {_short(rows[0], 80)}, expected {_short(gold_rows[0], 80)}")
    return 0.0, "Wrong result: " + "; ".join(notes) + "." + hint


def generate_metric(runner: SqlRunner, example: dspy.Example, pred: Any) -> tuple[float, str]:
    return sql_feedback(runner, example, getattr(pred, "sql", "") or "")


def repair_metric(runner: SqlRunner, example: dspy.Example, pred: Any) -> tuple[float, str]:
    sql = getattr(pred, "sql", "") or ""
    if sql.strip() == example.failed_sql.strip():
        return 0.0, f"The query was returned unchanged; it still fails with: {_short(example.error, 200)}."
    score, feedback = sql_feedback(runner, example, sql)
    return score, ("Fixed and correct." if score else feedback)


# --- rewrite ---------------------------------------------------------------------------------------


def resolved_mappings(ctx: Any, question: str, mentions: list[str]):
    """The rewrite node's resolution of the LM's mentions (kept in step with agent/nodes/rewrite.py)."""
    from agent.nodes.rewrite import candidate_mentions, resolve_mentions

    return resolve_mentions(question, candidate_mentions(question, mentions), ctx)


def _label(m: Any) -> str:
    get = m.get if isinstance(m, dict) else (lambda k: getattr(m, k, None))
    return f"{get('mention')} -> {get('column')} = '{get('value')}'"


def rewrite_metric(ctx: Any, example: dspy.Example, pred: Any) -> tuple[float, str]:
    standalone = (getattr(pred, "standalone_question", "") or "").strip() or example.question
    mentions = [m for m in (getattr(pred, "mentions", None) or []) if isinstance(m, str)]
    mappings, ambiguity = resolved_mappings(ctx, standalone, mentions)
    listed = f" The mentions listed were {mentions}."
    if example.get("expect_clarify"):
        if ambiguity is not None:
            return 1.0, f"Correct: '{ambiguity.mention}' is ambiguous and needs a clarification."
        return 0.0, "The question names an ambiguous entity that should have been listed as a mention." + listed
    if ambiguity is not None:
        return 0.0, f"'{ambiguity.mention}' was listed and matched several entries; expected no ambiguity." + listed
    if example.get("expect_unchanged"):
        problems = []
        if not example.get("previous_question") and standalone != example.question:
            problems.append("the question was changed; it must stay exactly as written")
        if mappings:
            problems.append("nothing should be mapped, got " + "; ".join(_label(m) for m in mappings))
        return (0.0, "; ".join(problems) + "." + listed) if problems else (1.0, "Correct: nothing to resolve.")
    expected = list(example.get("expected_mappings") or [])
    overlap = scoring.mapping_overlap(expected, mappings)
    if not expected and not mappings:
        return 1.0, "Correct: nothing to resolve."
    f1 = 2 * overlap.tp / (overlap.predicted + overlap.expected)
    keys = {scoring._mapping_key(m) for m in mappings}
    want = {scoring._mapping_key(m) for m in expected}
    missing = [_label(m) for m in expected if scoring._mapping_key(m) not in keys]
    extra = [_label(m) for m in mappings if scoring._mapping_key(m) not in want]
    notes = []
    if missing:
        notes.append("missing " + "; ".join(missing) + " (list that name as a mention, as written)")
    if extra:
        notes.append("unexpected " + "; ".join(extra) + " (do not list that word)")
    return f1, ("Correct mappings." if f1 == 1 else "; ".join(notes) + "." + listed)


# --- answer ----------------------------------------------------------------------------------------

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


def answer_metric(_ctx: Any, example: dspy.Example, pred: Any) -> tuple[float, str]:
    answer = (getattr(pred, "answer", "") or "").strip()
    if not answer:
        return 0.0, "The answer is empty."
    rows, more = _table(example.rows)
    if not rows:
        if _NEGATIVE.search(answer):
            return 1.0, "Correct: says there is no matching data."
        return 0.0, "There are no rows: the answer must say that the database has no matching data."
    allowed = [v for row in rows for cell in row for v, _ in numbers_in(cell)]
    allowed += [v for v, _ in numbers_in(example.question)] + [float(len(rows))]
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


# --- DSPy metric adapters --------------------------------------------------------------------------


def score_only(fn: MetricFn, state: Any) -> Callable[..., float]:
    """metric(example, pred, trace=None) -> float, for Evaluate, BootstrapFewShot, MIPROv2 and SIMBA."""

    def metric(example, pred, trace=None, *args, **kwargs) -> float:
        return fn(state, example, pred)[0]

    return metric


def with_feedback(fn: MetricFn, state: Any) -> Callable[..., dspy.Prediction]:
    """GEPA's metric: a Prediction with score and textual feedback."""

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction:
        score, feedback = fn(state, gold, pred)
        return dspy.Prediction(score=score, feedback=feedback)

    return metric
