"""Per-user token budgets: a sliding window per user; past it a question is refused (429 with
Retry-After) before it queues, under it the user's rest becomes the question's budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from agent.apps.auth import LOCAL, Principal
from agent.apps.quality import Quality
from agent.apps.server import create_app
from agent.apps.token_budget import OverTokenBudget, UserTokens
from agent.apps.users import UserStore
from agent.config import load_settings
from agent.service import Agent
from tests.fake_lm import default_handlers, fake_lm
from tests.tracking_store import temporary_tracking

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
RUTH = "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
ANA = Principal(name="ana", role="public", permissions=["ask"], authenticated=True)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_spends_leave_the_window():
    clock = Clock()
    budget = UserTokens(100, window_s=60, clock=clock)
    budget.charge("ana", 70)
    clock.now += 30
    budget.charge("ana", 30)
    assert budget.remaining("bob") == 100
    with pytest.raises(OverTokenBudget) as refused:
        budget.remaining("ana")
    assert refused.value.retry_after_s == 30  # when the first spend leaves the window
    assert "budget.tokens_per_user" in refused.value.message and "100" in refused.value.message
    clock.now += 30
    assert budget.remaining("ana") == 70


def test_seeded_spends_count_inside_the_window_only():
    budget = UserTokens(100, window_s=60, clock=Clock())
    kept = budget.seed([("ana", 1000.0 - 10, 40), ("ana", 1000.0 - 100, 50)], now_wall=1000.0)
    assert kept == 1 and budget.remaining("ana") == 60


def _quality(per_user: int, per_question: int) -> Quality:
    settings = load_settings(
        tracking={"enabled": False}, budget={"tokens_per_user": per_user, "tokens_per_question": per_question}
    )
    return Quality(settings, auth_on=True, wait_for_trace=lambda t, s: True)


def test_the_users_rest_is_the_questions_budget_when_smaller():
    quality = _quality(per_user=1000, per_question=800)
    assert quality.budget_for(ANA).tokens == 800
    quality.budgets.user_tokens.charge("ana", 500)
    budget = quality.budget_for(ANA)
    assert (budget.tokens, budget.source) == (500, "budget.tokens_per_user")
    quality.budgets.user_tokens.charge("ana", 500)
    with pytest.raises(HTTPException) as refused:
        quality.budget_for(ANA)
    assert refused.value.status_code == 429 and int(refused.value.headers["Retry-After"]) >= 1
    assert quality.budget_for(LOCAL).tokens == 800  # the local operator (no auth) has no user budget


def test_the_api_refuses_a_user_past_the_budget(tmp_path):
    golden = tmp_path / "golden.jsonl"
    shutil.copy(ROOT / "evals" / "golden.jsonl", golden)
    store = UserStore(tmp_path / "users.sqlite")
    token = store.add("ana", "public", ["ask"])[1]

    def factory(s, db, role):
        lm, _ = fake_lm(default_handlers(RUTH))
        return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    with temporary_tracking(tmp_path, "budget-api") as base:
        settings = base.model_copy(update={"budget": base.budget.model_copy(update={"tokens_per_user": 10})})
        app = create_app(settings, agent_factory=factory, golden_path=golden, auth=True, users=store)
        with TestClient(app) as client:
            auth = {"Authorization": f"Bearer {token}"}
            first = client.post(
                "/api/ask", json={"question": "Who hit the most home runs in 1927?"}, headers=auth
            )
            assert first.status_code == 200 and sum(n["tokens"] for n in first.json()["nodes"]) > 10
            second = client.post(
                "/api/ask", json={"question": "Who hit the most home runs in 1927?"}, headers=auth
            )
        # A restarted server reads the spends of the window back from the traces.
        restarted = create_app(settings, agent_factory=factory, golden_path=golden, auth=True, users=store)
        with TestClient(restarted) as client:
            third = client.post(
                "/api/ask", json={"question": "Who hit the most home runs in 1927?"}, headers=auth
            )
    assert second.status_code == 429 and "Retry-After" in second.headers
    assert "budget.tokens_per_user" in second.json()["detail"]
    assert third.status_code == 429
