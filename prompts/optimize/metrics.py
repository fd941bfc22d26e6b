"""Metrics for the five prompt modules, each returning (score in 0..1, feedback text).

- generate and repair: execution match of the predicted SQL with the gold SQL, both run through the
  agent's own path (SQL policy + sandbox via the run_sql tool), compared with evals.scoring. Repair
  counts only when the query is fixed *and* correct.
- rewrite: the mentions go through the same resolution as the rewrite node (capitalised spans added,
  longest first, agent.nodes.rewrite.resolve_question, the node's own) and the mappings are compared with
  expected_mappings on (column, value); `no-rewrite` items must keep the question and map nothing;
  clarify items must come out ambiguous.
- answer: grounded in the rows: non-empty, no number that is not in the rows (or the question), and
  the first row's values quoted.
- explain: names every table the query reads and every column its filters read (sqlglot says which),
  by its name, the words of its name ("year" for yearID) or the first word of its description
  ("home" for HR: "Home runs"); half the score when it writes SQL keywords instead of plain words.

The feedback names what went wrong ("returned 12 rows, expected 1; missing column nameLast") so GEPA's
reflection has something to work with; `score_only` / `with_feedback` adapt a metric to DSPy's two
metric signatures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import dspy
import sqlglot

from agent.nodes.rewrite import resolve_question
from evals import scoring
from tools.run_sql import RunSqlArgs
from tools.sql.read_tables import base_tables, filter_columns

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
    match = scoring.execution_match(
        gold_cols,
        gold_rows,
        cols,
        rows,
        ordered=bool(example.get("ordered")),
        gold_sql=example.gold_sql,
        pred_sql=sql,
    )
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


def _label(m: Any) -> str:
    get = m.get if isinstance(m, dict) else (lambda k: getattr(m, k, None))
    return f"{get('mention')} -> {get('column')} = '{get('value')}'"


# Listing words that name nothing (years, statistics, "players") costs a score fraction: the resolver
# drops them, but a demo that lists them teaches the model to list them, and a generic word can
# fuzzy-match a real value ("players" is close to the 1890 Players' League).
NOISE_FACTOR = 0.8


def _norm(text: Any) -> str:
    return " ".join(str(text or "").lower().split())


def _noise(mentions: list[str], mappings: list[Any], named: list[dict]) -> list[str]:
    """Listed mentions that resolved to nothing and are not (part of) a name that should be listed."""
    names = {_norm(m.get("mention") if isinstance(m, dict) else getattr(m, "mention", "")) for m in mappings}
    names |= {_norm(m.get("mention")) for m in named}
    names.discard("")
    return [m for m in mentions if not any(_norm(m) in n or n in _norm(m) for n in names)]


def rewrite_metric(ctx: Any, example: dspy.Example, pred: Any) -> tuple[float, str]:
    standalone = (getattr(pred, "standalone_question", "") or "").strip() or example.question
    previous = example.get("previous_question")
    if previous and _norm(standalone).rstrip("?. ") == _norm(previous).rstrip("?. "):
        # A follow-up never asks the previous question again; its mappings may still look right.
        return 0.0, (
            f"The standalone question repeats the previous question ({previous!r}); it must ask what "
            f"the follow-up {example.question!r} asks."
        )
    mentions = [m for m in (getattr(pred, "mentions", None) or []) if isinstance(m, str)]
    _, mappings, ambiguity = resolve_question(standalone, mentions, ctx)
    score, feedback = _rewrite_score(example, standalone, mentions, mappings, ambiguity)
    if score <= 0:
        return score, feedback
    named = list(example.get("expected_mappings") or [])
    if ambiguity is not None:  # the name that needs a clarification is a name, not noise
        named.append({"mention": ambiguity.mention})
    noise = _noise(mentions, mappings, named)
    if not noise:
        return score, feedback
    note = f"Do not list {', '.join(repr(n) for n in noise)}: list only proper names (no years, statistics or generic words)."
    return score * NOISE_FACTOR, (note if score == 1 else f"{feedback} {note}")


def _rewrite_score(
    example: dspy.Example, standalone: str, mentions: list[str], mappings: list[Any], ambiguity: Any
) -> tuple[float, str]:
    listed = f" The mentions listed were {mentions}."
    if example.get("expect_clarify"):
        if ambiguity is not None:
            return 1.0, f"Correct: '{ambiguity.mention}' is ambiguous and needs a clarification."
        return (
            0.0,
            "The question names an ambiguous entity that should have been listed as a mention." + listed,
        )
    if ambiguity is not None:
        return (
            0.0,
            f"'{ambiguity.mention}' was listed and matched several entries; expected no ambiguity." + listed,
        )
    if example.get("expect_unchanged"):
        problems = []
        if not example.get("previous_question") and standalone != example.question:
            problems.append("the question was changed; it must stay exactly as written")
        if mappings:
            problems.append("nothing should be mapped, got " + "; ".join(_label(m) for m in mappings))
        return (
            (0.0, "; ".join(problems) + "." + listed) if problems else (1.0, "Correct: nothing to resolve.")
        )
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


def answer_metric(_ctx: Any, example: dspy.Example, pred: Any) -> tuple[float, str]:
    return scoring.answer_grounding(example.question, example.rows, getattr(pred, "answer", "") or "")


# --- explain ---------------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Words that say nothing about which table or column is meant: "one row per person" says "person".
_FILLER = {"id", "a", "an", "the", "of", "in", "per", "for", "and", "or", "to", "by", "on", "at", "as",
           "is", "one", "row", "rows", "each", "number", "code", "e", "g"}  # fmt: skip
_SQL_WORDS = re.compile(r"\b(SELECT|FROM|WHERE|JOIN|GROUP BY|ORDER BY|HAVING|LIMIT|DISTINCT|COUNT\(|SUM\()")


def _stems(text: str) -> list[str]:
    words = (w.lower() for w in _WORD.findall(text))
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w.lower() not in _FILLER]


def names_it(text: str, name: str, description: str = "") -> bool:
    """Does the explanation name `name`: as written, by every word of it (yearID: "year"), or by the
    first word of its description (HR, "Home runs": "home")?"""
    said = set(_stems(text))
    if name.lower() in text.lower() or set(_stems(name)) <= said and _stems(name):
        return True
    head = _stems(re.split(r"[.:;,(=]", description, maxsplit=1)[0])
    return bool(head) and head[0] in said


def explain_metric(ctx: Any, example: dspy.Example, pred: Any) -> tuple[float, str]:
    text = (getattr(pred, "explanation", "") or "").strip()
    if not text:
        return 0.0, "The explanation is empty: say in words what the query reads, keeps and returns."
    tree = sqlglot.parse_one(example.sql, dialect=ctx.db.config.dialect)
    schema = ctx.db.schema
    tables = [t for t in (schema.table(n) for n in base_tables(tree).values()) if t is not None]
    wanted = [(t.name, t.comment) for t in tables]
    for column in filter_columns(tree).values():
        found = next((c for t in tables if (c := t.column(column)) is not None), None)
        wanted.append((found.name, found.comment) if found else (column, ""))
    missing = [name for name, description in wanted if not names_it(text, name, description)]
    score = 1 - len(missing) / len(wanted) if wanted else 1.0
    notes = (
        [f"Name {', '.join(missing)}: the tables it reads and the columns it filters on."] if missing else []
    )
    if _SQL_WORDS.search(text):
        score /= 2
        notes.append("Do not write SQL (SELECT, WHERE, GROUP BY): say what the query does in plain words.")
    return score, " ".join(notes) or "Correct: every table and filter is named in plain words."


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
