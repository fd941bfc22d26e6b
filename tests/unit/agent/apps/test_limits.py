"""Per-user question limits (agent/apps/limits.py) on a fake clock."""

from __future__ import annotations

import pytest

from agent.apps.limits import BUSY_RETRY_S, QuestionLimits, TooManyQuestions


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_concurrent_questions_per_user():
    limits = QuestionLimits(max_concurrent=2, per_minute=100, clock=Clock())
    first, _ = limits.acquire("alice"), limits.acquire("alice")
    with pytest.raises(TooManyQuestions) as refused:
        limits.acquire("alice")
    assert refused.value.retry_after_s == BUSY_RETRY_S and "2 at a time" in refused.value.message
    limits.acquire("bob")  # another user has their own count
    first()
    first()  # a second release of the same question frees nothing more
    limits.acquire("alice")
    with pytest.raises(TooManyQuestions):
        limits.acquire("alice")


def test_questions_per_minute_with_retry_after():
    clock = Clock()
    limits = QuestionLimits(max_concurrent=10, per_minute=3, clock=clock)
    for _ in range(3):
        limits.acquire("alice")()
        clock.now += 10  # at t = 0, 10, 20
    with pytest.raises(TooManyQuestions) as refused:  # t = 30: the first leaves the window at 60
        limits.acquire("alice")
    assert refused.value.retry_after_s == 30 and "questions_per_minute" in refused.value.message
    clock.now += 29.5
    with pytest.raises(TooManyQuestions) as refused:
        limits.acquire("alice")
    assert refused.value.retry_after_s == 1  # never "retry in 0 s"
    clock.now += 0.5
    limits.acquire("alice")  # t = 60: one slot again
    limits.acquire("bob")
