"""`sqlagent serve` refuses a non-loopback address without auth, before anything starts."""

from __future__ import annotations

import pytest
import uvicorn

from agent.apps import server
from agent.apps.auth import ServeRefused, is_loopback
from agent.apps.cli import main
from agent.config import load_settings


@pytest.fixture
def started(monkeypatch):
    """What would have been served (create_app and uvicorn are replaced: no store, no port)."""
    calls: list[dict] = []
    monkeypatch.setattr(server, "create_app", lambda settings, **kw: ("app", kw))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    return calls


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.com", False), ("", False),
])  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7"])
def test_non_loopback_without_auth_refuses(started, host):
    with pytest.raises(ServeRefused, match=f"Refusing to serve on {host} without authentication"):
        server.serve(load_settings(), host=host, auth=False)
    with pytest.raises(ServeRefused):  # server.auth: false in the config is the same
        server.serve(load_settings(server={"auth": False}), host=host)
    assert started == []


def test_cli_says_why(started, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--no-auth"]) == 2
    err = capsys.readouterr().err
    assert "Refusing to serve on 0.0.0.0" in err and "sqlagent users add" in err
    assert started == []


def test_what_may_start(started):
    assert main(["serve", "--no-auth"]) == 0  # loopback without tokens: `make serve`
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123"]) == 0  # any address with tokens
    assert [(c["host"], c["app"][1]["auth"]) for c in started] == [("127.0.0.1", False), ("0.0.0.0", True)]
