"""`sqlagent mcp` through the MCP SDK's own client: over stdio against the real command (a child
process whose LM is the fake OpenAI-compatible server of bench/), and over streamable HTTP against
the app served by uvicorn with tokens, roles and a tracking store. Every tool is called, attacks are
refused by the same policy as everywhere, and `ask` answers with the fake LM."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import mlflow
import pytest

from agent.apps.auth import LOCAL, Principal
from agent.apps.cli import main as cli_main
from agent.apps.mcp_serve import http_app
from agent.apps.mcp_server import McpBackend
from agent.explain import ExplainResult
from agent.service import AskResult, TokenBudget
from agent.state import NodeRun

ROOT = Path(__file__).resolve().parents[4]
TOOLS = {"ask", "explain", "describe_schema", "lookup_values", "run_sql"}
RUTH = "SELECT nameFirst, nameLast FROM People WHERE playerID = 'ruthba01'"
ATTACKS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "DROP TABLE People",
    "SELECT 1; DELETE FROM People",
]
HIDDEN = "SELECT birthCity FROM People WHERE playerID = 'ruthba01'"  # People.birthCity: hidden from `public`
QUESTION = "Who hit the most home runs in 1927?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Text that no entry point accepts (tests/security/test_bad_input.py), as each tool's argument:
# U+FFFD is what a lossy decoder leaves of a bad byte, and a NUL byte ends a C string.
BAD_TEXT = [
    ("run_sql", {"sql": "SELECT '\ufffd'"}),
    ("run_sql", {"sql": "SELECT 1\x00"}),
    ("describe_schema", {"tables": ["Peo\ufffdple"]}),
    ("lookup_values", {"mention": "Babe\x00 Ruth"}),
    ("ask", {"question": "Who hit \ufffd home runs?"}),
    ("ask", {"question": "Who won\x00 in 2001?"}),
    ("explain", {"sql": "SELECT '\ufffd'"}),
]


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


async def _session_calls(client) -> dict:
    """Every tool once, the attacks and the hidden column; returns what came back, by name."""
    out = {"tools": {t.name: t for t in (await client.list_tools()).tools}}
    out["schema"] = await client.call_tool("describe_schema", {"tables": ["People", "Nope"]})
    out["lookup"] = await client.call_tool("lookup_values", {"mention": "Babe Ruth", "limit": 3})
    out["sql"] = await client.call_tool("run_sql", {"sql": RUTH})
    out["attacks"] = [await client.call_tool("run_sql", {"sql": sql}) for sql in ATTACKS]
    out["hidden"] = await client.call_tool("run_sql", {"sql": HIDDEN})
    out["bad_args"] = await client.call_tool("run_sql", {"sql": ""})
    out["bad_text"] = [(args, await client.call_tool(tool, args)) for tool, args in BAD_TEXT]
    out["ask"] = await client.call_tool("ask", {"question": QUESTION})
    out["explain"] = await client.call_tool("explain", {"sql": RUTH, "question": QUESTION})
    out["explain_hidden"] = await client.call_tool("explain", {"sql": HIDDEN})
    return out


def _check_calls(out: dict) -> None:
    tools = out["tools"]
    assert set(tools) == TOOLS
    assert tools["run_sql"].input_schema["required"] == ["sql"]
    assert all(t.annotations.read_only_hint for t in tools.values())
    assert "status" in tools["run_sql"].output_schema["properties"]

    schema = out["schema"].structured_content
    assert not out["schema"].is_error and schema["unknown"] == ["Nope"]
    assert "nameLast" in schema["text"] and "birthCity" not in schema["text"]  # the role's view

    candidates = out["lookup"].structured_content["candidates"]
    assert any(c["table"] == "People" and "Ruth" in c["value"] for c in candidates), candidates

    ok = out["sql"]
    assert not ok.is_error and ok.structured_content["rows"] == [["Babe", "Ruth"]]
    assert json.loads(ok.content[0].text) == ok.structured_content  # the text twin of the structured result

    for refused in out["attacks"]:
        assert refused.is_error and refused.structured_content["status"] == "refused", refused
        assert refused.structured_content["rows"] == []
    hidden = out["hidden"]
    assert hidden.is_error and hidden.structured_content["error_kind"] == "access_denied"

    bad = out["bad_args"]
    assert bad.is_error and bad.content[0].text == "The run_sql argument is empty."
    for args, result in out["bad_text"]:  # the bad-input suite's text, through every tool
        (field,) = args
        text = result.content[0].text
        assert result.is_error and "\n" not in text and f"argument '{field}" in text, (args, text)
        assert "not valid UTF-8" in text or "NUL byte" in text, (args, text)

    ask = out["ask"].structured_content
    assert not out["ask"].is_error and ask["status"] == "ok", ask
    assert "1927" in ask["sql"] and ask["rows"] == [["Babe", "Ruth", 60]]
    assert ask["thread_id"]

    explained = out["explain"].structured_content
    assert not out["explain"].is_error and explained["status"] == "ok", explained
    assert explained["explanation"] and "ruthba01" in explained["sql"]  # either fake LM's words
    hidden = out["explain_hidden"]  # the role's policy first: not explained
    assert hidden.is_error and hidden.structured_content["error_kind"] == "access_denied"


# --- stdio: the real command, as Claude Desktop starts it ----------------------------------------


@pytest.fixture(scope="module")
def fake_lm_server():
    from bench.faults import LMProcess

    lm = LMProcess(_free_port())
    lm.start()
    try:
        yield lm
    finally:
        lm.kill()


def test_stdio_session(fake_lm_server, tmp_path):
    from mcp import Client, StdioServerParameters

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SQLAGENT_TRACKING__ENABLED": "false",
        "SQLAGENT_TRACKING__CHECKPOINT_DB": str(tmp_path / "threads.sqlite"),
        "SQLAGENT_LM__MODEL": "openai/fake-lm",
        "SQLAGENT_LM__API_BASE": fake_lm_server.api_base,
        "SQLAGENT_LM__API_KEY_ENV": "SQLAGENT_FAKE_LM_KEY",
        "SQLAGENT_FAKE_LM_KEY": "test",
        "SQLAGENT_LM__CACHE": "false",
        "SQLAGENT_MCP__ROLE": "public",  # the role from the config; no --role on the command line
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "agent.apps.cli", "mcp"], env=env, cwd=str(ROOT)
    )

    async def session():
        async with Client(params) as client:
            return await _session_calls(client)

    _check_calls(_run(session()))


# --- streamable HTTP with tokens --------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    from agent.apps.users import UserStore
    from agent.service import Agent
    from tests.fake_lm import default_handlers, fake_lm
    from tests.tracking_store import temporary_tracking

    sql = (
        "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
        "WHERE b.yearID = 1927 ORDER BY b.HR DESC LIMIT 1"
    )

    def factory(settings, db, role):
        lm, _ = fake_lm(default_handlers(sql))
        return Agent(settings, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    tmp = tmp_path_factory.mktemp("mcp")
    with temporary_tracking(tmp, "mcp-test") as settings:
        users = UserStore(tmp / "users.sqlite")
        tokens = {
            "ana": users.add("ana", "public", ["ask"])[1],
            "bob": users.add("bob", "public", ["ask"])[1],
            "fb": users.add("fb", "analyst", ["feedback"])[1],
        }
        backend = McpBackend(settings, agent_factory=factory)
        try:
            with _serving(http_app(backend, host="127.0.0.1", auth=True, users=users)) as url:
                yield {"url": url, "tokens": tokens, "settings": settings, "users": users}
        finally:
            backend.close()


@contextmanager
def _serving(app) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, in a thread; yields the MCP endpoint's URL."""
    import uvicorn

    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def _client(url: str, token: str):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return Client(streamable_http_client(url, http_client=http))


def test_http_session_with_a_token(http_server):
    async def session():
        async with _client(http_server["url"], http_server["tokens"]["ana"]) as client:
            return await _session_calls(client)

    out = _run(session())
    _check_calls(out)  # ana's token is bound to `public`: birthCity is hidden and refused

    # Traced like the other entry points: under the token's user, with the role.
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(return_type="list", max_results=50)
    roots = {}
    for trace in traces:
        root = next(s for s in trace.data.spans if s.parent_id is None)
        roots.setdefault(root.name, []).append(trace)
    assert {"sqlagent.mcp.run_sql", "sqlagent.mcp.describe_schema", "sqlagent.ask", "explain"} <= set(roots)
    for trace in roots["sqlagent.mcp.run_sql"] + roots["sqlagent.ask"] + roots["explain"]:
        assert trace.info.trace_metadata["mlflow.trace.user"] == "ana"
        assert trace.info.tags["sqlagent.role"] == "public"
    spans = [s.name for t in roots["sqlagent.mcp.run_sql"] for s in t.data.spans]
    assert "tool.run_sql" in spans  # the registry's own span, inside the MCP call's root


@pytest.mark.parametrize(
    ("token", "status", "needle"),
    [
        (None, 401, "Authentication required"),
        ("sqa_unknown", 401, "Unknown or revoked"),
        ("fb", 403, "lacks the 'ask' permission"),
    ],
)
def test_http_refuses_without_the_ask_permission(http_server, token, status, needle):
    token = http_server["tokens"].get(token, token)
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    r = httpx.post(http_server["url"], json=body, headers=headers, timeout=30)
    assert r.status_code == status and needle in r.json()["detail"]
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


# --- the API's per-user limits, on the tools that use the model ---------------------------------------


class CountingAgent:
    """Answers at once, spending `tokens`, or holds each question while `gate` is clear (a question
    in progress); records the token budget each question was given."""

    def __init__(self, tokens: int = 0):
        self.tokens = tokens
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.budgets: list = []

    def ask(self, question, thread_id=None, user=None, tags=None, budget=None):
        self.budgets.append((user, budget))
        self.entered.set()
        self.gate.wait(10)
        node = NodeRun(name="generate", duration_ms=1.0, tokens=self.tokens)
        return AskResult(question=question, status="ok", answer="ok", thread_id=thread_id, nodes=[node])

    def explain(self, sql, question=None, user=None, tags=None):
        return ExplainResult(status="ok", sql=sql, explanation="It reads People.")


def _limited_settings(http_server, **sections):
    """http_server's settings (its tracking store: a second one would move tracing) with these values."""
    settings = http_server["settings"].model_copy(deep=True)
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(settings, section), key, value)
    return settings


@contextmanager
def _limited_server(http_server, agent, **sections) -> Iterator[str]:
    backend = McpBackend(_limited_settings(http_server, **sections), agent_factory=lambda s, db, role: agent)
    try:
        with _serving(http_app(backend, host="127.0.0.1", auth=True, users=http_server["users"])) as url:
            yield url
    finally:
        backend.close()


def _refusal(result) -> tuple[str, int]:
    """The text and retry_after_s of a limit's refusal, checked to be one line that says when to retry."""
    (block,) = result.content
    retry = result.structured_content["retry_after_s"]
    assert result.is_error and block.text == result.structured_content["error"], result
    assert "\n" not in block.text and block.text.endswith(f"Retry in {retry} s."), block.text
    return block.text, retry


def test_http_a_user_over_the_minute_limit_is_told_when_to_retry(http_server):
    agent, tokens = CountingAgent(), http_server["tokens"]

    async def session(url):
        async with _client(url, tokens["ana"]) as ana, _client(url, tokens["bob"]) as bob:
            asked = [
                await ana.call_tool("ask", {"question": QUESTION}),
                await ana.call_tool("explain", {"sql": RUTH}),
            ]
            refused = await ana.call_tool("ask", {"question": QUESTION})
            sql = await ana.call_tool("run_sql", {"sql": RUTH})
            return asked, refused, sql, await bob.call_tool("ask", {"question": QUESTION})

    with _limited_server(http_server, agent, server={"questions_per_minute": 2}) as url:
        asked, refused, sql, other = _run(session(url))
    assert not any(r.is_error for r in asked)  # an explanation counts as a question: the model's time
    text, retry = _refusal(refused)
    assert "'ana' asked 2 questions" in text and "server.questions_per_minute" in text and 1 <= retry <= 60
    assert not sql.is_error  # the registry tools use no model and do not count
    assert not other.is_error  # bob is not held by ana's limit
    assert [user for user, *_ in agent.budgets] == ["ana", "bob"]  # the refused one never reached the model


def test_http_the_concurrency_limit_holds_until_the_job_ends(http_server):
    agent, tokens = CountingAgent(), http_server["tokens"]
    agent.gate.clear()

    async def session(url):
        async with _client(url, tokens["ana"]) as ana, _client(url, tokens["bob"]) as bob:
            first = asyncio.create_task(ana.call_tool("ask", {"question": QUESTION}))
            assert await asyncio.to_thread(agent.entered.wait, 30), "ana's question never reached the model"
            busy = await ana.call_tool("explain", {"sql": RUTH})
            queued = asyncio.create_task(bob.call_tool("ask", {"question": QUESTION}))
            await asyncio.wait({queued}, timeout=1)  # bob's question is admitted while ana's runs
            agent.gate.set()
            return busy, await first, await queued, await ana.call_tool("ask", {"question": QUESTION})

    with _limited_server(http_server, agent, server={"max_concurrent_questions": 1}) as url:
        busy, first, other, again = _run(session(url))
    text, retry = _refusal(busy)
    assert "server.max_concurrent_questions" in text and retry == 5
    assert not first.is_error and not other.is_error
    assert not again.is_error  # her place is free once her answer is in


def test_a_cancelled_call_holds_its_place_until_the_model_is_done(http_server):
    """The client gave up, the model has not: the place is freed when the worker ends the job."""
    agent = CountingAgent()
    agent.gate.clear()
    settings = _limited_settings(
        http_server, server={"max_concurrent_questions": 1, "questions_per_minute": 3}
    )
    backend = McpBackend(settings, agent_factory=lambda s, db, role: agent)
    ana = Principal(name="ana", role="public", permissions=["ask"], authenticated=True)
    ask = {"question": QUESTION}

    async def calls():
        first = asyncio.create_task(backend.call("ask", ask, ana))
        assert await asyncio.to_thread(agent.entered.wait, 30)
        first.cancel()
        with suppress(asyncio.CancelledError):
            await first
        busy = await backend.call("ask", ask, ana)
        agent.gate.set()
        await asyncio.wrap_future(backend.pool.run(lambda: None))  # the one worker is past ana's job
        again = await backend.call("ask", ask, ana)
        local = [await backend.call("ask", ask, LOCAL) for _ in range(4)]  # the local operator: no limits
        return busy, again, local

    try:
        busy, again, local = _run(calls())
    finally:
        backend.close()
    assert "server.max_concurrent_questions" in _refusal(busy)[0]
    assert not again.is_error
    assert not any(r.is_error for r in local)


def test_http_a_user_past_the_token_budget_is_refused(http_server):
    agent, tokens = CountingAgent(tokens=40), http_server["tokens"]

    async def session(url):
        async with _client(url, tokens["ana"]) as ana, _client(url, tokens["bob"]) as bob:
            answered = [await ana.call_tool("ask", {"question": QUESTION}) for _ in range(2)]
            refused = await ana.call_tool("explain", {"sql": RUTH})
            return answered, refused, await bob.call_tool("ask", {"question": QUESTION})

    with _limited_server(http_server, agent, budget={"tokens_per_user": 50}) as url:
        answered, refused, other = _run(session(url))
    assert not any(r.is_error for r in answered) and not other.is_error
    # Each question is given the user's rest (the API's rule), and charged what it spent.
    rest = lambda tokens: TokenBudget(tokens, "budget.tokens_per_user")  # noqa: E731
    assert agent.budgets == [("ana", rest(50)), ("ana", rest(10)), ("bob", rest(50))]
    text, retry = _refusal(refused)
    assert "'ana' used 80 LM tokens" in text and "budget.tokens_per_user" in text and retry >= 1


def test_http_without_auth_is_refused_off_loopback(capsys):
    code = cli_main(["mcp", "--transport", "http", "--host", "0.0.0.0", "--no-auth"])
    assert code == 2 and "Refusing to serve on 0.0.0.0 without authentication" in capsys.readouterr().err


def test_an_unknown_role_fails_at_start(capsys, monkeypatch):
    monkeypatch.setenv("SQLAGENT_TRACKING__ENABLED", "false")
    assert cli_main(["mcp", "--role", "nobody"]) == 1
    assert "nobody" in capsys.readouterr().err
