"""The explain module is optimized like the others: its metric (every table and filter column named,
no SQL), its examples from the golden set through the agent's own inputs, and `sqlagent optimize
--module explain` writing an artifact the agent then loads."""

from __future__ import annotations

import json
from types import SimpleNamespace

import dspy
import pytest
import sqlglot

from agent.apps.cli import build_parser
from agent.config import load_settings, resolve_path
from agent.context import AgentContext
from evals.dataset import load_dataset
from prompts.compiled import read_meta
from prompts.explain import Explain
from prompts.optimize import data, metrics
from prompts.optimize.run import OptimizeOptions, build_context, run_optimize
from tests.fake_lm import explain_tables, fake_lm
from tools.sql.read_tables import filter_columns

pytestmark = pytest.mark.skipif(
    not resolve_path("data/lahman.duckdb").is_file(),
    reason="demo database not built (python -m data.build_lahman)",
)

SQL = (
    "SELECT p.nameFirst, p.nameLast, SUM(b.HR) AS hr FROM Batting AS b JOIN People AS p ON p.playerID = "
    "b.playerID WHERE b.yearID = 1927 AND b.lgID = 'AL' GROUP BY 1, 2 HAVING hr > 40 ORDER BY hr DESC"
)
SPLITS = {
    "train": ["hr-ruth-1927", "career-hits-jeter", "teams-1990"],
    "dev": ["total-hr-1998", "hr-judge-2022"],
}


@pytest.fixture(scope="module")
def settings():
    return load_settings(tracking={"enabled": False})


def _ctx(settings, explanation):
    lm, engine = fake_lm({"explanation": lambda i: {"explanation": explanation(i)}})
    return build_context(settings, {"default": lm}), engine


def test_filter_columns_are_the_columns_filters_read():
    tree = sqlglot.parse_one(SQL, dialect="duckdb")
    assert filter_columns(tree) == {"yearid": "yearID", "lgid": "lgID"}  # `hr` is an output alias


@pytest.mark.parametrize(
    ("text", "name", "description", "named"),
    [
        ("Home runs in the 1927 season", "yearID", "Season year, integer (e.g. 2024).", True),
        ("the year 1927", "yearID", "", True),
        ("players' home runs", "HR", "Home runs.", True),
        ("only the American League", "lgID", "League code: 'AL' = American League.", True),
        ("the batting records", "Batting", "Regular-season batting statistics: one row per ...", True),
        ("every person", "People", "One row per person (player, manager, umpire or executive).", True),
        ("the batting records", "lgID", "League code: 'AL' = American League.", False),
        ("each team", "yearID", "Season year, integer (e.g. 2024).", False),
    ],
)
def test_names_it(text, name, description, named):
    assert metrics.names_it(text, name, description) is named


def test_explain_metric(settings):
    ctx, _ = _ctx(settings, lambda i: "")
    ex = dspy.Example(sql=SQL)

    def score(text):
        return metrics.explain_metric(ctx, ex, SimpleNamespace(explanation=text))

    right = "It adds up each person's home runs from the batting records of the 1927 season in the American League."
    assert score(right) == (1.0, "Correct: every table and filter is named in plain words.")
    value, feedback = score("It adds up each person's home runs from the batting records of the 1927 season.")
    assert value == 0.75 and "Name lgID:" in feedback
    value, feedback = score("It adds up each person's home runs from the batting records of 1927.")
    assert value == 0.5 and "Name yearID, lgID:" in feedback  # a year alone does not say which column
    value, feedback = score(right + " SELECT SUM(HR) FROM Batting WHERE yearID = 1927")
    assert value == 0.5 and "Do not write SQL" in feedback
    assert score("  ")[0] == 0.0


def test_examples_come_from_the_agent_inputs(settings):
    ctx, _ = _ctx(settings, lambda i: "")
    items = load_dataset(resolve_path("evals/golden.jsonl")).items
    examples = data.explain_examples(items, ctx)
    assert examples and all(set(e.inputs()) == {"question", "sql", "db_schema"} for e in examples)
    by_id = {e.id: e for e in examples}
    ruth = by_id["hr-ruth-1927"]
    item = next(i for i in items if i.id == "hr-ruth-1927")
    assert ruth.sql == ctx.db.policy.check(item.gold_sql).sql and ruth.question == item.question
    assert ruth.db_schema.splitlines()[0].startswith("TABLE Batting -- ")
    assert [line.split()[0] for line in ruth.db_schema.splitlines()[1:]] == ["playerID", "yearID", "HR"]
    assert not any(i.turns for i in items if i.id in by_id)  # a follow-up alone is not what was asked


def test_optimize_accepts_the_module():
    args = build_parser().parse_args(["optimize", "--module", "explain", "--budget", "2"])
    assert args.module == "explain" and args.func.__name__ == "cmd_optimize"


def test_optimize_explain_writes_an_artifact_the_agent_loads(settings, tmp_path):
    golden = {i.id: i for i in load_dataset(resolve_path("evals/golden.jsonl")).items}
    lines = [
        {**json.loads(golden[i].model_dump_json()), "split": s} for s, ids in SPLITS.items() for i in ids
    ]
    dataset = tmp_path / "golden.jsonl"
    dataset.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    ctx, engine = _ctx(settings, lambda i: explain_tables(i["db_schema"]) + " It keeps one season.")
    out = tmp_path / "compiled"
    options = OptimizeOptions(
        module="explain", budget=3, out=str(out), dataset=str(dataset), register=False, progress=False
    )
    [report] = run_optimize(options, ctx=ctx)
    assert report.counts == {"train": 3, "dev": 2, "test": 0} and report.written, report.reason
    assert report.before["dev"] is not None and read_meta("explain", out)["scores"]["metric"] == "explain"
    assert any(key == "explanation" for key, _ in engine.calls)
    loaded = Explain()
    loaded.load(str(out / "explain.json"))
    assert loaded.explain.demos  # bootstrap kept the traces the metric passed
    loading = settings.model_copy(deep=True)
    loading.prompts.compiled_dir = str(out)
    agent_ctx = AgentContext(settings=loading, db=ctx.db, tools=ctx.tools, lms=ctx.lms)
    assert agent_ctx.prompt_sources["explain"] == f"file:{out / 'explain.json'}"
