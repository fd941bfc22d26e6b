"""The role view (tools/sql/role_view.py) on the demo database: what it hides, that it agrees with
the policy, how its value index is cached, and which worked examples it keeps. Table-driven."""

from __future__ import annotations

import duckdb
import pytest

from agent.config import load_settings
from tools.sql.database import Database, open_database
from tools.sql.policy import AccessRole, load_roles
from tools.sql.role_view import HiddenParts, hidden_parts, reads_hidden, redact, role_schema

ROLES = ["analyst", "public", "restricted"]


@pytest.fixture(scope="module")
def settings():
    return load_settings(tracking={"enabled": False})


@pytest.fixture(scope="module", params=ROLES)
def db(request, settings) -> Database:
    return open_database(settings.database_config(), request.param)


def test_the_view_agrees_with_the_policy(db):
    """A column is in the view exactly when the role's policy lets a query read it."""
    for table in db.full_schema.tables:
        shown = db.schema.table(table.name)
        for column in table.columns:
            decision = db.policy.check(f'SELECT "{column.name}" FROM "{table.name}"')
            readable = decision.code != "access_denied"
            assert readable == (shown is not None and shown.column(column.name) is not None), (
                table.name,
                column.name,
            )


def test_no_join_or_description_reaches_a_hidden_part(db):
    names = db.hidden.names()
    tables = {t.name for t in db.schema.tables}
    for join in db.schema.joins:
        assert {join.left, join.right} <= tables
        for left, right in join.on:
            assert db.schema.table(join.left).column(left) and db.schema.table(join.right).column(right)
    for table in db.schema.tables:
        for text in [table.comment, *(c.comment for c in table.columns)]:
            assert redact(text, names) == text  # nothing left to redact


def test_default_role_view_is_the_schema_itself(settings):
    db = open_database(settings.database_config())
    assert db.hidden.empty and db.schema is db.full_schema
    assert not db.reads_hidden("SELECT birthCity FROM People")


def test_public_hides_personal_data_and_salaries(settings):
    db = open_database(settings.database_config(), "public")
    assert db.schema.table("Salaries") is None and db.full_schema.table("Salaries") is not None
    people = db.schema.table("People")
    assert people.column("birthCity") is None and people.column("nameGiven") is None
    assert people.column("nameFirst") is not None
    assert "George Herman" not in people.comment and "Salaries" not in people.comment
    assert people.comment.startswith("One row per person")
    assert db.schema.fingerprint != db.full_schema.fingerprint


def test_each_view_has_its_own_value_index(settings):
    """The index file is named by the view's fingerprint: a role is never served the full index,
    nor the default role a narrowed one."""
    cache = settings.database_config().catalog_cache_dir
    counts = {}
    for role in ROLES:
        db = open_database(settings.database_config(), role)
        path = cache / f"{db.name}-{db.schema.fingerprint}.values.duckdb"
        con = duckdb.connect(str(path), read_only=True)
        try:
            counts[role] = con.execute(
                "SELECT count(*) FROM value_index WHERE col ILIKE '%birth%' OR col ILIKE '%nameGiven%' "
                "OR tbl = 'Salaries'"
            ).fetchone()[0]
        finally:
            con.close()
    assert counts["analyst"] > 0
    assert counts["public"] == 0 and counts["restricted"] == 0


def test_unknown_table_hint_names_only_readable_tables(settings):
    public = open_database(settings.database_config(), "public")
    analyst = open_database(settings.database_config())
    assert "Did you mean 'Salaries'?" in (analyst.policy.check("SELECT * FROM Salarie").reason or "")
    refused = public.policy.check("SELECT * FROM Salarie")
    assert refused.code == "unknown_table" and "Salaries" not in (refused.reason or "")


PUBLIC = HiddenParts(
    tables=frozenset({"salaries"}), columns={"people": frozenset({"birthcity", "namegiven"})}
)

READS_HIDDEN = [
    ("SELECT nameFirst, nameLast FROM People WHERE playerID = 'ruthba01'", False),
    ("SELECT birthCity FROM People WHERE playerID = 'clemero01'", True),
    ("SELECT nameLast FROM People WHERE BIRTHCITY = 'Mobile'", True),  # in a filter, any case
    ("SELECT p.nameLast AS nameGiven FROM People p", True),  # an alias says the name too
    ("SELECT SUM(salary) FROM Salaries WHERE yearID = 2010", True),
    ("WITH s AS (SELECT playerID FROM Salaries) SELECT count(*) FROM s", True),
    ("SELECT * FROM People", True),  # would select the hidden columns
    ("SELECT count(*) FROM People", False),
    ("SELECT birthCity FROM Parks", False),  # not a column of a table the role hides it in
    ("SELECT FROM WHERE", True),  # cannot be checked, so not shown
]  # fmt: skip


@pytest.mark.parametrize(("sql", "hidden"), READS_HIDDEN, ids=[s for s, _ in READS_HIDDEN])
def test_reads_hidden(sql, hidden):
    assert reads_hidden(sql, PUBLIC) is hidden
    assert reads_hidden(sql, HiddenParts()) is False  # nothing hidden: every example is kept


REDACT = [
    ("Player names. nameGiven holds the given names ('George Herman'). Keys: playerID.",
     "Player names. Keys: playerID."),
    ("The display name is nameFirst (e.g. 'Babe'); nameGiven holds 'George Herman'.", "The display name is nameFirst (e.g. 'Babe')."),
    ("Joins People and Salaries.", ""),
    ("Birthplace unknown (e.g. a city).", "Birthplace unknown (e.g. a city)."),  # not a hidden name as a word
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), REDACT)
def test_redact(text, expected):
    assert redact(text, PUBLIC.names()) == expected


def test_hidden_parts_ignore_names_the_database_lacks(settings):
    full = open_database(settings.database_config()).full_schema
    role = AccessRole(
        name="x",
        denied_tables=["Nope", "salaries"],
        denied_columns={"people": ["BIRTHCITY", "nope"], "*": ["salary"]},
    )
    parts = hidden_parts(full, role)
    assert parts.tables == {"salaries"}
    assert parts.columns == {"people": {"birthcity"}}  # Salaries.salary goes with its table
    assert role_schema(full, parts).table("People").column("birthCity") is None


def test_roles_of_the_access_file_all_load(settings):
    assert set(ROLES) <= set(load_roles(settings.database_config().access_file))
