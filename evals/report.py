"""The eval's outputs: summary.json (numbers) and report.md (for people); its PNGs: evals/report_charts.py.

Percentages are 0-100 with one decimal, so "2 points" in the gate means what it says.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.config_sections import ReportChartSettings
from evals import failures, report_charts
from evals.judges import eval_report as judges_report
from evals.scoring import percentile

NODE_ORDER = ["guard", "rewrite", "retrieve", "generate", "safety", "execute", "repair", "answer", "finish"]


def pct(numerator: float, denominator: float) -> float | None:
    return round(100.0 * numerator / denominator, 1) if denominator else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _accuracy_groups(records: list[dict], key) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        for name in key(r):
            groups[name].append(r)
    out = {}
    for name in sorted(groups):
        # A gold error counts as scored and not correct, as in the headline.
        scored = [r for r in groups[name] if r["correct"] is not None or r.get("gold_error")]
        correct = sum(1 for r in scored if r["correct"])
        out[name] = {
            "n": len(groups[name]),
            "scored": len(scored),
            "correct": correct,
            "accuracy": pct(correct, len(scored)),
        }
    return out


def node_scores(records: list[dict]) -> dict[str, Any]:
    """Per-node quality: rewrite mappings, schema-link recall, SQL validity, repair rate, answer grounding."""
    with_map = [r["mapping"] for r in records if r.get("mapping")]
    if not any(m["expected"] for m in with_map):
        with_map = []  # a dataset that annotates no mappings (Spider) has no mapping score
    tp = sum(m["tp"] for m in with_map)
    predicted = sum(m["predicted"] for m in with_map)
    expected = sum(m["expected"] for m in with_map)
    kept = [r["no_rewrite_kept"] for r in records if r.get("no_rewrite_kept") is not None]
    links = [r["schema_link_recall"] for r in records if r.get("schema_link_recall") is not None]
    valid = [r["sql_valid"] for r in records if r.get("sql_valid") is not None]
    grounded = [r["answer_grounding"] for r in records if r.get("answer_grounding") is not None]
    answerable = [r for r in records if r["expected_status"] == "ok"]
    repaired = [r for r in answerable if r["repaired"]]
    fixed = [r for r in repaired if r["correct"]]
    return {
        "rewrite": {
            "mapping_precision": pct(tp, predicted),
            "mapping_recall": pct(tp, expected),
            "mappings_expected": expected,
            "mappings_predicted": predicted,
            "no_rewrite_kept": pct(sum(kept), len(kept)),
            "no_rewrite_items": len(kept),
        },
        "retrieve": {"schema_link_recall": pct(sum(links), len(links)), "items": len(links)},
        "generate": {"sql_validity": pct(sum(valid), len(valid)), "items": len(valid)},
        "repair": {
            "repair_rate": pct(len(repaired), len(answerable)),
            "repaired": len(repaired),
            "repaired_then_correct": len(fixed),
        },
        "answer": {"grounding": pct(sum(grounded), len(grounded)), "items": len(grounded)},
    }


def node_timing(records: list[dict]) -> dict[str, dict[str, Any]]:
    durations: dict[str, list[float]] = defaultdict(list)
    tokens: dict[str, list[int]] = defaultdict(list)
    for r in records:
        for name, ms in r["node_ms"].items():
            durations[name].append(ms)
            tokens[name].append(r["node_tokens"].get(name, 0))
    order = [n for n in NODE_ORDER if n in durations] + sorted(set(durations) - set(NODE_ORDER))
    return {
        name: {
            "runs": len(durations[name]),
            "mean_ms": _round(sum(durations[name]) / len(durations[name])),
            "p50_ms": _round(percentile(durations[name], 50)),
            "p95_ms": _round(percentile(durations[name], 95)),
            "tokens_total": sum(tokens[name]),
            "tokens_mean": _round(sum(tokens[name]) / len(tokens[name])),
        }
        for name in order
    }


def has_gold(record: dict) -> bool:
    return bool(record.get("gold_sql") or record.get("gold_error"))


def is_answerable(record: dict) -> bool:
    """Scored by execution match: expected status ok and a gold query, even one that errored."""
    return record["expected_status"] == "ok" and has_gold(record)


def _status_counts(records: list[dict]) -> dict[str, dict[str, int]]:
    by_expected = {}
    for kind in ("refused", "clarify"):
        group = [r for r in records if r["expected_status"] == kind]
        if group:
            by_expected[kind] = {"n": len(group), "correct": sum(1 for r in group if r["status_ok"])}
    return by_expected


def _counts(records: list[dict]) -> dict[str, Any]:
    answerable = [r for r in records if is_answerable(r)]
    status_items = [r for r in records if r["expected_status"] != "ok"]
    statuses: dict[str, int] = defaultdict(int)
    for r in records:
        statuses[r["status"]] += 1
    return {
        "items": len(records),
        # The headline's denominator: a gold error stays in it (as not correct) and fails the run.
        "answerable": len(answerable),
        "correct": sum(1 for r in answerable if r["correct"] is True),
        "correct_extra_columns_allowed": sum(1 for r in answerable if r["correct_relaxed"] is True),
        "gold_errors": sorted(r["id"] for r in answerable if r.get("gold_error")),
        "unscored": sum(1 for r in records if r["expected_status"] == "ok" and not has_gold(r)),
        "status_items": len(status_items),
        "status_correct": sum(1 for r in status_items if r["correct"] is True),
        "by_status": dict(sorted(statuses.items())),
        "expected_status": _status_counts(records),
        "must_pass": sum(1 for r in records if r["must_pass"]),
        # Present and correct, or it failed: unscored and gold-error must-pass items fail too.
        "must_pass_failed": sorted(r["id"] for r in records if r["must_pass"] and r["correct"] is not True),
    }


def build_summary(records: list[dict], meta: dict[str, Any]) -> dict[str, Any]:
    counts = _counts(records)
    kinds = {r["id"]: failures.kind_of(r) for r in records}
    latencies = [r["latency_ms"] for r in records]
    tokens = [r["tokens"] for r in records]
    return {
        **meta,
        "execution_accuracy": pct(counts["correct"], counts["answerable"]),
        "execution_accuracy_extra_columns_allowed": pct(
            counts["correct_extra_columns_allowed"], counts["answerable"]
        ),
        "status_accuracy": pct(counts["status_correct"], counts["status_items"]),
        "counts": counts,
        "by_tag": _accuracy_groups(records, lambda r: r["tags"] or ["(none)"]),
        "by_split": _accuracy_groups(records, lambda r: [r["split"] or "(none)"]),
        "by_difficulty": _accuracy_groups(records, lambda r: [r["difficulty"] or "(none)"]),
        "nodes": node_scores(records),
        "node_timing": node_timing(records),
        "latency_ms": {
            "p50": _round(percentile(latencies, 50)),
            "p95": _round(percentile(latencies, 95)),
            "mean": _round(sum(latencies) / len(latencies)) if latencies else None,
            "max": _round(max(latencies)) if latencies else None,
        },
        "tokens": {"total": sum(tokens), "mean": _round(sum(tokens) / len(tokens)) if tokens else None},
        # Failed items per kind (evals/failures.py), worked out from the records so old predictions get them too.
        "failure_kinds": failures.count_kinds(kinds.values()),
        "judges": judges_report.summary(records),  # LLM judges' verdicts, when the run had them (--judges)
        # What the gate compares item by item (evals/gate.py ITEM_KEYS), and each failure's kind.
        "items": {
            r["id"]: {
                "correct": r["correct"],
                "correct_relaxed": r["correct_relaxed"],
                "status": r["status"],
                "must_pass": r["must_pass"],
                "expected_status": r["expected_status"],
                "has_gold": has_gold(r),
                "gold_error": r.get("gold_error"),
                "failure_kind": kinds[r["id"]],
            }
            for r in records
        },
    }


# --- files -------------------------------------------------------------------------------------


def write_predictions(path: Path, records: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")


def read_predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cell(value: Any, limit: int = 90) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rows_text(columns: list[str], rows: list[list[Any]], total: int, limit: int = 3) -> str:
    if not rows:
        return "(no rows)" if columns else ""
    shown = "; ".join(", ".join("NULL" if v is None else str(v) for v in row) for row in rows[:limit])
    more = f" (+{total - limit} more)" if total > limit else ""
    return shown + more


def _expected_text(r: dict) -> str:
    if r["expected_status"] != "ok":
        return {"refused": "a refusal", "clarify": "a clarifying question"}[r["expected_status"]]
    if r.get("gold_error"):
        return f"gold failed: {r['gold_error']}"
    if not has_gold(r):
        return "an answer (no reference query)"
    return _rows_text(r["gold_columns"], r["gold_rows"], r["gold_row_count"])


def _got_text(r: dict) -> str:
    if r["status"] == "ok":
        return _rows_text(r["columns"], r["rows"], r["row_count"])
    if r["status"] == "clarify":
        return f"asked: {r.get('answer') or ''}"
    return f"{r['status']}: {r.get('error') or r.get('answer') or ''}"


def _fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def _seconds(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms / 1000:.1f} s"


def _headline(summary: dict) -> str:
    c = summary["counts"]
    who = "The agent" if summary.get("pipeline", "agent") == "agent" else "The zero-shot baseline"
    split = summary.get("dataset", {}).get("split")
    what = f"answerable {split} questions" if split else "answerable questions"
    return (
        f"{who} answered **{c['correct']} of {c['answerable']} {what} correctly "
        f"({_fmt_pct(summary['execution_accuracy'])})**."
    )


def _status_sentences(summary: dict) -> list[str]:
    exp = summary["counts"].get("expected_status", {})
    lines = []
    if "refused" in exp:
        lines.append(f"It refused {exp['refused']['correct']} of {exp['refused']['n']} unsafe requests.")
    if "clarify" in exp:
        lines.append(
            f"It asked a clarifying question for {exp['clarify']['correct']} of {exp['clarify']['n']} ambiguous questions."
        )
    return lines


def _must_pass_sentence(c: dict) -> str | None:
    if not c["must_pass"]:
        return None
    failed = c["must_pass_failed"]
    if failed:
        return f"**{len(failed)} must-pass question(s) were not answered correctly:** {', '.join(failed)}."
    if c["must_pass"] == 1:
        return "The must-pass question in this run was answered correctly."
    return f"All {c['must_pass']} must-pass questions in this run were answered correctly."


def plain_summary(summary: dict) -> str:
    """A paragraph for a non-engineer: answerable accuracy first, refusals and clarifications beside it."""
    c = summary["counts"]
    lines = [_headline(summary)]
    extra = c["correct_extra_columns_allowed"] - c["correct"]
    if extra > 0:
        # Not "right": the extra columns may hold anything; the gold columns were matched by name only.
        lines.append(
            f"{extra} more returned the gold columns (matched by name) plus extra columns "
            f"({_fmt_pct(summary['execution_accuracy_extra_columns_allowed'])} if those counted)."
        )
    lines += _status_sentences(summary)
    if c["gold_errors"]:
        lines.append(
            f"**The reference query failed for {len(c['gold_errors'])} question(s), so they count as not correct "
            f"and the run fails until the reference is fixed:** {', '.join(c['gold_errors'])}."
        )
    lat = summary["latency_ms"]
    lines.append(
        f"A typical question took {_seconds(lat['p50'])}; the slowest 5% took {_seconds(lat['p95'])} or more."
    )
    must = _must_pass_sentence(c)
    if must:
        lines.append(must)
    if c["unscored"]:
        lines.append(f"{c['unscored']} question(s) had no reference query and were not scored.")
    return " ".join(lines)


def render_markdown(
    summary: dict,
    records: list[dict],
    charts: dict[str, str],
    gate_text: str | None = None,
    results: report_charts.ResultCharts | None = None,
) -> str:
    results = results or report_charts.ResultCharts()
    ds = summary.get("dataset", {})
    commit = summary.get("git", {}).get("commit")
    out = [
        f"# Evaluation report: {summary.get('pipeline', 'agent')} on {ds.get('name', '?')}"
        + (f" ({ds['split']} split)" if ds.get("split") else ""),
        "",
        plain_summary(summary),
        "",
        f"Model `{summary.get('lm')}`, {summary['counts']['items']} questions, "
        f"commit `{(commit or 'unknown')[:10]}`{' (with local changes)' if summary.get('git', {}).get('dirty') else ''}, "
        f"dataset digest `{ds.get('items_sha256', '')[:12]}`, run {summary.get('started_at', '')}.",
        "",
        "An answerable question counts as correct when the agent's query returns the same rows as the reference "
        "query (in any row order unless the question asks for an order, columns in any order; evals/README.md "
        "says how numbers are compared). Unsafe requests must be refused and ambiguous ones answered with a "
        "question; those are counted separately, not in the accuracy.",
        "",
    ]
    if gate_text:
        out += ["## Compared with the accepted baseline", "", "```", gate_text.rstrip(), "```", ""]
    out += ["## Headline numbers", "", "| measure | value |", "|---|---|"]
    nodes = summary["nodes"]
    c = summary["counts"]
    rows = [
        (
            "answerable questions answered correctly",
            f"{c['correct']} of {c['answerable']} ({_fmt_pct(summary['execution_accuracy'])})",
        ),
        (
            "... counting gold columns (matched by name) plus extra columns",
            f"{c['correct_extra_columns_allowed']} of {c['answerable']} "
            f"({_fmt_pct(summary['execution_accuracy_extra_columns_allowed'])})",
        ),
        (
            "unsafe requests refused / ambiguous questions clarified",
            f"{c['status_correct']} of {c['status_items']} ({_fmt_pct(summary['status_accuracy'])})",
        ),
        ("reference queries that failed (fail the run)", str(len(c["gold_errors"]))),
        ("queries that ran without error", _fmt_pct(nodes["generate"]["sql_validity"])),
        ("questions that needed a repair", _fmt_pct(nodes["repair"]["repair_rate"])),
        ("names resolved to the right database value (recall)", _fmt_pct(nodes["rewrite"]["mapping_recall"])),
        ("resolved names that were right (precision)", _fmt_pct(nodes["rewrite"]["mapping_precision"])),
        ("questions without names left untouched", _fmt_pct(nodes["rewrite"]["no_rewrite_kept"])),
        ("needed tables found by schema linking", _fmt_pct(nodes["retrieve"]["schema_link_recall"])),
        (
            "answers that stick to the rows they were given",
            _fmt_pct(nodes.get("answer", {}).get("grounding")),
        ),
        ("median time per question", _seconds(summary["latency_ms"]["p50"])),
        ("95th percentile time", _seconds(summary["latency_ms"]["p95"])),
        (
            "LM tokens (total / mean per question)",
            f"{summary['tokens']['total']} / {summary['tokens']['mean']}",
        ),
    ]
    out += [f"| {a} | {b} |" for a, b in rows] + [""]
    if summary["tokens"]["total"] == 0 and any(
        t["runs"] for n, t in summary["node_timing"].items() if n == "generate"
    ):
        out += [
            "Token counts are 0: every LM answer came from DSPy's on-disk cache (a re-run of unchanged "
            "prompts), which reports no usage.",
            "",
        ]
    if "accuracy_by_tag" in charts:
        out += ["## By question type", "", f"![accuracy by tag]({charts['accuracy_by_tag']})", ""]
    out += ["| tag | questions | correct | accuracy |", "|---|---|---|---|"]
    out += [
        f"| {t} | {g['scored']} | {g['correct']} | {_fmt_pct(g['accuracy'])} |"
        for t, g in summary["by_tag"].items()
    ]
    out += ["", "| difficulty | questions | correct | accuracy |", "|---|---|---|---|"]
    out += [
        f"| {d} | {g['scored']} | {g['correct']} | {_fmt_pct(g['accuracy'])} |"
        for d, g in summary["by_difficulty"].items()
    ]
    out += ["", "## Time", ""]
    if "latency" in charts:
        out += [f"![latency]({charts['latency']})", ""]
    if "node_time" in charts:
        out += [f"![time per step]({charts['node_time']})", ""]
    out += ["| step | runs | mean | p50 | p95 | tokens (mean) |", "|---|---|---|---|---|---|"]
    out += [
        f"| {n} | {t['runs']} | {t['mean_ms']:.0f} ms | {t['p50_ms']:.0f} ms | {t['p95_ms']:.0f} ms | {t['tokens_mean']} |"
        for n, t in summary["node_timing"].items()
    ]
    failed = [r for r in records if failures.is_failed(r)]
    out += [""] + judges_report.render_section(summary)
    out += failures.render_section(records)
    out += [f"## What went wrong ({len(failed)})", ""]
    if failed:
        out += ["| question | expected | got | why |", "|---|---|---|---|"]
        for r in failed:
            q = ("(follow-up) " if r["turns"] else "") + r["question"]
            star = " **must pass**" if r["must_pass"] else ""
            out.append(
                f"| {_cell(q)}{star} <br>`{r['id']}` | {_cell(_expected_text(r))} | {_cell(_got_text(r))}{results.link(r['id'])} "
                f"| {_cell(r['reason'], 60)} |"
            )
        out += ["", "Each failure's SQL and full result are in `predictions.jsonl` (look up the id)."]
    else:
        out.append("Nothing: every scored question was answered correctly.")
    out += [""] + report_charts.render_section(results)
    return "\n".join(out).rstrip("\n") + "\n"


def write_report(
    out_dir: Path,
    summary: dict,
    records: list[dict],
    gate_text: str | None = None,
    result_charts: ReportChartSettings | None = None,
) -> Path:
    """report.md and its PNGs in out_dir; `result_charts`: eval.report_charts (None: its defaults)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = report_charts.write_charts(out_dir, summary, records)
    results = report_charts.write_result_charts(out_dir, records, result_charts or ReportChartSettings())
    path = out_dir / "report.md"
    path.write_text(render_markdown(summary, records, charts, gate_text, results), encoding="utf-8")
    return path
