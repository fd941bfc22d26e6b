"""`sqlagent eval-accept`: the last eval run becomes the committed baseline, when it is fit to be one.

Exit codes: 0 accepted; 1 refused (gold errors, must-pass items without a result, a --limit'ed run, or a
summary the gate cannot read); 2 no run to accept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from agent.config import resolve_path
from evals.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE


class AcceptError(ValueError):
    """The run is not fit to become the baseline."""


def _warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def accept_problems(summary: dict[str, Any], force: bool = False) -> list[str]:
    """Why a run must not become the baseline (empty: it may). `force` overrides only --limit."""
    from evals.gate import BaselineError, check_baseline

    problems = []
    try:
        check_baseline(summary)
    except BaselineError as exc:
        problems.append(f"the gate could not use it as a baseline: {exc}")
    counts = summary.get("counts", {})
    if counts.get("gold_errors"):
        problems.append(f"the gold query failed for {', '.join(counts['gold_errors'])}: fix them and re-run")
    no_result = sorted(
        i for i, v in summary.get("items", {}).items() if v.get("must_pass") and v.get("correct") is None
    )
    if no_result:
        problems.append(f"must-pass item(s) without a result: {', '.join(no_result)}")
    limit = summary.get("dataset", {}).get("limit")
    if limit is not None and not force:
        problems.append(
            f"the run was limited to {limit} items (--limit), so the baseline would not cover the split: re-run "
            "without --limit, or pass --force to accept it anyway"
        )
    tag = summary.get("dataset", {}).get("tag")
    if tag and not force:
        problems.append(
            f"the run was limited to the items tagged {tag!r} (--tag): re-run without it, or pass --force"
        )
    return problems


def accept(from_dir: Path, to_file: Path, force: bool = False) -> dict[str, Any]:
    """The last run's summary (with per-item correctness) becomes the committed baseline.

    Raises `AcceptError` (file untouched) when the run is not fit to be one; see `accept_problems`.
    """
    summary_path = from_dir / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path} does not exist: run `sqlagent eval` (make eval) first.")
    summary = json.loads(summary_path.read_text())
    problems = accept_problems(summary, force)
    if problems:
        raise AcceptError(f"not accepting {summary_path}: " + "; ".join(problems) + ".")
    summary.pop("gate", None)
    summary["accepted_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    to_file.parent.mkdir(parents=True, exist_ok=True)
    to_file.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def cmd_accept(args: argparse.Namespace) -> int:
    try:
        summary = accept(resolve_path(args.from_dir), resolve_path(args.to), force=args.force)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AcceptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    ds = summary.get("dataset", {})
    c = summary["counts"]
    if ds.get("limit") is not None:
        _warn(f"the accepted run was limited to {ds['limit']} items (--force)")
    if c.get("must_pass_failed"):
        _warn(
            f"must-pass item(s) wrong in the accepted run, so every gated run fails until they are right: "
            f"{', '.join(c['must_pass_failed'])}"
        )
    print(
        f"Accepted {args.to}: {summary.get('pipeline')} with {summary.get('lm')}, "
        f"split {ds.get('split') or 'all'}, answerable {c['correct']}/{c['answerable']} "
        f"({summary.get('execution_accuracy')}%), refused/clarified {c['status_correct']}/{c['status_items']}."
    )
    return EXIT_OK
