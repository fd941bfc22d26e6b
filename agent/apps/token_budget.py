"""Per-user token budgets: how many LM tokens a user's questions may spend over a sliding window.

A user past the budget is refused before their question queues (OverTokenBudget, which says when
to retry: when the oldest spend in the window leaves it; the HTTP API makes it 429 with Retry-After,
the MCP server a tool error); a user under it gets the rest as the question's own budget, so a
question stops (agent/budget.py) rather than run far past it. Only authenticated users have one:
the local operator (no auth) has the per-question budget alone. The spends are counted in each
process (the HTTP API's, agent/apps/quality.py, also reads the window's spends back from its traces
at start: the `sqlagent.tokens` tag; the MCP server's, agent/apps/mcp_server.py, counts from its start).
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable

from agent.apps.auth import Principal
from agent.config import BudgetSettings
from agent.service import TokenBudget


class OverTokenBudget(Exception):
    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class UserTokens:
    def __init__(self, per_user: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.per_user = per_user
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._spent: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    def _expire(self, user: str, now: float) -> deque[tuple[float, int]]:
        spent = self._spent[user]
        while spent and spent[0][0] <= now - self.window_s:
            spent.popleft()
        return spent

    def remaining(self, user: str) -> int:
        """The user's budget left in the window; raises OverTokenBudget when nothing is left."""
        with self._lock:
            now = self.clock()
            spent = self._expire(user, now)
            used = sum(t for _, t in spent)
            if used < self.per_user:
                return self.per_user - used
            wait = max(1, math.ceil(spent[0][0] + self.window_s - now)) if spent else 1
        hours = self.window_s / 3600
        raise OverTokenBudget(
            f"{user!r} used {used:,} LM tokens in the last {hours:g} h; the budget is {self.per_user:,} "
            f"(budget.tokens_per_user). Retry in {wait} s.",
            wait,
        )

    def charge(self, user: str, tokens: int, at: float | None = None) -> None:
        if tokens <= 0:
            return
        with self._lock:
            self._spent[user].append((self.clock() if at is None else at, tokens))

    def seed(self, spends: Iterable[tuple[str, float, int]], now_wall: float | None = None) -> int:
        """Spends read from the store: (user, wall-clock seconds, tokens); returns how many were inside."""
        now_wall, now = time.time() if now_wall is None else now_wall, self.clock()
        kept = 0
        for user, at_wall, tokens in sorted(spends, key=lambda s: s[1]):
            age = now_wall - at_wall
            if 0 <= age < self.window_s:
                self.charge(user, tokens, at=now - age)
                kept += 1
        return kept


class UserBudgets:
    """The token budget of each question: budget.tokens_per_question, or the user's rest of
    budget.tokens_per_user when that is smaller. One rule for every entry point that asks the model."""

    def __init__(self, settings: BudgetSettings):
        self.per_question = settings.tokens_per_question or None
        self.user_tokens = (
            UserTokens(settings.tokens_per_user, settings.user_window_s) if settings.tokens_per_user else None
        )

    def budget_for(self, who: Principal) -> TokenBudget:
        """Raises OverTokenBudget when an authenticated user has nothing left."""
        if self.user_tokens is None or not who.authenticated:
            return TokenBudget(self.per_question)
        rest = self.user_tokens.remaining(who.name)
        if self.per_question is None or rest < self.per_question:
            return TokenBudget(rest, "budget.tokens_per_user")
        return TokenBudget(self.per_question)

    def charge(self, who: Principal, tokens: int) -> None:
        if self.user_tokens is not None and who.authenticated:
            self.user_tokens.charge(who.name, tokens)
