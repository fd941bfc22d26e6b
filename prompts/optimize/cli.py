"""`sqlagent optimize`.

    sqlagent optimize [--module rewrite|generate|repair|answer|explain|all] [--optimizer bootstrap|mipro|gepa|simba|labeled]
                      [--budget N] [--lm NAME] [--out DIR] [--demos N] [--limit N] [--force]
                      [--[no-]test] [--score-train] [--no-register] [--no-progress] [--seed N] [--dataset FILE]

Exit codes: 0 every chosen module was written (or scored no worse), 1 a module was refused by the
dev-score guard or the run failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from agent.steps import LM_STEPS
from prompts.optimize.optimizers import OPTIMIZERS, OptimizerUnavailable

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_optimize_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("optimize", help="optimize the prompt modules with DSPy on the golden set")
    p.add_argument("--module", choices=[*LM_STEPS, "all"], default="all")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="bootstrap")
    p.add_argument(
        "--budget",
        type=int,
        default=16,
        help="train examples tried (bootstrap) or metric calls/trials (mipro, gepa, simba); default 16",
    )
    p.add_argument("--lm", help="override lm.model, e.g. embedded/qwen2.5-coder-0.5b")
    p.add_argument("--out", default="prompts/compiled", help="artifact folder (default prompts/compiled)")
    p.add_argument("--dataset", default="evals/golden.jsonl")
    p.add_argument(
        "--cache-dir", default="out/optimize", help="cached pipeline inputs (default out/optimize)"
    )
    p.add_argument("--demos", type=int, default=2, help="demos per predictor (default 2)")
    p.add_argument("--limit", type=int, help="at most N examples per split (a quick run)")
    p.add_argument("--force", action="store_true", help="write the artifact even if its dev score is lower")
    p.add_argument(
        "--test",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also score the test split before and after (for the report only; default off: "
        "`make eval-ablation` compares test with and without the artifacts)",
    )
    p.add_argument(
        "--score-train",
        action="store_true",
        help="also score the train split before and after (a report only; costs one LM call per item)",
    )
    p.add_argument(
        "--no-register", action="store_true", help="do not record versions in the MLflow Prompt Registry"
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the reports as JSON on stdout")
    p.set_defaults(func=cmd_optimize)
    return p


def cmd_optimize(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from prompts.optimize.run import OptimizeOptions, run_optimize

    if args.budget < 1:
        print("error: --budget must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    options = OptimizeOptions(
        module=args.module,
        optimizer=args.optimizer,
        budget=args.budget,
        lm=args.lm,
        out=args.out,
        dataset=args.dataset,
        cache_dir=args.cache_dir,
        demos=args.demos,
        limit=args.limit,
        force=args.force,
        test=args.test,
        score_train=args.score_train,
        register=not args.no_register,
        progress=not args.no_progress,
        seed=args.seed,
    )
    try:
        reports = run_optimize(options)
    except OptimizerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        print(json.dumps([asdict(r) for r in reports], indent=2, default=str))
    else:
        for r in reports:
            print(r.line())
    return EXIT_OK if all(r.written for r in reports) else EXIT_FAIL
