"""Configuration precedence: keyword arguments > SQLAGENT_* environment > YAML file > defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.config import PROJECT_ROOT, load_settings, resolve_path


@pytest.fixture
def yaml_file(tmp_path, monkeypatch):
    path = tmp_path / "sqlagent.yaml"
    path.write_text(
        "lm:\n  model: openai/from-yaml\n  temperature: 0.3\n"
        "limits:\n  max_rows: 77\n  query_timeout_s: 3\n"
        "tracking:\n  uri: sqlite:///relative/store.db\n"
    )
    monkeypatch.setenv("SQLAGENT_CONFIG", str(path))
    for name in ("SQLAGENT_LM__MODEL", "SQLAGENT_LIMITS__MAX_ROWS"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_yaml_overrides_defaults(yaml_file):
    s = load_settings()
    assert s.lm.model == "openai/from-yaml"
    assert s.lm.temperature == 0.3
    assert s.limits.max_rows == 77
    assert s.limits.max_repair_attempts == 2  # not in the file: the default


def test_environment_overrides_yaml(yaml_file, monkeypatch):
    monkeypatch.setenv("SQLAGENT_LM__MODEL", "anthropic/from-env")
    monkeypatch.setenv("SQLAGENT_LIMITS__MAX_ROWS", "5")
    s = load_settings()
    assert s.lm.model == "anthropic/from-env"
    assert s.limits.max_rows == 5
    assert s.limits.query_timeout_s == 3  # the YAML value of a sibling key survives


def test_keyword_arguments_override_environment(yaml_file, monkeypatch):
    monkeypatch.setenv("SQLAGENT_LM__MODEL", "anthropic/from-env")
    assert load_settings(lm={"model": "openai/from-kwargs"}).lm.model == "openai/from-kwargs"


def test_per_node_lm_override_inherits_the_rest(yaml_file):
    s = load_settings(
        lm={"model": "openai/base", "max_tokens": 123, "nodes": {"generate": {"model": "openai/big"}}}
    )
    assert s.lm.for_node("generate").model == "openai/big"
    assert s.lm.for_node("generate").max_tokens == 123
    assert s.lm.for_node("answer").model == "openai/base"


def test_unknown_key_is_an_error(tmp_path, monkeypatch):
    path = tmp_path / "bad.yaml"
    path.write_text("limits:\n  max_rowz: 5\n")
    monkeypatch.setenv("SQLAGENT_CONFIG", str(path))
    with pytest.raises(ValidationError, match="max_rowz"):
        load_settings()


def test_missing_config_file_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLAGENT_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="SQLAGENT_CONFIG"):
        load_settings()


def test_relative_paths_resolve_against_the_project(yaml_file):
    s = load_settings()
    assert s.tracking.resolved_uri() == f"sqlite:///{PROJECT_ROOT / 'relative' / 'store.db'}"
    assert resolve_path("data/x.duckdb") == PROJECT_ROOT / "data" / "x.duckdb"


def test_package_sets_offline_switches():
    import os

    import agent  # noqa: F401

    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
