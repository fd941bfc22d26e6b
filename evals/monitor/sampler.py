"""The background scorer: a sample of the server's answers, scored off the request path.

`offer` is called on the agent's worker thread once an answer is made: it draws the sample and
queues the answer, and never blocks (a full queue drops the answer and counts it). One daemon
thread takes answers off the queue, waits until the trace is in the store, and writes the code
scores (scorers.py) on it as feedback from `sqlagent.monitor`. For the answers drawn for the
judges (monitor.judge_sample_rate) it then asks the judges, one call at a time and only while no
question waits for the model (`busy`), and writes their verdicts as LLM_JUDGE feedback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import AssessmentSource
from mlflow.tracing.constant import TraceMetadataKey

from agent.config import MonitorSettings
from evals.judges.case import JudgeCase
from evals.monitor.metrics import Metrics
from evals.monitor.scorers import SOURCE_ID, code_scores

log = logging.getLogger(__name__)
IDLE_POLL_S = 0.5


@dataclass
class Sampled:
    result: Any  # the AskResult
    latency_ms: float
    judge: bool  # drawn for the judges too
    offered_at: float = field(default_factory=time.monotonic)


class Sampler:
    def __init__(
        self,
        settings: MonitorSettings,
        metrics: Metrics,
        *,
        wait_for_trace: Callable[[str], bool],
        panel: Callable[[], Any] | None = None,
        busy: Callable[[], bool] = lambda: False,
        draw: Callable[[], float] = random.random,
        on_scored: Callable[[], None] | None = None,
    ):
        """`panel`: builds the JudgePanel on first use (None: no judges); `busy`: a question waits;
        `on_scored`: called on the worker after each answer (the server's threshold check)."""
        self.settings, self.metrics = settings, metrics
        self.wait_for_trace, self.make_panel, self.busy, self.draw = wait_for_trace, panel, busy, draw
        self.on_scored = on_scored
        self._panel = None
        self._queue: queue.Queue[Sampled | None] = queue.Queue(maxsize=settings.queue_size)
        self._thread: threading.Thread | None = None
        self.scored = 0
        self.judged = 0

    # --- the request side: O(1), never blocks --------------------------------------------------

    def offer(self, result: Any, latency_ms: float) -> bool:
        """Queue the answer if it is drawn for scoring; False when it is not drawn or was dropped."""
        if not result.trace_id or self.draw() >= self.settings.sample_rate:
            return False
        judge = self.make_panel is not None and self.draw() < self.settings.judge_sample_rate
        try:
            self._queue.put_nowait(Sampled(result, latency_ms, judge))
        except queue.Full:
            self.metrics.dropped.inc()
            log.warning(
                "monitor queue full (monitor.queue_size=%d): trace %s not scored",
                self.settings.queue_size,
                result.trace_id,
            )
            return False
        self.metrics.queue.set(self._queue.qsize())
        return True

    # --- the worker ------------------------------------------------------------------------------

    def start(self) -> Sampler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqlagent-monitor", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop after the answers already queued (bounded by `timeout_s`)."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):  # full: the thread is still a daemon, it ends with the process
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._thread = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued answer is scored (tests, and a clean shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self.score(item)
                if self.on_scored is not None:
                    self.on_scored()
            except Exception:  # noqa: BLE001 - one answer's scoring must not stop the monitor
                log.exception("scoring trace %s failed", getattr(item.result, "trace_id", "?"))
            finally:
                self._queue.task_done()
                self.metrics.queue.set(self._queue.qsize())

    def score(self, item: Sampled) -> None:
        result = item.result
        trace_id = result.trace_id
        self.wait_for_trace(trace_id)
        source = AssessmentSource(source_type="CODE", source_id=SOURCE_ID)
        for s in code_scores(result, item.latency_ms):
            if s.value is None:
                continue
            mlflow.log_feedback(
                trace_id=trace_id, name=s.name, value=s.value, rationale=s.rationale, source=source
            )
            if isinstance(s.value, bool):
                self.metrics.scores.labels(s.name, str(s.value).lower()).inc()
        self.scored += 1
        if item.judge:
            self.judge(result)

    def judge(self, result: Any) -> None:
        panel = self._panel = self._panel or self.make_panel()
        case = JudgeCase.of(
            result.question,
            status=result.status,
            sql=result.sql,
            columns=result.columns,
            rows=result.rows,
            answer=result.answer,
            earlier=earlier_questions(result),
        )
        source = AssessmentSource(source_type="LLM_JUDGE", source_id=panel.model.uri)
        for name in self.settings.judges:
            if name not in panel.specs:
                continue
            while self.busy():  # the model serves questions first
                time.sleep(IDLE_POLL_S)
            verdict = panel.verdict(name, case)
            if verdict is None:
                continue
            if verdict.value is None:
                self.metrics.judge_failures.labels(name).inc()
                log.warning("judge %s gave no verdict on %s: %s", name, result.trace_id, verdict.error)
                continue
            mlflow.log_feedback(
                trace_id=result.trace_id,
                name=name,
                value=verdict.value,
                rationale=verdict.rationale,
                source=source,
                metadata={"version": verdict.tag, "passed": str(verdict.passed).lower()},
            )
            self.metrics.verdicts.labels(name, verdict.value).inc()
        self.judged += 1


def earlier_questions(result: Any) -> list[str]:
    """The questions asked before this one on its thread (MLflow's session), oldest first: a follow-up
    ("And in 1961?") is judged with them."""
    from mlflow.tracking.fluent import _get_experiment_id

    session = str(result.thread_id or "").replace("'", "")
    if not session:
        return []
    try:
        traces = mlflow.search_traces(
            locations=[_get_experiment_id()],
            include_spans=False,
            return_type="list",
            max_results=50,
            filter_string=f"metadata.`{TraceMetadataKey.TRACE_SESSION}` = '{session}'",
            order_by=["timestamp_ms ASC"],
        )
    except Exception as exc:  # noqa: BLE001 - without them the follow-up is judged alone
        log.warning("earlier questions of %s: %s", session, exc)
        return []
    out = []
    for t in traces:
        if t.info.trace_id == result.trace_id:
            break
        try:
            question = json.loads(t.info.request_preview or "{}").get("question")
        except (ValueError, AttributeError):
            question = None
        if question:
            out.append(question)
    return out
