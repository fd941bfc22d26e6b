"""The bench end to end with a scripted LM: the demo questions and the Spider part on a toy dataset
built here (the real Spider databases are never a test dependency)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import dspy
import duckdb
import pytest
from dspy.lm15 import Message, Response, TextPart, Usage

from agent.config import load_settings
from bench import spider
from bench.bench_agent import report, run_bench
from evals.dataset import EvalItem
from tests.fake_lm import ScriptedEngine, default_handlers

HR_1927 = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
)


class BenchEngine(ScriptedEngine):
    """DSPy's ChatAdapter prompts as ScriptedEngine answers them; a bare request (no output fields)
    gets `bare_sql` in a fence. Every reply says 40% of its prompt came from the prompt cache."""

    def __init__(self, handlers, bare_sql: str):
        super().__init__(handlers)
        self.bare_sql = bare_sql
        self.bare: list[tuple[str, str]] = []

    def complete(self, request):
        system = request.system if isinstance(request.system, str) else ""
        if "Your output fields are" not in system:
            user = request.messages[-1].text or ""
            self.bare.append((system, user))
            text = f"Here you go:\n```sql\n{self.bare_sql}\n```"
            return Response(
                id=None,
                model="fake",
                message=Message.assistant([TextPart(text)]),
                finish_reason="stop",
                usage=Usage(input_tokens=100, output_tokens=10, total_tokens=110, cache_read_tokens=40),
            )
        response = super().complete(request)
        cached = response.usage.input_tokens * 2 // 5
        return dataclasses.replace(
            response, usage=dataclasses.replace(response.usage, cache_read_tokens=cached)
        )


pytestmark = pytest.mark.filterwarnings(
    "ignore:Not using .*prompts/compiled"
)  # Lahman's demos, toy databases
TRAILER = "\n\nRespond with the corresponding output fields"


def bench_lm(sql, bare_sql: str) -> tuple[dspy.LM, BenchEngine]:
    handlers = {
        key: (lambda inputs, fn=fn: fn({k: v.split(TRAILER)[0] for k, v in inputs.items()}))
        for key, fn in default_handlers(sql).items()
    }
    engine = BenchEngine(handlers, bare_sql)
    return dspy.LM("fake/bench", engine=engine, cache=False), engine


def sql_for(inputs: dict[str, str]) -> str:
    question = inputs.get("question", "")
    return "SELECT count(*) AS n FROM Player" if "players" in question else HR_1927


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SQLAGENT_DATABASE__CATALOG_CACHE_DIR", str(tmp_path / "catalogs"))
    return load_settings(tracking={"enabled": False}, lm={"cache": False})


def toy_dataset(root: Path) -> Path:
    """Two tiny Spider-style databases (DuckDB + SQLite twin) and three questions."""
    items = []
    for db_id, players in (("club", 3), ("league", 5)):
        folder = root / "databases" / db_id
        folder.mkdir(parents=True)
        rows = [(i, f"p{i}") for i in range(players)]
        with duckdb.connect(str(folder / f"{db_id}.duckdb")) as con:
            con.execute("CREATE TABLE Player (pID BIGINT, pName VARCHAR)")
            con.executemany("INSERT INTO Player VALUES (?, ?)", rows)
        con = sqlite3.connect(folder / f"{db_id}.sqlite")
        con.execute("CREATE TABLE Player (pID INTEGER, pName TEXT)")
        con.executemany("INSERT INTO Player VALUES (?, ?)", rows)
        con.commit()
        con.close()
        items += [
            {
                "id": f"{db_id}-{n}",
                "db_id": db_id,
                "question": "How many players are there?",
                "gold_sql": "SELECT count(*) FROM Player",
                "difficulty": "easy",
            }
            for n in range(2)
        ]
    (root / "questions.jsonl").write_text("\n".join(json.dumps(i) for i in items[:3]) + "\n")
    return root


def test_items_are_taken_round_robin_and_grouped_by_database():
    items = [EvalItem(id=f"{db}-{n}", db_id=db, question="q") for db in "abc" for n in range(3)]
    picked = spider.select_items(items, 4)
    assert [i.id for i in picked] == ["a-0", "a-1", "b-0", "c-0"]
    assert len(spider.select_items(items, None)) == 9


def test_bench_with_spider_part(settings, tmp_path):
    lm, engine = bench_lm(sql_for, bare_sql="SELECT count(*) FROM Player")
    lines: list[str] = []
    result = run_bench(
        settings,
        ["Who hit the most home runs in 1927, and how many?"] * 2,
        lms={"default": lm},
        spider_dir=toy_dataset(tmp_path / "spider"),
        spider_limit=None,
        persistent_threads=False,
        progress=lines.append,
    )
    json.dumps(result)  # the result file is plain JSON

    summary = result["summary"]
    assert summary["questions"] == 2 and summary["ok"] == 2
    assert summary["first_s"] is not None and summary["p50_s"] is not None and summary["peak_rss_mb"] > 0
    assert result["startup"]["model_load_s"] is None  # a fake LM loads nothing
    nodes = result["nodes"]
    assert {"guard", "rewrite", "generate", "answer"} <= set(nodes)
    gen = nodes["generate"]
    assert (
        gen["runs"] == 2 and gen["tokens_read"] > 0 and gen["tokens_cached"] > 0 and gen["tokens_written"] > 0
    )
    assert nodes["guard"]["tokens_read"] == 0
    q = result["questions"][0]
    assert q["tokens_read"] == sum(n["tokens_read"] for n in q["nodes"])

    sp = result["spider"]
    assert sp["items"] == 3 and sp["databases"] == ["club", "league"]
    assert [r["id"] for r in sp["records"]] == ["club-0", "club-1", "league-0"]
    assert len(engine.bare) == 3
    system, user = engine.bare[0]
    assert "DuckDB" in system and "CREATE TABLE Player (pID BIGINT, pName VARCHAR);" in user
    assert user.rstrip().endswith("Question: How many players are there?")
    for r in sp["records"]:
        assert r["baseline"]["correct"] is True and r["baseline"]["tokens_read"] == 60
        assert r["baseline"]["tokens_cached"] == 40
        assert r["agent"]["correct"] is True and r["agent"]["nodes"]
    assert sp["baseline"]["correct"] == 3 and sp["agent"]["correct"] == 3
    assert sp["ratio_p50"] is not None and "generate" in sp["agent"]["nodes"]
    text = report(result)
    assert "agent / bare p50 ratio" in text and "generate" in text
    assert any("spider baseline" in line for line in lines)


def test_spider_part_is_skipped_without_a_directory(settings, tmp_path):
    lm, engine = bench_lm(HR_1927, bare_sql="SELECT 1")
    result = run_bench(
        settings,
        ["Who hit the most home runs in 1927, and how many?"],
        lms={"default": lm},
        spider_dir=tmp_path / "absent",
        persistent_threads=False,
        progress=lambda s: None,
    )
    assert "does not exist" in result["spider"]["skipped"] and engine.bare == []
    assert "Spider" not in report(result)
