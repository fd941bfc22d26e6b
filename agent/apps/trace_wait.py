"""Waiting until a question's trace is in the tracking store, so feedback can be posted on it at once."""

from __future__ import annotations

import logging
import threading
import time

import mlflow
from mlflow.tracing.constant import TraceMetadataKey

log = logging.getLogger(__name__)


# MLflow exports traces through a batch span processor that waits up to 5 s by default; a client
# posts feedback on a trace right after its answer, so the server exports within ~0.1 s instead.
# (Read when MLflow builds its span processor: set before `setup_tracing`; process-wide.)
EXPORT_INTERVAL_ENV = "MLFLOW_ASYNC_TRACE_LOGGING_MAX_INTERVAL_MILLIS"


class TraceWaiter:
    """Waits until traces are in the tracking store, with ONE poller for all waiting requests.

    The poller lists the experiment's recent trace ids (one query, no spans) and wakes everyone;
    20 requests each fetching their whole trace in a loop would starve the worker of CPU.
    """

    def __init__(self, interval_s: float = 0.03, window_s: float = 600.0):
        self.interval_s = interval_s
        self.window_s = window_s
        self._poll = threading.Lock()
        self._cond = threading.Condition()
        self._found: set[str] = set()
        self._waiting: set[str] = set()

    def _recent_ids(self) -> set[str]:
        from mlflow.tracking.fluent import _get_experiment_id

        since = int((time.time() - self.window_s) * 1000)
        traces = mlflow.search_traces(
            locations=[_get_experiment_id()],
            filter_string=f"trace.timestamp_ms > {since}",
            include_spans=False,
            max_results=1000,
            return_type="list",
        )
        return {t.info.trace_id for t in traces}

    def _readable(self, waiting: set[str]) -> set[str]:
        """Of the waited-for traces, those listed AND complete. A trace is listed, and even readable
        by `mlflow.get_trace`, as soon as its spans are written; its trace info (the user and session
        metadata that decide who may give feedback on it) comes after, in the store's start_trace,
        which marks it finalized. Under concurrent questions that gap was seen: 3 of 5 traces
        without metadata when the client already had the answer."""
        listed = self._recent_ids() & waiting
        out = set()
        for trace_id in listed:
            try:
                trace = mlflow.get_trace(trace_id, silent=True)
            except Exception:
                continue
            if trace is not None and (trace.info.trace_metadata or {}).get(
                TraceMetadataKey.TRACE_INFO_FINALIZED
            ):
                out.add(trace_id)
        return out

    def wait(self, trace_id: str | None, timeout_s: float = 5.0) -> bool:
        if not trace_id:
            return True
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._waiting.add(trace_id)
        try:
            while time.monotonic() < deadline:
                with self._cond:
                    if trace_id in self._found:
                        self._found.discard(trace_id)
                        return True
                    waiting = set(self._waiting)
                if self._poll.acquire(blocking=False):
                    try:
                        ids = self._readable(waiting)
                    except Exception as exc:
                        log.warning("listing traces failed: %s", exc)
                        ids = set()
                    finally:
                        self._poll.release()
                    with self._cond:
                        self._found |= ids
                        self._cond.notify_all()
                    if trace_id in ids:
                        with self._cond:
                            self._found.discard(trace_id)
                        return True
                    time.sleep(self.interval_s)
                else:
                    with self._cond:
                        self._cond.wait(timeout=self.interval_s * 2)
        finally:
            with self._cond:
                self._waiting.discard(trace_id)
        log.warning("trace %s not in the store after %.1f s: flushing", trace_id, timeout_s)
        try:  # too slow (a span processor built before EXPORT_INTERVAL_ENV was set): force it
            mlflow.flush_trace_async_logging()
            return trace_id in self._readable({trace_id})  # False: MLflow dropped it (the store is down)
        except Exception as exc:  # tracing off or the store gone: the answer still stands
            log.warning("flushing traces failed: %s", exc)
        return False
