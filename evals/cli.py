"""`sqlagent eval` and `sqlagent eval-accept`.

    sqlagent eval [--dataset FILE] [--split S] [--tag T] [--limit N] [--db PATH] [--pipeline agent|baseline]
                  [--lm NAME] [--baseline FILE] [--tolerance POINTS] [--out DIR] [--no-compiled]
                  [--no-mlflow] [--no-progress]
    sqlagent eval-accept [--from DIR] [--to FILE] [--force]

`eval` exit codes: 0 done (and the gate passed, when --baseline is given); 1 the gate failed, a gold
query failed (with or without --baseline: an item that cannot be scored must not pass quietly), or
the pipeline could not start; 2 bad arguments, dataset or baseline (a baseline the gate cannot read
is an error, not a disabled gate).
`eval-accept` lives in evals/accept.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import PROJECT_ROOT, Settings, load_settings, resolve_path
from evals.accept import cmd_accept
from evals.exit_codes import DEFAULT_BASELINE, DEFAULT_OUT, EXIT_FAIL, EXIT_OK, EXIT_USAGE

DEFAULT_DATASET = "evals/golden.jsonl"


class PipelineStartError(RuntimeError):
    pass


@dataclass
class EvalOptions:
    dataset: str = DEFAULT_DATASET
    split: str | None = None
    limit: int | None = None
    tag: str | None = None
    db: str | None = None
    pipeline: str = "agent"
    lm: str | None = None
    baseline: str | None = None
    tolerance: float = 2.0
    out: str = DEFAULT_OUT
    compiled: bool = True
    mlflow: bool = True
    progress: bool = True
    judges: list[str] | None = None  # LLM judges to run ([] = all); None: judges.in_eval decides


@dataclass
class EvalOutcome:
    exit_code: int
    out_dir: Path
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    gate: Any = None
    errors: list[str] = field(default_factory=list)  # what failed the run besides the gate


def _warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def _build_pipeline(options: EvalOptions, settings: Settings, lms: dict | None):
    if options.pipeline == "baseline":
        from evals.baseline_pipeline import BaselinePipeline

        lm = (lms or {}).get("default")
        return BaselinePipeline(settings, lm=lm, db_path=options.db)
    from evals.runner import AgentPipeline

    return AgentPipeline(settings, lms=lms, db_path=options.db, compiled=options.compiled)


def load_baseline(path: Path) -> dict[str, Any]:
    """The accepted summary, checked before the (long) run so an unusable baseline fails fast."""
    from evals.gate import BaselineError, check_baseline

    if not path.is_file():
        raise FileNotFoundError(
            f"Baseline {path} does not exist: run the eval once and accept it with "
            f"`sqlagent eval-accept` (make eval-accept), or leave out --baseline."
        )
    try:
        baseline = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path} is not valid JSON ({exc}); re-accept a baseline with `make eval-accept`"
        ) from exc
    try:
        check_baseline(baseline)
    except BaselineError as exc:
        raise BaselineError(f"{path}: {exc}") from exc
    return baseline


def gold_error_message(summary: dict[str, Any]) -> str | None:
    from evals.gate import gold_errors

    errors = gold_errors(summary)
    if not errors:
        return None
    listed = "; ".join(f"{i}: {e}" for i, e in errors.items())
    return (
        f"the gold query failed for {len(errors)} item(s), which therefore cannot be scored "
        f"(fix them in the dataset): {listed}"
    )


def _judges(options: EvalOptions, settings: Settings, judge_model=None):
    """The judges this run asks (None: none): --judges, or all of them with judges.in_eval."""
    names = options.judges
    if names is None and not settings.judges.in_eval:
        return None
    from evals.judges import model as models
    from evals.judges.in_eval import EvalJudges
    from evals.judges.specs import load_specs

    return EvalJudges(load_specs(settings.judges, names or None), judge_model or models.resolve(settings))


def run_eval(
    options: EvalOptions, settings: Settings | None = None, lms: dict | None = None, judge_model=None
) -> EvalOutcome:
    """The whole eval: items -> records -> files (+ MLflow) -> gate. `lms` and `judge_model` let tests
    inject fake LMs."""
    from evals import report
    from evals.dataset import load_dataset
    from evals.gate import compare
    from evals.provenance import git_commit
    from evals.runner import evaluate_item, progress_bar, run_items

    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    settings = settings or load_settings()
    if options.lm:
        settings.lm.model = options.lm
    if not options.mlflow:
        settings.tracking.enabled = False
    dataset = load_dataset(
        resolve_path(options.dataset), split=options.split, limit=options.limit, tag=options.tag
    )
    baseline = load_baseline(resolve_path(options.baseline)) if options.baseline else None
    out_dir = resolve_path(options.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    try:
        pipeline = _build_pipeline(options, settings, lms)
        pipeline.prepare(dataset.items)
    except Exception as exc:  # a model that will not load, a missing database: say so, no traceback
        raise PipelineStartError(
            f"The {options.pipeline} pipeline could not start: {type(exc).__name__}: {exc}"
        ) from exc
    setup_s = time.perf_counter() - t0
    max_rows = settings.limits.max_rows
    warnings: list[str] = []
    bar = progress_bar(len(dataset.items), options.progress, desc=f"eval {options.pipeline}")

    try:
        judges = _judges(options, settings, judge_model)
    except Exception as exc:  # a judge file that does not load, a judge model that will not start
        raise PipelineStartError(f"The judges could not start: {type(exc).__name__}: {exc}") from exc

    def one(item):
        record = evaluate_item(item, pipeline, max_rows)
        if judges is not None:
            record["judges"] = judges.score(record, pipeline.database(item).full_schema)
        return record

    # Records are appended here as they come, so a long run that is stopped still shows its progress.
    partial = out_dir / "predictions.partial.jsonl"
    partial.write_text("")

    def tick(record):
        with partial.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        bar.set_postfix_str(record["id"][:30])
        bar.update(1)

    by_id: dict[str, dict] = {}
    mlflow_info: dict[str, Any] = {"enabled": options.mlflow}
    if options.mlflow:
        import mlflow

        from evals import mlflow_log
        from evals.judges.in_eval import mlflow_scorers as mlflow_judge_scorers

        mlflow_info["tracking_uri"] = mlflow.get_tracking_uri()
        try:
            experiment = mlflow.get_experiment_by_name(settings.tracking.experiment)
            name, ds_id = mlflow_log.register_dataset(
                dataset, experiment.experiment_id if experiment else None
            )
            mlflow_info["dataset"] = {"name": name, "id": ds_id}
        except Exception as exc:  # noqa: BLE001 - reported, the eval goes on
            warnings.append(f"registering the MLflow evaluation dataset failed ({type(exc).__name__}: {exc})")
        run_name = f"eval-{options.pipeline}-{dataset.name}-{options.split or 'all'}"
        params = {
            "pipeline": options.pipeline,
            "lm": settings.lm.model,
            "dataset": dataset.path,
            "split": options.split or "all",
            "limit": options.limit,
            "items": len(dataset.items),
            "dataset_sha256": dataset.items_sha256,
        }
        by_id, run_id, warning = mlflow_log.evaluate_with_mlflow(
            dataset.items,
            one,
            run_name=run_name,
            params=params,
            on_record=tick,
            extra_scorers=mlflow_judge_scorers(judges.names) if judges is not None else None,
        )
        mlflow_info["run_id"] = run_id
        if warning:
            warnings.append(warning)
    remaining = [i for i in dataset.items if i.id not in by_id]
    if remaining and options.mlflow:
        warnings.append(f"{len(remaining)} item(s) were evaluated outside MLflow (no linked traces)")
    for record in run_items(remaining, pipeline, max_rows=max_rows, on_record=tick, evaluate=one):
        by_id[record["id"]] = record
    bar.close()
    records = [by_id[i.id] for i in dataset.items]

    meta = {
        "pipeline": options.pipeline,
        "lm": settings.lm.model if not lms else getattr(lms.get("default"), "model", settings.lm.model),
        "compiled": list(getattr(pipeline, "loaded_compiled", [])) if options.pipeline == "agent" else [],
        "git": git_commit(PROJECT_ROOT),
        "dataset": {
            "path": options.dataset,
            "name": dataset.name,
            "split": options.split,
            "limit": options.limit,
            "tag": options.tag,
            "sha256": dataset.sha256,
            "items_sha256": dataset.items_sha256,
            "items": len(dataset.items),
        },
        "started_at": started_at,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "setup_s": round(setup_s, 1),
        "mlflow": mlflow_info,
        "judge_lm": judges.model.lm.model if judges is not None else None,
    }
    summary = report.build_summary(records, meta)
    gate = None
    gate_text = None
    if baseline is not None:
        gate = compare(summary, baseline, tolerance=options.tolerance)
        gate_text = gate.text()
        summary["gate"] = {"baseline": options.baseline, "passed": gate.passed, "text": gate_text}
    report.write_predictions(out_dir / "predictions.jsonl", records)
    (out_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    report.write_report(out_dir, summary, records, gate_text, settings.eval.report_charts)
    partial.unlink(missing_ok=True)
    if options.mlflow and mlflow_info.get("run_id"):
        try:
            from evals import mlflow_log

            mlflow_log.log_outputs(mlflow_info["run_id"], summary, out_dir)
        except Exception as exc:  # noqa: BLE001
            warnings.append(f"logging metrics/artifacts to MLflow failed ({type(exc).__name__}: {exc})")
    errors = [m for m in [gold_error_message(summary)] if m]
    code = EXIT_FAIL if errors or (gate is not None and not gate.passed) else EXIT_OK
    return EvalOutcome(code, out_dir, summary, records, warnings, gate, errors)


def _judge_names(value: str | None) -> list[str] | None:
    """--judges: None (not given), [] (all of them), or the names given, comma-separated."""
    if value is None:
        return None
    return [n for n in value.split(",") if n.strip() and n.strip() != "all"]


def cmd_eval(args: argparse.Namespace) -> int:
    from evals.dataset import DatasetError
    from evals.gate import BaselineError
    from evals.report import plain_summary

    options = EvalOptions(
        dataset=args.dataset,
        split=args.split,
        limit=args.limit,
        tag=args.tag,
        db=args.db,
        pipeline=args.pipeline,
        lm=args.lm,
        baseline=args.baseline,
        tolerance=args.tolerance,
        out=args.out,
        compiled=not args.no_compiled,
        mlflow=not args.no_mlflow,
        progress=not args.no_progress,
        judges=_judge_names(getattr(args, "judges", None)),
    )
    try:
        outcome = run_eval(options)
    except (DatasetError, FileNotFoundError, BaselineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    for w in outcome.warnings:
        _warn(w)
    s = outcome.summary
    c = s["counts"]
    print(plain_summary(s).replace("**", ""))
    print(
        f"answerable {c['correct']}/{c['answerable']} ({s['execution_accuracy']}%), "
        f"gold columns plus extra columns {c['correct_extra_columns_allowed']}/{c['answerable']}, "
        f"refused/clarified {c['status_correct']}/{c['status_items']}, "
        f"latency p50 {s['latency_ms']['p50']} ms p95 {s['latency_ms']['p95']} ms, tokens {s['tokens']['total']}, "
        f"wall {s['wall_time_s']} s"
    )
    for name, j in (s.get("judges") or {}).items():
        print(
            f"judge {name}: {j['passed']}/{j['judged']} pass ({j['pass_rate']}%), {j['failed_calls']} failed calls"
        )
    if s["mlflow"].get("run_id"):
        print(f"MLflow run {s['mlflow']['run_id']} in {s['mlflow'].get('tracking_uri')}")
    print(f"Wrote {outcome.out_dir}/predictions.jsonl, summary.json, report.md")
    if outcome.gate is not None:
        print()
        print(outcome.gate.text())
    for e in outcome.errors:
        print(f"error: {e}", file=sys.stderr)
    return outcome.exit_code


def add_eval_parser(subparsers: Any) -> None:
    """Register `eval` and `eval-accept` on the sqlagent command's subparsers."""
    ev = subparsers.add_parser("eval", help="score the agent on a golden set; report; regression gate")
    ev.add_argument("--dataset", default=DEFAULT_DATASET, help=f"JSONL items (default {DEFAULT_DATASET})")
    ev.add_argument("--split", help="only items of this split (train, dev, test)")
    ev.add_argument("--tag", help="only items with this tag, e.g. readme (the questions the README promises)")
    ev.add_argument("--limit", type=int, help="only the first N items (after --split and --tag)")
    ev.add_argument("--db", help="DuckDB file for items without their own `db` (default: database.url)")
    ev.add_argument(
        "--pipeline",
        choices=["agent", "baseline"],
        default="agent",
        help="the agent graph, or the same LM zero-shot with the full schema",
    )
    ev.add_argument("--lm", help="override lm.model, e.g. embedded/qwen2.5-coder-0.5b")
    ev.add_argument(
        "--baseline",
        help=f"compare with this accepted summary, e.g. {DEFAULT_BASELINE}; exit 1 on regression",
    )
    ev.add_argument(
        "--tolerance",
        type=float,
        default=2.0,
        help="allowed drop in answerable execution accuracy, in points of the items both runs have",
    )
    ev.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    ev.add_argument(
        "--no-compiled", action="store_true", help="ignore optimized programs in prompts/compiled/"
    )
    ev.add_argument("--no-mlflow", action="store_true", help="no traces, no MLflow run or dataset")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.add_argument(
        "--judges",
        nargs="?",
        const="all",
        metavar="NAMES",
        help="also run the LLM judges (all, or e.g. grounding,fan_rubric): one LM call per judge and "
        "answered item, ~17 s each on the embedded model",
    )
    ev.set_defaults(func=cmd_eval)

    acc = subparsers.add_parser("eval-accept", help="make the last eval run the committed baseline")
    acc.add_argument(
        "--from", dest="from_dir", default=DEFAULT_OUT, help=f"run directory (default {DEFAULT_OUT})"
    )
    acc.add_argument("--to", default=DEFAULT_BASELINE, help=f"baseline file (default {DEFAULT_BASELINE})")
    acc.add_argument(
        "--force", action="store_true", help="accept a --limit'ed run (nothing else is overridden)"
    )
    acc.set_defaults(func=cmd_accept)
