"""`sqlagent judges list|load-labels|align|agree|register`.

    sqlagent judges list                      the judges, their versions, and how many labels each has
    sqlagent judges load-labels [--labels F]  the labelled set as MLflow traces (idempotent)
    sqlagent judges align [--judge NAME ...] [--lm MODEL] [--dry-run] [--force] [--register] ...
    sqlagent judges agree [--judge NAME ...] [--lm MODEL]   agreement with every label, no alignment
    sqlagent judges register [--judge NAME ...]  the judges into MLflow's scorer registry (a new version each)

Exit codes: 0 done; 1 a judge could not be aligned or the store refused; 2 bad arguments or files.
`align --dry-run` prints the split and the judge calls it would make, without starting any model.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.config import Settings, load_settings, resolve_path
from evals.judges.sources import gather_labels

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
SECONDS_PER_CALL = 17  # one judge call on the embedded 1.5B model on 2 cores (measured, for the estimate)


def _fmt(agreement) -> str:
    if agreement is None or agreement.n == 0:
        return "-"
    kappa = "n/a" if agreement.kappa is None else f"{agreement.kappa:+.2f}"
    return f"{agreement.accuracy:.0%} / {kappa}"


def _setup(settings: Settings) -> None:
    from agent.tracing import setup_tracing

    if not setup_tracing(settings):
        raise SystemExit("error: tracking is off (tracking.enabled): the labels live in the MLflow store")


def cmd_list(args: argparse.Namespace) -> int:
    from evals.judges.labels import read_labels
    from evals.judges.specs import load_specs

    settings = load_settings()
    specs = load_specs(settings.judges)
    path = resolve_path(settings.judges.labels)
    items = read_labels(path, specs) if path.is_file() else []
    rows = []
    for s in specs:
        values = [i.labels[s.name].value for i in items if s.name in i.labels]
        spread = ", ".join(f"{v} {values.count(v)}" for v in s.values)
        aligned = (
            f"aligned {s.aligned.aligned_at[:10]} ({_fmt(s.aligned.after)} held-out)"
            if s.aligned
            else "as written"
        )
        rows.append(
            {
                "judge": s.name,
                "version": s.tag,
                "digest": s.digest,
                "labels": len(values),
                "spread": spread,
                "applies_to": s.applies_to,
                "state": aligned,
                "description": s.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        print(
            f"{r['version']:<42} {r['labels']:>3} labels ({r['spread']}), {r['state']}\n    {r['description']}"
        )
    print(f"labelled set: {path} ({len(items)} items)")
    return EXIT_OK


def cmd_load_labels(args: argparse.Namespace) -> int:
    from evals.judges.labels import LabelError, labels_experiment
    from evals.judges.specs import load_specs

    settings = load_settings()
    _setup(settings)
    specs = load_specs(settings.judges)
    try:
        counts = gather_labels(
            settings,
            specs,
            resolve_path(args.labels or settings.judges.labels),
            review_queue=not args.no_review_queue,
        )
    except (LabelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for source, c in counts.items():
        print(f"{source}: {c['logged']} logged, {c['replaced']} replaced, {c['unchanged']} unchanged")
    print(f"labelled traces in experiment {labels_experiment(settings.tracking.experiment)!r}")
    return EXIT_OK


def _options(settings: Settings, args: argparse.Namespace):
    overrides = {
        k: v
        for k, v in {
            "heldout": args.heldout,
            "max_steps": args.max_steps,
            "candidates": args.candidates,
            "batch_size": args.batch_size,
            "max_demos": args.max_demos,
            "seed": args.seed,
            "temperature": args.temperature,
        }.items()
        if v is not None
    }
    return settings.judges.align.model_copy(update=overrides)


def cmd_align(args: argparse.Namespace) -> int:
    from evals.judges.align import align_judge, limit, planned_calls, split
    from evals.judges.labels import LabelError, file_digest, labelled_traces, labels_experiment
    from evals.judges.specs import JudgeSpecError, load_specs, write_spec

    settings = load_settings()
    _setup(settings)
    opts = _options(settings, args)
    try:
        # Aligned from the versions as written, so that a re-run starts from the same place.
        specs = load_specs(settings.judges.model_copy(update={"use_aligned": False}), args.judge)
        labels_path = resolve_path(args.labels or settings.judges.labels)
        gather_labels(
            settings,
            specs,
            labels_path if not args.no_labelled_set else None,
            review_queue=not args.no_review_queue,
        )
    except (JudgeSpecError, LabelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    traces = labelled_traces(labels_experiment(settings.tracking.experiment))
    plans = {}
    for spec in specs:
        parts = split(traces, spec, opts.heldout, opts.seed)
        parts.train = limit(parts.train, opts.train_limit)
        plans[spec.name] = planned_calls(len(parts.train), len(parts.heldout), opts)
        p = plans[spec.name]
        print(
            f"{spec.tag}: {len(parts.train)} labels to align on, {len(parts.heldout)} held out; at most "
            f"{p['total']} judge calls ({p['before']} before, {p['simba_steps']} + {p['simba_final']} SIMBA, "
            f"{p['rule_calls']} rule writing, {p['after']} after), about "
            f"{p['total'] * SECONDS_PER_CALL / 60:.0f} min on the embedded model"
        )
    if args.dry_run:
        return EXIT_OK
    from agent.lm.embedded import build_lm
    from evals.judges import model as judge_model
    from evals.judges.build import database_tables
    from tools.sql.database import open_database

    model = judge_model.resolve(settings, args.lm)
    # SIMBA's rule writer answers with a discussion and a dict of advice: more room than a verdict.
    rule_lm = build_lm(
        model.lm.model_copy(update={"max_tokens": max(512, model.lm.max_tokens)}), settings.embedded
    )
    tables = database_tables(open_database(settings.database_config()).full_schema)
    labels = (
        str(labels_path.relative_to(resolve_path(".")))
        if labels_path.is_relative_to(resolve_path("."))
        else str(labels_path),
        file_digest(labels_path) if labels_path.is_file() else "",
    )
    results, code = [], EXIT_OK
    for spec in specs:
        result = align_judge(
            spec, traces, model, tables, opts, rule_lm=rule_lm, labels=labels, force=args.force
        )
        results.append(result)
        if result.after is None:
            code = EXIT_FAIL
        elif result.kept and not args.no_save:
            path = write_spec(result.aligned, resolve_path(settings.judges.aligned_dir))
            if args.register:
                version = register(settings, result.aligned, model.uri, tables)
                result.aligned.aligned.registered_version = version
                write_spec(result.aligned, resolve_path(settings.judges.aligned_dir))
            result.note = result.note or f"saved {path.relative_to(resolve_path('.'))}"
        print(
            f"{spec.name}: held-out agreement (accuracy / kappa) {_fmt(result.before)} -> {_fmt(result.after)}"
            f" in {result.seconds:.0f} s. {result.note}"
        )
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "judge": r.spec.name,
                        "train": r.train,
                        "heldout": r.heldout,
                        "before": r.before.model_dump(),
                        "after": r.after.model_dump() if r.after else None,
                        "kept": r.kept,
                        "seconds": round(r.seconds, 1),
                        "planned_calls": r.planned,
                        "note": r.note,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    return code


def cmd_agree(args: argparse.Namespace) -> int:
    """The judges as used (aligned versions when present) against every reviewer label: no alignment."""
    from evals.judges import model as judge_model
    from evals.judges.align import measure
    from evals.judges.build import database_tables
    from evals.judges.labels import ID_TAG, LabelError, human_label, labelled_traces, labels_experiment
    from evals.judges.specs import JudgeSpecError, load_specs
    from tools.sql.database import open_database

    settings = load_settings()
    _setup(settings)
    try:
        specs = load_specs(settings.judges, args.judge)
        gather_labels(
            settings,
            specs,
            resolve_path(args.labels or settings.judges.labels),
            review_queue=not args.no_review_queue,
        )
    except (JudgeSpecError, LabelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    traces = labelled_traces(labels_experiment(settings.tracking.experiment))
    model = judge_model.resolve(settings, args.lm)
    tables = database_tables(open_database(settings.database_config()).full_schema)
    out = {}
    for spec in specs:
        labelled = [t for t in traces if human_label(t, spec)]
        if args.limit:  # a sample that is the same on every run: every k-th label in id order
            labelled = sorted(labelled, key=lambda t: t.info.tags[ID_TAG])
            labelled = labelled[:: max(1, len(labelled) // args.limit)][: args.limit]
        result = measure(spec, labelled, model, tables)
        out[spec.name] = result.model_dump()
        print(
            f"{spec.tag} with {model.lm.model}: agreement with the reviewers on {result.n} labels "
            f"(accuracy / kappa) {_fmt(result)}"
        )
    if args.json:
        print(json.dumps(out, indent=2))
    return EXIT_OK


def register(settings: Settings, spec, uri: str, tables: str) -> int | None:
    """Register the judge in MLflow's scorer registry of the main experiment; returns its version.
    The registered judge names its model by URI only: no key or local address is stored."""
    import mlflow
    from mlflow.genai.judges import make_judge
    from mlflow.genai.scorers.registry import list_scorer_versions

    experiment = mlflow.get_experiment_by_name(settings.tracking.experiment)
    experiment_id = (
        experiment.experiment_id if experiment else mlflow.create_experiment(settings.tracking.experiment)
    )
    judge = make_judge(
        name=spec.name,
        instructions=spec.render(tables),
        description=f"{spec.description} ({spec.tag})",
        feedback_value_type=spec.value_type,
        generate_rationale_first=spec.rationale_first,
        model=uri,
    )
    judge.register(name=spec.name, experiment_id=experiment_id)
    versions = list_scorer_versions(name=spec.name, experiment_id=experiment_id)
    return max((v for _, v in versions), default=None)


def cmd_register(args: argparse.Namespace) -> int:
    from evals.judges.build import database_tables
    from evals.judges.model import judge_lm_settings
    from evals.judges.specs import load_specs
    from tools.sql.database import open_database

    settings = load_settings()
    _setup(settings)
    lm = judge_lm_settings(settings, args.lm).model
    provider, _, name = lm.partition("/")
    uri = f"openai:/{name}" if provider == "embedded" else f"{provider}:/{name}"
    tables = database_tables(open_database(settings.database_config()).full_schema)
    for spec in load_specs(settings.judges, args.judge):
        print(
            f"{spec.tag}: registered as version {register(settings, spec, uri, tables)} of {spec.name!r} "
            f"in experiment {settings.tracking.experiment!r}"
        )
    return EXIT_OK


def add_judges_parser(subparsers: Any) -> None:
    judges = subparsers.add_parser("judges", help="the LLM judges: list, labelled set, alignment, registry")
    sub = judges.add_subparsers(dest="judges_command", required=True)
    ls = sub.add_parser("list", help="the judges, their versions and labels")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    load = sub.add_parser(
        "load-labels", help="log the labelled set (and the review queue's labels) as MLflow traces"
    )
    load.add_argument("--labels", help="a labelled set (default judges.labels)")
    load.add_argument("--no-review-queue", action="store_true", help="only the labelled set")
    load.set_defaults(func=cmd_load_labels)

    al = sub.add_parser(
        "align", help="align the judges to the reviewers' labels (MLflow SIMBA); agreement before/after"
    )
    al.add_argument("--judge", action="append", help="only this judge (repeatable)")
    al.add_argument(
        "--lm", help="the judges' model, e.g. embedded/qwen2.5-coder-1.5b (default judges.lm / lm)"
    )
    al.add_argument("--labels", help="a labelled set (default judges.labels)")
    al.add_argument("--no-labelled-set", action="store_true", help="only the review queue's labels")
    al.add_argument("--no-review-queue", action="store_true", help="only the labelled set")
    for name, kind in (
        ("heldout", float),
        ("max-steps", int),
        ("candidates", int),
        ("batch-size", int),
        ("max-demos", int),
        ("seed", int),
        ("temperature", float),
    ):
        al.add_argument(f"--{name}", type=kind, help=f"judges.align.{name.replace('-', '_')}")
    al.add_argument("--dry-run", action="store_true", help="print the split and the planned judge calls only")
    al.add_argument("--force", action="store_true", help="save an aligned judge even if it agrees less")
    al.add_argument("--no-save", action="store_true", help="measure only; write nothing")
    al.add_argument("--register", action="store_true", help="also register each saved judge in MLflow")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=cmd_align)

    agree = sub.add_parser("agree", help="the judges' agreement with every reviewer label (no alignment)")
    agree.add_argument("--judge", action="append", help="only this judge (repeatable)")
    agree.add_argument("--lm", help="the judges' model (default judges.lm / lm)")
    agree.add_argument("--labels", help="a labelled set (default judges.labels)")
    agree.add_argument("--no-review-queue", action="store_true", help="only the labelled set")
    agree.add_argument(
        "--limit", type=int, metavar="N", help="N labels spread evenly over the set (a quicker check)"
    )
    agree.add_argument("--json", action="store_true")
    agree.set_defaults(func=cmd_agree)

    reg = sub.add_parser("register", help="register the judges (as used) in MLflow's scorer registry")
    reg.add_argument("--judge", action="append")
    reg.add_argument("--lm", help="the model URI the registered judges name")
    reg.set_defaults(func=cmd_register)
