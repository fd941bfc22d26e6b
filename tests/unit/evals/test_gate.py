"""The regression gate and what it reads: one table of cases per hole it must not let through.

The gate is pure (summary dicts in, GateResult out), so most cases are hand-written per-item
summaries. The summary itself (evals/report.py) is built from records made by the runner's own
`build_record` with a stub prediction and gold, and the CLI paths (exit codes, eval-accept) run
`run_eval` with a stub pipeline and gold, so no model and no database are loaded.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_settings
from evals import accept as accept_cli
from evals import cli, report, runner
from evals.dataset import EvalItem
from evals.gate import BaselineError, allowed_losses, compare
from evals.runner import Gold, Prediction

# --- per-item summaries for the gate ---------------------------------------------------------------


def ok(
    correct: bool | None, *, must_pass: bool = False, gold_error: str | None = None, gold: bool = True
) -> dict:
    """An answerable item (or, with gold=False, a prediction-only one)."""
    return {
        "correct": correct,
        "correct_relaxed": correct,
        "status": "ok",
        "must_pass": must_pass,
        "expected_status": "ok",
        "has_gold": gold or bool(gold_error),
        "gold_error": gold_error,
    }


def status(correct: bool, kind: str = "refused") -> dict:
    return {
        "correct": correct,
        "correct_relaxed": correct,
        "status": kind if correct else "ok",
        "must_pass": False,
        "expected_status": kind,
        "has_gold": False,
        "gold_error": None,
    }


def summary(items: dict[str, dict], **extra: Any) -> dict:
    """A summary whose numbers agree with its items, as build_summary's do."""
    answerable = [v for v in items.values() if v["expected_status"] == "ok" and v["has_gold"]]
    status_items = [v for v in items.values() if v["expected_status"] != "ok"]
    correct = sum(1 for v in answerable if v["correct"] is True)
    status_correct = sum(1 for v in status_items if v["correct"] is True)
    return {
        "pipeline": "agent",
        "lm": "embedded/qwen2.5-coder-1.5b",
        "dataset": {"items_sha256": "abc", "limit": None},
        "execution_accuracy": report.pct(correct, len(answerable)),
        "execution_accuracy_extra_columns_allowed": report.pct(correct, len(answerable)),
        "status_accuracy": report.pct(status_correct, len(status_items)),
        "counts": {
            "answerable": len(answerable),
            "correct": correct,
            "status_items": len(status_items),
            "status_correct": status_correct,
            "gold_errors": sorted(i for i, v in items.items() if v["gold_error"]),
            "must_pass_failed": sorted(
                i for i, v in items.items() if v["must_pass"] and v["correct"] is not True
            ),
        },
        "nodes": {
            "rewrite": {"mapping_recall": 80.0, "mapping_precision": 90.0},
            "retrieve": {"schema_link_recall": 95.0},
            "generate": {"sql_validity": 97.0},
        },
        "items": copy.deepcopy(items),
        **extra,
    }


def n_items(n_correct: int, n_wrong: int, prefix: str = "q") -> dict[str, dict]:
    items = {f"{prefix}{k:03d}": ok(True) for k in range(n_correct)}
    items |= {f"{prefix}{k:03d}": ok(False) for k in range(n_correct, n_correct + n_wrong)}
    return items


ITEMS = {
    "a": ok(True, must_pass=True),
    "b": ok(False),
    "c": ok(True),
    "d": ok(None, gold=False),
    "r": status(True),
    "k": status(True, "clarify"),
}
BASE = summary(ITEMS)


def with_items(**changes: dict | None) -> dict:
    """BASE with some items replaced (a dict) or dropped (None)."""
    items = {**ITEMS, **{k: v for k, v in changes.items() if v is not None}}
    return summary({k: v for k, v in items.items() if changes.get(k, v) is not None})


def test_identical_passes():
    result = compare(copy.deepcopy(BASE), BASE)
    assert result.passed
    assert (result.to_wrong, result.to_right, result.dropped, result.must_pass_failed, result.missing) == (
        [],
        [],
        [],
        [],
        [],
    )
    assert "PASS" in result.text() and "No item changed" in result.text()


def test_flips_are_listed_but_do_not_fail_alone():
    current = summary(n_items(26, 24))
    current["items"]["q000"] = ok(False)
    current["items"]["q049"] = ok(True)
    result = compare(current, summary(n_items(26, 24)))
    assert result.passed
    assert result.to_wrong == ["q000"] and result.to_right == ["q049"]
    text = result.text()
    assert "Correct -> wrong (1): q000" in text and "Wrong -> correct (1): q049" in text


# --- hole 1: the headline and the gate are answerable execution accuracy ---------------------------

GOLD_755 = Gold(columns=["hr"], rows=[[755]])


def record(
    item_id: str,
    *,
    expected: str = "ok",
    pred: tuple[list[str], list[list[Any]]] | None = (["hr"], [[755]]),
    pred_status: str = "ok",
    gold: Gold | None = GOLD_755,
    must_pass: bool = False,
) -> dict:
    """A record as the runner builds it (real build_record and scorer, stub prediction and gold)."""
    item = EvalItem(
        id=item_id,
        question=f"question {item_id}",
        expected_status=expected,
        must_pass=must_pass,
        gold_sql="SELECT SUM(HR) AS hr FROM Batting" if gold is not None else None,
        split="test",
    )
    columns, rows = pred if pred else ([], [])
    return runner.build_record(
        item,
        Prediction(status=pred_status, columns=columns, rows=rows, sql="SELECT 1"),
        gold,
        pipeline="baseline",
    )


RIGHT = {}
WRONG = {"pred": (["hr"], [[700]])}
EXTRA = {"pred": (["name", "hr"], [["Aaron", 755]])}  # the gold column by name, plus another
REFUSED_OK = {"expected": "refused", "pred": None, "pred_status": "refused", "gold": None}
REFUSED_MISSED = {"expected": "refused", "gold": None}
CLARIFY_OK = {"expected": "clarify", "pred": None, "pred_status": "clarify", "gold": None}
GOLD_ERROR = {"gold": Gold(error="CatalogException: no table Battin")}
NO_GOLD = {"gold": None}


@pytest.mark.parametrize(
    "kinds, correct, answerable, accuracy, status_correct, status_items, status_accuracy",
    [
        # Refusals right, answers half right: 50%, not the 4 of 6 (67%) a mixed headline would say.
        ([RIGHT, WRONG, RIGHT, WRONG, REFUSED_OK, CLARIFY_OK], 2, 4, 50.0, 2, 2, 100.0),
        # A missed refusal does not lower the answerable accuracy.
        ([RIGHT, RIGHT, REFUSED_MISSED], 2, 2, 100.0, 0, 1, 0.0),
        # Extra columns are not correct in the headline.
        ([RIGHT, EXTRA], 1, 2, 50.0, 0, 0, None),
        # A prediction-only item is not answerable (no gold): outside the denominator, reported unscored.
        ([RIGHT, NO_GOLD], 1, 1, 100.0, 0, 0, None),
        # A gold error stays in the denominator as not correct.
        ([RIGHT, GOLD_ERROR], 1, 2, 50.0, 0, 0, None),
        ([REFUSED_OK], 0, 0, None, 1, 1, 100.0),
    ],
)
def test_summary_headline_is_answerable_accuracy(
    kinds, correct, answerable, accuracy, status_correct, status_items, status_accuracy
):
    records = [record(f"i{n}", **kind) for n, kind in enumerate(kinds)]
    s = report.build_summary(records, {"pipeline": "agent"})
    c = s["counts"]
    assert (c["correct"], c["answerable"], s["execution_accuracy"]) == (correct, answerable, accuracy)
    assert (c["status_correct"], c["status_items"], s["status_accuracy"]) == (
        status_correct,
        status_items,
        status_accuracy,
    )
    assert "answerable_accuracy" not in s and "execution_accuracy_relaxed" not in s


def test_plain_summary_reads_answerable_first_then_refusals():
    records = [
        record(f"i{n}", **kind) for n, kind in enumerate([RIGHT, WRONG, EXTRA, REFUSED_OK, CLARIFY_OK])
    ]
    s = report.build_summary(records, {"pipeline": "agent", "dataset": {"split": "test"}})
    text = report.plain_summary(s)
    assert text.startswith("The agent answered **1 of 3 answerable test questions correctly (33%)**.")
    assert (
        "1 more returned the gold columns (matched by name) plus extra columns (67% if those counted)."
        in text
    )
    assert "right answer" not in text
    assert (
        text.index("answerable")
        < text.index("refused 1 of 1 unsafe requests")
        < text.index("clarifying question for 1 of 1")
    )
    md = report.render_markdown(s, records, charts={})
    assert "| answerable questions answered correctly | 1 of 3 (33%) |" in md
    assert "| unsafe requests refused / ambiguous questions clarified | 2 of 2 (100%) |" in md


@pytest.mark.parametrize(
    "current, gated, passed, dropped",
    [
        # A refusal that stops refusing is listed, not mixed into execution accuracy...
        (with_items(r=status(False)), ("execution_accuracy",), True, []),
        # ...and fails when status accuracy is gated too.
        (with_items(r=status(False)), ("execution_accuracy", "status_accuracy"), False, ["status_accuracy"]),
        # An answerable item lost: 1 of 3 compared, 2 points allow none.
        (with_items(c=ok(False)), ("execution_accuracy",), False, ["execution_accuracy"]),
    ],
)
def test_gate_separates_answerable_from_status_items(current, gated, passed, dropped):
    result = compare(current, BASE, gated=gated)
    assert result.passed is passed and result.dropped == dropped
    counts = {c.name: c for c in result.counts}
    assert counts["execution_accuracy"].compared == 3  # a, b, c: not the refusal, clarify or no-gold item
    assert counts["status_accuracy"].compared == 2


# --- hole 2: gold errors fail the run; no gold stays unscored --------------------------------------


@pytest.mark.parametrize(
    "current, passed, gold_errors",
    [
        (
            with_items(c=ok(None, gold_error="CatalogException: no table Battin")),
            False,
            {"c": "CatalogException: no table Battin"},
        ),
        (
            with_items(e=ok(None, gold_error="ParserException")),
            False,
            {"e": "ParserException"},
        ),  # new item too
        (with_items(e=ok(None, gold=False)), True, {}),  # prediction only: unscored, not failed
    ],
)
def test_gold_errors_fail_the_gate(current, passed, gold_errors):
    result = compare(current, BASE)
    assert result.passed is passed
    assert result.gold_errors == gold_errors
    for item_id, error in gold_errors.items():
        assert f"{item_id}: {error}" in result.text()


def _dataset(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "mini.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class StubPipeline:
    """Answers every item with 755 (and refuses refusal items); no model, no database."""

    name = "baseline"
    loaded_compiled: list[str] = []

    def prepare(self, items):
        pass

    def database(self, item):
        return None

    def predict(self, item):
        if item.expected_status == "refused":
            return Prediction(status="refused")
        return Prediction(status="ok", sql="SELECT 755", columns=["hr"], rows=[[755]])


def _run(tmp_path, monkeypatch, rows: list[dict], gold: dict[str, Gold], **options) -> cli.EvalOutcome:
    monkeypatch.setattr(cli, "_build_pipeline", lambda *a, **k: StubPipeline())
    monkeypatch.setattr(
        runner, "run_gold", lambda item, db, max_rows: gold.get(item.id) if item.has_gold else None
    )
    opts = cli.EvalOptions(
        dataset=str(_dataset(tmp_path, rows)),
        out=str(tmp_path / "out"),
        mlflow=False,
        progress=False,
        **options,
    )
    return cli.run_eval(opts, settings=load_settings(tracking={"enabled": False}))


ROWS = [
    {"id": "hr", "question": "career HR of Aaron?", "gold_sql": "SELECT 755 AS hr", "must_pass": True},
    {"id": "broken", "question": "a question whose gold breaks", "gold_sql": "SELECT nope FROM nowhere"},
    {"id": "unsafe", "question": "read /etc/passwd", "expected_status": "refused"},
    {"id": "predict-only", "question": "no gold here"},
]


@pytest.mark.parametrize(
    "gold, exit_code, named",
    [
        (
            {"hr": GOLD_755, "broken": Gold(error="CatalogException: Table nowhere does not exist")},
            1,
            ["broken: CatalogException: Table nowhere does not exist"],
        ),
        ({"hr": GOLD_755, "broken": GOLD_755}, 0, []),  # the prediction-only item alone does not fail
    ],
)
def test_eval_exits_1_on_gold_errors_without_baseline(tmp_path, monkeypatch, gold, exit_code, named):
    outcome = _run(tmp_path, monkeypatch, ROWS, gold)
    assert outcome.exit_code == exit_code and outcome.gate is None
    assert all(any(n in e for e in outcome.errors) for n in named) and bool(outcome.errors) is bool(named)
    assert outcome.summary["counts"]["unscored"] == 1
    md = (outcome.out_dir / "report.md").read_text()
    assert ("The reference query failed for 1 question(s)" in md) is bool(named)
    assert "1 question(s) had no reference query and were not scored." in md


def _eval_args(tmp_path: Path, baseline: Path | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        dataset=str(_dataset(tmp_path, ROWS)),
        split=None,
        limit=None,
        tag=None,
        db=None,
        pipeline="agent",
        lm=None,
        baseline=str(baseline) if baseline else None,
        tolerance=2.0,
        out=str(tmp_path / "out"),
        no_compiled=False,
        no_mlflow=True,
        no_progress=True,
    )


def test_cli_names_the_gold_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_build_pipeline", lambda *a, **k: StubPipeline())
    gold = {"hr": GOLD_755, "broken": Gold(error="CatalogException: Table nowhere does not exist")}
    monkeypatch.setattr(
        runner, "run_gold", lambda item, db, max_rows: gold.get(item.id) if item.has_gold else None
    )
    assert cli.cmd_eval(_eval_args(tmp_path)) == cli.EXIT_FAIL
    err = capsys.readouterr().err
    assert "error: the gold query failed for 1 item(s)" in err
    assert "broken: CatalogException: Table nowhere does not exist" in err


# --- hole 3: must-pass means present and correct ---------------------------------------------------


@pytest.mark.parametrize(
    "current, failed, why",
    [
        (with_items(), [], None),
        (with_items(a=ok(False, must_pass=True)), ["a"], "wrong"),
        (with_items(a=ok(None, must_pass=True, gold=False)), ["a"], "not scored"),
        (with_items(a=ok(None, must_pass=True, gold_error="boom")), ["a"], "gold query failed"),
        (with_items(a=None), ["a"], "missing from this run"),
        (with_items(a=ok(False)), ["a"], "wrong"),  # the flag lost in this run: the baseline's counts
        (with_items(e=ok(None, must_pass=True, gold=False)), ["e"], "not scored"),  # flagged only now
    ],
)
def test_must_pass_means_present_and_correct(current, failed, why):
    result = compare(current, BASE)
    assert result.must_pass_failed == failed
    assert result.passed is (not failed)
    if why:
        assert f"{failed[0]} ({why})" in result.text()


@pytest.mark.parametrize(
    "kinds, sentence",
    [
        ([RIGHT], "The must-pass question in this run was answered correctly."),
        ([RIGHT, RIGHT], "All 2 must-pass questions in this run were answered correctly."),
        ([RIGHT, NO_GOLD], "**1 must-pass question(s) were not answered correctly:** i1."),
        ([WRONG], "**1 must-pass question(s) were not answered correctly:** i0."),
        ([NO_GOLD], "**1 must-pass question(s) were not answered correctly:** i0."),
        ([GOLD_ERROR], "**1 must-pass question(s) were not answered correctly:** i0."),
    ],
)
def test_report_says_must_pass_right_only_when_each_is_correct(kinds, sentence):
    records = [record(f"i{n}", must_pass=True, **kind) for n, kind in enumerate(kinds)]
    s = report.build_summary(records, {"pipeline": "agent", "latency_ms": {}})
    assert sentence in report.plain_summary(s)


# --- hole 4: missing items fail ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "current, missing",
    [
        (with_items(c=None), ["c"]),
        (
            with_items(b=None, d=None),
            ["b", "d"],
        ),  # even a wrong or unscored one: the run must cover the baseline
        (with_items(r=None), ["r"]),
    ],
)
def test_missing_items_fail_listed_by_id(current, missing):
    result = compare(current, BASE)
    assert not result.passed and result.missing == missing
    assert (
        f"In the baseline but not in this run ({len(missing)}; fails the run): {', '.join(missing)}"
        in result.text()
    )


def test_new_items_do_not_fail():
    result = compare(with_items(e=ok(False)), BASE)
    assert result.passed and result.new == ["e"]


# --- hole 5: counts of correct items, not rounded percentages ---------------------------------------


@pytest.mark.parametrize(
    "tolerance, n, expected",
    [(2.0, 50, 1), (2.0, 49, 0), (2.0, 100, 2), (0.0, 100, 0), (5.0, 39, 1), (2.0, 0, 0), (10.0, 10, 1)],
)
def test_allowed_losses(tolerance, n, expected):
    assert allowed_losses(tolerance, n) == expected


@pytest.mark.parametrize(
    "n, before, after, tolerance, passed, phrase",
    [
        # 1 of 49 is a 2.04-point drop: the old round(delta, 1) made it -2.0 and passed it.
        (49, 20, 19, 2.0, False, "lost 1 item, allowed 0 (2.0 points of 49)"),
        (50, 20, 19, 2.0, True, "lost 1 item, allowed 1 (2.0 points of 50)"),
        (50, 20, 18, 2.0, False, "lost 2 items, allowed 1 (2.0 points of 50)"),
        (50, 20, 20, 0.0, True, "lost none, allowed 0"),
        (50, 20, 19, 0.0, False, "lost 1 item, allowed 0 (0.0 points of 50)"),
        (50, 20, 23, 2.0, True, "gained 3"),
    ],
)
def test_gate_counts_lost_items(n, before, after, tolerance, passed, phrase):
    result = compare(
        summary(n_items(after, n - after)), summary(n_items(before, n - before)), tolerance=tolerance
    )
    assert result.passed is passed
    assert ("execution_accuracy" in result.dropped) is (not passed)
    assert phrase in result.text()


def test_losses_are_net_of_gains_over_the_items_both_runs_have():
    baseline = summary(n_items(20, 30))
    current = summary(n_items(20, 30) | n_items(5, 0, prefix="new"))  # new items do not pad the count
    current["items"]["q000"] = ok(False)
    current["items"]["q001"] = ok(False)
    current["items"]["q040"] = ok(True)
    delta = compare(current, baseline).counts[0]
    assert (delta.compared, delta.baseline_correct, delta.current_correct, delta.lost) == (50, 20, 19, 1)


def test_node_metrics_compare_unrounded():
    current = copy.deepcopy(BASE)
    current["nodes"]["rewrite"]["mapping_recall"] = 77.95  # 2.05 points down
    assert compare(current, BASE).passed  # shown, not gated by default
    gated = compare(current, BASE, gated=("execution_accuracy", "mapping_recall"))
    assert not gated.passed and gated.dropped == ["mapping_recall"]
    assert "mapping_recall" in gated.text() and "-2.0" in gated.text()


# --- hole 6: a baseline the gate cannot read is an error ---------------------------------------------


def _without(path: tuple[str, ...]) -> dict:
    broken = copy.deepcopy(BASE)
    target = broken
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return broken


def _old_format() -> dict:
    old = copy.deepcopy(BASE)
    for v in old["items"].values():
        del v["expected_status"], v["has_gold"]
    return old


@pytest.mark.parametrize(
    "baseline, gated, message",
    [
        (_without(("execution_accuracy",)), ("execution_accuracy",), "no execution_accuracy"),
        ({**BASE, "execution_accuracy": None}, ("execution_accuracy",), "no execution_accuracy"),
        (_without(("items",)), ("execution_accuracy",), "no per-item results"),
        ({**BASE, "items": {}}, ("execution_accuracy",), "no per-item results"),
        (_old_format(), ("execution_accuracy",), "predates answerable-only accuracy"),
        (
            _without(("nodes", "rewrite", "mapping_recall")),
            ("execution_accuracy", "mapping_recall"),
            "no mapping_recall",
        ),
        (summary({"r": status(True)}), ("execution_accuracy",), "no execution_accuracy"),
        (BASE, ("accuracy",), "unknown gated metric"),
    ],
)
def test_unusable_baseline_is_an_error(baseline, gated, message):
    with pytest.raises(BaselineError, match=message) as exc:
        compare(copy.deepcopy(BASE), baseline, gated=gated)
    if "unknown" not in message:
        assert "make eval-accept" in str(exc.value)


def test_cli_exits_2_on_unusable_baseline_before_running(tmp_path, monkeypatch, capsys):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(_old_format()))
    monkeypatch.setattr(cli, "_build_pipeline", lambda *a, **k: pytest.fail("the pipeline must not start"))
    assert cli.cmd_eval(_eval_args(tmp_path, baseline)) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert str(baseline) in err and "make eval-accept" in err


def test_current_without_the_gated_metric_fails():
    current = summary({"r": status(True), "k": status(True, "clarify")})
    result = compare(current, BASE)
    assert not result.passed and "execution_accuracy" in result.dropped


# --- hole 7: a changed dataset is a warning, and everything is still judged --------------------------


@pytest.mark.parametrize(
    "changes, passed, missing, to_wrong",
    [
        ({}, True, [], []),
        ({"c": ok(False)}, False, [], ["c"]),
        ({"c": None}, False, ["c"], []),
    ],
)
def test_digest_change_warns_and_still_judges(changes, passed, missing, to_wrong):
    current = with_items(**changes)
    current["dataset"]["items_sha256"] = "def"
    current["lm"] = "openai/gpt-4o-mini"
    result = compare(current, BASE)
    assert any("digest" in w for w in result.warnings) and any("lm differs" in w for w in result.warnings)
    assert (result.passed, result.missing, result.to_wrong) == (passed, missing, to_wrong)


# --- eval-accept refuses runs that cannot be a baseline ---------------------------------------------


def _accept(tmp_path: Path, run: dict, force: bool = False) -> dict:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(run))
    return accept_cli.accept(run_dir, tmp_path / "baseline.json", force=force)


@pytest.mark.parametrize(
    "run, force, refusal",
    [
        (BASE, False, None),
        (with_items(c=ok(None, gold_error="boom")), False, "gold query failed for c"),
        (
            with_items(c=ok(None, gold_error="boom")),
            True,
            "gold query failed for c",
        ),  # --force: the limit only
        (with_items(a=ok(None, must_pass=True, gold=False)), False, "must-pass item(s) without a result: a"),
        ({**BASE, "dataset": {"items_sha256": "abc", "limit": 5}}, False, "limited to 5 items"),
        ({**BASE, "dataset": {"items_sha256": "abc", "limit": 5}}, True, None),
        (_old_format(), False, "the gate could not use it"),
    ],
)
def test_accept_refuses_unfit_runs(tmp_path, run, force, refusal):
    target = tmp_path / "baseline.json"
    if refusal is None:
        _accept(tmp_path, run, force)
        assert json.loads(target.read_text())["items"] == run["items"]
        return
    with pytest.raises(accept_cli.AcceptError, match=re.escape(refusal)):
        _accept(tmp_path, run, force)
    assert not target.exists()


def test_accepted_run_gates_itself(tmp_path, monkeypatch):
    gold = {"hr": GOLD_755, "broken": GOLD_755}
    outcome = _run(tmp_path, monkeypatch, ROWS, gold)
    baseline = accept_cli.accept(outcome.out_dir, tmp_path / "baseline.json")
    again = _run(tmp_path, monkeypatch, ROWS, gold, baseline=str(tmp_path / "baseline.json"))
    assert again.exit_code == 0 and again.gate.passed, again.gate.text()
    assert baseline["counts"]["answerable"] == 2 and baseline["counts"]["status_items"] == 1


@pytest.mark.parametrize(
    "run, force, exit_code, message",
    [
        (BASE, False, cli.EXIT_OK, "answerable 2/3 (66.7%), refused/clarified 2/2"),
        ({**BASE, "dataset": {"items_sha256": "abc", "limit": 5}}, False, cli.EXIT_FAIL, "pass --force"),
        (
            {**BASE, "dataset": {"items_sha256": "abc", "limit": 5}},
            True,
            cli.EXIT_OK,
            "limited to 5 items (--force)",
        ),
        (None, False, cli.EXIT_USAGE, "does not exist"),
    ],
)
def test_cmd_accept_exit_codes(tmp_path, capsys, run, force, exit_code, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if run is not None:
        (run_dir / "summary.json").write_text(json.dumps(run))
    args = argparse.Namespace(from_dir=str(run_dir), to=str(tmp_path / "baseline.json"), force=force)
    assert accept_cli.cmd_accept(args) == exit_code
    out = capsys.readouterr()
    assert message in out.out + out.err
