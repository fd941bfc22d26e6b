"""The CLI's conventions: --format table|json|csv|parquet and --out for `ask` and `sql`, `-` for
standard input, --version, `doctor --json`, and the one-line error of a missing configuration."""

from __future__ import annotations

import csv
import io
import json
import sys

import dspy
import pyarrow.parquet as pq
import pytest

import agent.service as service
from agent.apps import export
from agent.apps.cli import main
from tests.fake_lm import default_handlers, fake_lm

BY_YEAR = "SELECT yearID, HR FROM Batting WHERE playerID = 'ruthba01' AND yearID BETWEEN 1926 AND 1928 ORDER BY yearID"
ROWS = [[1926, 47], [1927, 60], [1928, 54]]


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SQLAGENT_TRACKING__ENABLED", "false")
    monkeypatch.setenv("SQLAGENT_TRACKING__CHECKPOINT_DB", str(tmp_path / "threads.sqlite"))
    lms: dict[str, dspy.LM] = {"default": fake_lm(default_handlers(BY_YEAR))[0]}
    monkeypatch.setattr(service, "build_lms", lambda settings: lms)


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


def test_ask_csv_prints_only_the_rows(cli_env, capsys):
    assert main(["ask", "Babe Ruth's home runs 1926-1928?", "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert list(csv.reader(io.StringIO(out.out))) == [["yearID", "HR"], *[[str(v) for v in r] for r in ROWS]]
    assert "[ok]" in out.err and "trace" in out.err  # the rest is said beside the rows, not in them


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_out_picks_the_format_from_the_suffix(cli_env, capsys, tmp_path, suffix):
    path = tmp_path / f"rows.{suffix}"
    assert main(["sql", BY_YEAR, "--out", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith(f"wrote {path} ({suffix},")
    if suffix == "csv":
        assert path.read_text().splitlines() == ["yearID,HR", "1926,47", "1927,60", "1928,54"]
    elif suffix == "parquet":
        table = pq.read_table(path)
        assert table.column_names == ["yearID", "HR"] and table.to_pylist()[1] == {"yearID": 1927, "HR": 60}
    else:
        assert json.loads(path.read_text())["rows"] == ROWS


def test_ask_json_to_a_file(cli_env, capsys, tmp_path):
    path = tmp_path / "answer.txt"
    assert main(["ask", "Babe Ruth's home runs 1926-1928?", "--format", "json", "--out", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["rows"] == ROWS and data["status"] == "ok" and data["sql"]
    assert capsys.readouterr().out == ""


def test_question_and_sql_from_stdin(cli_env, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(f"{BY_YEAR}\n".encode()))
    assert main(["sql", "-", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[2] == "1927,60"
    monkeypatch.setattr(sys, "stdin", _Stdin(b"Babe Ruth's home runs 1926-1928?\n"))
    assert main(["ask", "-", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["question"] == "Babe Ruth's home runs 1926-1928?"


def test_stdin_that_is_not_utf8_is_one_error_line(cli_env, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"SELECT '\xff'"))
    assert main(["sql", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The SQL is not valid UTF-8 text (byte 0xFF") and len(err.splitlines()) == 1


def test_refused_sql_writes_no_file(cli_env, capsys, tmp_path):
    path = tmp_path / "rows.csv"
    assert main(["sql", "DROP TABLE People", "--out", str(path)]) == 1
    assert not path.exists() and "[refused]" in capsys.readouterr().err


def test_two_formats_at_once_is_bad_input(cli_env, capsys):
    assert main(["sql", "SELECT 1", "--json", "--format", "csv"]) == 2
    assert "two formats" in json.loads(capsys.readouterr().out)["error"]


def test_unwritable_out_is_one_error_line(cli_env, capsys, tmp_path):
    assert main(["sql", "SELECT 1 AS a", "--out", str(tmp_path / "no" / "such" / "dir.csv")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot write")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == "sqlagent 0.1.0"


def test_doctor_json(monkeypatch, capsys):
    from agent.apps import doctor

    monkeypatch.setattr(doctor, "_model", lambda settings, full_verify: [])  # no model load in unit tests
    monkeypatch.setenv("SQLAGENT_TRACKING__ENABLED", "false")
    code = main(["doctor", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["ok"] is True
    assert [c["name"] for c in data["checks"]] == ["versions", "database", "engine", "tracking"]
    assert all(set(c) == {"name", "ok", "detail"} for c in data["checks"])


def test_missing_config_says_the_template_runs_from_its_clone(monkeypatch, capsys, tmp_path):
    from agent import config

    monkeypatch.delenv("SQLAGENT_CONFIG", raising=False)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", tmp_path / "config" / "sqlagent.yaml")
    assert main(["sql", "SELECT 1"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "runs from its clone" in err and "make setup" in err


# --- the export functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "rows", "expected"),
    [
        (["a", "b"], [[1, None], [2, "x,y"]], 'a,b\n1,\n2,"x,y"\n'),
        (["l"], [[[1, 2]], [{"k": "v"}]], 'l\n"[1, 2]"\n"{""k"": ""v""}"\n'),
        (["n"], [], "n\n"),
    ],
    ids=["null-and-quoting", "nested-as-json", "no-rows"],
)
def test_rows_csv(columns, rows, expected):
    assert export.rows_csv(columns, rows) == expected


def test_parquet_keeps_types_and_stores_mixed_columns_as_text():
    data = export.rows_parquet(["year", "mixed", "name"], [[1927, 1, "Ruth"], [1961, "two", None]])
    table = pq.read_table(io.BytesIO(data))
    assert str(table.schema.field("year").type) == "int64"
    assert str(table.schema.field("mixed").type) == "string"
    assert table.column("mixed").to_pylist() == ["1", "two"] and table.column("name").to_pylist() == [
        "Ruth",
        None,
    ]
