"""`sqlagent optimize`: per module, build the splits, score the current module, optimize on train,
score again, and write the artifact only when dev did not get worse (unless forced).

Selection uses train (optimizer) and dev (optimizers that select on a validation set, and the
guard). Test is scored before and after for the report only: it never decides anything.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from agent.steps import LM_STEPS
from evals import provenance
from prompts.compiled import instruction_digests, load_compiled_modules, save_compiled, schema_digest
from prompts.optimize import data, metrics
from prompts.optimize.optimizers import compile_program, settings_for

METRICS = {
    "rewrite": metrics.rewrite_metric,
    "generate": metrics.generate_metric,
    "repair": metrics.repair_metric,
    "answer": metrics.answer_metric,
    "explain": metrics.explain_metric,
}


@dataclass
class OptimizeOptions:
    module: str = "all"
    optimizer: str = "bootstrap"
    budget: int = 16
    lm: str | None = None
    out: str = "prompts/compiled"
    dataset: str = "evals/golden.jsonl"
    cache_dir: str = "out/optimize"
    demos: int = 2
    limit: int | None = None  # at most this many examples per split (smoke runs)
    force: bool = False
    test: bool = False  # test never decides anything: `make eval-ablation` is where it is compared
    score_train: bool = False  # bootstrap scores its own train examples; a train score is only a report
    register: bool = True
    progress: bool = True
    seed: int = 0


@dataclass
class ModuleReport:
    module: str
    optimizer: str
    budget: int
    counts: dict[str, int] = field(default_factory=dict)
    before: dict[str, float | None] = field(default_factory=dict)
    after: dict[str, float | None] = field(default_factory=dict)
    written: bool = False
    reason: str = ""
    path: str | None = None
    seconds: float = 0.0
    registry: dict[str, Any] | None = None

    def line(self) -> str:
        def fmt(scores):
            return " ".join(
                f"{s}={scores[s]:.3f}" if scores.get(s) is not None else f"{s}=-" for s in data.SPLITS
            )

        return (
            f"{self.module:<8} {self.optimizer}/{self.budget}  n={self.counts}  before {fmt(self.before)}  "
            f"after {fmt(self.after)}  {'WRITTEN ' + str(self.path) if self.written else 'NOT WRITTEN'}"
            f" ({self.reason}) {self.seconds:.0f}s"
        )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git_commit() -> str | None:
    info = provenance.git_commit(Path(__file__).resolve().parents[2])
    return None if info["commit"] is None else info["commit"] + ("-dirty" if info["dirty"] else "")


def evaluate(
    program: dspy.Module, examples: list[dspy.Example], metric_fn, state: Any, lm: dspy.LM, *, bar: Any = None
) -> float | None:
    """Mean metric over examples; an exception in the program scores 0 (as a failed agent step)."""
    if not examples:
        return None
    total, failures = 0.0, []
    with dspy.context(lm=lm):
        for ex in examples:
            try:
                pred = program(**ex.inputs())
                total += metric_fn(state, ex, pred)[0]
            except Exception as exc:  # an unparseable reply: the module failed this item
                failures.append(f"{ex.get('id')}: {type(exc).__name__}: {str(exc)[:200]}")
            if bar is not None:
                bar.update(1)
    if failures:
        _say(f"{len(failures)} of {len(examples)} examples raised (scored 0), e.g. {failures[0]}")
    return total / len(examples)


def guard(before_dev: float | None, after_dev: float | None, force: bool) -> tuple[bool, str]:
    """May the candidate be written? Never when dev got worse, unless forced."""
    if after_dev is None or before_dev is None:
        return force, "no dev examples to check the candidate on" + (" (forced)" if force else "")
    if after_dev < before_dev:
        why = f"dev score fell from {before_dev:.3f} to {after_dev:.3f}"
        return (
            (True, why + " (written anyway: --force)")
            if force
            else (False, why + "; not written (use --force)")
        )
    return True, f"dev {before_dev:.3f} -> {after_dev:.3f}"


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ex", file=sys.stderr, disable=not enabled, dynamic_ncols=True)


def build_context(settings, lms):
    from agent.context import AgentContext
    from tools.builtin import registry
    from tools.sql.database import open_database

    return AgentContext(
        settings=settings, db=open_database(settings.database_config()), tools=registry(), lms=lms
    )


def module_examples(name: str, items, ctx, runner, options: OptimizeOptions, lm_name: str):
    if name == "rewrite":
        examples = data.rewrite_examples(items)
    elif name == "answer":
        examples = data.answer_examples(items, runner, ctx.settings.limits.rows_in_prompt)
    elif name == "explain":
        examples = data.explain_examples(items, ctx)
    else:
        wanted = data.answerable(items)
        if options.limit is not None:
            wanted = [i for s in data.SPLITS for i in [x for x in wanted if x.split == s][: options.limit]]
        if not options.test:
            wanted = [i for i in wanted if i.split != "test"]
        cache = data.InputCache(Path(options.cache_dir) / f"inputs-{_slug(lm_name)}.json")
        bar = _progress(len(wanted), f"{name}: pipeline inputs", options.progress)
        inputs = data.collect_inputs(wanted, ctx, cache, lm_name, tick=lambda: bar.update(1))
        bar.close()
        _say(f"{name}: pipeline inputs for {len(inputs)} items ({cache.hits} cached, {cache.misses} new)")
        examples = (
            data.generate_examples(items, inputs)
            if name == "generate"
            else data.repair_examples(items, inputs, runner)
        )
    splits = data.by_split(examples)
    if options.limit is not None:
        splits = {s: v[: options.limit] for s, v in splits.items()}
    if not options.test:
        splits["test"] = []
    return splits


def _relative(path: str) -> str:
    from agent.config import PROJECT_ROOT

    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text)


def optimize_module(name: str, items, dataset, ctx, runner, options: OptimizeOptions) -> ModuleReport:
    from prompts.optimize.registry import register_version

    started = time.perf_counter()
    lm = ctx.lm(name)
    lm_name = ctx.settings.lm.for_node(name).model
    report = ModuleReport(module=name, optimizer=options.optimizer, budget=options.budget)
    splits = module_examples(name, items, ctx, runner, options, lm_name)
    report.counts = {s: len(v) for s, v in splits.items()}
    if not splits["train"]:
        report.reason = "no training examples"
        return report
    metric_fn = METRICS[name]
    state = ctx if name in ("rewrite", "answer", "explain") else runner
    current = ctx.module(name)

    scored = [s for s in data.SPLITS if s != "train" or options.score_train]
    total = sum(len(splits[s]) for s in scored)
    bar = _progress(total, f"{name}: score before", options.progress)
    report.before = {
        s: evaluate(current, splits[s], metric_fn, state, lm, bar=bar) if s in scored else None
        for s in data.SPLITS
    }
    bar.close()

    settings = settings_for(options.optimizer, options.budget, options.demos, len(splits["train"]))
    _say(f"{name}: {options.optimizer} on {len(splits['train'])} train examples, settings {settings}")
    student = type(current)()
    code_instructions = instruction_digests(student)
    with dspy.context(lm=lm):
        program = compile_program(
            options.optimizer,
            student,
            trainset=splits["train"],
            valset=splits["dev"],
            metric=metrics.score_only(metric_fn, state),
            feedback_metric=metrics.with_feedback(metric_fn, state),
            settings=settings,
            seed=options.seed,
            reflection_lm=lm,
        )

    bar = _progress(total, f"{name}: score after", options.progress)
    report.after = {
        s: evaluate(program, splits[s], metric_fn, state, lm, bar=bar) if s in scored else None
        for s in data.SPLITS
    }
    bar.close()

    ok, report.reason = guard(report.before["dev"], report.after["dev"], options.force)
    report.seconds = round(time.perf_counter() - started, 1)
    meta = {
        "module": name,
        "optimizer": options.optimizer,
        "budget": options.budget,
        "settings": settings,
        "seed": options.seed,
        "lm": lm_name,
        "code_instructions": code_instructions,
        "database": {
            "name": ctx.db.url.rsplit("/", 1)[-1],
            "schema_digest": schema_digest(ctx.db.full_schema),
        },
        "dataset": {
            "path": _relative(dataset.path),
            "sha256": dataset.sha256,
            "split_digests": {s: data.digest(sorted(e.id for e in splits[s])) for s in data.SPLITS},
            "counts": report.counts,
        },
        "scores": {"metric": name, "before": report.before, "after": report.after},
        "dev_before": report.before["dev"],
        "dev_after": report.after["dev"],
        "forced": bool(options.force and "--force" in report.reason),
        "demos": {n: len(p.demos) for n, p in program.named_predictors()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "dspy_version": dspy.__version__,
        "wall_seconds": report.seconds,
    }
    if options.register:
        try:
            report.registry = register_version(name, program, meta, ctx.settings, production=ok)
            meta["registry"] = report.registry
        except Exception as exc:  # the artifact is still useful without the registry
            _say(f"{name}: MLflow prompt registry unavailable ({type(exc).__name__}: {exc})")
    if ok:
        report.path = str(save_compiled(program, name, meta, options.out))
        report.written = True
        ctx.modules[name] = program  # later modules' inputs use the optimized one, as the agent will
    _say(report.line())
    return report


def run_optimize(options: OptimizeOptions, settings=None, lms=None, ctx=None) -> list[ModuleReport]:
    """Optimize the chosen modules in pipeline order. `lms`/`ctx` let tests inject a fake LM."""
    from agent.config import load_settings, resolve_path
    from evals.dataset import load_dataset

    if settings is None:
        settings = ctx.settings if ctx is not None else load_settings()
    if options.lm:
        settings.lm.model = options.lm
    if ctx is None:
        if lms is None:
            from agent.service import build_lms

            lms = build_lms(settings)
        ctx = build_context(settings, lms)
    out = resolve_path(options.out)
    options.out = str(out)
    options.cache_dir = str(resolve_path(options.cache_dir))
    loaded = load_compiled_modules(ctx.modules, out, True, schema=ctx.db.full_schema)
    if loaded:
        _say(f"current compiled modules (the baseline to beat): {', '.join(loaded)}")
    dataset = load_dataset(resolve_path(options.dataset))
    runner = metrics.SqlRunner(ctx)
    names = tuple(LM_STEPS) if options.module == "all" else (options.module,)
    return [optimize_module(n, dataset.items, dataset, ctx, runner, options) for n in names]
