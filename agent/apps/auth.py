"""Who is asking: the bearer token of a request, checked against the users file (agent/apps/users.py).

With auth on, every API route names the permission it needs (`Auth.require("ask")`): no token or
an unknown one is 401 with `WWW-Authenticate: Bearer`, a missing permission 403. With auth off
(only allowed on a loopback address, `check_bind`) every request is the local operator, who may
do everything and pick any role, as before there were users.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable

from fastapi import HTTPException, Request
from pydantic import BaseModel

from agent.apps.users import PERMISSIONS, Permission, UserStore

LOCAL_USER = "local"
_CHALLENGE = 'Bearer realm="sqlagent"'


class Principal(BaseModel):
    """The caller of one request."""

    name: str
    # The access role every question runs with. None only without auth: the client may pick one.
    role: str | None
    permissions: list[Permission]
    authenticated: bool

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


LOCAL = Principal(name=LOCAL_USER, role=None, permissions=list(PERMISSIONS), authenticated=False)


class ServeRefused(RuntimeError):
    """`sqlagent serve` must not start with these settings; the message says what to change."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, auth: bool) -> None:
    if not auth and not is_loopback(host):
        raise ServeRefused(
            f"Refusing to serve on {host} without authentication: anyone who can reach it could ask, read "
            "every trace and edit the golden set. Turn auth on (server.auth: true, the default) and create "
            "tokens with `sqlagent users add NAME --role ROLE --permissions ask,feedback`, or bind to 127.0.0.1."
        )


def _unauthorized(message: str, error: str | None = None) -> HTTPException:
    challenge = _CHALLENGE + (f', error="{error}"' if error else "")
    return HTTPException(401, message, headers={"WWW-Authenticate": challenge})


class Auth:
    """The request -> Principal dependency. `store` None: auth is off."""

    def __init__(self, store: UserStore | None):
        self.store = store

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def principal(self, request: Request) -> Principal:
        if self.store is None:
            return LOCAL
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise _unauthorized(
                "Authentication required: send the header 'Authorization: Bearer <token>' "
                "(an administrator creates tokens with `sqlagent users add NAME`)."
            )
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("The Authorization header must be 'Bearer <token>'.", "invalid_request")
        user = self.store.authenticate(token.strip())
        if user is None:
            raise _unauthorized("Unknown or revoked token.", "invalid_token")
        return Principal(name=user.name, role=user.role, permissions=user.permissions, authenticated=True)

    def require(self, permission: Permission) -> Callable[[Request], Principal]:
        def dependency(request: Request) -> Principal:
            who = self.principal(request)
            if not who.can(permission):
                has = ", ".join(who.permissions) or "none"
                raise HTTPException(
                    403, f"User {who.name!r} lacks the {permission!r} permission (has: {has})."
                )
            return who

        return dependency


def role_for(who: Principal, asked: str | None) -> str | None:
    """The role a question runs with: the token's own. Naming another one is 403, never a widening."""
    if who.role is None:
        return asked
    if asked is not None and asked != who.role:
        raise HTTPException(
            403, f"User {who.name!r} is bound to role {who.role!r} and cannot ask as {asked!r}."
        )
    return who.role


def scoped_thread(who: Principal, thread_id: str | None) -> str | None:
    """The checkpoint key of a conversation: prefixed with the user, so that a thread id another
    user sends cannot read or continue someone else's history. A new conversation gets its id here,
    so that the id the client is given back continues the same thread."""
    if not who.authenticated:
        return thread_id
    return f"{who.name}:{thread_id or uuid.uuid4().hex}"


def unscoped_thread(who: Principal, thread_id: str | None) -> str | None:
    prefix = f"{who.name}:"
    if who.authenticated and thread_id and thread_id.startswith(prefix):
        return thread_id[len(prefix) :]
    return thread_id
