"""The judges' verdicts in an eval's summary.json and report.md (no MLflow here: the report reads it)."""

from __future__ import annotations

from typing import Any


def _pct(numerator: float, denominator: float) -> float | None:
    return round(100.0 * numerator / denominator, 1) if denominator else None


def _agreement_with_execution_match(judged: list[dict]) -> dict[str, Any] | None:
    from evals.judges.agreement import agreement

    pairs = [
        (r["correct"], r["judges"][r["_judge"]]["passed"])
        for r in judged
        if r.get("correct") is not None and r["judges"][r["_judge"]]["passed"] is not None
    ]
    if not pairs:
        return None
    found = agreement([str(a) for a, _ in pairs], [str(b) for _, b in pairs])
    return found.model_dump()


def summary(records: list[dict]) -> dict[str, Any]:
    """Per judge: how many items it judged, its pass rate, failed calls, and how often its pass/fail
    agrees with execution match (a judge that never agrees with the rows comparison needs a look)."""
    names = sorted({n for r in records for n in (r.get("judges") or {})})
    out = {}
    for name in names:
        judged = [{**r, "_judge": name} for r in records if name in (r.get("judges") or {})]
        verdicts = [r["judges"][name] for r in judged]
        passed = [v for v in verdicts if v["passed"] is not None]
        out[name] = {
            "version": verdicts[0]["version"] if verdicts else None,
            "judged": len(verdicts),
            "passed": sum(1 for v in passed if v["passed"]),
            "pass_rate": _pct(sum(1 for v in passed if v["passed"]), len(passed)),
            "failed_calls": sum(1 for v in verdicts if v["value"] is None),
            "values": {
                value: sum(1 for v in verdicts if v["value"] == value)
                for value in sorted({v["value"] for v in verdicts if v["value"] is not None})
            },
            "seconds": round(sum(v.get("seconds") or 0 for v in verdicts), 1),
            "agreement_with_execution_match": _agreement_with_execution_match(judged),
        }
    return out


def render_section(summary_: dict[str, Any]) -> list[str]:
    judges = summary_.get("judges") or {}
    if not judges:
        return []
    out = [
        "## LLM judges",
        "",
        "Each judge read the question, the agent's SQL, its first rows and its answer "
        "(evals/judges/; how they were aligned to reviewers: `sqlagent judges list`).",
        "",
        "| judge | version | judged | pass rate | verdicts | failed calls | agrees with execution match |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, j in judges.items():
        values = ", ".join(f"{k} {v}" for k, v in j["values"].items()) or "-"
        match = j["agreement_with_execution_match"]
        agrees = (
            f"{match['accuracy']:.0%} (kappa {match['kappa'] if match['kappa'] is not None else 'n/a'})"
            if match
            else "-"
        )
        rate = "-" if j["pass_rate"] is None else f"{j['pass_rate']}%"
        out.append(
            f"| {name} | {j['version']} | {j['judged']} | {rate} | {values} | {j['failed_calls']} | {agrees} |"
        )
    return [*out, ""]
