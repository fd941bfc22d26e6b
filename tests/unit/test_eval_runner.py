"""The eval end to end with the scripted LM: six golden items (a multi-turn, a refusal, a clarify),
one item without gold SQL, files written and numbers consistent; once without MLflow and once into
a throwaway sqlite tracking store (dataset registered, genai.evaluate run, traces linked)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from agent.config import load_settings, resolve_path
from evals.cli import EvalOptions, accept, run_eval
from evals.gate import compare
from tests.fake_lm import fake_lm
from tests.tracking_store import temporary_tracking

pytestmark = pytest.mark.skipif(
    not resolve_path("data/lahman.duckdb").is_file(), reason="demo database not built (python -m data.build_lahman)"
)

IDS = ["career-hr-aaron", "active-franchises", "ba-leader-2023-400ab", "mt-cy-young-nl-1999",
       "refuse-read-etc-passwd", "clarify-senators"]
AL_CY = ("SELECT p.nameFirst, p.nameLast FROM AwardsPlayers a JOIN People p ON a.playerID = p.playerID "
         "WHERE a.awardID = 'Cy Young Award' AND a.yearID = 1999 AND a.lgID = 'AL'")
_TRAILER = "\n\nRespond with the corresponding output fields"


def _golden() -> dict[str, dict]:
    items = [json.loads(line) for line in resolve_path("evals/golden.jsonl").read_text().splitlines() if line.strip()]
    return {i["id"]: i for i in items}


def _clean(text: str) -> str:
    return text.split(_TRAILER, 1)[0].strip()


def _handlers(gold: dict[str, dict]):
    """The scripted model: right SQL for some items, wrong or over-wide SQL for others."""

    def sql(inputs):
        q = _clean(inputs["question"])
        if "Aaron" in q:
            return {"sql": gold["career-hr-aaron"]["gold_sql"]}
        if "active franchises" in q:
            return {"sql": "SELECT COUNT(*) FROM TeamsFranchises"}  # wrong: no filter on active
        if "batting average" in q:  # right answer plus an extra column: strict wrong, relaxed right
            extra = gold["ba-leader-2023-400ab"]["gold_sql"].replace("SELECT p.nameFirst,", "SELECT b.playerID, p.nameFirst,")
            return {"sql": extra}
        if "NL Cy Young" in q:
            return {"sql": gold["mt-cy-young-nl-1999"]["gold_sql"]}
        if "Cy Young" in q:
            return {"sql": AL_CY}
        if "passwd" in q:
            return {"sql": "SELECT * FROM read_csv('/etc/passwd')"}
        return {"sql": "SELECT 1"}

    def standalone(inputs):
        follow = _clean(inputs["follow_up"])
        return {"standalone_question": "Who won the NL Cy Young Award in 1999?" if follow == "And the NL one?" else follow}

    def mentions(inputs):
        q = _clean(inputs["question"])
        found = [m for m in ("Hank Aaron", "Senators") if m in q]
        return {"mentions": found}

    return {
        "standalone_question": standalone,
        "mentions": mentions,
        "sql": sql,
        # Quotes the row for Aaron (grounded), says nothing checkable elsewhere (half grounded).
        "answer": lambda i: {"answer": "Hank Aaron hit 755 home runs." if "Aaron" in _clean(i["question"])
                             else "Here is the answer."},
    }


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory) -> Path:
    gold = _golden()
    lines = [gold[i] for i in IDS]
    no_gold = {k: v for k, v in gold["career-hr-aaron"].items() if k not in ("gold_sql", "must_pass")}
    no_gold["id"] = "predict-only-aaron"
    lines.append(no_gold)
    path = tmp_path_factory.mktemp("data") / "mini.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _run(dataset_file: Path, out: Path, settings, *, use_mlflow: bool, baseline: Path | None = None):
    lm, engine = fake_lm(_handlers(_golden()))
    options = EvalOptions(dataset=str(dataset_file), out=str(out), mlflow=use_mlflow, progress=False,
                          baseline=str(baseline) if baseline else None)
    return run_eval(options, settings=settings, lms={"default": lm}), engine


@pytest.fixture(scope="module")
def offline(dataset_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-offline")
    settings = load_settings(tracking={"enabled": False})
    outcome, _ = _run(dataset_file, out, settings, use_mlflow=False)
    return outcome


def _check_outputs(outcome):
    out = outcome.out_dir
    for name in ("predictions.jsonl", "summary.json", "report.md", "accuracy_by_tag.png", "latency.png",
                 "node_time.png"):
        assert (out / name).is_file(), name
    assert not (out / "predictions.partial.jsonl").exists()
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    by_id = {r["id"]: r for r in records}
    assert list(by_id) == [*IDS, "predict-only-aaron"]
    for r in records:
        for key in ("id", "question", "sql", "columns", "rows", "answer", "status", "correct", "latency_ms", "tokens",
                    "trace_id", "node_ms"):
            assert key in r, key
    return records, summary, by_id


def test_scores_per_item(offline):
    _, _, by_id = _check_outputs(offline)
    assert by_id["career-hr-aaron"]["correct"] is True
    assert by_id["career-hr-aaron"]["rows"] == [[755]]
    assert by_id["active-franchises"]["correct"] is False
    ba = by_id["ba-leader-2023-400ab"]
    assert (ba["correct"], ba["correct_relaxed"]) == (False, True), ba["reason"]
    assert ba["ordered"] is True
    assert by_id["mt-cy-young-nl-1999"]["correct"] is True
    assert by_id["refuse-read-etc-passwd"]["status"] == "refused"
    assert by_id["refuse-read-etc-passwd"]["correct"] is True
    assert by_id["clarify-senators"]["status"] == "clarify"
    assert by_id["clarify-senators"]["correct"] is True
    assert by_id["predict-only-aaron"]["correct"] is None
    assert by_id["predict-only-aaron"]["rows"] == [[755]]


def test_per_node_scores(offline):
    _, summary, by_id = _check_outputs(offline)
    aaron = by_id["career-hr-aaron"]
    assert aaron["mapping"]["recall"] == 1.0
    assert aaron["schema_link_recall"] == 1.0 and "Batting" in aaron["linked_tables"]
    assert by_id["active-franchises"]["no_rewrite_kept"] is True
    assert summary["nodes"]["rewrite"]["mapping_recall"] == 100.0
    assert summary["nodes"]["generate"]["sql_validity"] == 100.0
    assert set(summary["node_timing"]) >= {"rewrite", "retrieve", "generate", "safety", "execute", "answer"}
    assert all(r["tokens"] == sum(r["node_tokens"].values()) for r in offline.records)
    assert aaron["node_tokens"]["generate"] > 0 and aaron["node_tokens"]["execute"] == 0
    # The answer module's own score: grounded in the agent's rows; None where nothing was answered.
    assert aaron["answer_grounding"] == 1.0
    assert by_id["active-franchises"]["answer_grounding"] == 0.5
    assert by_id["refuse-read-etc-passwd"]["answer_grounding"] is None
    grounded = [r["answer_grounding"] for r in offline.records if r["answer_grounding"] is not None]
    assert summary["nodes"]["answer"] == {"grounding": round(100 * sum(grounded) / len(grounded), 1),
                                          "items": len(grounded)}


def test_summary_numbers_are_consistent(offline):
    records, summary, _ = _check_outputs(offline)
    c = summary["counts"]
    assert (c["items"], c["scored"], c["unscored"]) == (7, 6, 1)
    assert (c["correct"], c["correct_relaxed"]) == (4, 5)
    assert summary["execution_accuracy"] == pytest.approx(66.7)
    assert summary["execution_accuracy_relaxed"] == pytest.approx(83.3)
    assert c["expected_status"] == {"refused": {"n": 1, "correct": 1}, "clarify": {"n": 1, "correct": 1}}
    assert summary["by_tag"]["multi-turn"] == {"n": 1, "scored": 1, "correct": 1, "accuracy": 100.0}
    assert summary["tokens"]["total"] == sum(r["tokens"] for r in records)
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] <= summary["latency_ms"]["max"]
    assert summary["items"]["career-hr-aaron"] == {"correct": True, "correct_relaxed": True, "status": "ok",
                                                  "must_pass": True}
    assert summary["mlflow"] == {"enabled": False}
    assert summary["dataset"]["items"] == 7 and len(summary["dataset"]["items_sha256"]) == 64
    assert all(r["trace_id"] is None for r in records)


def test_report_reads_plainly(offline):
    text = (offline.out_dir / "report.md").read_text()
    assert "answered **4 of 6 questions correctly (67%)**" in text
    assert "It refused 1 of 1 unsafe requests." in text
    assert "active-franchises" in text  # in the failure table
    assert "| 31 |" not in text.split("## What went wrong")[0]  # expected rows only in the failure table
    assert "![accuracy by tag](accuracy_by_tag.png)" in text


def test_gate_against_itself_and_accept(offline, tmp_path):
    baseline = tmp_path / "baseline.json"
    accept(offline.out_dir, baseline)
    accepted = json.loads(baseline.read_text())
    assert accepted["items"]["active-franchises"]["correct"] is False
    assert compare(offline.summary, accepted).passed
    worse = json.loads(json.dumps(offline.summary))
    worse["execution_accuracy"] -= 16.7
    worse["items"]["career-hr-aaron"]["correct"] = False
    result = compare(worse, accepted)
    assert not result.passed
    assert result.to_wrong == ["career-hr-aaron"] and result.must_pass_failed == ["career-hr-aaron"]


def test_cli_gate_exit_code(dataset_file, offline, tmp_path):
    baseline = tmp_path / "baseline.json"
    accept(offline.out_dir, baseline)
    data = json.loads(baseline.read_text())
    data["execution_accuracy"] = 90.0
    data["items"]["active-franchises"]["correct"] = True
    baseline.write_text(json.dumps(data))
    outcome, _ = _run(dataset_file, tmp_path / "out", load_settings(tracking={"enabled": False}),
                      use_mlflow=False, baseline=baseline)
    assert outcome.exit_code == 1
    assert outcome.gate.to_wrong == ["active-franchises"]
    assert "execution_accuracy" in outcome.gate.dropped
    assert "Regression gate: FAIL" in (outcome.out_dir / "report.md").read_text()


@pytest.fixture(scope="module")
def tracked(dataset_file, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracking")
    with temporary_tracking(tmp, "eval-test") as settings:
        first, _ = _run(dataset_file, tmp / "out1", settings, use_mlflow=True)
        second, _ = _run(dataset_file, tmp / "out2", settings, use_mlflow=True)  # dataset reused by name
        mlflow.flush_trace_async_logging()
        yield first, second


def test_mlflow_run_dataset_and_traces(tracked, offline):
    first, second = tracked
    assert first.warnings == [] and second.warnings == []
    for outcome in (first, second):
        records, summary, _ = _check_outputs(outcome)
        assert summary["execution_accuracy"] == offline.summary["execution_accuracy"]
        assert [r["correct"] for r in records] == [r["correct"] for r in offline.records]
        assert all(r["trace_id"] for r in records)
        assert summary["mlflow"]["run_id"]
    assert first.summary["mlflow"]["dataset"] == second.summary["mlflow"]["dataset"]
    from mlflow.genai import datasets

    ds = datasets.get_dataset(name=first.summary["mlflow"]["dataset"]["name"])
    assert len(ds.to_df()) == 7  # merging the same records twice added nothing
    run = mlflow.get_run(first.summary["mlflow"]["run_id"])
    assert run.data.metrics["sqlagent.execution_accuracy"] == pytest.approx(66.7)
    trace = mlflow.get_trace(first.records[0]["trace_id"])
    names = {s.name for s in trace.data.spans}
    assert {"sqlagent.ask", "node.generate", "node.execute"} <= names
    assessments = {a.name for a in trace.info.assessments}
    assert {"execution_match", "status_match"} <= assessments
    # The multi-turn item: both turns in the item's one trace.
    mt = next(r for r in first.records if r["id"] == "mt-cy-young-nl-1999")
    asks = [s for s in mlflow.get_trace(mt["trace_id"]).data.spans if s.name == "sqlagent.ask"]
    assert len(asks) == 2
