"""prompts.source: registry: the agent loads each module's `@production` version from the MLflow
Prompt Registry, falls back to the files with a warning, and every trace says which version answered."""

from __future__ import annotations

import copy
import json
import warnings

import dspy
import mlflow
import pytest

from agent.config import resolve_path
from agent.steps import fresh_modules
from prompts.optimize.registry import register_version
from prompts.prompt_source import load_prompts
from tests.tracking_store import temporary_tracking
from tools.sql.database import open_database

FOLDER = resolve_path("prompts/compiled")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with temporary_tracking(tmp_path_factory.mktemp("prompts"), "prompt-source-test") as settings:
        yield settings


def _register(settings, marker: str, *, production: bool = True, database: dict | None = None) -> str:
    """An `answer` version whose first demo answers `marker` (what an optimizer run registers)."""
    module = fresh_modules()["answer"]
    state = json.loads((FOLDER / "answer.json").read_text())
    state = copy.deepcopy(state)
    predictor = next(iter(state))
    state[predictor]["demos"] = [{**state[predictor]["demos"][0], "answer": marker}]
    module.load_state(state)
    meta = json.loads((FOLDER / "answer.meta.json").read_text())
    if database is not None:
        meta["database"] = database
    return register_version("answer", module, meta, settings, production=production)["version"]


def _load(settings, **overrides):
    modules = fresh_modules()
    db = open_database(settings.database_config())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sources = load_prompts(modules, source="registry", folder=FOLDER, schema=db.full_schema,
                               registry_uri=settings.tracking.resolved_uri(), **overrides)  # fmt: skip
    answers = [d["answer"] for _, p in modules["answer"].named_predictors() for d in p.demos]
    return sources, answers, [str(w.message) for w in caught]


def test_production_alias_decides_and_others_fall_back_with_a_warning(store):
    first = _register(store, "FROM THE REGISTRY v1")
    sources, answers, warned = _load(store)
    assert sources["answer"] == f"registry:sqlagent-answer@production/v{first}"
    assert answers == ["FROM THE REGISTRY v1"]
    # rewrite has no registered version: its file answers, and the start says so.
    assert sources["rewrite"] == f"file:{FOLDER / 'rewrite.json'}"
    assert any(
        "not using sqlagent-rewrite@production" in w and str(FOLDER / "rewrite.json") in w for w in warned
    )
    assert sources["generate"] == "code"  # neither registered nor compiled: the hand-written Signature
    assert any("sqlagent-generate@production" in w and "hand-written prompt" in w for w in warned)

    # A new version that is only a candidate changes nothing; moving `production` to it does.
    second = _register(store, "FROM THE REGISTRY v2", production=False)
    assert _load(store)[1] == ["FROM THE REGISTRY v1"]
    mlflow.genai.set_prompt_alias("sqlagent-answer", alias="production", version=second)
    sources, answers, _ = _load(store)
    assert sources["answer"] == f"registry:sqlagent-answer@production/v{second}" and answers == [
        "FROM THE REGISTRY v2"
    ]
    # Another alias is a setting away (prompts.registry_alias).
    sources, answers, _ = _load(store, alias="candidate")
    assert answers == ["FROM THE REGISTRY v2"]


def test_a_version_of_another_database_falls_back_to_the_file(store):
    other = _register(store, "OTHER DATABASE", database={"name": "other.duckdb", "schema_digest": "0" * 16})
    mlflow.genai.set_prompt_alias("sqlagent-answer", alias="production", version=other)
    sources, answers, warned = _load(store)
    assert sources["answer"] == f"file:{FOLDER / 'answer.json'}" and "OTHER DATABASE" not in answers
    assert any("sqlagent-answer@production" in w and "other.duckdb" in w for w in warned)


def test_files_source_never_reads_the_registry(store):
    modules = fresh_modules()
    sources = load_prompts(modules, source="files", folder=FOLDER, registry_uri="sqlite:////nonexistent/x.db")
    assert sources == {"rewrite": f"file:{FOLDER / 'rewrite.json'}", "answer": f"file:{FOLDER / 'answer.json'}",
                       "generate": "code", "repair": "code", "explain": "code"}  # fmt: skip
    assert load_prompts(fresh_modules(), source="registry", folder=FOLDER, enabled=False) == dict.fromkeys(
        fresh_modules(), "code"
    )


def test_the_trace_says_which_version_answered(store):
    from agent.service import PROMPTS_TAG, Agent
    from tests.fake_lm import default_handlers, fake_lm

    version = _register(store, "TRACED")  # production again
    settings = store.model_copy(deep=True)
    settings.prompts.source = "registry"
    lm, _ = fake_lm(
        default_handlers("SELECT yearID, HR FROM Batting WHERE playerID = 'ruthba01' AND yearID = 1927")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallbacks of the unregistered modules
        bot = Agent(settings, lms={"default": lm}, persistent_threads=False)
    result = bot.ask("Babe Ruth's home runs in 1927?")
    mlflow.flush_trace_async_logging()
    tag = json.loads(mlflow.get_trace(result.trace_id).info.tags[PROMPTS_TAG])
    assert tag["answer"] == f"registry:sqlagent-answer@production/v{version}"
    assert tag["rewrite"].startswith("file:") and set(tag) == set(fresh_modules())


def test_the_explain_step_reads_its_registered_version(store):
    """An on-request step is loaded like the graph's: its `@production` version teaches the model,
    and the explanation's own trace says which version it was."""
    from agent.explain import EXPLAIN
    from agent.service import PROMPTS_TAG, Agent
    from prompts.explain import Explain
    from tests.fake_lm import default_handlers
    from tests.unit.agent.test_role_isolation import Recording

    demo = {**Explain.inputs("SELECT COUNT(*) FROM Teams", "TABLE Teams"), "explanation": "REGISTERED DEMO"}
    module = Explain()
    module.explain.demos = [demo]
    meta = {"optimizer": "bootstrap", "lm": "fake", "dev_before": 0.5, "dev_after": 1.0, "budget": 1,
            "dataset": {"sha256": "x"}, "database": {"name": "lahman.duckdb", "schema_digest": None}}  # fmt: skip
    version = register_version(EXPLAIN, module, meta, store, production=True)["version"]
    settings = store.model_copy(deep=True)
    settings.prompts.source = "registry"
    engine = Recording(default_handlers("SELECT 1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallbacks of the unregistered modules
        bot = Agent(settings, lms={"default": dspy.LM("fake/scripted", engine=engine, cache=False)},
                    persistent_threads=False)  # fmt: skip
    result = bot.explain("SELECT COUNT(*) FROM Batting WHERE yearID = 1927")
    assert result.status == "ok" and any("REGISTERED DEMO" in p for p in engine.prompts)
    mlflow.flush_trace_async_logging()
    tag = json.loads(mlflow.get_trace(result.trace_id).info.tags[PROMPTS_TAG])
    assert tag == {EXPLAIN: f"registry:sqlagent-explain@production/v{version}"}
