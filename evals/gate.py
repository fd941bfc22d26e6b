"""The regression gate: compare this run's summary with the accepted baseline (evals/baseline.json).

Pure: two summary dicts in, a `GateResult` out (or `BaselineError` when the baseline cannot be
gated against). The gate FAILS when any of these holds:

- a gated per-item metric lost more correct items than the tolerance allows. Per-item metrics are
  `execution_accuracy` (answerable items: expected status "ok" with a gold query) and
  `status_accuracy` (refusal/clarify items, scored on status). They are judged on the items both
  runs have, as counts, never as rounded percentages:
      compared = items in both runs that the baseline scored in that metric
      lost     = (correct in the baseline) - (correct now), over `compared` (net of items gained)
      allowed  = floor(tolerance / 100 * len(compared))
      fail when lost > allowed
  so a 2.0-point tolerance over 50 compared items allows 1 lost item, over 49 items none.
- a gated summary-level metric (the per-node scores, which have no per-item data) dropped by more
  than `tolerance` points (unrounded difference);
- the gold query of an item errored in this run (the item cannot be scored, and silently dropping
  it from the denominator would raise the accuracy);
- an item of the baseline is missing from this run;
- a must-pass item (flagged in this run or in the baseline) is not present and correct.

Items that flipped either way are always listed; a flip alone does not fail the gate (a 1.5B model
on a few dozen questions moves by a question or two when a prompt changes; the tolerance decides).
A changed dataset digest, LM or pipeline is a warning: the per-item rules above still apply.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOLERANCE = 2.0
DEFAULT_GATED = ("execution_accuracy",)
REACCEPT_HINT = (
    "run the eval without --baseline, review it, and re-accept a baseline with `make eval-accept` "
    "(sqlagent eval-accept)"
)

Item = dict[str, Any]
# What the gate reads of each item of summary["items"].
ITEM_KEYS = frozenset({"correct", "expected_status", "has_gold", "must_pass"})


class BaselineError(ValueError):
    """The baseline cannot be gated against (no per-item results, or no gated metric)."""


def is_answerable(item: Item) -> bool:
    """Scored by execution: expected status ok and a gold query (whether it ran or errored)."""
    return item.get("expected_status") == "ok" and bool(item.get("has_gold"))


def is_status_item(item: Item) -> bool:
    return item.get("expected_status") in ("refused", "clarify")


# Per-item metrics: (name, which items it scores, what the text calls those items).
PER_ITEM: dict[str, tuple[Callable[[Item], bool], str]] = {
    "execution_accuracy": (is_answerable, "answerable"),
    "status_accuracy": (is_status_item, "refusal/clarify"),
}
# Summary-level numbers shown next to each other (label -> path in the summary).
METRICS = {
    "execution_accuracy": ("execution_accuracy",),
    "execution_accuracy_extra_columns_allowed": ("execution_accuracy_extra_columns_allowed",),
    "status_accuracy": ("status_accuracy",),
    "mapping_recall": ("nodes", "rewrite", "mapping_recall"),
    "mapping_precision": ("nodes", "rewrite", "mapping_precision"),
    "schema_link_recall": ("nodes", "retrieve", "schema_link_recall"),
    "sql_validity": ("nodes", "generate", "sql_validity"),
    "answer_grounding": ("nodes", "answer", "grounding"),
}


def _get(summary: dict, path: tuple[str, ...]) -> float | None:
    value: Any = summary
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def check_baseline(baseline: dict, gated: tuple[str, ...] = DEFAULT_GATED) -> None:
    """Raise `BaselineError` unless the baseline has per-item results and every gated metric.

    A baseline the gate cannot read must stop the run, not quietly disable the gate.
    """
    items = baseline.get("items") if isinstance(baseline, dict) else None
    if not isinstance(items, dict) or not items:
        raise BaselineError(f"the baseline has no per-item results: {REACCEPT_HINT}.")
    # Older summaries lack these per item, so answerable and refusal items cannot be told apart.
    if not all(isinstance(v, dict) and v.keys() >= ITEM_KEYS for v in items.values()):
        raise BaselineError(
            f"the baseline's per-item results lack one of {', '.join(sorted(ITEM_KEYS))} (it likely predates "
            f"answerable-only accuracy): {REACCEPT_HINT}."
        )
    for name in gated:
        if name not in METRICS:
            raise BaselineError(f"unknown gated metric {name!r}; known: {', '.join(METRICS)}")
        if _get(baseline, METRICS[name]) is None:
            raise BaselineError(f"the baseline has no {name}: {REACCEPT_HINT}.")
        if name in PER_ITEM and not any(PER_ITEM[name][0](v) for v in items.values()):
            raise BaselineError(f"the baseline has no items scored in {name}: {REACCEPT_HINT}.")


def allowed_losses(tolerance: float, compared: int) -> int:
    # The epsilon keeps e.g. 2.0 points of 50 at exactly 1 despite float rounding.
    return max(0, math.floor(tolerance * compared / 100 + 1e-9))


@dataclass
class CountDelta:
    """A per-item metric judged on the items both runs have."""

    name: str
    label: str  # what the compared items are, e.g. "answerable"
    compared: int
    baseline_correct: int
    current_correct: int
    allowed: int
    tolerance: float
    gated: bool

    @property
    def lost(self) -> int:
        return self.baseline_correct - self.current_correct

    @property
    def failed(self) -> bool:
        return self.gated and self.lost > self.allowed

    def text(self) -> str:
        verdict = (
            f"lost {self.lost} item{'s' if self.lost != 1 else ''}"
            if self.lost > 0
            else (f"gained {-self.lost}" if self.lost < 0 else "lost none")
        )
        flag = "  <-- beyond tolerance" if self.failed else ""
        return (
            f"  {self.name}{' (gated)' if self.gated else ''}: {self.baseline_correct} -> {self.current_correct} "
            f"correct of the {self.compared} {self.label} items both runs have: {verdict}, allowed {self.allowed} "
            f"({self.tolerance:.1f} points of {self.compared}){flag}"
        )


@dataclass
class MetricDelta:
    name: str
    baseline: float | None
    current: float | None
    gated: bool

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass
class GateResult:
    tolerance: float
    counts: list[CountDelta] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # gated metrics beyond tolerance
    to_wrong: list[str] = field(default_factory=list)  # correct in baseline, wrong now
    to_unscored: list[str] = field(default_factory=list)  # correct in baseline, no verdict now
    to_right: list[str] = field(default_factory=list)
    must_pass_failed: list[str] = field(default_factory=list)
    must_pass_why: dict[str, str] = field(default_factory=dict)
    gold_errors: dict[str, str] = field(default_factory=dict)  # id -> error of the gold query
    missing: list[str] = field(default_factory=list)  # in the baseline, not in this run
    new: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.dropped or self.must_pass_failed or self.gold_errors or self.missing)

    def text(self) -> str:
        lines = [
            f"Regression gate: {'PASS' if self.passed else 'FAIL'} (tolerance {self.tolerance:g} points)"
        ]
        lines += [c.text() for c in self.counts]
        shown = [m for m in self.metrics if m.baseline is not None or m.current is not None]
        if shown:
            # Per-item metrics are gated by the counts above; these are each run's own percentages.
            lines.append("  Each run's own figures (%, baseline -> this run):")
        for m in shown:
            b = "n/a" if m.baseline is None else f"{m.baseline:.1f}"
            c = "n/a" if m.current is None else f"{m.current:.1f}"
            d = "" if m.delta is None else f"{m.delta:+.1f}"
            node_gated = m.gated and m.name not in PER_ITEM
            flag = "  <-- dropped beyond tolerance" if node_gated and m.name in self.dropped else ""
            lines.append(f"    {m.name:<40} {b:>6} -> {c:>6}  {d:>6}{' (gated)' if node_gated else ''}{flag}")
        if self.gold_errors:
            lines.append(
                f"Gold query failed, item cannot be scored ({len(self.gold_errors)}; fails the run):"
            )
            lines += [f"  {i}: {e}" for i, e in sorted(self.gold_errors.items())]
        if self.must_pass_failed:
            lines.append(
                "Must-pass items not present and correct: "
                + ", ".join(f"{i} ({self.must_pass_why[i]})" for i in self.must_pass_failed)
            )
        if self.missing:
            lines.append(
                f"In the baseline but not in this run ({len(self.missing)}; fails the run): "
                + ", ".join(self.missing)
            )
        if self.to_wrong:
            lines.append(f"Correct -> wrong ({len(self.to_wrong)}): " + ", ".join(self.to_wrong))
        if self.to_unscored:
            lines.append(f"Correct -> not scored ({len(self.to_unscored)}): " + ", ".join(self.to_unscored))
        if self.to_right:
            lines.append(f"Wrong -> correct ({len(self.to_right)}): " + ", ".join(self.to_right))
        if not (self.to_wrong or self.to_unscored or self.to_right):
            lines.append("No item changed from correct to wrong or back.")
        if self.new:
            lines.append(f"New in this run ({len(self.new)}): " + ", ".join(self.new))
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def gold_errors(summary: dict) -> dict[str, str]:
    """Items of one run whose gold query failed (id -> error): they fail the run, baseline or not."""
    return {
        i: str(v["gold_error"]) for i, v in sorted(summary.get("items", {}).items()) if v.get("gold_error")
    }


def must_pass_problems(now: dict[str, Item], before: dict[str, Item]) -> dict[str, str]:
    """Must-pass items (flagged in either run) that are not present and correct, with why."""
    flagged = {i for i, v in now.items() if v.get("must_pass")} | {
        i for i, v in before.items() if v.get("must_pass")
    }
    why: dict[str, str] = {}
    for item_id in sorted(flagged):
        item = now.get(item_id)
        if item is None:
            why[item_id] = "missing from this run"
        elif item.get("gold_error"):
            why[item_id] = "gold query failed"
        elif item.get("correct") is None:
            why[item_id] = "not scored"
        elif item.get("correct") is not True:
            why[item_id] = "wrong"
    return why


def count_delta(
    name: str, now: dict[str, Item], before: dict[str, Item], tolerance: float, gated: bool
) -> CountDelta:
    selects, label = PER_ITEM[name]
    # Judged on the baseline's scored items: a current None (unscored, gold error) counts as not correct.
    compared = [i for i in now if i in before and selects(before[i]) and before[i].get("correct") is not None]
    return CountDelta(
        name=name,
        label=label,
        compared=len(compared),
        baseline_correct=sum(1 for i in compared if before[i].get("correct") is True),
        current_correct=sum(1 for i in compared if now[i].get("correct") is True),
        allowed=allowed_losses(tolerance, len(compared)),
        tolerance=tolerance,
        gated=gated,
    )


def _flips(result: GateResult, now: dict[str, Item], before: dict[str, Item]) -> None:
    for item_id in sorted(set(now) & set(before)):
        b, c = before[item_id].get("correct"), now[item_id].get("correct")
        if b is True and c is False:
            result.to_wrong.append(item_id)
        elif b is True and c is None:
            result.to_unscored.append(item_id)
        elif b is False and c is True:
            result.to_right.append(item_id)


def _warnings(current: dict, baseline: dict) -> list[str]:
    out = []
    b_ds, c_ds = baseline.get("dataset", {}), current.get("dataset", {})
    if b_ds.get("items_sha256") and b_ds.get("items_sha256") != c_ds.get("items_sha256"):
        out.append(
            "the evaluated items differ from the baseline's (dataset digest changed): the gate still judges "
            "the items both runs have, and missing items fail"
        )
    for key in ("lm", "pipeline"):
        if baseline.get(key) and baseline.get(key) != current.get(key):
            out.append(f"{key} differs: baseline {baseline.get(key)!r}, this run {current.get(key)!r}")
    return out


def compare(
    current: dict,
    baseline: dict,
    tolerance: float = DEFAULT_TOLERANCE,
    gated: tuple[str, ...] = DEFAULT_GATED,
) -> GateResult:
    """Judge `current` against `baseline` by the rules in the module docstring.

    Raises `BaselineError` when the baseline lacks per-item results or a gated metric.
    """
    check_baseline(baseline, gated)
    now: dict[str, Item] = current.get("items", {})
    before: dict[str, Item] = baseline["items"]
    result = GateResult(tolerance=tolerance)
    for name in PER_ITEM:
        delta = count_delta(name, now, before, tolerance, name in gated)
        if delta.compared:
            result.counts.append(delta)
        # A gated metric this run cannot compute at all (no items of its kind) is a drop too.
        if delta.failed or (delta.gated and _get(current, METRICS[name]) is None):
            result.dropped.append(name)
    for name, path in METRICS.items():
        m = MetricDelta(name, _get(baseline, path), _get(current, path), name in gated)
        result.metrics.append(m)
        if not m.gated or name in PER_ITEM:
            continue
        # No per-item data for node scores: compare the unrounded difference of the percentages.
        if (m.delta is not None and m.delta < -tolerance) or (m.baseline is not None and m.current is None):
            result.dropped.append(name)
    _flips(result, now, before)
    result.missing = sorted(set(before) - set(now))
    result.new = sorted(set(now) - set(before))
    result.must_pass_why = must_pass_problems(now, before)
    result.must_pass_failed = list(result.must_pass_why)
    result.gold_errors = gold_errors(current)
    result.warnings = _warnings(current, baseline)
    return result
