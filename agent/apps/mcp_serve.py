"""Serving the MCP tools (agent/apps/mcp_server.py) over stdio or streamable HTTP.

Over HTTP every request passes the token gate of `sqlagent serve` first (agent/apps/auth.py): no or
an unknown token is 401 with `WWW-Authenticate: Bearer`, a token without the `ask` permission 403,
before the MCP transport reads the body; the token's user then has the API's per-user limits on
`ask` and `explain` (agent/apps/mcp_server.py). Without auth the bind address must be loopback
(`check_bind`), the SDK's DNS-rebinding protection checks Host and Origin there, and the caller
is the local operator, who is not limited.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agent.apps.auth import Auth, check_bind
from agent.apps.mcp_server import PRINCIPAL_KEY, McpBackend, build_server
from agent.apps.users import UserStore
from agent.config import Settings, resolve_path


class TokenGate:
    """ASGI middleware: the caller of every HTTP request, or its 401/403, before the MCP app runs."""

    def __init__(self, app: ASGIApp, gate: Auth):
        self.app = app
        self.require = gate.require("ask")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:  # the users file is SQLite: read it off the event loop
            who = await run_in_threadpool(self.require, Request(scope))
        except HTTPException as exc:
            await JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)(
                scope, receive, send
            )
            return
        scope.setdefault("state", {})[PRINCIPAL_KEY] = who
        await self.app(scope, receive, send)


def http_app(backend: McpBackend, *, host: str, auth: bool, users: UserStore | None = None) -> Any:
    """The streamable HTTP app at `mcp.path`, behind the token gate when `auth`."""
    app = build_server(backend).streamable_http_app(streamable_http_path=backend.settings.mcp.path, host=host)
    if not auth:
        return app
    store = users or UserStore(resolve_path(backend.settings.server.users_file))
    return TokenGate(app, Auth(store))


def serve_mcp(
    settings: Settings,
    *,
    transport: str,
    role: str | None = None,
    db: str | None = None,
    host: str | None = None,
    port: int | None = None,
    auth: bool | None = None,
) -> None:
    """Raises ServeRefused before anything starts for HTTP on a non-loopback host without auth."""
    host = host or settings.mcp.host
    auth_on = settings.server.auth if auth is None else auth
    if transport == "http":
        check_bind(host, auth_on)
    backend = McpBackend(settings, role=role, db=db)
    try:
        if transport == "stdio":
            import anyio
            from mcp.server.stdio import stdio_server

            server = build_server(backend)

            async def run() -> None:
                async with stdio_server() as (read, write):
                    await server.run(read, write, server.create_initialization_options())

            anyio.run(run)
        else:
            import uvicorn

            uvicorn.run(
                http_app(backend, host=host, auth=auth_on),
                host=host,
                port=port or settings.mcp.port,
                workers=1,
                log_level="info",
            )
    finally:
        backend.close()
