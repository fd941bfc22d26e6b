"""How often a judge agrees with the reviewers: accuracy, and Cohen's kappa (agreement beyond chance).

A judge call that failed (no verdict) counts as a disagreement: a judge that cannot answer does
not agree. Kappa is None when it is undefined (every label and verdict the same single value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from evals.judges.specs import Agreement

FAILED = "(no verdict)"


def agreement(human: Sequence[str], judged: Sequence[str | None]) -> Agreement:
    from sklearn.metrics import accuracy_score, cohen_kappa_score

    if len(human) != len(judged):
        raise ValueError(f"{len(human)} labels but {len(judged)} verdicts")
    if not human:
        return Agreement(n=0, accuracy=None, kappa=None)
    verdicts = [FAILED if v is None else v for v in judged]
    accuracy = float(accuracy_score(human, verdicts))
    if len(set(human) | set(verdicts)) < 2:
        kappa = None
    else:
        value = float(cohen_kappa_score(human, verdicts))
        kappa = None if math.isnan(value) else value
    return Agreement(
        n=len(human), accuracy=round(accuracy, 3), kappa=None if kappa is None else round(kappa, 3)
    )
