"""Join-path inference on a database that declares no foreign keys."""

from __future__ import annotations

import duckdb

from tools.sql.engines.duckdb import load_file_schema


def _db(tmp_path):
    path = tmp_path / "swim.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE swimmer (ID INTEGER, name VARCHAR)")
    con.execute("CREATE TABLE event (ID INTEGER, Name VARCHAR, Stadium_ID INTEGER)")
    con.execute("CREATE TABLE stadium (id INTEGER, name VARCHAR)")
    con.execute("CREATE TABLE record (ID INTEGER, Result VARCHAR, Swimmer_ID INTEGER, Event_ID INTEGER)")
    con.execute("CREATE TABLE team (Team_id INTEGER, Name VARCHAR)")
    con.execute("CREATE TABLE player (Player_id INTEGER, Team INTEGER, Team_id INTEGER)")
    con.execute("INSERT INTO swimmer VALUES (1, 'A'), (2, 'B')")
    con.execute("INSERT INTO event VALUES (1, '100m', 1), (2, '200m', 1)")
    con.execute("INSERT INTO stadium VALUES (1, 'S')")
    con.execute("INSERT INTO record VALUES (1, 'x', 1, 1), (2, 'y', 2, 1)")
    con.execute("INSERT INTO team VALUES (1, 'T'), (2, 'U')")
    con.execute("INSERT INTO player VALUES (1, 1, 1), (2, 1, 1)")
    con.execute("CREATE TABLE fixture (Fixture_no INTEGER, Team INTEGER)")
    con.execute("INSERT INTO fixture VALUES (1, 1), (2, 2)")
    con.close()
    return path


def test_columns_named_after_a_table_join_its_id(tmp_path):
    schema = load_file_schema(_db(tmp_path), tmp_path / "cache")
    edges = {(j.left, j.right, tuple(j.on[0])) for j in schema.joins}
    assert ("record", "swimmer", ("Swimmer_ID", "ID")) in edges
    assert ("record", "event", ("Event_ID", "ID")) in edges
    assert ("event", "stadium", ("Stadium_ID", "id")) in edges
    assert any(
        {j.left, j.right} == {"player", "team"} and ("Team_id", "Team_id") in j.on for j in schema.joins
    )
    assert ("fixture", "team", ("Team", "Team_id")) in edges  # a column named like the table


def test_a_join_path_is_not_invented_for_unrelated_ids(tmp_path):
    schema = load_file_schema(_db(tmp_path), tmp_path / "cache")
    assert not any({j.left, j.right} == {"swimmer", "stadium"} for j in schema.joins)
