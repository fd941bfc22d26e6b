"""Reading a question's trace back from MLflow as a per-node timeline."""

from __future__ import annotations

from typing import Any

import mlflow

from agent.config import Settings
from agent.tracing import setup_tracing


def trace_timeline(settings: Settings, trace_id: str) -> dict[str, Any]:
    setup_tracing(settings)
    trace = mlflow.get_trace(trace_id)
    if trace is None:
        raise LookupError(f"No trace {trace_id!r} in {settings.tracking.resolved_uri()}.")
    spans = trace.data.spans
    # The agent's own root span; under `mlflow.genai.evaluate` it sits inside the evaluator's span.
    root = next((s for s in spans if s.name == "sqlagent.ask"), None) or next(
        (s for s in spans if s.parent_id is None), None
    )
    nodes = []
    for span in sorted((s for s in spans if s.name.startswith("node.")), key=lambda s: s.start_time_ns):
        attrs = span.attributes or {}
        outputs = span.outputs or {}
        detail = outputs.get("_detail") or outputs.get("sql") or outputs.get("answer") or outputs.get("error")
        if span.status.status_code == "ERROR":
            detail = f"FAILED: {span.status.description or detail}"
        nodes.append({
            "name": span.name.removeprefix("node."),
            "duration_ms": (span.end_time_ns - span.start_time_ns) / 1e6,
            "tokens": int(attrs.get("sqlagent.tokens") or 0),
            "detail": detail or "",
            "outputs": outputs,
        })  # fmt: skip
    return {
        "trace_id": trace_id,
        "status": (root.attributes or {}).get("sqlagent.status") if root else None,
        "question": (root.inputs or {}).get("question") if root else None,
        "nodes": nodes,
    }
