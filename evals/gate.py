"""The regression gate: compare this run's summary with the accepted baseline (evals/baseline.json).

Pure: two summary dicts in, a `GateResult` out. It fails when
- execution accuracy (or another gated metric) dropped by more than `tolerance` points, or
- a `must_pass` item is not correct.
Items that flipped either way are always listed (a flip alone does not fail the gate: a 1.5B model
on a few dozen questions moves by a question or two when a prompt changes; the tolerance decides).
Per-node metrics are compared too and shown, but only gated when named in `gated`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_TOLERANCE = 2.0
DEFAULT_GATED = ("execution_accuracy",)
# (label, path in the summary) of the numbers shown next to each other.
METRICS = {
    "execution_accuracy": ("execution_accuracy",),
    "execution_accuracy_relaxed": ("execution_accuracy_relaxed",),
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
    return value if isinstance(value, int | float) else None


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
        return round(self.current - self.baseline, 1)


@dataclass
class GateResult:
    tolerance: float
    metrics: list[MetricDelta] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # gated metrics beyond tolerance
    to_wrong: list[str] = field(default_factory=list)  # correct in baseline, wrong now
    to_right: list[str] = field(default_factory=list)
    must_pass_failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the baseline, not in this run
    new: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.dropped and not self.must_pass_failed

    def text(self) -> str:
        lines = [f"Regression gate: {'PASS' if self.passed else 'FAIL'} (tolerance {self.tolerance:g} points)"]
        for m in self.metrics:
            if m.baseline is None and m.current is None:
                continue
            b = "n/a" if m.baseline is None else f"{m.baseline:.1f}"
            c = "n/a" if m.current is None else f"{m.current:.1f}"
            d = "" if m.delta is None else f"{m.delta:+.1f}"
            flag = "  <-- dropped beyond tolerance" if m.name in self.dropped else ""
            lines.append(f"  {m.name:<28} {b:>6} -> {c:>6}  {d:>6}{' (gated)' if m.gated else ''}{flag}")
        if self.must_pass_failed:
            lines.append("Must-pass items that failed: " + ", ".join(self.must_pass_failed))
        if self.to_wrong:
            lines.append(f"Correct -> wrong ({len(self.to_wrong)}): " + ", ".join(self.to_wrong))
        if self.to_right:
            lines.append(f"Wrong -> correct ({len(self.to_right)}): " + ", ".join(self.to_right))
        if not self.to_wrong and not self.to_right:
            lines.append("No item changed from correct to wrong or back.")
        if self.missing:
            lines.append(f"In the baseline but not in this run ({len(self.missing)}): " + ", ".join(self.missing))
        if self.new:
            lines.append(f"New in this run ({len(self.new)}): " + ", ".join(self.new))
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def compare(
    current: dict,
    baseline: dict,
    tolerance: float = DEFAULT_TOLERANCE,
    gated: tuple[str, ...] = DEFAULT_GATED,
) -> GateResult:
    result = GateResult(tolerance=tolerance)
    for name, path in METRICS.items():
        m = MetricDelta(name, _get(baseline, path), _get(current, path), name in gated)
        result.metrics.append(m)
        if m.gated and m.delta is not None and m.delta < -tolerance:
            result.dropped.append(name)
        if m.gated and m.baseline is not None and m.current is None:
            result.dropped.append(name)
    now = current.get("items", {})
    before = baseline.get("items", {})
    for item_id in sorted(set(now) & set(before)):
        b, c = before[item_id].get("correct"), now[item_id].get("correct")
        if b is True and c is False:
            result.to_wrong.append(item_id)
        elif b is False and c is True:
            result.to_right.append(item_id)
    result.missing = sorted(set(before) - set(now))
    result.new = sorted(set(now) - set(before))
    result.must_pass_failed = sorted(
        i for i, v in now.items() if (v.get("must_pass") or before.get(i, {}).get("must_pass")) and v.get("correct") is False
    )
    b_ds, c_ds = baseline.get("dataset", {}), current.get("dataset", {})
    if b_ds.get("items_sha256") and b_ds.get("items_sha256") != c_ds.get("items_sha256"):
        result.warnings.append(
            "the evaluated items differ from the baseline's (dataset digest changed): compare per item with care"
        )
    for key in ("lm", "pipeline"):
        if baseline.get(key) and baseline.get(key) != current.get(key):
            result.warnings.append(f"{key} differs: baseline {baseline.get(key)!r}, this run {current.get(key)!r}")
    return result
