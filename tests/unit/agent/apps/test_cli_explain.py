"""`--explain` on `sqlagent ask` and `sqlagent sql`: the explanation after the answer or the rows, a
field of --format json, never on standard output beside csv rows, and refused SQL not explained."""

from __future__ import annotations

import csv
import io
import json

import dspy
import pytest

import agent.service as service
from agent.apps.cli import main
from tests.fake_lm import default_handlers, fake_lm

BY_YEAR = "SELECT yearID, HR FROM Batting WHERE playerID = 'ruthba01' AND yearID BETWEEN 1926 AND 1928 ORDER BY yearID"
QUESTION = "Babe Ruth's home runs 1926-1928?"
SAID = "It reads the Batting tables."  # the fake LM names the tables of the schema it was shown


@pytest.fixture
def engine(monkeypatch, tmp_path):
    monkeypatch.setenv("SQLAGENT_TRACKING__ENABLED", "false")
    monkeypatch.setenv("SQLAGENT_TRACKING__CHECKPOINT_DB", str(tmp_path / "threads.sqlite"))
    lm, engine = fake_lm(default_handlers(BY_YEAR))
    lms: dict[str, dspy.LM] = {"default": lm}
    monkeypatch.setattr(service, "build_lms", lambda settings: lms)
    return engine


def _explained(engine) -> list[dict[str, str]]:
    return [inputs for key, inputs in engine.calls if key == "explanation"]


def test_ask_explain_prints_the_explanation_after_the_answer(engine, capsys):
    assert main(["ask", QUESTION, "--explain"]) == 0
    out = capsys.readouterr().out
    assert out.index("[ok] ") < out.index(f"Explanation: {SAID}") < out.index("thread ")
    [sent] = _explained(engine)
    # The question as generate read it: its names resolved ("Babe Ruth (People.playerID = 'ruthba01')").
    assert "ruthba01" in sent["question"] and "yearID BETWEEN 1926 AND 1928" in sent["sql"]


def test_ask_without_explain_costs_no_call(engine, capsys):
    assert main(["ask", QUESTION, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "explanation" not in data and _explained(engine) == []


def test_ask_explain_json_has_the_explanation_as_a_field(engine, capsys):
    assert main(["ask", QUESTION, "--explain", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "ok" and data["explanation"] == SAID
    assert data["explain"]["status"] == "ok" and data["explain"]["step"]["tokens"] > 0
    assert data["explain"]["sql"] == data["sql"]


def test_ask_explain_csv_keeps_the_rows_alone_on_stdout(engine, capsys):
    assert main(["ask", QUESTION, "--explain", "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert list(csv.reader(io.StringIO(out.out)))[0] == ["yearID", "HR"]
    assert f"Explanation: {SAID}" in out.err and SAID not in out.out


def test_sql_explain_needs_no_question(engine, capsys):
    assert main(["sql", BY_YEAR, "--explain"]) == 0
    out = capsys.readouterr().out
    assert "1927" in out and out.rstrip().endswith(f"Explanation: {SAID}")
    [sent] = _explained(engine)
    assert sent["question"].startswith("(none") and "TABLE Batting" in sent["db_schema"]
    assert [key for key, _ in engine.calls] == ["explanation"]  # no other LM step ran


def test_sql_explain_json(engine, capsys):
    assert main(["sql", BY_YEAR, "--explain", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][1] == [1927, 60] and data["explanation"] == SAID
    assert data["explain"]["question"] is None and data["explain"]["error"] is None


def test_sql_explain_of_a_refused_query_is_no_explanation(engine, capsys):
    sql = "SELECT birthCity FROM People WHERE playerID = 'ruthba01'"
    assert main(["sql", sql, "--explain", "--role", "public", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "refused" and "birthCity" in data["error"]
    assert data["explanation"] is None and data["explain"] is None and engine.calls == []
    assert main(["sql", sql, "--explain", "--role", "public"]) == 1
    assert "[refused]" in capsys.readouterr().err


def test_sql_explain_that_fails_fails_the_command(monkeypatch, engine, capsys):
    engine.handlers["explanation"] = lambda inputs: {"explanation": ""}
    assert main(["sql", BY_YEAR, "--explain"]) == 1
    out = capsys.readouterr().out
    assert "1927" in out and "Explanation [error]: The explain step failed: AdapterParseError" in out
