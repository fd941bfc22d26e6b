"""MLflow tracking and tracing, set up in one place.

One trace per question (the root span `sqlagent.ask`), one `node.<name>` span per graph node, DSPy
module and LM spans from `mlflow.dspy.autolog()`, TOOL spans from the registry.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow

from agent.config import Settings, resolve_path

_configured: str | None = None


def setup_tracing(settings: Settings) -> bool:
    """Point MLflow at the configured store and turn on autologging; idempotent. Returns enabled."""
    global _configured
    tracking = settings.tracking
    if not tracking.enabled:
        mlflow.tracing.disable()
        _configured = None
        return False
    uri = tracking.resolved_uri()
    if _configured == uri:
        return True
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(tracking.experiment)
    mlflow.tracing.enable()
    mlflow.dspy.autolog(log_traces=True, silent=True)
    _configured = uri
    return True


def checkpoint_path(settings: Settings) -> Path:
    path = resolve_path(settings.tracking.checkpoint_db)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
