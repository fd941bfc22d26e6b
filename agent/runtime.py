"""The graph's runtime context as plain settings, and the live objects they open once per process.

In-process callers (the CLI, the web app, the eval, the optimizer, the tests) build an
`AgentContext` themselves and pass it as the graph's context. A LangGraph server (`langgraph dev`,
LangGraph Studio, the LangGraph API) can only send JSON: it sends `RunSettings` (which configuration
file, database and role), and `agent_context` opens what they name - the database, the LMs, the
tools - the first time a run asks for them and reuses them for every later run in the process.
"""

from __future__ import annotations

import threading
from typing import Any

import dspy
from pydantic import BaseModel, ConfigDict, Field

from agent.config import Settings, load_settings
from agent.context import AgentContext
from agent.steps import LM_STEPS


class RunSettings(BaseModel):
    """What a run needs to know, as JSON (the graph's `context_schema`: LangGraph Studio shows it as
    the run's configuration form). Every field left empty means the configuration's default."""

    model_config = ConfigDict(extra="forbid")

    config_file: str | None = Field(
        None, description="YAML configuration (default: SQLAGENT_CONFIG or config/sqlagent.yaml)"
    )
    database: str | None = Field(
        None, description="the database to ask (default: database.url of the configuration)"
    )
    role: str | None = Field(
        None, description="the access role (config/access.yaml; default: its default_role)"
    )


def build_lms(settings: Settings) -> dict[str, dspy.LM]:
    """One LM per distinct configuration: nodes that share settings share the LM (and the server)."""
    from agent.lm.embedded import build_lm

    lms: dict[str, dspy.LM] = {"default": build_lm(settings.lm, settings.embedded)}
    for name in LM_STEPS:
        if name in settings.lm.nodes:
            lms[name] = build_lm(settings.lm.for_node(name), settings.embedded)
    return lms


def open_context(
    settings: Settings,
    database: str | None = None,
    role: str | None = None,
    lms: dict[str, dspy.LM] | None = None,
) -> AgentContext:
    """The live objects one (settings, database, role) needs: what every caller builds at its edge."""
    from tools.builtin import registry
    from tools.sql.database import open_database

    db = open_database(settings.database_config(database), role)
    return AgentContext(settings=settings, db=db, tools=registry(), lms=lms or build_lms(settings))


_opened: dict[str, AgentContext] = {}
_lock = threading.Lock()


def agent_context(context: Any) -> AgentContext:
    """The `AgentContext` of a run: the one the caller passed, or the one its `RunSettings` name
    (a dict, or None for the configuration's defaults, from a LangGraph server), opened on first
    use and kept for the process."""
    if context is not None and not isinstance(context, dict | RunSettings):
        return context  # an AgentContext (or a test's stand-in for one): the caller built it
    run = context if isinstance(context, RunSettings) else RunSettings.model_validate(context or {})
    key = run.model_dump_json()
    with _lock:  # one model server and one database per process, however many runs start at once
        if key not in _opened:
            from agent.tracing import setup_tracing

            settings = load_settings(config_file=run.config_file)
            setup_tracing(settings)
            _opened[key] = open_context(settings, run.database, run.role)
        return _opened[key]
