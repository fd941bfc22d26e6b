"""Bad PostgreSQL configuration fails early and clearly: a URL that is not one, a server that is down or
never answers, a wrong password, an unknown database or role, a role that can write. `sqlagent doctor`
and the first command (`sqlagent sql`, `sqlagent ask`) each say which, and what to do, in one line,
and nothing waits past limits.connect_timeout_s (a SIGALRM watchdog fails a test that hangs)."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest

import agent.service as service
from agent.apps.cli import main as cli_main
from agent.apps.doctor import _database
from agent.config import load_settings
from tests.fake_lm import default_handlers, fake_lm
from tools.sql.database import open_database
from tools.sql.engines.base import SandboxError

pytestmark = pytest.mark.engines

WATCHDOG_S = 60
WRITER = "sqlagent_test_can_write"


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    def hung(signum, frame):
        raise TimeoutError(f"still running after {WATCHDOG_S} s: something waits past its timeout")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(WATCHDOG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SQLAGENT_TRACKING__ENABLED", "false")
    monkeypatch.setenv("SQLAGENT_TRACKING__CHECKPOINT_DB", str(tmp_path / "threads.sqlite"))
    monkeypatch.setenv("SQLAGENT_DATABASE__CATALOG_CACHE_DIR", str(tmp_path / "catalogs"))
    monkeypatch.setenv("SQLAGENT_LIMITS__CONNECT_TIMEOUT_S", "2")
    lms = {"default": fake_lm(default_handlers("SELECT 1"))[0]}
    monkeypatch.setattr(service, "build_lms", lambda settings: lms)  # never the real model


@pytest.fixture(scope="module")
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a firewall that drops, a hung host)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def writer_url(pg_demo) -> Iterator[str]:
    """A login that may INSERT into one table: what an operator might hand over by mistake."""
    with psycopg.connect(pg_demo.admin_url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {WRITER}")
        admin.execute(f"CREATE ROLE {WRITER} LOGIN PASSWORD 'w'")
        admin.execute(f"GRANT CONNECT ON DATABASE lahman TO {WRITER}")
        admin.execute(f"GRANT USAGE ON SCHEMA lahman TO {WRITER}")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA lahman TO {WRITER}")
        admin.execute(f'GRANT INSERT ON lahman."Parks" TO {WRITER}')
        admin.execute(f"ALTER ROLE {WRITER} SET search_path = lahman")
    yield f"postgresql://{WRITER}:w@127.0.0.1:{pg_demo.port}/lahman"
    with psycopg.connect(pg_demo.admin_url, autocommit=True) as admin:
        admin.execute(f"DROP OWNED BY {WRITER}")
        admin.execute(f"DROP ROLE {WRITER}")


def _cases(pg_demo, silent_port: int) -> dict[str, tuple[str, str]]:
    """name -> (database.url, what the one error line must say)."""
    reader = pg_demo.reader_url
    password = pg_demo.reader_password
    return {
        "not-a-url": ("postgresql://sqlagent_reader@127.0.0.1:notaport/lahman", "not a valid PostgreSQL URL"),
        "unknown-scheme": ("mysql://u@127.0.0.1/lahman", "no engine serves the scheme 'mysql://'"),
        "server-down": (f"postgresql://sqlagent_reader:x@127.0.0.1:{_closed_port()}/lahman", "is not accepting connections"),
        "no-answer": (f"postgresql://sqlagent_reader:x@127.0.0.1:{silent_port}/lahman", "did not answer within 2 s"),
        "wrong-password": (reader.replace(password, "wrong"), "refused the credentials of role 'sqlagent_reader'"),
        "unknown-role": (reader.replace("sqlagent_reader", "nobody_here"), "refused the credentials of role 'nobody_here'"),
        "unknown-database": (reader.rsplit("/", 1)[0] + "/nope", 'database "nope" does not exist'),
    }  # fmt: skip


CASE_NAMES = ["not-a-url", "unknown-scheme", "server-down", "no-answer", "wrong-password", "unknown-role",
              "unknown-database"]  # fmt: skip


def _one_error_line(err: str, needle: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("(")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case", CASE_NAMES)
@pytest.mark.parametrize("command", ["sql", "ask"])
def test_the_first_command_says_what_is_wrong(pg_demo, silent_server, cli_env, capsys, case, command):
    url, needle = _cases(pg_demo, silent_server)[case]
    argv = ["sql", "SELECT 1"] if command == "sql" else ["ask", "How many players are there?"]
    assert cli_main([*argv, "--db", url]) == 1
    line = _one_error_line(capsys.readouterr().err, needle)
    assert pg_demo.reader_password not in line  # a password is never printed


@pytest.mark.parametrize("case", CASE_NAMES)
def test_doctor_says_what_is_wrong(pg_demo, silent_server, monkeypatch, case):
    url, needle = _cases(pg_demo, silent_server)[case]
    monkeypatch.setenv("SQLAGENT_DATABASE__URL", url)
    monkeypatch.setenv("SQLAGENT_LIMITS__CONNECT_TIMEOUT_S", "2")
    (check,) = _database(load_settings())
    assert (check.name, check.ok) == ("database", False)
    assert needle in check.detail and pg_demo.reader_password not in check.detail


def test_a_role_that_can_write_is_refused(writer_url, tmp_path):
    settings = load_settings(database={"catalog_cache_dir": str(tmp_path)})
    with pytest.raises(SandboxError) as caught:
        open_database(settings.database_config(writer_url))
    assert caught.value.kind == "database"
    message = caught.value.message
    assert f"role {WRITER} can write" in message and 'lahman."Parks" (INSERT)' in message
    assert "the server accepted" not in message  # the write itself was tried and refused (no CREATE)
    assert "require_read_only_role" in message


def test_doctor_reports_a_role_that_can_write(writer_url, tmp_path, monkeypatch):
    """Told to run anyway (require_read_only_role: false), the agent opens, and doctor still says it."""
    monkeypatch.setenv("SQLAGENT_DATABASE__URL", writer_url)
    monkeypatch.setenv("SQLAGENT_DATABASE__REQUIRE_READ_ONLY_ROLE", "false")
    monkeypatch.setenv("SQLAGENT_DATABASE__CATALOG_CACHE_DIR", str(tmp_path))
    checks = {c.name: c for c in _database(load_settings())}
    assert checks["database"].ok
    assert not checks["read-only role"].ok and "INSERT" in checks["read-only role"].detail


def test_doctor_passes_the_demo_reader(pg_demo, tmp_path, monkeypatch):
    monkeypatch.setenv("SQLAGENT_DATABASE__URL", pg_demo.reader_url)
    monkeypatch.setenv("SQLAGENT_DATABASE__CATALOG_CACHE_DIR", str(tmp_path))
    checks = {c.name: c for c in _database(load_settings())}
    assert all(c.ok for c in checks.values()), checks
    assert "28 tables" in checks["database"].detail
    assert "a write was refused" in checks["read-only role"].detail
    assert pg_demo.reader_password not in str(checks)


def test_a_password_from_password_env(pg_demo, tmp_path, monkeypatch):
    without = pg_demo.reader_url.replace(f":{pg_demo.reader_password}@", "@")
    monkeypatch.setenv("SQLAGENT_TEST_PG_PASSWORD", pg_demo.reader_password)
    settings = load_settings(database={"url": without, "password_env": "SQLAGENT_TEST_PG_PASSWORD",
                                       "catalog_cache_dir": str(tmp_path)})  # fmt: skip
    db = open_database(settings.database_config())
    assert db.sandbox.execute("SELECT count(*) FROM Teams").rows == [[3075]]
    monkeypatch.delenv("SQLAGENT_TEST_PG_PASSWORD")
    with pytest.raises(ValueError, match="SQLAGENT_TEST_PG_PASSWORD, which is not set"):
        settings.database_config()


def test_connections_the_server_ended_are_replaced(pg_demo, tmp_path):
    """The server restarting or an administrator ending sessions: the next question gets a fresh one."""
    settings = load_settings(database={"catalog_cache_dir": str(tmp_path)})
    db = open_database(settings.database_config(pg_demo.reader_url))
    assert db.sandbox.execute("SELECT 1 AS x").rows == [[1]]
    with psycopg.connect(pg_demo.admin_url, autocommit=True) as admin:
        ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE usename = 'sqlagent_reader'").fetchone()[0]  # fmt: skip
    assert ended >= 1
    assert db.sandbox.execute("SELECT 2 AS x").rows == [[2]]
