"""Per-user question limits: how many may be queued or running at once, and how many per minute.

The model answers one question at a time, so one user posting fifty would hold everyone else
behind them for half an hour; a refusal (TooManyQuestions, whose message says when to retry) is
429 with Retry-After (seconds) from the HTTP API and a tool error from the MCP server over HTTP,
rather than a long queue. Only authenticated users are limited, never the local operator.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

WINDOW_S = 60.0
# A question takes seconds to a minute on a CPU; a client told to retry sooner would only be refused again.
BUSY_RETRY_S = 5


class TooManyQuestions(Exception):
    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class QuestionLimits:
    def __init__(self, max_concurrent: int, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.max_concurrent = max_concurrent
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, int] = defaultdict(int)
        self._started: dict[str, deque[float]] = defaultdict(deque)

    def acquire(self, user: str) -> Callable[[], None]:
        """Count one question for `user`, or raise TooManyQuestions. Returns the release function
        (call it once the question is answered; calling it twice releases once)."""
        with self._lock:
            now = self.clock()
            started = self._started[user]
            while started and started[0] <= now - WINDOW_S:
                started.popleft()
            if self._running[user] >= self.max_concurrent:
                raise TooManyQuestions(
                    f"{user!r} has {self._running[user]} questions queued or running; the limit is "
                    f"{self.max_concurrent} at a time (server.max_concurrent_questions). Retry in {BUSY_RETRY_S} s.",
                    BUSY_RETRY_S,
                )
            if len(started) >= self.per_minute:
                wait = max(1, math.ceil(started[0] + WINDOW_S - now))
                raise TooManyQuestions(
                    f"{user!r} asked {len(started)} questions in the last minute; the limit is "
                    f"{self.per_minute} (server.questions_per_minute). Retry in {wait} s.",
                    wait,
                )
            started.append(now)
            self._running[user] += 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if not released.is_set():
                    released.set()
                    self._running[user] -= 1

        return release
