"""`sqlagent init` on a small database built here: descriptions, golden skeleton, config, and the agent after.

The LM is scripted (tests/fake_lm.py): handlers keyed by the first output field of each signature
(`table_description` for prompts/describe.py, `pairs` for prompts/draft_questions.py, and the agent's
`mentions`, `sql`, `answer`).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from agent.apps.init_db import config_text, init_database, schema_summary
from agent.config import DatabaseSettings, load_settings
from agent.service import Agent
from evals.dataset import load_dataset
from tests.fake_lm import fake_lm
from tools.sql.descriptions import DescriptionsError, apply_descriptions, load_descriptions
from tools.sql.engines.duckdb import load_file_schema
from tools.sql.introspect import ColumnInfo, DatabaseSchema, TableInfo

_TRAILER = "\n\nRespond with the corresponding output fields"
GOALS_SQL = (
    "SELECT p.name, sum(g.goals) AS goals FROM players p JOIN goals g USING (player_id) GROUP BY p.name"
)


def clean(inputs: dict[str, str]) -> dict[str, str]:
    return {k: v.split(_TRAILER, 1)[0].strip() for k, v in inputs.items()}


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "league.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE teams (team_id VARCHAR PRIMARY KEY, name VARCHAR, city VARCHAR)")
    con.execute(
        "CREATE TABLE players (player_id VARCHAR PRIMARY KEY, name VARCHAR, team_id VARCHAR, born INTEGER)"
    )
    con.execute("CREATE TABLE goals (player_id VARCHAR, season INTEGER, goals INTEGER)")
    con.execute("INSERT INTO teams VALUES ('RED', 'Red Rovers', 'Leeds'), ('BLU', 'Blue Bells', 'York')")
    con.execute(
        "INSERT INTO players VALUES ('ada01', 'Ada Stone', 'RED', 1990), ('bo02', 'Bo Lind', 'BLU', 1994)"
    )
    con.execute("INSERT INTO goals VALUES ('ada01', 2023, 11), ('ada01', 2024, 7), ('bo02', 2024, 3)")
    con.execute("COMMENT ON TABLE teams IS 'One row per club in the league.'")
    con.execute("COMMENT ON COLUMN teams.city IS 'Home city of the club.'")
    con.close()
    return path


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SQLAGENT_DATABASE__CATALOG_CACHE_DIR", str(tmp_path / "catalogs"))
    return load_settings(tracking={"enabled": False})


def describe_handler(inputs: dict[str, str]) -> dict:
    inputs = clean(inputs)
    names = [line.split()[0] for line in inputs["columns"].splitlines() if line.strip()]
    return {
        "table_description": f"Drafted: one row per {inputs['table']} entry.",
        "column_descriptions": {n: f"Drafted {n}." for n in names},
    }


def pairs_handler(inputs: dict[str, str]) -> dict:
    return {
        "pairs": [
            {"question": "How many goals did each player score?", "sql": f"```sql\n{GOALS_SQL}\n```"},
            {
                "question": "Which stadium is the biggest?",
                "sql": "SELECT name FROM stadiums ORDER BY capacity DESC",
            },
        ]
    }


HANDLERS = {"table_description": describe_handler, "pairs": pairs_handler}


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- tools/sql/descriptions.py -------------------------------------------------------------------------


def small_schema() -> DatabaseSchema:
    return DatabaseSchema(
        path="x.duckdb",
        fingerprint="abc",
        tables=[
            TableInfo(
                name="Teams",
                comment="From the database.",
                columns=[
                    ColumnInfo(name="teamID", type="VARCHAR", comment=""),
                    ColumnInfo(name="city", type="VARCHAR", comment="DB city comment."),
                ],
            ),
            TableInfo(name="Games", comment="", columns=[ColumnInfo(name="day", type="DATE")]),
        ],
    )


@pytest.mark.parametrize(
    ("entry", "db_comment", "expected"),
    [
        ({"description": "YAML text."}, "", "YAML text."),  # fills an empty comment
        ({"description": "YAML text."}, "DB text.", "DB text."),  # a DB comment wins by default
        ({"description": "YAML text.", "override": True}, "DB text.", "YAML text."),  # unless override
        ({"description": "", "override": True}, "DB text.", "DB text."),  # an empty entry never erases
        ("Plain string.", "", "Plain string."),  # a string is a description
        (None, "DB text.", "DB text."),
    ],
)
def test_apply_descriptions_rules(tmp_path: Path, entry, db_comment: str, expected: str):
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump({"tables": {"teams": {"description": "T", "columns": {"CITY": entry}}}}))
    schema = small_schema()
    schema.tables[0].columns[1].comment = db_comment
    applied = apply_descriptions(schema, load_descriptions(path))
    assert applied.table("Teams").column("city").comment == expected
    assert schema.tables[0].columns[1].comment == db_comment  # the input is not modified
    assert applied.fingerprint == schema.fingerprint


def test_apply_descriptions_matches_names_case_insensitively_and_ignores_unknown_ones(tmp_path: Path):
    path = tmp_path / "d.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "tables": {
                    "GAMES": {
                        "description": "One row per game.",
                        "columns": {"DAY": "Date played.", "nope": "x"},
                    },
                    "missing_table": {"description": "ignored"},
                    "Teams": {
                        "description": "Override?",
                        "columns": {"teamid": {"description": "Team code.", "draft": True}},
                    },
                }
            }
        )
    )
    applied = apply_descriptions(small_schema(), load_descriptions(path))
    assert applied.table("Games").comment == "One row per game."
    assert applied.table("Games").column("day").comment == "Date played."
    assert applied.table("Teams").comment == "From the database."
    assert applied.table("Teams").column("teamID").comment == "Team code."


def test_load_descriptions_missing_and_malformed_files(tmp_path: Path):
    assert load_descriptions(None) == {}
    assert load_descriptions(tmp_path / "absent.yaml") == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables: [1, 2]\n")
    with pytest.raises(DescriptionsError, match="bad.yaml"):
        load_descriptions(bad)
    bad.write_text("tables:\n  t: {description: [1]}\n")
    with pytest.raises(DescriptionsError, match="t.description"):
        load_descriptions(bad)
    bad.write_text("tables: {t: 'x'\n")
    with pytest.raises(DescriptionsError, match="not valid YAML"):
        load_descriptions(bad)


# --- init --------------------------------------------------------------------------------------------


def test_init_writes_descriptions_skeleton_and_config(tmp_path: Path, db_file: Path, settings):
    lm, engine = fake_lm(HANDLERS)
    out = tmp_path / "out"
    result = init_database(db_file, out, settings, lm=lm, questions=4)

    doc = read_yaml(out / "descriptions.yaml")
    assert (out / "descriptions.yaml").read_text().startswith("# Descriptions of league.duckdb")
    teams = doc["tables"]["teams"]
    # What the database documents is kept, marked as such, and not re-drafted.
    assert teams["description"] == "One row per club in the league." and teams["source"] == "database"
    assert teams["draft"] is False
    assert teams["columns"]["city"] == {
        "description": "Home city of the club.",
        "draft": False,
        "source": "database",
    }
    assert teams["columns"]["name"] == {"description": "Drafted name.", "draft": True, "source": "lm"}
    assert doc["tables"]["goals"]["description"] == "Drafted: one row per goals entry."
    assert doc["tables"]["goals"]["draft"] is True
    describe_calls = [inputs for key, inputs in engine.calls if key == "table_description"]
    assert len(describe_calls) == 3  # one call per table
    teams_call = next(clean(c) for c in describe_calls if c["table"] == "teams")
    assert "city" not in teams_call["columns"] and "'Red Rovers'" in teams_call["columns"]
    goals_call = next(clean(c) for c in describe_calls if c["table"] == "goals")
    assert "goals INTEGER e.g. '3..11'" in goals_call["columns"]  # numbers get their range as a sample
    assert (result.from_database, result.drafted, result.empty) == (2, 11, 0)

    items = read_jsonl(out / "golden.jsonl")
    assert len(items) == 4 and all(i["unverified"] is True for i in items)
    good, bad, *templates = items
    assert good["gold_sql"] == GOALS_SQL and good["executed"] is True and good["split"] == "train"
    assert bad["executed"] is False and bad["split"] == "draft" and "stadiums" in bad["error"]
    assert [t["draft_source"] for t in templates] == ["template", "template"]
    assert all(t["executed"] for t in templates)
    assert len(load_dataset(out / "golden.jsonl").items) == 4  # the evals format

    config = read_yaml(out / "sqlagent.yaml")
    assert config["database"]["url"] == str(db_file.resolve())
    assert config["retrieval"]["example_bank"] == str((out / "golden.jsonl").resolve())
    # Optimized demos belong to the database they were optimized on: not the demo's prompts/compiled.
    assert config["prompts"]["compiled_dir"] == str((out / "compiled").resolve())
    assert config["lm"]["model"] == load_settings().lm.model  # everything else as in config/sqlagent.yaml
    assert "descriptions" in (out / "sqlagent.yaml").read_text()


def test_the_agent_answers_on_the_new_database_from_the_written_config(
    tmp_path: Path, db_file: Path, settings, monkeypatch: pytest.MonkeyPatch
):
    init_lm, _ = fake_lm(HANDLERS)
    out = tmp_path / "out"
    init_database(db_file, out, settings, lm=init_lm)
    monkeypatch.setenv("SQLAGENT_CONFIG", str(out / "sqlagent.yaml"))
    written = load_settings(tracking={"enabled": False})
    assert written.database.url == str(db_file.resolve())

    # The descriptions reach the schema through the path the config names.
    path = getattr(written.database, "descriptions", None)
    if "descriptions" in DatabaseSettings.model_fields:
        assert path == str(out / "descriptions.yaml")
    schema = apply_descriptions(
        load_file_schema(db_file, tmp_path / "catalogs"), load_descriptions(path or out / "descriptions.yaml")
    )
    assert schema.table("players").column("born").comment == "Drafted born."
    assert schema.table("teams").column("city").comment == "Home city of the club."

    seen: dict[str, str] = {}

    def sql(inputs: dict[str, str]) -> dict:
        seen.update(clean(inputs))
        return {"sql": "SELECT sum(goals) AS goals FROM goals WHERE player_id = 'ada01'"}

    lm, _ = fake_lm(
        {
            "mentions": lambda i: {"mentions": ["Ada Stone"]},
            "sql": sql,
        }
    )
    result = Agent(written, lms={"default": lm}, persistent_threads=False).ask(
        "How many goals did Ada Stone score?"
    )
    assert result.status == "ok", result.error
    assert result.rows == [[18]]
    assert result.answer == "goals: 18."  # one cell: said by the answer template, no LM call
    assert "ada01" in seen["value_hints"]  # the value index init built resolves the name
    assert GOALS_SQL in seen["examples"]  # the skeleton is the example bank


def test_malformed_lm_output_never_crashes_init(tmp_path: Path, db_file: Path, settings):
    lm, _ = fake_lm(
        {
            "table_description": lambda i: {"table_description": "", "column_descriptions": "not a mapping"},
            "pairs": lambda i: {"pairs": "no JSON here"},
        }
    )
    result = init_database(db_file, tmp_path / "out", settings, lm=lm, questions=3)
    doc = read_yaml(tmp_path / "out" / "descriptions.yaml")
    entry = doc["tables"]["goals"]["columns"]["season"]
    assert entry["description"] == "" and entry["draft"] is True and entry["source"] == "none"
    assert "could not be used" in entry["note"]
    assert doc["tables"]["teams"]["columns"]["city"]["source"] == "database"
    items = read_jsonl(tmp_path / "out" / "golden.jsonl")
    assert [i["draft_source"] for i in items] == ["template"] * 3  # the skeleton falls back to templates
    assert result.empty == 11 and any("questions:" in n for n in result.notes)


def test_an_lm_that_fails_outright_never_crashes_init(tmp_path: Path, db_file: Path, settings):
    def boom(inputs):
        raise RuntimeError("server down")

    lm, _ = fake_lm({"table_description": boom, "pairs": boom})
    result = init_database(db_file, tmp_path / "out", settings, lm=lm, questions=2)
    doc = read_yaml(tmp_path / "out" / "descriptions.yaml")
    assert "server down" in doc["tables"]["players"]["note"]
    assert result.questions == 2 and result.executed == 2


def test_no_draft_calls_no_lm_and_keeps_database_comments(tmp_path: Path, db_file: Path, settings):
    lm, engine = fake_lm(HANDLERS)
    result = init_database(db_file, tmp_path / "out", settings, lm=lm, draft=False)
    assert engine.calls == []
    doc = read_yaml(tmp_path / "out" / "descriptions.yaml")
    assert doc["tables"]["teams"]["description"] == "One row per club in the league."
    assert doc["tables"]["players"]["columns"]["name"]["draft"] is True
    assert "--no-draft" in doc["tables"]["players"]["columns"]["name"]["note"]
    assert result.questions == 3 and result.executed == 3  # one count per table


def test_rerun_keeps_reviewed_entries_and_verified_items(tmp_path: Path, db_file: Path, settings):
    lm, _ = fake_lm(HANDLERS)
    out = tmp_path / "out"
    init_database(db_file, out, settings, lm=lm, questions=2)
    doc = read_yaml(out / "descriptions.yaml")
    doc["tables"]["players"]["columns"]["born"] = {
        "description": "Year of birth.",
        "draft": False,
        "source": "human",
    }
    (out / "descriptions.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    items = read_jsonl(out / "golden.jsonl")
    verified = {**items[0], "id": "verified-goals"}
    del verified["unverified"]
    (out / "golden.jsonl").write_text(json.dumps(verified) + "\n" + json.dumps(items[1]) + "\n")

    result = init_database(db_file, out, settings, lm=lm, questions=2)
    doc = read_yaml(out / "descriptions.yaml")
    assert doc["tables"]["players"]["columns"]["born"]["description"] == "Year of birth."
    assert result.kept == 1
    ids = [i["id"] for i in read_jsonl(out / "golden.jsonl")]
    assert ids[0] == "verified-goals" and len(ids) == 3


def test_config_text_keeps_comments_and_adds_missing_keys(tmp_path: Path):
    template = "# top\nlm:\n  model: x  # a comment\ndatabase:\n  url: data/a.duckdb   # the file\n"
    text = config_text(
        template, Path("/d/b.duckdb"), Path("/o/descriptions.yaml"), Path("/o/golden.jsonl"), Path("/o")
    )
    data = yaml.safe_load(text)
    assert data["database"]["url"] == "/d/b.duckdb"
    assert data["retrieval"]["example_bank"] == "/o/golden.jsonl"
    assert data["prompts"]["compiled_dir"] == "/o/compiled"
    assert '  url: "/d/b.duckdb"   # the file' in text and "# top" in text


def test_schema_summary_is_short(db_file: Path, tmp_path: Path):
    summary = schema_summary(load_file_schema(db_file, tmp_path / "catalogs"))
    assert summary.startswith("TABLE goals") and "JOINS" in summary
    assert len(summary) < 800


def test_replies_that_only_echo_names_or_types_are_not_kept(tmp_path: Path, db_file: Path, settings):
    def echo(inputs: dict[str, str]) -> dict:
        lines = [line.split() for line in clean(inputs)["columns"].splitlines() if line.strip()]
        return {
            "table_description": "The table contains the following columns: "
            + ", ".join(p[0] for p in lines),
            "column_descriptions": {p[0]: p[1] for p in lines},
        }  # "goals" -> "INTEGER"

    lm, _ = fake_lm({"table_description": echo, "pairs": pairs_handler})
    result = init_database(db_file, tmp_path / "out", settings, lm=lm, questions=1)
    doc = read_yaml(tmp_path / "out" / "descriptions.yaml")
    assert doc["tables"]["goals"]["description"] == ""
    assert doc["tables"]["goals"]["columns"]["goals"]["description"] == ""
    assert "no usable description" in doc["tables"]["goals"]["columns"]["goals"]["note"]
    assert result.drafted == 0


def test_the_init_command_without_an_lm(
    tmp_path: Path, db_file: Path, settings, capsys: pytest.CaptureFixture
):
    from agent.apps.cli import main

    assert main(["init", "--db", str(db_file), "--out", str(tmp_path / "cli"), "--no-draft", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"] == str(tmp_path / "cli" / "sqlagent.yaml")
    assert (summary["tables"], summary["from_database"], summary["questions"]) == (3, 2, 3)
    assert main(["init", "--db", str(tmp_path / "absent.duckdb"), "--no-draft"]) == 1
