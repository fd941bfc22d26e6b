"""Where labelled traces come from: the labelled set file, and the review queue's agent traces."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agent.config import Settings


def earlier_questions(traces: list) -> dict[str, list[str]]:
    """For each agent trace, the questions asked before it on the same thread (MLflow's session)."""
    from mlflow.tracing.constant import TraceMetadataKey

    from evals import feedback

    by_session: dict[str, list] = defaultdict(list)
    for t in traces:
        session = (t.info.trace_metadata or {}).get(TraceMetadataKey.TRACE_SESSION)
        if session:
            by_session[session].append(t)
    out: dict[str, list[str]] = {}
    for group in by_session.values():
        group.sort(key=lambda t: t.info.request_time or 0)
        asked: list[str] = []
        for t in group:
            out[t.info.trace_id] = list(asked)
            root = feedback.root_span(t)
            asked.append(((root.inputs if root else None) or {}).get("question") or "")
    return out


def gather_labels(settings: Settings, specs, labels_path, review_queue: bool) -> dict[str, Any]:
    """The labelled set and the review queue's labels, logged as labelled traces; returns counts."""
    import mlflow

    from evals import feedback
    from evals.judges.labels import labels_experiment, log_items, read_labels, reviewed_agent_items

    experiment = labels_experiment(settings.tracking.experiment)
    counts: dict[str, Any] = {}
    if labels_path is not None:
        counts["labelled set"] = log_items(read_labels(labels_path, specs), experiment, str(labels_path))
    if review_queue:
        main = mlflow.get_experiment_by_name(settings.tracking.experiment)
        traces = (
            []
            if main is None
            else mlflow.search_traces(locations=[main.experiment_id], max_results=5000, return_type="list")
        )
        agents = [t for t in traces if feedback.summary(t)["is_agent_trace"]]
        items = reviewed_agent_items(agents, specs, earlier_questions(agents))
        counts["review queue"] = log_items(items, experiment, "review queue")
    return counts
