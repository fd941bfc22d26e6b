"""A throwaway MLflow tracking store for tests that read traces back.

A fresh sqlite store costs seconds of migrations, so tests open one per module. Afterwards tracing
is left as the other tests expect it: off, and not pointing at the deleted store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from agent import tracing
from agent.config import Settings, load_settings


@contextmanager
def temporary_tracking(tmp: Path, experiment: str) -> Iterator[Settings]:
    settings = load_settings(
        tracking={
            "enabled": True,
            "uri": f"sqlite:///{tmp}/mlflow.db",
            "experiment": experiment,
            "checkpoint_db": f"{tmp}/threads.sqlite",
        }
    )
    previous_uri = mlflow.get_tracking_uri()
    tracing._configured = None  # setup_tracing caches the last URI: force ours
    try:
        yield settings
    finally:
        tracing.setup_tracing(load_settings(tracking={"enabled": False}))
        mlflow.tracing.disable()
        mlflow.dspy.autolog(disable=True, silent=True)
        tracing._configured = None
        mlflow.set_tracking_uri(previous_uri)
