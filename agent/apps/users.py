"""The API's users: a name, an access role, permissions and the sha256 of a random token (SQLite).

A token is 32 random bytes, shown once by `sqlagent users add` and never stored: the file holds its
sha256. A slow password hash (PBKDF2) would add nothing for a 256-bit random secret, and would cost
every request milliseconds. Revoking deletes the row, so the next request with that token is 401.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

Permission = Literal["ask", "feedback", "review"]
PERMISSIONS: tuple[Permission, ...] = ("ask", "feedback", "review")
NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
TOKEN_PREFIX = "sqa_"  # recognisable in a leaked config or log, like GitHub's ghp_

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


class User(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    role: str = Field(min_length=1, max_length=100)
    permissions: list[Permission]
    created_at: float = 0.0

    @field_validator("permissions")
    @classmethod
    def _ordered(cls, value: list[Permission]) -> list[Permission]:
        return [p for p in PERMISSIONS if p in value]  # one fixed order, no duplicates

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


class UserError(ValueError):
    """A name that is taken or unknown, a bad permission: the message says which."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_permissions(text: str) -> list[Permission]:
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PERMISSIONS]
    if unknown or not wanted:
        raise UserError(
            f"Unknown permission {', '.join(unknown) or '(none given)'}; choose from {', '.join(PERMISSIONS)}."
        )
    return [p for p in PERMISSIONS if p in wanted]


class UserStore:
    """The users file. Every call opens it afresh: a token revoked from the CLI is refused by a
    running server on its next request, with no cache to invalidate."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)  # whoever can write it can grant themselves review
        conn = sqlite3.connect(self.path, timeout=5)
        conn.execute(_SCHEMA)
        return conn

    def add(self, name: str, role: str, permissions: list[Permission]) -> tuple[User, str]:
        """Create a user; returns it and its token (the only time the token exists in clear)."""
        user = User(name=name, role=role, permissions=permissions, created_at=time.time())
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with closing(self._connect()) as conn, conn:
            try:
                conn.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?)",
                    (user.name, hash_token(token), user.role, ",".join(user.permissions), user.created_at),
                )
            except sqlite3.IntegrityError:
                raise UserError(
                    f"A user named {name!r} exists: revoke it first or pick another name."
                ) from None
        return user, token

    def revoke(self, name: str) -> None:
        with closing(self._connect()) as conn, conn:
            if conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"No user named {name!r}.")

    def list(self) -> list[User]:
        if not self.path.exists():
            return []
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT name, role, permissions, created_at FROM users ORDER BY name"
            ).fetchall()
        return [_user(row) for row in rows]

    def authenticate(self, token: str) -> User | None:
        if not token or not self.path.exists():
            return None
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT name, role, permissions, created_at FROM users WHERE token_sha256 = ?",
                (hash_token(token),),
            ).fetchone()
        return _user(row) if row else None


def _user(row: tuple) -> User:
    name, role, permissions, created_at = row
    return User(
        name=name, role=role, permissions=[p for p in permissions.split(",") if p], created_at=created_at
    )
