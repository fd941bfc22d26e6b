"""Bad input and broken dependencies: the agent answers with a clear error, never a traceback or a hang.

Covered: empty / blank / too long / non-UTF-8 questions (service and CLI), every text argument of
every CLI command (not UTF-8, a NUL byte, empty, too long: one `error:` line, exit 2, the command
never starts), a missing or corrupt database file (CLI), an LM that is down, slow or returns
garbage (service, CLI, and the trace's node span in error), and bad SQL text in every dialect's
policy (one readable sentence, never an exception). Every test runs under a SIGALRM watchdog (pytest-timeout is not installed).

Bounding a slow LM: `dspy.LM(..., timeout=s)` bounds the HTTP read for provider/OpenAI-compatible
models (lm15's default read timeout is 600 s, and agent/lm/embedded.py's build_lm sets none). A custom
`engine=` object cannot be given a timeout (dspy refuses the kwarg): such an engine must bound itself.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import dspy
import mlflow
import pytest
from dspy.lm15 import Message, Response, TextPart, Usage
from pydantic import BaseModel, Field, ValidationError

import agent.apps.cli as cli
import agent.service as service
import agent.tracing as tracing
from agent.apps.bad_input import validation_message
from agent.apps.cli import main as cli_main
from agent.config import Settings, load_settings
from agent.question_check import question_problem
from agent.service import Agent
from agent.text_check import text_problem
from tests.fake_lm import ScriptedEngine, default_handlers, fake_lm
from tests.tracking_store import temporary_tracking
from tools.sql.policy import Catalog, SqlPolicy

SQL = "SELECT nameFirst, nameLast FROM People WHERE playerID = 'ruthba01'"
QUESTION = "Who hit the most home runs in 1927?"
NON_UTF8 = b"\xff\xfe".decode("utf-8", "surrogateescape")  # what Python makes of undecodable argv bytes
WATCHDOG_S = 30
DIALECTS = ["duckdb", "postgres", "spark", "databricks", "snowflake"]


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    def hung(signum, frame):
        raise TimeoutError(f"test still running after {WATCHDOG_S} s: something hangs")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(WATCHDOG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(tracking={"enabled": False})


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    """`sqlagent ask` reads the real config: no tracking store, threads in tmp, a scripted LM."""
    monkeypatch.setenv("SQLAGENT_TRACKING__ENABLED", "false")
    monkeypatch.setenv("SQLAGENT_TRACKING__CHECKPOINT_DB", str(tmp_path / "threads.sqlite"))
    lms: dict[str, dspy.LM] = {"default": fake_lm(default_handlers(SQL))[0]}
    monkeypatch.setattr(service, "build_lms", lambda settings: lms)
    return lms


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _down_lm() -> dspy.LM:
    return dspy.LM(
        "openai/down",
        api_base=f"http://127.0.0.1:{_closed_port()}/v1",
        api_key="test",
        num_retries=0,
        cache=False,
    )


class GarbageEngine(ScriptedEngine):
    """Answers every `sql` prompt with text that no DSPy adapter can parse: prose under a field the
    signature does not have (with a prefilled reply, bare prose would be read as the sql value and
    refused by the policy: test_lm_garbage_sql_text_is_refused_not_run)."""

    def complete(self, request):
        response = super().complete(request)
        if self.calls[-1][0] != "sql":
            return response
        return Response(
            id=None,
            model="fake",
            message=Message.assistant([TextPart("[[ ## thoughts ## ]]\nlorem ipsum dolor sit amet")]),
            finish_reason="stop",
            usage=Usage(input_tokens=1, output_tokens=1, total_tokens=2),
        )


def _garbage_lm() -> tuple[dspy.LM, GarbageEngine]:
    engine = GarbageEngine(default_handlers(SQL))
    return dspy.LM("fake/garbage", engine=engine, cache=False), engine


# --- questions -----------------------------------------------------------------------------------

BAD_QUESTIONS = [
    ("empty", "", "empty"),
    ("blank", "   \n\t ", "empty"),
    ("too-long", "Who hit the most home runs? " * 100, "max_question_chars"),
    ("non-utf8", NON_UTF8, "The question is not valid UTF-8 text (byte 0xFF at character 1)."),
    (
        "replacement-char",
        "Who hit \ufffd home runs?",
        "(U+FFFD, the mark of a failed decoding, at character 9).",
    ),
    ("nul", "Who won\x00 in 2001?", "The question contains a NUL byte (at character 8)."),
]


@pytest.mark.parametrize(
    ("question", "needle"), [(q, n) for _, q, n in BAD_QUESTIONS], ids=[i for i, _, _ in BAD_QUESTIONS]
)
def test_bad_question_service(settings, question, needle):
    lm, engine = fake_lm(default_handlers(SQL))
    result = Agent(settings, lms={"default": lm}, persistent_threads=False).ask(question)
    assert result.status == "error" and result.error_kind == "bad_input"
    assert needle in result.error
    assert result.nodes == [] and engine.calls == []


@pytest.mark.parametrize(
    ("question", "needle"), [(q, n) for _, q, n in BAD_QUESTIONS], ids=[i for i, _, _ in BAD_QUESTIONS]
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_bad_question_cli(cli_env, capsys, question, needle, as_json):
    code = cli_main(["ask", question, *(["--json"] if as_json else [])])
    out = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in out.err + out.out
    if as_json:
        assert needle in json.loads(out.out)["error"]
    else:
        _assert_one_error_line(out, needle)


# --- every command's text arguments --------------------------------------------------------------

NUL = "Who won\x00 in 2001?"
LONG_NAME = "t" * 300

# (id, argv, needle). Every command that takes text, every kind of text it takes.
BAD_ARGUMENTS = [
    ("sql-non-utf8", ["sql", f"SELECT {NON_UTF8} FROM Teams"], "The SQL is not valid UTF-8 text (byte 0xFF"),
    ("sql-empty", ["sql", ""], "The SQL is empty."),
    ("sql-too-long", ["sql", "SELECT 1 " + "x" * 20_000], "the limit is 20000"),
    ("sql-nul", ["sql", "SELECT 1\x00"], "The SQL contains a NUL byte"),
    ("sql-replacement", ["sql", "SELECT '\ufffd'"], "The SQL is not valid UTF-8 text (U+FFFD"),
    ("sql-role", ["sql", "SELECT 1", "--role", NON_UTF8], "--role is not valid UTF-8"),
    ("sql-db-nul", ["sql", "SELECT 1", "--db", "x\x00.duckdb"], "--db contains a NUL byte"),
    ("ask-nul", ["ask", NUL], "The question contains a NUL byte"),
    ("ask-thread-non-utf8", ["ask", QUESTION, "--thread", NON_UTF8], "--thread is not valid UTF-8"),
    ("ask-thread-empty", ["ask", QUESTION, "--thread", " "], "--thread is empty."),
    ("ask-thread-long", ["ask", QUESTION, "--thread", LONG_NAME], "--thread is 300 characters long"),
    ("ask-thread-control", ["ask", QUESTION, "--thread", "a\x1bb"], "--thread contains a control character"),
    ("ask-role-empty", ["ask", QUESTION, "--role", ""], "--role is empty."),
    ("ask-lm-non-utf8", ["ask", QUESTION, "--lm", NON_UTF8], "--lm is not valid UTF-8"),
    ("ask-db-nul", ["ask", QUESTION, "--db", "\x00"], "--db contains a NUL byte"),
    ("trace-non-utf8", ["trace", NON_UTF8], "The trace id is not valid UTF-8"),
    ("trace-empty", ["trace", ""], "The trace id is empty."),
    ("eval-split", ["eval", "--split", NON_UTF8], "--split is not valid UTF-8"),
    ("eval-tag-nul", ["eval", "--tag", "a\x00"], "--tag contains a NUL byte"),
    ("eval-dataset-nul", ["eval", "--dataset", "g\x00.jsonl"], "--dataset contains a NUL byte"),
    ("eval-lm-empty", ["eval", "--lm", ""], "--lm is empty."),
    ("eval-accept-from-nul", ["eval-accept", "--from", "out\x00"], "--from contains a NUL byte"),
    ("optimize-lm", ["optimize", "--lm", NON_UTF8], "--lm is not valid UTF-8"),
    ("optimize-out-nul", ["optimize", "--out", "x\x00"], "--out contains a NUL byte"),
    ("init-db-nul", ["init", "--db", "x\x00.duckdb"], "--db contains a NUL byte"),
    ("init-lm", ["init", "--db", "x.duckdb", "--lm", NON_UTF8], "--lm is not valid UTF-8"),
    ("serve-host", ["serve", "--host", NON_UTF8], "--host is not valid UTF-8"),
    ("serve-golden-nul", ["serve", "--golden", "g\x00"], "--golden contains a NUL byte"),
    ("ask-out-nul", ["ask", QUESTION, "--out", "x\x00.csv"], "--out contains a NUL byte"),
    ("sql-out-nul", ["sql", "SELECT 1", "--out", "x\x00.csv"], "--out contains a NUL byte"),
    ("mcp-role", ["mcp", "--role", NON_UTF8], "--role is not valid UTF-8"),
    ("mcp-host-empty", ["mcp", "--transport", "http", "--host", ""], "--host is empty."),
    ("mcp-db-nul", ["mcp", "--db", "x\x00.duckdb"], "--db contains a NUL byte"),
]
# Commands that load a model, read the tracking store or start a server: in this sweep they are
# replaced by a recorder, so a check that lets bad text through shows up as a recorded run.
_HEAVY = {"trace", "eval", "eval-accept", "optimize", "init", "serve", "doctor", "mcp"}


def _assert_one_error_line(out, needle: str) -> None:
    lines = [line for line in out.err.strip().splitlines() if not line.startswith("(")]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in out.err + out.out and "pydantic" not in out.err and "https://" not in out.err


@pytest.fixture
def started(monkeypatch) -> list[str]:
    """The heavy commands that were started; the real parser otherwise."""
    runs: list[str] = []
    build = cli.build_parser

    def parser() -> argparse.ArgumentParser:
        built = build()
        (commands,) = [a for a in built._actions if isinstance(a, argparse._SubParsersAction)]
        for name, sub in commands.choices.items():
            if name in _HEAVY:
                sub.set_defaults(func=lambda args: runs.append(args.command) or 0)
        return built

    monkeypatch.setattr(cli, "build_parser", parser)
    return runs


@pytest.mark.parametrize(
    ("argv", "needle"), [(a, n) for _, a, n in BAD_ARGUMENTS], ids=[i for i, _, _ in BAD_ARGUMENTS]
)
def test_bad_argument_cli(cli_env, started, capsys, argv, needle):
    code = cli_main(argv)
    out = capsys.readouterr()
    assert code == 2, (code, out.err)
    _assert_one_error_line(out, needle)
    assert out.out == "" and started == []


@pytest.mark.parametrize(
    "argv", [["sql", ""], ["sql", f"SELECT {NON_UTF8}"], ["ask", QUESTION, "--thread", ""]]
)
def test_bad_argument_cli_json(cli_env, capsys, argv):
    code = cli_main([*argv, "--json"])
    out = capsys.readouterr()
    assert code == 2 and out.err == ""
    assert json.loads(out.out)["status"] == "error"


def test_good_arguments_still_run(cli_env, started, capsys):
    """The checks refuse bad text, not unusual text: a non-UTF-8 *path* is a legal POSIX file name."""
    assert cli_main(["sql", "SELECT 'tab\tand\nnewline' AS s"]) == 0
    assert cli_main(["trace", "tr-0123456789abcdef"]) == 0 and started == ["trace"]
    assert cli_main(["sql", "SELECT 1", "--db", f"/nonexistent/{NON_UTF8}.duckdb"]) == 1  # the OS judges it
    assert "does not exist" in capsys.readouterr().err


class _Args(BaseModel):
    sql: str = Field(min_length=1, max_length=5)
    n: int = 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sql": ""}, "The SQL is empty."),
        ({"sql": "SELECT 1"}, "The SQL is 8 characters long; the limit is 5."),
        ({"sql": NON_UTF8}, "The SQL is not valid UTF-8 text (byte 0xFF at character 1)."),
        (
            {"sql": "x", "n": "many"},
            "The SQL (n): input should be a valid integer, unable to parse string as an integer.",
        ),
        ({"sql": "", "n": "many"}, "The SQL is empty (and 1 more problem)."),
    ],
)
def test_validation_message_is_one_sentence(data, expected):
    with pytest.raises(ValidationError) as caught:
        _Args(**data)
    assert validation_message(caught.value, "The SQL") == expected


def test_text_problem_kinds():
    assert text_problem("Who won?\n\tIn 2001?", "The question") is None
    assert text_problem(" ", "The question") is None  # emptiness of a question is the service's to say
    assert text_problem(" ", "--role", "name") == "--role is empty."
    assert text_problem(NON_UTF8, "--db", "path") is None
    assert (
        text_problem("\ud800", "x") == "x is not valid UTF-8 text (a lone surrogate U+D800 at character 1)."
    )


def test_a_question_gets_the_same_text_check_as_every_other_argument():
    """question_problem (the service, the API) words bad text as text_problem does (the CLI, MCP)."""
    for text in (NON_UTF8, "home runs \ufffd", "home runs \ud800", "Who won\x00 in 2001?"):
        expected = text_problem(text, "The question")
        assert expected and question_problem(text, 2000) == expected
    assert question_problem(" ", 2000) == "The question is empty: ask something about the database."
    assert question_problem("Who won?\n\tIn 2001?", 2000) is None


# --- the database --------------------------------------------------------------------------------


def _db_files(tmp_path):
    corrupt = tmp_path / "corrupt.duckdb"
    corrupt.write_bytes(os.urandom(64 * 1024))
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    return {
        "missing": ("/nonexistent.duckdb", "does not exist"),
        "corrupt": (str(corrupt), "not a valid DuckDB database file"),
        "empty": (str(empty), "empty.duckdb"),
    }


@pytest.mark.parametrize("which", ["missing", "corrupt", "empty"])
@pytest.mark.parametrize("command", ["sql", "ask"])
def test_bad_database_cli(cli_env, capsys, tmp_path, which, command):
    path, needle = _db_files(tmp_path)[which]
    argv = ["sql", "SELECT 1"] if command == "sql" else ["ask", QUESTION]
    code = cli_main([*argv, "--db", path])
    out = capsys.readouterr()
    assert code == 1
    first = out.err.strip().splitlines()[0]
    assert first.startswith("error: ") and needle in first, out.err
    assert "Traceback" not in out.err
    assert [line for line in out.err.strip().splitlines() if not line.startswith("(")] == [first]  # one line
    assert not os.path.exists("/nonexistent.duckdb")


# --- the LM ----------------------------------------------------------------------------------------


def test_lm_down_service(settings):
    bot = Agent(settings, lms={"default": _down_lm()}, persistent_threads=False)
    start = time.perf_counter()
    result = bot.ask(QUESTION)
    assert time.perf_counter() - start < 10  # fails fast instead of hanging (no retry storm)
    assert result.status == "error" and result.error_kind == "internal"
    # The first LM call of a one-turn question is generate's (rewrite and answer need none by default).
    assert result.error.startswith("The generate step failed: ")
    assert "Connection refused" in result.error or "connect" in result.error
    assert "\n" not in result.error
    assert [n.name for n in result.nodes] == ["guard", "rewrite", "retrieve", "generate"]
    assert result.nodes[-1].detail.startswith("failed: ")


def test_lm_down_cli(cli_env, capsys):
    cli_env["default"] = _down_lm()
    code = cli_main(["ask", QUESTION])
    out = capsys.readouterr()
    assert code == 1
    assert "[error] Something failed while answering. The generate step failed: " in out.out
    assert "Traceback" not in out.err + out.out


@pytest.fixture
def slow_server() -> Iterator[str]:
    """An OpenAI-compatible endpoint that accepts the request and never answers in time."""

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(3)
            try:
                self.send_response(500)
                self.end_headers()
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_lm_slow_is_bounded_by_lm_timeout(settings, slow_server):
    lm = dspy.LM("openai/slow", api_base=slow_server, api_key="test", num_retries=0, cache=False, timeout=0.5)
    bot = Agent(settings, lms={"default": lm}, persistent_threads=False)
    start = time.perf_counter()
    result = bot.ask(QUESTION)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5 + 2.0, f"took {elapsed:.2f} s"  # the LM timeout bounds the question
    assert result.status == "error" and result.error_kind == "internal"
    assert result.error.startswith("The generate step failed: ") and "timed out" in result.error


def test_custom_engine_cannot_be_given_a_timeout():
    """Documented limitation: a slow custom engine (the tests' fake LM) is not bounded by dspy."""
    with pytest.raises(Exception, match="timeout"):
        dspy.LM("fake/x", engine=ScriptedEngine({}), cache=False, timeout=1)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_lm_garbage_sql_text_is_refused_not_run(settings, dialect):
    # Prose in the sql field parses (sqlglot reads `lorem ipsum` as a column with an alias): the policy
    # refuses it as a non-SELECT statement, terminally, and nothing runs. In every dialect's policy.
    settings = settings.model_copy(
        update={"database": settings.database.model_copy(update={"dialect": dialect})}
    )
    lm, engine = fake_lm(default_handlers("lorem ipsum"))
    result = Agent(settings, lms={"default": lm}, persistent_threads=False).ask(QUESTION)
    assert result.status == "refused" and result.error_kind == "not_read_only"
    assert [n.name for n in result.nodes][-2:] == ["safety", "finish"]
    assert "execute" not in [n.name for n in result.nodes]


def test_lm_garbage_unparseable_service(settings):
    lm, engine = _garbage_lm()
    result = Agent(settings, lms={"default": lm}, persistent_threads=False).ask(QUESTION)
    assert result.status == "error" and result.error_kind == "internal"
    assert result.error.startswith("The generate step failed: AdapterParseError")
    assert "\n" not in result.error and len(result.error) <= 500
    assert [n.name for n in result.nodes][-1] == "generate"
    assert result.nodes[-1].detail.startswith("failed: ")


def test_lm_garbage_unparseable_cli(cli_env, capsys):
    cli_env["default"] = _garbage_lm()[0]
    code = cli_main(["ask", QUESTION])
    out = capsys.readouterr()
    assert code == 1
    assert "The generate step failed: AdapterParseError" in out.out
    assert "Traceback" not in out.err + out.out


# --- bad SQL text, in every dialect's policy -------------------------------------------------------

BAD_SQL = [
    ("empty", "", "empty"),
    ("semicolons", " ;; ; ", "empty"),
    ("comment-only", "-- nothing /* here */", "empty"),
    ("nul", "SELECT 1\x00", "invisible_character"),
    ("escape-char", "SELECT nameFirst\x1b[31m FROM People", "invisible_character"),
    ("bidi", "SELECT nameFirst FROM People -- \u202e", "invisible_character"),
    ("lone-surrogate", "SELECT '\ud800' AS x, nameFirst\ud800 FROM People", "invisible_character"),
    ("unterminated-string", "SELECT 'abc FROM People", "parse_error"),
    ("unterminated-comment", "SELECT 1 /* forever", None),  # some dialects end the comment at the text's end
    ("unbalanced", "SELECT ((((1 FROM People", "parse_error"),
    (
        "deep-nesting",
        "SELECT " + "(" * 2000 + "1" + ")" * 2000,
        None,
    ),  # refused or allowed, never an exception
    ("prose", "lorem ipsum", "not_read_only"),
    ("binary", "\x89PNG\r\n\x1a\n\x00\x00", "invisible_character"),
    ("huge", "SELECT " + ", ".join(["1"] * 5000), None),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("sql", "code"), [(s, c) for _, s, c in BAD_SQL], ids=[i for i, _, _ in BAD_SQL])
def test_bad_sql_text_gets_one_readable_sentence(sql, code, dialect):
    policy = SqlPolicy(Catalog(tables={"People": ["playerID", "nameFirst"]}), limit_cap=100, dialect=dialect)
    decision = policy.check(sql)
    if code is not None:
        assert (decision.allowed, decision.code) == (False, code), decision.reason or decision.sql
    if not decision.allowed:
        reason = decision.reason or ""
        assert reason and "\n" not in reason and len(reason) <= 500, reason
        assert "Traceback" not in reason and decision.sql == ""


@pytest.mark.parametrize(
    ("dialect", "sql", "needle"),
    [
        ("duckdb", "SELECT read_text('/etc/passwd')", "Function read_text is not allowed: it reads files"),
        ("postgres", "SELECT lo_import('/etc/passwd')", "Function lo_import is not allowed"),
        ("spark", "SELECT reflect('java.lang.Runtime', 'getRuntime')", "Function reflect is not allowed"),
        ("databricks", "SELECT * FROM read_files('/etc')", "Function read_files is not allowed"),
        ("snowflake", "SELECT $1 FROM @stage/x.csv", "looks like a file path or stage"),
    ],
)
def test_sql_cli_refuses_in_the_configured_dialect(cli_env, capsys, monkeypatch, dialect, sql, needle):
    monkeypatch.setenv("SQLAGENT_DATABASE__DIALECT", dialect)
    code = cli_main(["sql", sql, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["status"] == "refused" and needle in out["error"], out


# --- traces of failures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traced_settings(tmp_path_factory) -> Iterator[Settings]:
    with temporary_tracking(tmp_path_factory.mktemp("tracking-bad-input"), "bad-input") as settings:
        yield settings


@pytest.mark.parametrize(
    ("make_lm", "failing"),
    [(_down_lm, "generate"), (lambda: _garbage_lm()[0], "generate")],
    ids=["lm-down", "lm-garbage"],
)
def test_failing_node_span_has_error_status(traced_settings, make_lm, failing):
    tracing._configured = None  # another test may have turned tracing off in between
    agent = Agent(traced_settings, lms={"default": make_lm()}, persistent_threads=False)
    assert agent.tracing is True
    result = agent.ask(QUESTION)
    mlflow.flush_trace_async_logging()
    assert result.status == "error" and result.error.startswith(f"The {failing} step failed")
    assert result.trace_id
    trace = mlflow.get_trace(result.trace_id)
    spans = {s.name: s for s in trace.data.spans}
    node = spans[f"node.{failing}"]
    assert "ERROR" in str(node.status.status_code), node.status
    assert any(e.name == "exception" for e in node.events)
    assert spans["node.guard"].status.status_code != node.status.status_code
    (root,) = [s for s in trace.data.spans if s.parent_id is None]
    assert root.attributes["sqlagent.status"] == "error"
