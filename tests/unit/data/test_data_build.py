"""Tests for data/build_lahman.py: the demo Lahman DuckDB database."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from data import build_lahman as bl


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bl.BuildReport:
    out = tmp_path_factory.mktemp("lahman") / "lahman.duckdb"
    return bl.build(out)


@pytest.fixture()
def con(built: bl.BuildReport):
    with duckdb.connect(str(built.path), read_only=True) as c:
        yield c


def _source_counts() -> dict[str, int]:
    files = bl.parquet_files(bl.source_dir())
    with duckdb.connect() as c:
        return {
            t: c.execute(f"SELECT count(*) FROM read_parquet({bl.ql(str(p))})").fetchone()[0]
            for t, p in files.items()
        }


def test_build_report(built: bl.BuildReport) -> None:
    assert not built.skipped
    assert built.path.is_file()
    assert built.seconds > 0  # how fast is for benchmarks, not tests
    assert set(bl.REQUIRED_TABLES) <= set(built.tables)
    assert {"TeamNicknames", "_build_info", "FieldingPost", "HomeGames"} <= set(built.tables)
    assert not any("TEST" in t for t in built.tables)
    # only the final file is left next to the target: no temp file, no WAL
    assert sorted(p.name for p in built.path.parent.iterdir()) == [built.path.name]


def test_row_counts_equal_parquet_source(built: bl.BuildReport, con: duckdb.DuckDBPyConnection) -> None:
    source = _source_counts()
    assert len(source) == 27
    for table, n in source.items():
        assert built.tables[table] == n, table
        assert con.execute(f"SELECT count(*) FROM {bl.qi(table)}").fetchone()[0] == n, table


def test_every_table_and_column_has_a_comment(con: duckdb.DuckDBPyConnection) -> None:
    tables = con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'main' AND NOT internal"
    ).fetchall()
    assert len(tables) == 29
    assert [t for t, c in tables if not (c or "").strip()] == []
    columns = con.execute(
        "SELECT table_name, column_name, comment FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND NOT internal"
    ).fetchall()
    assert len(columns) == 376
    assert [f"{t}.{c}" for t, c, m in columns if not (m or "").strip()] == []


def test_column_names_and_types(con: duckdb.DuckDBPyConnection) -> None:
    types = {
        (t, c): d
        for t, c, d in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal"
        ).fetchall()
    }
    for col in ["playerID", "nameFirst", "nameLast", "nameGiven", "bats", "throws", "bbrefID", "retroID"]:
        assert types[("People", col)] == "VARCHAR"
    for col in ["birthYear", "birthMonth", "birthDay", "deathYear", "height", "weight"]:
        assert types[("People", col)] == "INTEGER"
    assert types[("People", "debut")] == types[("People", "finalGame")] == "DATE"
    assert types[("HomeGames", "spanfirst")] == "DATE"
    for col in ["teamID", "franchID", "name", "park", "WSWin"]:
        assert types[("Teams", col)] == "VARCHAR"
    for col in ["yearID", "W", "L", "2B", "3B", "HR", "attendance"]:
        assert types[("Teams", col)] == "INTEGER"
    assert types[("Pitching", "ERA")] == "DOUBLE"
    assert types[("Batting", "2B")] == "INTEGER"
    assert types[("HallOfFame", "yearid")] == "INTEGER"  # lower-case in the original Lahman table
    assert types[("AllstarFull", "startingPos")] == "INTEGER"
    assert not [k for k, d in types.items() if d.startswith("TIMESTAMP") or d == "BIGINT"]


def test_source_fixes(con: duckdb.DuckDBPyConnection) -> None:
    # 'NA' = National Association (1871-1875), read as NULL by pandas, is restored
    for table, col, year in [
        ("Teams", "lgID", "yearID"),
        ("Batting", "lgID", "yearID"),
        ("HomeGames", "leaguekey", "yearkey"),
    ]:
        rows = con.execute(f"SELECT DISTINCT {col} FROM {table} WHERE {year} <= 1875").fetchall()
        assert rows == [("NA",)], table
        assert con.execute(f"SELECT count(*) FROM {table} WHERE {col} IS NULL").fetchone()[0] == 0
    na = con.execute(
        "SELECT max(t.yearID) FROM TeamsFranchises f JOIN Teams t USING (franchID) WHERE f.active = 'NA'"
    ).fetchone()[0]
    assert na == 1875
    assert con.execute("SELECT count(*) FROM TeamsFranchises WHERE active = 'Y'").fetchone()[0] == 30
    assert con.execute("SELECT max(BAOpp) FROM Pitching").fetchone()[0] <= 1
    assert (
        con.execute("SELECT count(*) FROM AwardsPlayers WHERE awardID = 'SIlver Slugger'").fetchone()[0] == 0
    )


def test_rows_ordered_by_natural_key(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("SELECT playerID, yearID, stint FROM Batting").fetchall()
    assert rows == sorted(rows)
    rows = con.execute("SELECT yearID, teamID FROM Teams").fetchall()
    assert rows == sorted(rows)


def test_known_values(con: duckdb.DuckDBPyConnection) -> None:
    ruth = con.execute(
        "SELECT nameFirst, nameLast, nameGiven, birthYear FROM People WHERE playerID = 'ruthba01'"
    ).fetchone()
    assert ruth == ("Babe", "Ruth", "George Herman", 1895)
    hr = con.execute("SELECT sum(HR) FROM Batting WHERE playerID = 'ruthba01'").fetchone()[0]
    assert hr == 714
    nyy = con.execute(
        "SELECT name, franchID, lgID FROM Teams WHERE teamID = 'NYA' AND yearID = 2024"
    ).fetchone()
    assert nyy == ("New York Yankees", "NYY", "AL")


def test_nicknames(con: duckdb.DuckDBPyConnection) -> None:
    orphans = con.execute(
        "SELECT DISTINCT franchID FROM TeamNicknames ANTI JOIN TeamsFranchises USING (franchID)"
    ).fetchall()
    assert orphans == []
    uncovered = con.execute(
        "SELECT franchID FROM TeamsFranchises WHERE active = 'Y' "
        "AND franchID NOT IN (SELECT franchID FROM TeamNicknames)"
    ).fetchall()
    assert uncovered == []
    lookup = dict(
        con.execute(
            "SELECT lower(nickname), min(franchID) FROM TeamNicknames GROUP BY 1 HAVING count(*) = 1"
        ).fetchall()
    )
    assert lookup["bronx bombers"] == "NYY"
    assert lookup["redbirds"] == "STL"
    assert lookup["expos"] == "WSN"
    sox = con.execute("SELECT franchID FROM TeamNicknames WHERE nickname = 'Sox' ORDER BY 1").fetchall()
    assert sox == [("BOS",), ("CHW",)]


def test_joins_yaml_parses_and_references_existing_columns(con: duckdb.DuckDBPyConnection) -> None:
    doc = yaml.safe_load(bl.DEFAULT_COMMENTS.read_text(encoding="utf-8"))
    cols = set(
        con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal").fetchall()
    )
    assert len(doc["joins"]) > 20
    for join in doc["joins"]:
        assert set(join) == {"from", "to", "keys"}
        for a, b in join["keys"].items():
            assert (join["from"], a) in cols and (join["to"], b) in cols, join


def test_idempotent_then_force(built: bl.BuildReport) -> None:
    mtime = built.path.stat().st_mtime_ns
    again = bl.build(built.path)
    assert again.skipped
    assert again.fingerprint == built.fingerprint
    assert again.tables == built.tables
    assert built.path.stat().st_mtime_ns == mtime
    with duckdb.connect(str(built.path), read_only=True) as c:
        stored = c.execute("SELECT value FROM _build_info WHERE key = 'fingerprint'").fetchone()[0]
    assert stored == built.fingerprint

    forced = bl.build(built.path, force=True)
    assert not forced.skipped
    assert forced.fingerprint == built.fingerprint
    assert forced.tables == built.tables
    assert sorted(p.name for p in built.path.parent.iterdir()) == [built.path.name]


def test_fingerprint_depends_on_yaml(tmp_path: Path) -> None:
    files = bl.parquet_files(bl.source_dir())
    base = bl.fingerprint(files, bl.DEFAULT_COMMENTS, bl.DEFAULT_NICKNAMES)
    assert base == bl.fingerprint(files, bl.DEFAULT_COMMENTS, bl.DEFAULT_NICKNAMES)
    changed = tmp_path / "comments.yaml"
    changed.write_text(bl.DEFAULT_COMMENTS.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert bl.fingerprint(files, changed, bl.DEFAULT_NICKNAMES) != base


def _comments_variant(tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load(bl.DEFAULT_COMMENTS.read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "comments.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_missing_column_comment_fails_loudly(tmp_path: Path) -> None:
    comments = _comments_variant(tmp_path, lambda d: d["tables"]["Batting"]["columns"].pop("HR"))
    out = tmp_path / "out" / "lahman.duckdb"
    with pytest.raises(bl.LahmanBuildError, match=r"missing column comment for Batting\.HR"):
        bl.build(out, comments_path=comments)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # temp file cleaned up


def test_comment_for_unknown_column_fails(tmp_path: Path) -> None:
    def edit(d):
        d["tables"]["People"]["columns"]["nickname"] = "does not exist"
        d["tables"]["Teams"]["columns"]["teamName"] = "does not exist either"

    comments = _comments_variant(tmp_path, edit)
    with pytest.raises(bl.LahmanBuildError, match=r"People\.nickname") as exc:
        bl.build(tmp_path / "lahman.duckdb", comments_path=comments)
    assert "Teams.teamName" in str(exc.value)


def test_unknown_nickname_franchise_fails(tmp_path: Path) -> None:
    doc = yaml.safe_load(bl.DEFAULT_NICKNAMES.read_text(encoding="utf-8"))
    doc["franchises"]["XXX"] = ["Nobodies"]
    nicknames = tmp_path / "nicknames.yaml"
    nicknames.write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(bl.LahmanBuildError, match="XXX"):
        bl.build(tmp_path / "lahman.duckdb", nicknames_path=nicknames)


def test_cli_prints_one_line_per_table(built: bl.BuildReport, capsys: pytest.CaptureFixture[str]) -> None:
    assert bl.main(["--out", str(built.path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(built.tables) + 1
    assert lines[0].split()[0] == "AllstarFull"
    assert "skipped" in lines[-1]
