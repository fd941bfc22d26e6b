"""The four DSPy optimizers behind `--optimizer`, each given a budget in the same rough unit: how many
training examples (bootstrap) or metric calls / trials (mipro, gepa, simba) it may spend.

All run single-threaded (the embedded model has one slot and is not thread-safe). The four search
optimizers use only bootstrapped demos (the model's own successful traces): the examples carry gold
fields (gold_sql, expected_mappings), not every predictor's output fields. `labeled` is the
exception: DSPy's LabeledFewShot, per predictor, on the examples whose gold *does* fill that
predictor's fields (rewrite's `extract`: the golden set's expected mentions); a predictor with no
such examples keeps no demos. It costs no LM call, so the 1.5B model's noisy traces cannot leak in.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable
from typing import Any

import dspy

OPTIMIZERS = ("bootstrap", "mipro", "gepa", "simba", "labeled")


class OptimizerUnavailable(RuntimeError):
    pass


def settings_for(name: str, budget: int, demos: int, n_train: int) -> dict[str, Any]:
    """The optimizer's settings as recorded in the artifact's metadata."""
    if name == "bootstrap":
        return {
            "max_bootstrapped_demos": demos,
            "max_labeled_demos": 0,
            "max_rounds": 1,
            "metric_threshold": 1.0,
            "train_examples_tried": min(budget, n_train),
        }
    if name == "mipro":
        return {
            "auto": None,
            "num_trials": budget,
            "num_candidates": max(2, min(6, budget // 3)),
            "max_bootstrapped_demos": demos,
            "max_labeled_demos": 0,
            "minibatch": n_train > 35,
        }
    if name == "gepa":
        return {
            "max_metric_calls": budget,
            "reflection_minibatch_size": max(1, min(3, n_train)),
            "use_merge": False,
            "candidate_selection_strategy": "pareto",
        }
    if name == "simba":
        return {
            "bsize": max(1, min(8, n_train)),
            "max_steps": max(1, budget // max(1, min(8, n_train))),
            "num_candidates": 2,
            "max_demos": demos,
        }
    if name == "labeled":
        return {"k": demos, "sample_seed": 0}
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")


def labeled_examples(predictor: dspy.Predict, trainset: list[dspy.Example]) -> list[dspy.Example]:
    """The examples whose gold fills every field of this predictor, cut down to those fields."""
    fields = list(predictor.signature.input_fields) + list(predictor.signature.output_fields)
    out = []
    for ex in trainset:
        if all(ex.get(f) is not None for f in fields):
            out.append(
                dspy.Example({f: ex[f] for f in fields}).with_inputs(*predictor.signature.input_fields)
            )
    return out


def compile_program(
    name: str,
    student: dspy.Module,
    *,
    trainset: list[dspy.Example],
    valset: list[dspy.Example],
    metric: Callable[..., float],
    feedback_metric: Callable[..., dspy.Prediction],
    settings: dict[str, Any],
    seed: int,
    reflection_lm: dspy.LM | None,
) -> dspy.Module:
    """Optimize `student` on trainset; valset (dev) is only used by optimizers that select on it."""
    if not trainset:
        raise ValueError("the trainset is empty")
    if name == "bootstrap":
        tried = list(trainset)
        random.Random(seed).shuffle(tried)
        tried = tried[: settings["train_examples_tried"]]
        opt = dspy.BootstrapFewShot(
            metric=metric,
            metric_threshold=settings["metric_threshold"],
            max_bootstrapped_demos=settings["max_bootstrapped_demos"],
            max_labeled_demos=0,
            max_rounds=settings["max_rounds"],
        )
        return opt.compile(student, trainset=tried)
    if name == "mipro":
        if importlib.util.find_spec("optuna") is None:
            raise OptimizerUnavailable(
                "MIPROv2 needs the `optuna` package (dspy's `optuna` extra: dspy[optuna]), which is not "
                "installed. Use --optimizer bootstrap, gepa or simba, or add optuna to the project."
            )
        opt = dspy.MIPROv2(
            metric=metric,
            auto=None,
            num_candidates=settings["num_candidates"],
            max_bootstrapped_demos=settings["max_bootstrapped_demos"],
            max_labeled_demos=0,
            num_threads=1,
            seed=seed,
            verbose=False,
            track_stats=False,
        )
        return opt.compile(
            student,
            trainset=trainset,
            valset=valset or None,
            num_trials=settings["num_trials"],
            minibatch=settings["minibatch"],
            seed=seed,
        )
    if name == "gepa":
        opt = dspy.GEPA(
            metric=feedback_metric,
            max_metric_calls=settings["max_metric_calls"],
            reflection_minibatch_size=settings["reflection_minibatch_size"],
            reflection_lm=reflection_lm or dspy.settings.lm,
            use_merge=settings["use_merge"],
            candidate_selection_strategy=settings["candidate_selection_strategy"],
            num_threads=1,
            seed=seed,
            track_stats=False,
        )
        return opt.compile(student, trainset=trainset, valset=valset or None)
    if name == "simba":
        opt = dspy.SIMBA(
            metric=metric,
            bsize=settings["bsize"],
            max_steps=settings["max_steps"],
            num_candidates=settings["num_candidates"],
            max_demos=settings["max_demos"],
            num_threads=1,
        )
        return opt.compile(student, trainset=trainset, seed=seed)
    if name == "labeled":
        program = student.reset_copy()
        for _, predictor in program.named_predictors():
            pool = labeled_examples(predictor, trainset)  # empty: LabeledFewShot leaves no demos
            predictor.demos = dspy.LabeledFewShot(k=settings["k"]).compile(predictor, trainset=pool).demos
        return program
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
