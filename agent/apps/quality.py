"""What the server does for quality and cost, kept out of server.py: the per-user token budget, the
Prometheus metrics, the background sampler, and the monitor's routes.

    GET /metrics       Prometheus text format (needs `review` when auth is on: give the scraper a token)
    GET /api/monitor   ?window=1h&window=24h -> rates per window, alerts, the sampler's state
    GET /monitor       the monitor page (agent/apps/web/monitor.html)

Hooks the server calls: `budget_for(who)` before a question queues (429 past a user's budget),
`started()`/`finished()` around each agent job (the judges wait while any is running), and
`answered(who, result, seconds)` on the worker once the answer is made (O(1): counters and a queue).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from agent.apps.auth import Auth, Principal
from agent.apps.token_budget import OverTokenBudget, UserBudgets, UserTokens
from agent.config import Settings
from agent.service import TokenBudget
from evals.monitor.metrics import Metrics
from evals.monitor.sampler import Sampler
from evals.monitor.windows import window_seconds, window_stats

log = logging.getLogger(__name__)


class Quality:
    def __init__(
        self, settings: Settings, auth_on: bool, wait_for_trace, *, panel=None, metrics: Metrics | None = None
    ):
        """`panel`: builds the judges' JudgePanel on first use (default: the configured judges on the
        configured database; tests pass a fake); used only with monitor.judge_sample_rate > 0."""
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.budgets = UserBudgets(settings.budget)  # the rule the MCP server applies too
        if auth_on and self.budgets.user_tokens is not None and settings.tracking.enabled:
            self._seed_user_tokens(self.budgets.user_tokens)
        self._inflight = 0
        self._lock = threading.Lock()
        self._checked_at = 0.0
        monitor = settings.monitor
        self.sampler = None
        if monitor.enabled and settings.tracking.enabled and monitor.sample_rate > 0:
            judges = (panel or self._default_panel) if monitor.judge_sample_rate > 0 else None
            self.sampler = Sampler(
                monitor,
                self.metrics,
                wait_for_trace=lambda t: wait_for_trace(t, 30.0),
                panel=judges,
                busy=self.busy,
                on_scored=self.maybe_check,
            ).start()

    def _seed_user_tokens(self, user_tokens: UserTokens) -> None:
        """What each user spent in the window before this process started, from their traces."""
        import json

        from mlflow.tracing.constant import TraceMetadataKey
        from mlflow.tracking.fluent import _get_experiment_id

        from evals.monitor.windows import server_traces

        since = int((time.time() - self.settings.budget.user_window_s) * 1000)
        try:
            traces = server_traces(_get_experiment_id(), since, self.settings.monitor.max_traces)
        except Exception as exc:  # noqa: BLE001 - the store down at start: budgets start from zero
            log.warning("could not read the users' token spends back from the store: %s", exc)
            return
        spends = []
        for t in traces:
            user = (t.info.trace_metadata or {}).get(TraceMetadataKey.TRACE_USER)
            try:
                total = json.loads((t.info.tags or {}).get("sqlagent.tokens") or "{}").get("total", 0)
            except ValueError:
                total = 0
            if user and total:
                spends.append((user, t.info.request_time / 1000, total))
        user_tokens.seed(spends)

    def _default_panel(self):
        from evals.judges.build import build_panel
        from tools.sql.database import open_database

        schema = open_database(self.settings.database_config()).full_schema
        return build_panel(self.settings, schema, names=self.settings.monitor.judges)

    # --- hooks -----------------------------------------------------------------------------------

    def budget_for(self, who: Principal) -> TokenBudget:
        """The question's token budget (agent/apps/token_budget.py), or 429 past the user's budget."""
        try:
            return self.budgets.budget_for(who)
        except OverTokenBudget as exc:
            raise HTTPException(429, exc.message, headers={"Retry-After": str(exc.retry_after_s)}) from None

    def started(self) -> None:
        with self._lock:
            self._inflight += 1

    def finished(self) -> None:
        with self._lock:
            self._inflight -= 1

    def busy(self) -> bool:
        return self._inflight > 0

    def _spent(self, who: Principal, nodes: list[Any]) -> int:
        """The LM tokens of these steps, counted per step and kind, priced, charged to `who`."""
        m, prices = self.metrics, self.settings.monitor.prices
        total, cost = 0, 0.0
        for n in nodes:
            total += n.tokens
            for kind, count in (
                ("read", n.tokens_read),
                ("cached", n.tokens_cached),
                ("written", n.tokens_written),
            ):
                if count:
                    m.tokens.labels(n.name, kind).inc(count)
                    cost += count * getattr(prices, kind) / 1e6
        m.cost.inc(cost)
        self.budgets.charge(who, total)
        return total

    def answered(self, who: Principal, result: Any, seconds: float) -> None:
        m = self.metrics
        m.answers.labels(result.status).inc()
        m.latency.observe(seconds)
        m.answer_tokens.observe(self._spent(who, result.nodes))
        if result.error_kind == "budget":
            m.budget_stops.inc()
        if self.sampler is not None:
            self.sampler.offer(result, seconds * 1000)

    def explained(self, who: Principal, result: Any) -> None:
        """An explanation is no answer (not in the answer rates), but its tokens are spent all the same."""
        self._spent(who, [result.step] if result.step is not None else [])

    def maybe_check(self) -> None:
        """On the monitor thread, at most every monitor.check_interval_s: log each alert of the
        shortest window (the longer ones are `sqlagent monitor`'s)."""
        now = time.monotonic()
        if now - self._checked_at < self.settings.monitor.check_interval_s:
            return
        self._checked_at = now
        window = min(self.settings.monitor.windows, key=window_seconds)
        stats = self.stats([window])[0]
        self.metrics.alerts.labels(window).set(len(stats.alerts))
        for alert in stats.alerts:
            log.warning("ALERT %s", alert)

    def stats(self, windows: list[str]) -> list:
        from mlflow.tracking.fluent import _get_experiment_id

        return [window_stats(_get_experiment_id(), w, self.settings.monitor) for w in windows]

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.close()

    # --- routes ----------------------------------------------------------------------------------

    def router(self, gate: Auth, web_dir: Path) -> APIRouter:
        router = APIRouter()
        reviewer = Depends(gate.require("review"))

        @router.get("/metrics", include_in_schema=False)
        def metrics(who: Principal = reviewer) -> Response:
            return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

        @router.get("/api/monitor")
        def monitor(
            window: Annotated[list[str] | None, Query(max_length=10)] = None, who: Principal = reviewer
        ) -> dict[str, Any]:
            windows = window or self.settings.monitor.windows
            for w in windows:
                try:
                    window_seconds(w)
                except ValueError as exc:
                    raise HTTPException(422, str(exc)) from None
            sampler = self.sampler
            return {
                "windows": [s.as_dict() for s in self.stats(windows)],
                "sampler": None
                if sampler is None
                else {
                    "sample_rate": self.settings.monitor.sample_rate,
                    "judge_sample_rate": self.settings.monitor.judge_sample_rate,
                    "queued": sampler.queued,
                    "scored": sampler.scored,
                    "judged": sampler.judged,
                },
                "thresholds": self.settings.monitor.thresholds.model_dump(),
            }

        @router.get("/monitor", include_in_schema=False)
        def page() -> FileResponse:
            return FileResponse(web_dir / "monitor.html")

        return router
