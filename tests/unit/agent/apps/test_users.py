"""The users file (agent/apps/users.py) and `sqlagent users add|list|revoke`."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from agent.apps.cli import main
from agent.apps.users import UserError, UserStore, parse_permissions


def test_tokens_are_stored_hashed(tmp_path):
    store = UserStore(tmp_path / "users.sqlite")
    user, token = store.add("alice", "public", ["ask", "feedback"])
    assert token.startswith("sqa_") and len(token) > 40
    raw = (tmp_path / "users.sqlite").read_bytes()
    assert token.encode() not in raw and token[4:].encode() not in raw
    assert (tmp_path / "users.sqlite").stat().st_mode & 0o077 == 0  # not readable by other users
    (stored,) = (
        sqlite3.connect(tmp_path / "users.sqlite").execute("SELECT token_sha256 FROM users").fetchone()
    )
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert store.authenticate(token) == user
    assert store.authenticate(token + "x") is None and store.authenticate("") is None


def test_each_token_is_new(tmp_path):
    store = UserStore(tmp_path / "users.sqlite")
    tokens = {store.add(f"u{i}", "public", ["ask"])[1] for i in range(5)}
    assert len(tokens) == 5


def test_add_list_revoke(tmp_path):
    store = UserStore(tmp_path / "users.sqlite")
    assert store.list() == [] and not (tmp_path / "users.sqlite").exists()  # listing creates nothing
    _, token = store.add("bob", "analyst", ["review", "ask"])
    store.add("alice", "public", ["ask"])
    assert [(u.name, u.role, u.permissions) for u in store.list()] == [
        ("alice", "public", ["ask"]),
        ("bob", "analyst", ["ask", "review"]),
    ]
    with pytest.raises(UserError, match="exists"):
        store.add("bob", "public", ["ask"])
    store.revoke("bob")
    assert store.authenticate(token) is None and [u.name for u in store.list()] == ["alice"]
    with pytest.raises(UserError, match="No user named 'bob'"):
        store.revoke("bob")


@pytest.mark.parametrize("name", ["", "has space", "a" * 65, "semi;colon", "ünï"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError):
        UserStore(tmp_path / "u.sqlite").add(name, "public", ["ask"])


def test_permissions():
    assert parse_permissions("review, ask,ask") == ["ask", "review"]
    for bad in ("", "ask,admin", "everything"):
        with pytest.raises(UserError, match="choose from ask, feedback, review"):
            parse_permissions(bad)


def test_cli_prints_the_token_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SQLAGENT_SERVER__USERS_FILE", str(tmp_path / "users.sqlite"))
    assert main(["users", "add", "alice", "--role", "public", "--permissions", "ask,feedback,review"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "alice (role public, permissions ask,feedback,review)" in out[0]
    token = out[1]
    assert UserStore(tmp_path / "users.sqlite").authenticate(token).name == "alice"

    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "public" in listing and token not in listing
    assert main(["users", "list", "--json"]) == 0
    assert [u["name"] for u in json.loads(capsys.readouterr().out)] == ["alice"]

    assert main(["users", "add", "alice"]) == 1  # taken
    assert "exists" in capsys.readouterr().err
    assert main(["users", "add", "eve", "--role", "root"]) == 1
    assert "Unknown role 'root'" in capsys.readouterr().err
    assert main(["users", "add", "eve", "--permissions", "admin"]) == 1
    assert "Unknown permission admin" in capsys.readouterr().err

    assert main(["users", "revoke", "alice"]) == 0
    assert UserStore(tmp_path / "users.sqlite").authenticate(token) is None
    assert main(["users", "revoke", "alice"]) == 1


def test_cli_default_role_is_the_access_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SQLAGENT_SERVER__USERS_FILE", str(tmp_path / "users.sqlite"))
    assert main(["users", "add", "dan", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert (made["role"], made["permissions"]) == ("analyst", ["ask", "feedback"]) and made["token"]
