"""One Agent per (database, role) and the single worker thread that runs every agent job.

The embedded llama.cpp model has one slot, a DuckDB connection (the value index) is not for
concurrent use, and a trace's root span is only the current span on the thread that opened it. So
the HTTP server and the MCP server run each job (creating an Agent, a question, a tool call) on ONE
worker thread, in arrival order; callers wait on the job's future.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from agent.config import Settings

AgentFactory = Callable[[Settings, str | None, str | None], Any]


def default_agent_factory(settings: Settings, db: str | None, role: str | None):
    from agent.service import Agent

    return Agent(settings, db_path=db, role=role)


class AgentPool:
    """One Agent per (db, role), created lazily on the worker thread that runs all agent jobs."""

    def __init__(self, settings: Settings, factory: AgentFactory):
        self.settings = settings
        self.factory = factory
        self.agents: dict[tuple[str | None, str | None], Any] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlagent-lm")

    def submit(self, db: str | None, role: str | None, job: Callable[[Any], Any]) -> Future:
        return self.worker.submit(lambda: job(self._agent(db, role)))

    def run(self, job: Callable[[], Any]) -> Future:
        """A job that needs no Agent (a tool call on the database), in the same order as the others."""
        return self.worker.submit(job)

    def _agent(self, db: str | None, role: str | None):  # worker thread only
        key = (db, role)
        if key not in self.agents:
            self.agents[key] = self.factory(self.settings, db, role)
        return self.agents[key]

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)
