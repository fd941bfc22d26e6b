"""`sqlagent judges align`: each judge aligned to the reviewers' labels with MLflow's SIMBA optimizer.

For each judge: its labelled traces (evals/judges/labels.py) are split by label into a training
part and a held-out part (`judges.align.heldout`, the same split for the same labels and seed);
the judge as written is scored on the held-out labels; `judge.align(train, SIMBA)` writes new
instructions (rules and worked examples); the aligned judge is scored on the same held-out labels.
Agreement is accuracy and Cohen's kappa. An aligned judge that agrees less than the one it came
from is not saved (unless forced): the same rule as `sqlagent optimize`.

MLflow's DSPy optimizers re-create the judge for every call with `make_judge(name, instructions,
model)`, which drops the connection to the embedded server (base_url, the key header) and the
inference parameters. `ConnectedSIMBA` re-creates it with them, and lets the judge sample at
`judges.align.temperature` while SIMBA explores: a judge at temperature 0 answers every sample of
a case alike, and SIMBA, which learns from the difference between a better and a worse sample,
would then only ever add worked examples.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mlflow.genai.judges import make_judge
from mlflow.genai.judges.optimizers import SIMBAAlignmentOptimizer

from agent.config import JudgeAlignSettings
from evals.judges.agreement import agreement
from evals.judges.build import make
from evals.judges.labels import human_label
from evals.judges.model import JudgeModel
from evals.judges.specs import Agreement, AlignmentRecord, JudgeSpec

MIN_TRAIN = 10  # MLflow's DSPy optimizers refuse fewer labelled traces


class AlignError(ValueError):
    pass


@dataclass(frozen=True)
class Example:
    trace: Any
    label: str


@dataclass
class Split:
    train: list[Example]
    heldout: list[Example]


def split(traces: list, spec: JudgeSpec, heldout: float, seed: int) -> Split:
    """Stratified by label, ordered by a hash of the label id: stable across runs and machines."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for trace in traces:
        found = human_label(trace, spec)
        if found:
            by_label[found[0]].append(Example(trace, found[0]))
    train, held = [], []
    for label in sorted(by_label):
        group = sorted(
            by_label[label],
            key=lambda e: hashlib.sha256(
                f"{seed}:{(e.trace.info.tags or {}).get('sqlagent.label_id', e.trace.info.trace_id)}".encode()
            ).hexdigest(),
        )
        n = round(len(group) * heldout)
        if len(group) >= 2:
            n = min(max(n, 1), len(group) - 1)  # each label on both sides when it can be
        held += group[:n]
        train += group[n:]
    return Split(train, held)


def limit(examples: list[Example], n: int | None) -> list[Example]:
    """At most `n` examples, each label keeping its share (the order within a label is kept)."""
    if n is None or len(examples) <= n:
        return examples
    by_label: dict[str, list[Example]] = defaultdict(list)
    for e in examples:
        by_label[e.label].append(e)
    keep = {label: max(1, round(n * len(group) / len(examples))) for label, group in by_label.items()}
    while sum(keep.values()) > n:  # rounding up small labels can overshoot: trim the largest
        keep[max(keep, key=keep.get)] -= 1
    return [e for label, group in by_label.items() for e in group[: keep[label]]]


def planned_calls(n_train: int, n_heldout: int, opts: JudgeAlignSettings) -> dict[str, int]:
    """Judge calls (upper bounds) of one alignment: what the command prints before it starts."""
    bsize = min(opts.batch_size, n_train)
    new = min(bsize, opts.candidates + 1)  # new instructions per step
    per_step = bsize * opts.candidates + new * bsize
    final = min(opts.max_steps + 1, opts.candidates + 1) * n_train
    return {
        "before": n_heldout,
        "simba_steps": per_step * opts.max_steps,
        "simba_final": final,
        "after": n_heldout,
        "rule_calls": new * opts.max_steps,
        "total": 2 * n_heldout + per_step * opts.max_steps + final + new * opts.max_steps,
    }


def measure(spec: JudgeSpec, traces: list, model: JudgeModel, tables: str) -> Agreement:
    """The judge (as used) on every labelled trace that has a label for it."""
    examples = [Example(t, found[0]) for t in traces if (found := human_label(t, spec))]
    return agreement([e.label for e in examples], verdicts(make(spec, model, tables), examples))


def verdicts(judge, examples: list[Example]) -> list[str | None]:
    """The judge on each labelled trace's case, read from the root span exactly as alignment reads it."""
    out = []
    for example in examples:
        root = example.trace.data._get_root_span()
        try:
            out.append(str(judge(inputs=root.inputs, outputs=root.outputs).value))
        except Exception:  # noqa: BLE001 - a failed call is a disagreement (agreement.py)
            out.append(None)
    return out


class ConnectedSIMBA(SIMBAAlignmentOptimizer):
    """SIMBA whose judges keep their connection, rationale order and sampling temperature."""

    def __init__(self, spec: JudgeSpec, model: JudgeModel, temperature: float, **kwargs):
        super().__init__(model=model.uri, **kwargs)
        self._spec, self._connection = spec, model.judge_kwargs(temperature)

    def _create_judge_from_dspy_program(self, optimized_program, original_judge):
        bare = super()._create_judge_from_dspy_program(optimized_program, original_judge)
        return make_judge(
            name=bare.name,
            instructions=bare.instructions,
            description=self._spec.description,
            feedback_value_type=self._spec.value_type,
            generate_rationale_first=self._spec.rationale_first,
            **self._connection,
        )


@dataclass
class JudgeAlignment:
    spec: JudgeSpec
    train: int
    heldout: int
    before: Agreement
    after: Agreement | None = None
    aligned: JudgeSpec | None = None
    seconds: float = 0.0
    planned: dict[str, int] = field(default_factory=dict)
    kept: bool = False
    note: str = ""

    @property
    def improved(self) -> bool:
        if self.after is None:
            return False
        if self.before.kappa is not None and self.after.kappa is not None:
            return self.after.kappa >= self.before.kappa
        return (self.after.accuracy or 0) >= (self.before.accuracy or 0)


def align_judge(
    spec: JudgeSpec,
    traces: list,
    model: JudgeModel,
    tables: str,
    opts: JudgeAlignSettings,
    *,
    rule_lm,
    labels: tuple[str, str],
    force: bool = False,
) -> JudgeAlignment:
    """Align one judge on its labelled traces; `rule_lm` is the dspy.LM that writes SIMBA's rules."""
    parts = split(traces, spec, opts.heldout, opts.seed)
    parts.train = limit(parts.train, opts.train_limit)
    result = JudgeAlignment(
        spec,
        len(parts.train),
        len(parts.heldout),
        Agreement(n=0, accuracy=None, kappa=None),
        planned=planned_calls(len(parts.train), len(parts.heldout), opts),
    )
    if len(parts.train) < MIN_TRAIN or not parts.heldout:
        result.note = (
            f"{len(parts.train)} training and {len(parts.heldout)} held-out labels: aligning needs at "
            f"least {MIN_TRAIN} and 1 (label more answers for {spec.name})"
        )
        return result
    started = time.perf_counter()
    judge = make(spec, model, tables)
    humans = [e.label for e in parts.heldout]
    result.before = agreement(humans, verdicts(judge, parts.heldout))
    optimizer = ConnectedSIMBA(
        spec,
        model,
        opts.temperature,
        batch_size=min(opts.batch_size, len(parts.train)),
        seed=opts.seed,
        simba_kwargs={
            "max_steps": opts.max_steps,
            "num_candidates": opts.candidates,
            "max_demos": opts.max_demos,
            "num_threads": opts.threads,
            "prompt_model": rule_lm,
        },
    )
    aligned_judge = judge.align([e.trace for e in parts.train], optimizer)
    record = AlignmentRecord(
        from_version=spec.version,
        optimizer="mlflow SIMBAAlignmentOptimizer (dspy.SIMBA)",
        lm=model.lm.model,
        aligned_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        labels=labels[0],
        labels_sha256=labels[1],
        train=len(parts.train),
        heldout=len(parts.heldout),
        before=result.before,
        after=Agreement(n=0, accuracy=None, kappa=None),
    )
    aligned = spec.with_instructions(aligned_judge.instructions, tables, record)
    result.after = agreement(humans, verdicts(make(aligned, model, tables), parts.heldout))
    aligned.aligned.after = result.after
    result.aligned = aligned
    result.kept = result.improved or force
    if not result.kept:
        result.note = "agrees less with the reviewers than the judge as written: not saved (--force saves it)"
    result.seconds = time.perf_counter() - started
    return result
