"""`sqlagent optimize` with the scripted LM: the metrics on right and wrong predictions, the repair
corruptions, leakage exclusion, a tiny BootstrapFewShot run that writes an artifact with metadata
(which loads back into a fresh module), and the dev-score guard refusing a worse artifact."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import dspy
import pytest

from agent.config import load_settings, resolve_path
from evals.dataset import load_dataset
from prompts.answer import Answer
from prompts.compiled import (
    instruction_digests,
    load_compiled_modules,
    read_meta,
    render_text,
    save_compiled,
    schema_digest,
)
from prompts.generate import Generate
from prompts.optimize import corrupt, data, metrics
from prompts.optimize.run import OptimizeOptions, build_context, guard, run_optimize
from tests.fake_lm import fake_lm

pytestmark = pytest.mark.skipif(
    not resolve_path("data/lahman.duckdb").is_file(),
    reason="demo database not built (python -m data.build_lahman)",
)

TRAIN = ["hr-ruth-1927", "career-hits-jeter", "teams-1990", "most-errors-team-2024"]
DEV = ["total-hr-1998", "hr-judge-2022"]
TEST = ["career-hr-aaron"]
_TRAILER = "\n\nRespond with the corresponding output fields"


def _clean(text: str) -> str:
    return text.split(_TRAILER, 1)[0].strip()


@pytest.fixture(scope="module")
def golden() -> dict[str, dict]:
    lines = resolve_path("evals/golden.jsonl").read_text().splitlines()
    return {i["id"]: i for i in (json.loads(line) for line in lines if line.strip())}


@pytest.fixture(scope="module")
def settings():
    return load_settings(tracking={"enabled": False})


# Hand-written right answers, never the gold text: other aliases, column order or formulation.
RIGHT_SQL = {
    "hr-ruth-1927": "SELECT SUM(b.HR) AS home_runs FROM Batting AS b WHERE b.yearID = 1927 AND b.playerID = 'ruthba01'",
    "career-hits-jeter": "SELECT SUM(b.H) AS hits FROM People p JOIN Batting b ON b.playerID = p.playerID "
                         "WHERE p.nameFirst = 'Derek' AND p.nameLast = 'Jeter'",
    "teams-1990": "SELECT COUNT(DISTINCT teamID) AS n FROM Teams WHERE yearID = 1990",
    "most-errors-team-2024": "SELECT E AS errors, name FROM Teams WHERE yearID = 2024 ORDER BY errors DESC LIMIT 1",
    "total-hr-1998": "SELECT SUM(b.HR) AS hr_total FROM Batting AS b WHERE b.yearID BETWEEN 1998 AND 1998",
    "hr-judge-2022": "SELECT SUM(b.HR) AS home_runs FROM Batting b WHERE b.yearID = 2022 AND b.playerID = 'judgeaa01'",
    "career-hr-aaron": "SELECT SUM(b.HR) AS career_hr FROM People p JOIN Batting b ON b.playerID = p.playerID "
                       "WHERE p.nameFirst = 'Hank' AND p.nameLast = 'Aaron'",
}  # fmt: skip


def _handlers(golden: dict[str, dict], wrong: set[str] = frozenset()):
    """Right SQL for every test item (wrong for the ids in `wrong`), mentions from the question."""
    by_question = {golden[i]["question"][:25]: golden[i] for i in TRAIN + DEV + TEST}

    def sql(inputs):
        q = _clean(inputs["question"])
        for prefix, item in by_question.items():
            if q.startswith(prefix):
                return {"sql": "SELECT 1 AS x" if item["id"] in wrong else RIGHT_SQL[item["id"]]}
        return {"sql": "SELECT 1 AS x"}

    def mentions(inputs):
        q = _clean(inputs["question"])
        return {"mentions": [n for n in ("Babe Ruth", "Derek Jeter", "Aaron Judge", "Hank Aaron") if n in q]}

    return {
        "standalone_question": lambda i: {"standalone_question": _clean(i["follow_up"])},
        "mentions": mentions,
        "sql": sql,
        "answer": lambda i: {"answer": "Answer: " + _clean(i["rows"]).splitlines()[1]},
    }


@pytest.fixture(scope="module")
def ctx(settings, golden):
    lm, _ = fake_lm(_handlers(golden))
    return build_context(settings, {"default": lm})


@pytest.fixture
def dataset_file(tmp_path, golden) -> Path:
    lines = [
        dict(golden[i], split=s) for s, ids in (("train", TRAIN), ("dev", DEV), ("test", TEST)) for i in ids
    ]
    path = tmp_path / "golden.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _ex(**kw) -> dspy.Example:
    return dspy.Example(**kw)


# --- metrics ---------------------------------------------------------------------------------------


def test_generate_metric_right_and_wrong(ctx, golden):
    runner = metrics.SqlRunner(ctx)
    gold = golden["hr-ruth-1927"]["gold_sql"]
    right = RIGHT_SQL["hr-ruth-1927"]
    assert right != gold
    ex = _ex(gold_sql=gold, ordered=False)
    assert metrics.generate_metric(runner, ex, SimpleNamespace(sql=right))[0] == 1.0
    score, feedback = metrics.generate_metric(
        runner, ex, SimpleNamespace(sql="SELECT playerID, HR FROM Batting WHERE yearID = 1927 AND HR > 40")
    )
    assert score == 0.0 and "rows, expected 1" in feedback and gold in feedback
    score, feedback = metrics.generate_metric(
        runner,
        _ex(gold_sql="SELECT nameFirst, nameLast FROM People WHERE playerID = 'ruthba01'", ordered=False),
        SimpleNamespace(sql="SELECT nameFirst FROM People WHERE playerID = 'ruthba01'"),
    )
    assert score == 0.0 and "missing column nameLast" in feedback
    score, feedback = metrics.generate_metric(runner, ex, SimpleNamespace(sql="SELECT nope FROM Batting"))
    assert score == 0.0 and "failed" in feedback
    fed = metrics.with_feedback(metrics.generate_metric, runner)(
        ex, SimpleNamespace(sql=right), None, None, None
    )
    assert fed.score == 1.0 and fed.feedback


def test_repair_metric_fixed_and_correct(ctx, golden):
    runner = metrics.SqlRunner(ctx)
    gold = golden["teams-1990"]["gold_sql"]
    broken = corrupt.column_typo(gold)
    ex = _ex(gold_sql=gold, ordered=False, failed_sql=broken, error="Unknown column")
    assert metrics.repair_metric(runner, ex, SimpleNamespace(sql=RIGHT_SQL["teams-1990"]))[0] == 1.0
    score, feedback = metrics.repair_metric(runner, ex, SimpleNamespace(sql=broken))
    assert score == 0.0 and "unchanged" in feedback
    assert metrics.repair_metric(runner, ex, SimpleNamespace(sql="SELECT 2 AS teams"))[0] == 0.0


def test_rewrite_metric(ctx, golden):
    item = golden["hr-ruth-1927"]
    ex = _ex(
        question=item["question"],
        previous_question=None,
        expected_mappings=item["expected_mappings"],
        expect_clarify=False,
        expect_unchanged=False,
    )
    right = SimpleNamespace(standalone_question=item["question"], mentions=["Babe Ruth"])
    assert metrics.rewrite_metric(ctx, ex, right)[0] == 1.0
    # Right mapping, but a year and a statistic listed too: a fraction off, and the feedback names them.
    noisy = SimpleNamespace(standalone_question=item["question"], mentions=["Babe Ruth", "1927", "home runs"])
    score, feedback = metrics.rewrite_metric(ctx, ex, noisy)
    assert score == metrics.NOISE_FACTOR and "'1927'" in feedback and "'home runs'" in feedback
    assert "Babe Ruth" not in feedback
    # On a clarify item too: the ambiguous name is what it should list, the statistic is noise.
    thomas = golden["clarify-frank-thomas"]
    ex3 = _ex(
        question=thomas["question"],
        previous_question=None,
        expected_mappings=[],
        expect_clarify=True,
        expect_unchanged=False,
    )
    assert (
        metrics.rewrite_metric(
            ctx, ex3, SimpleNamespace(standalone_question=thomas["question"], mentions=["Frank Thomas"])
        )[0]
        == 1.0
    )
    score, feedback = metrics.rewrite_metric(
        ctx,
        ex3,
        SimpleNamespace(standalone_question=thomas["question"], mentions=["Frank Thomas", "batting average"]),
    )
    assert score == metrics.NOISE_FACTOR and "'batting average'" in feedback
    # A follow-up answered by repeating the previous question scores nothing, whatever it maps.
    mt = golden["mt-dodgers-wins-1988"]
    ex4 = _ex(
        question=mt["question"],
        previous_question=mt["turns"][-1],
        expected_mappings=mt["expected_mappings"],
        expect_clarify=False,
        expect_unchanged=False,
    )
    fixed = SimpleNamespace(
        standalone_question="How many games did the Dodgers win in 1988?", mentions=["Dodgers"]
    )
    assert metrics.rewrite_metric(ctx, ex4, fixed)[0] == 1.0
    copied = SimpleNamespace(standalone_question=mt["turns"][-1], mentions=["Dodgers"])
    score, feedback = metrics.rewrite_metric(ctx, ex4, copied)
    assert score == 0.0 and "repeats the previous question" in feedback
    plain = golden["teams-1990"]
    ex2 = _ex(
        question=plain["question"],
        previous_question=None,
        expected_mappings=[],
        expect_clarify=False,
        expect_unchanged=True,
    )
    assert (
        metrics.rewrite_metric(ctx, ex2, SimpleNamespace(standalone_question=plain["question"], mentions=[]))[
            0
        ]
        == 1
    )
    listed_year = SimpleNamespace(standalone_question=plain["question"], mentions=["1990"])
    assert metrics.rewrite_metric(ctx, ex2, listed_year)[0] == metrics.NOISE_FACTOR
    changed = SimpleNamespace(standalone_question=plain["question"] + " Please.", mentions=[])
    score, feedback = metrics.rewrite_metric(ctx, ex2, changed)
    assert score == 0.0 and "changed" in feedback
    # A wrong expected value: the resolved mapping is reported as missing/unexpected.
    wrong = _ex(
        question=item["question"],
        previous_question=None,
        expect_clarify=False,
        expect_unchanged=False,
        expected_mappings=[{"mention": "Babe Ruth", "column": "playerID", "value": "someoneelse01"}],
    )
    score, feedback = metrics.rewrite_metric(ctx, wrong, right)
    assert score == 0.0 and "missing" in feedback and "unexpected" in feedback


def test_answer_metric_grounding():
    ex = _ex(question="How many home runs did Babe Ruth hit in 1927?", columns=["HR"], rows="HR\n60")
    assert (
        metrics.answer_metric(None, ex, SimpleNamespace(answer="Babe Ruth hit 60 home runs in 1927."))[0]
        == 1.0
    )
    score, feedback = metrics.answer_metric(None, ex, SimpleNamespace(answer="He hit 61 home runs."))
    assert score == 0.0 and "61" in feedback
    assert metrics.answer_metric(None, ex, SimpleNamespace(answer=""))[0] == 0.0
    assert metrics.answer_metric(None, ex, SimpleNamespace(answer="He hit many home runs."))[0] == 0.5
    named = _ex(
        question="Who?",
        columns=["nameFirst", "nameLast", "AVG"],
        rows="nameFirst | nameLast | AVG\nTony | Gwynn | 0.3382",
    )
    assert metrics.answer_metric(None, named, SimpleNamespace(answer="Tony Gwynn hit .338."))[0] == 1.0
    empty = _ex(question="Who?", columns=["x"], rows="x")
    assert (
        metrics.answer_metric(None, empty, SimpleNamespace(answer="The database has no matching data."))[0]
        == 1.0
    )
    assert metrics.answer_metric(None, empty, SimpleNamespace(answer="It was Babe Ruth."))[0] == 0.0


# --- repair corruptions and leakage ------------------------------------------------------------------


def test_corruptions_are_deterministic_and_fail(ctx):
    sql = "SELECT t.name, s.yearID, SUM(s.salary) AS pay FROM Salaries s JOIN Teams t ON s.teamID = t.teamID AND s.yearID = t.yearID GROUP BY t.name, s.yearID"
    # The exact broken queries (sqlglot's duckdb rendering: AS before table aliases); unquoted_digit
    # does not apply (no quoted "2B"-style column).
    tail = "FROM Salaries AS s JOIN Teams AS t ON s.teamID = t.teamID AND s.yearID = t.yearID"
    expected = [
        ("column_typo", f"SELECT t.naem, s.yearID, SUM(s.salary) AS pay {tail} GROUP BY t.name, s.yearID"),
        ("group_by_drop", f"SELECT t.name, s.yearID, SUM(s.salary) AS pay {tail} GROUP BY t.name"),
        (
            "ambiguous_column",
            "SELECT t.name, s.yearID, SUM(s.salary) AS pay FROM Salaries AS s JOIN Teams AS t "
            "ON teamID = t.teamID AND s.yearID = t.yearID GROUP BY t.name, s.yearID",
        ),
    ]
    assert corrupt.corruptions(sql) == expected
    # `start` rotates the order of the kinds (KINDS[1:] + KINDS[:1]), not the broken queries.
    assert corrupt.corruptions(sql, start=1) == [expected[1], expected[2], expected[0]]
    kinds = dict(expected)
    assert corrupt.unquoted_digit('SELECT SUM("2B") AS d FROM Batting') == "SELECT SUM(2B) AS d FROM Batting"
    runner = metrics.SqlRunner(ctx)
    for kind, broken in [
        *kinds.items(),
        ("unquoted_digit", "SELECT SUM(2B) AS d FROM Batting WHERE yearID = 1927"),
    ]:
        assert runner.run(broken)[2], f"{kind} did not fail: {broken}"


def test_leakage_exclusion(ctx, golden):
    item = golden["hr-ruth-1927"]
    assert item["split"] == "train"
    plain = ctx.retrieve.similar_examples(item["question"])
    assert item["id"] in [e.id for e in plain]  # without exclusion the item retrieves itself
    with ctx.retrieve.excluding({item["id"]}):
        kept = ctx.retrieve.similar_examples(item["question"])
    assert item["id"] not in [e.id for e in kept] and len(kept) == ctx.retrieve.k
    assert item["id"] in [e.id for e in ctx.retrieve.similar_examples(item["question"])]  # back after
    items = load_dataset(resolve_path("evals/golden.jsonl")).items
    inputs = data.pipeline_inputs(next(i for i in items if i.id == item["id"]), ctx)
    assert item["id"] not in inputs["example_ids"] and item["gold_sql"] not in inputs["examples"]
    assert "ruthba01" in inputs["value_hints"]


# --- a tiny optimization, the artifact and the guard ------------------------------------------------


def test_bootstrap_writes_artifact_that_loads(settings, golden, dataset_file, tmp_path):
    lm, _ = fake_lm(_handlers(golden, wrong={"teams-1990"}))
    ctx = build_context(settings, {"default": lm})
    out = tmp_path / "compiled"
    options = OptimizeOptions(
        module="generate",
        optimizer="bootstrap",
        budget=4,
        out=str(out),
        dataset=str(dataset_file),
        cache_dir=str(tmp_path / "cache"),
        register=False,
        progress=False,
        test=True,
        score_train=True,
    )
    [report] = run_optimize(options, ctx=ctx)
    assert report.counts == {"train": 4, "dev": 2, "test": 1}
    assert report.before["train"] == 0.75 and report.after["dev"] == 1.0 and report.written
    meta = read_meta("generate", out)
    assert meta["optimizer"] == "bootstrap" and meta["lm"] == settings.lm.model
    assert meta["dev_before"] == 1.0 and meta["dev_after"] == 1.0 and meta["dataset"]["sha256"]
    assert meta["settings"]["max_bootstrapped_demos"] == 2 and meta["demos"] == {"generate": 2}
    assert "date" in meta and "git_commit" in meta
    assert meta["database"] == {"name": "lahman.duckdb", "schema_digest": schema_digest(ctx.db.schema)}
    assert list((tmp_path / "cache").glob("inputs-*.json"))

    fresh = Generate()
    assert fresh.generate.demos == []
    fresh.load(str(out / "generate.json"))
    assert len(fresh.generate.demos) == 2
    assert {d["sql"] for d in fresh.generate.demos} <= set(RIGHT_SQL.values())  # only successful traces
    holder = {"generate": Generate(), "answer": Answer()}
    assert load_compiled_modules(holder, out, enabled=True) == ["generate"]
    assert len(holder["generate"].generate.demos) == 2
    assert load_compiled_modules({"generate": Generate()}, out, enabled=False) == []
    assert "### example 1" in render_text(holder["generate"])

    # Demos show the model the schema they were made on: another database does not load them.
    assert load_compiled_modules({"generate": Generate()}, out, schema=ctx.db.schema) == ["generate"]
    other_table = ctx.db.schema.tables[0].model_copy(update={"name": "Elsewhere"})
    other_schema = SimpleNamespace(tables=[other_table])
    with pytest.warns(UserWarning, match="optimized on database 'lahman.duckdb'.*sqlagent optimize"):
        assert load_compiled_modules({"generate": Generate()}, out, schema=other_schema) == []

    # An instruction edited in code after compiling wins over the artifact's stale copy.
    assert meta["code_instructions"] == instruction_digests(Generate())
    edited = Generate()
    edited.generate.signature = edited.generate.signature.with_instructions("Write SQL. Be brief.")
    with pytest.warns(UserWarning, match="instruction of generate was edited"):
        assert load_compiled_modules({"generate": edited}, out, schema=ctx.db.schema) == []
    assert edited.generate.demos == []


def test_defaults_score_dev_only(settings, golden, dataset_file, tmp_path):
    """By default the optimizer's LM calls go to what decides: bootstrap's train tries and dev before
    and after. Train and test scores are opt-in reports (`--score-train`, `--test`)."""
    lm, engine = fake_lm(_handlers(golden, wrong={"teams-1990"}))
    ctx = build_context(settings, {"default": lm})
    options = OptimizeOptions(
        module="generate",
        optimizer="bootstrap",
        budget=4,
        out=str(tmp_path / "compiled"),
        dataset=str(dataset_file),
        cache_dir=str(tmp_path / "cache"),
        register=False,
        progress=False,
    )
    [report] = run_optimize(options, ctx=ctx)
    assert report.counts == {"train": 4, "dev": 2, "test": 0}
    assert report.before["train"] is None and report.before["test"] is None and report.before["dev"] == 1.0
    assert report.after["dev"] == 1.0 and report.written
    # The question as generate reads it, with each resolved name's annotation taken out again.
    asked = Counter(
        re.sub(r" \([^)]*\)", "", inputs["question"]) for key, inputs in engine.calls if key == "sql"
    )
    questions = {
        s: [golden[i]["question"] for i in ids] for s, ids in (("train", TRAIN), ("dev", DEV), ("test", TEST))
    }
    assert all(asked[q] == 2 for q in questions["dev"])  # before and after
    assert not any(asked[q] for q in questions["test"])
    assert all(asked[q] <= 1 for q in questions["train"])  # only bootstrap's own tries, never a train score


def test_guard_refuses_worse_artifact(settings, golden, dataset_file, tmp_path, monkeypatch):
    assert guard(0.5, 0.4, force=False)[0] is False
    assert guard(0.5, 0.4, force=True)[0] is True
    assert guard(0.5, 0.5, force=False)[0] is True
    lm, _ = fake_lm(_handlers(golden))
    ctx = build_context(settings, {"default": lm})

    class Worse(Generate):
        def forward(self, **kwargs):
            return dspy.Prediction(sql="SELECT 1 AS x")

    import prompts.optimize.run as run

    monkeypatch.setattr(run, "compile_program", lambda *a, **k: Worse())
    out = tmp_path / "compiled"
    options = OptimizeOptions(
        module="generate",
        budget=4,
        out=str(out),
        dataset=str(dataset_file),
        cache_dir=str(tmp_path / "cache"),
        register=False,
        progress=False,
    )
    [report] = run_optimize(options, ctx=ctx)
    assert not report.written and "dev score fell from 1.000 to 0.000" in report.reason
    assert not (out / "generate.json").exists()
    options.force = True
    [report] = run_optimize(options, ctx=ctx)
    assert report.written and read_meta("generate", out)["forced"] is True


def test_load_skips_incompatible_artifact(tmp_path):
    save_compiled(Answer(), "generate", {"module": "generate"}, tmp_path)  # an answer program as generate
    with pytest.warns(UserWarning, match="Not using"):
        assert load_compiled_modules({"generate": Generate()}, tmp_path) == []


def test_mipro_without_optuna_says_which_package(monkeypatch):
    import importlib.util

    from prompts.optimize.optimizers import OptimizerUnavailable, compile_program

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "optuna" else real(n, *a))
    with pytest.raises(OptimizerUnavailable, match="optuna"):
        compile_program(
            "mipro",
            Generate(),
            trainset=[_ex(question="q")],
            valset=[],
            metric=None,
            feedback_metric=None,
            settings={},
            seed=0,
            reflection_lm=None,
        )


def test_labeled_demos_come_from_gold_mentions_only(golden):
    """`--optimizer labeled`: extract gets gold-labeled demos; contextualize (no gold) gets none."""
    from prompts.optimize.optimizers import compile_program, settings_for
    from prompts.rewrite import Rewrite

    items = load_dataset(resolve_path("evals/golden.jsonl")).items
    train = [e for e in data.rewrite_examples(items) if e.split == "train"]
    gold = {e.id: e.mentions for e in train}
    assert gold["hr-ruth-1927"] == ["Babe Ruth"] and gold["teams-1990"] == []
    assert gold["mt-dodgers-wins-1988"] is None and gold["clarify-frank-thomas"] is None
    settings = settings_for("labeled", 16, 3, len(train))
    program = compile_program(
        "labeled",
        Rewrite(),
        trainset=train,
        valset=[],
        metric=None,
        feedback_metric=None,
        settings=settings,
        seed=0,
        reflection_lm=None,
    )
    demos = program.extract.demos
    assert len(demos) == 3 and program.contextualize.demos == []
    labeled = {" ".join(e.question.split()): e.mentions for e in train if e.mentions is not None}
    for demo in demos:
        assert set(demo.keys()) == {"question", "mentions"}
        assert labeled[" ".join(demo.question.split())] == demo.mentions
