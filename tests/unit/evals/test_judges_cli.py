"""The shipped labelled set, the judge files, and `sqlagent judges` without any model."""

from __future__ import annotations

import json

import pytest

from agent.config import load_settings, resolve_path
from evals.judges.build import JudgePanel, applies
from evals.judges.case import JudgeCase
from evals.judges.labels import LabelError, read_labels
from evals.judges.specs import TABLES_PLACEHOLDER, Agreement, AlignmentRecord, load_specs, write_spec

SETTINGS = load_settings(tracking={"enabled": False})
SPECS = load_specs(SETTINGS.judges)
LABELS = resolve_path(SETTINGS.judges.labels)


def test_the_shipped_labelled_set_is_large_enough_and_reviewed():
    items = read_labels(LABELS, SPECS)
    assert len(items) >= 60
    assert {i.id.split("/")[0] for i in items} == {"test", "dev"}  # two real eval runs
    for item in items:
        assert item.source["trace_id"].startswith("tr-") and item.reviewed["by"] and item.reviewed["on"]
        assert all(label.rationale.strip() for label in item.labels.values())
        # A label only where its judge applies: no grounding without rows, no SQL judge without SQL.
        for spec in SPECS:
            assert (spec.name in item.labels) == applies(spec, item.case), (item.id, spec.name)
    fan = [i.labels["fan_rubric"].value for i in items]
    assert set(fan) == {"correct", "partially", "wrong"}


def test_a_bad_label_names_the_file_and_line(tmp_path):
    line = json.loads(LABELS.read_text().splitlines()[0])
    line["labels"]["grounding"]["value"] = "maybe"
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(LabelError, match=r"bad.jsonl:1: grounding label 'maybe'"):
        read_labels(path, SPECS)


def test_the_sql_judge_is_told_the_tables_and_an_aligned_file_keeps_the_placeholder(tmp_path):
    from tests.fake_judge_server import fake_judge_server, judge_model

    spec = next(s for s in SPECS if s.name == "sql_answers_question")
    tables = "- Batting (batting): playerID, HR"
    with fake_judge_server(lambda system, user, body: {"rationale": "ok", "result": "pass"}) as server:
        panel = JudgePanel([spec], judge_model(server), tables)
        case = JudgeCase.of("Q?", status="ok", sql="SELECT 1", columns=["x"], rows=[[1]], answer="x: 1.")
        verdict = panel.verdict("sql_answers_question", case)
        system = server.requests[0]["body"]["messages"][0]["content"]
    assert verdict.value == "pass" and tables in system and TABLES_PLACEHOLDER not in system
    record = AlignmentRecord(
        from_version=spec.version,
        optimizer="t",
        lm="t",
        aligned_at="2026-12-02T00:00:00",
        labels="t",
        labels_sha256="t",
        train=1,
        heldout=1,
        before=Agreement(n=1, accuracy=0, kappa=None),
        after=Agreement(n=1, accuracy=1, kappa=None),
    )
    aligned = spec.with_instructions(spec.render(tables) + "\n\nA rule.", tables, record)
    assert TABLES_PLACEHOLDER in aligned.instructions and tables not in aligned.instructions
    write_spec(aligned, tmp_path)
    found = load_specs(
        SETTINGS.judges.model_copy(update={"aligned_dir": str(tmp_path)}), ["sql_answers_question"]
    )
    assert found[0].aligned is not None and found[0].tag.endswith("+aligned-2026-12-02")
    stale = load_specs(
        SETTINGS.judges.model_copy(update={"aligned_dir": str(tmp_path), "use_aligned": False})
    )
    assert all(s.aligned is None for s in stale)


def test_judges_list_and_a_dry_run_start_no_model(tmp_path, monkeypatch, capsys):
    from agent.apps.cli import main
    from agent.lm.embedded import running_servers

    small = tmp_path / "labels.jsonl"
    small.write_text("".join(LABELS.read_text().splitlines(keepends=True)[:30]))
    monkeypatch.setenv("SQLAGENT_TRACKING__URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("SQLAGENT_TRACKING__EXPERIMENT", "judges-cli")
    assert main(["judges", "list"]) == 0
    assert "fan_rubric@v1" in capsys.readouterr().out
    assert main(["judges", "align", "--dry-run", "--labels", str(small), "--judge", "fan_rubric"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fan_rubric@v1: 20 labels to align on, 10 held out; at most")
    assert running_servers() == []
    assert main(["judges", "align", "--dry-run", "--judge", "nope"]) == 2


def test_register_adds_a_version_in_mlflows_scorer_registry(tmp_path, monkeypatch, capsys):
    import mlflow
    from mlflow.genai.scorers.registry import list_scorer_versions

    from agent.apps.cli import main

    monkeypatch.setenv("SQLAGENT_TRACKING__URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("SQLAGENT_TRACKING__EXPERIMENT", "judges-registry")
    assert main(["judges", "register", "--judge", "grounding"]) == 0
    assert main(["judges", "register", "--judge", "grounding"]) == 0
    assert "registered as version 2 of 'grounding'" in capsys.readouterr().out
    experiment = mlflow.get_experiment_by_name("judges-registry").experiment_id
    versions = list_scorer_versions(name="grounding", experiment_id=experiment)
    assert sorted(v for _, v in versions) == [1, 2]
    judge = versions[0][0]
    assert (
        judge.model == "openai:/qwen2.5-coder-1.5b"
        and "states what the result rows say" in judge.instructions
    )


def test_agree_with_a_limit_measures_an_even_sample_of_the_labels(tmp_path, monkeypatch, capsys):
    from agent.apps.cli import main
    from evals.judges import model as judge_model_module
    from tests.fake_judge_server import fake_judge_server, judge_model

    small = tmp_path / "labels.jsonl"
    small.write_text("".join(LABELS.read_text().splitlines(keepends=True)[:30]))
    monkeypatch.setenv("SQLAGENT_TRACKING__URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("SQLAGENT_TRACKING__EXPERIMENT", "judges-agree")
    with fake_judge_server(lambda system, user, body: {"rationale": "fine", "result": "pass"}) as server:
        monkeypatch.setattr(judge_model_module, "resolve", lambda settings, model=None: judge_model(server))
        args = ["judges", "agree", "--labels", str(small), "--no-review-queue", "--judge", "grounding"]
        assert main([*args, "--limit", "5"]) == 0
        assert len(server.requests) == 5
    out = capsys.readouterr().out
    assert "grounding@v1 with embedded/fake: agreement with the reviewers on 5 labels" in out
