"""Bad Spark configuration fails early and clearly: a URL that is not one, a Spark Connect server that
is down or never answers, a database the catalog does not have, a directory that is no warehouse, no
Java runtime. `sqlagent doctor` and the first command each say which, and what to do, in one line,
and nothing waits past limits.connect_timeout_s (a SIGALRM watchdog fails a test that hangs)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.apps.cli import main as cli_main
from agent.apps.doctor import _database
from agent.config import PROJECT_ROOT, load_settings
from tests.security.test_postgres_bad_config import (
    _closed_port,
    _one_error_line,
    cli_env,
    silent_server,
    watchdog,
)

__all__ = ["cli_env", "silent_server", "watchdog"]  # the fixtures, shared with the PostgreSQL suite

SECRET = "s3cret-token"


def _cases(silent_port: int, tmp_path) -> dict[str, tuple[str, str]]:
    """name -> (database.url, what the one error line must say)."""
    return {
        "not-a-url": ("spark-local://data/spark-warehouse", "after three slashes"),
        # Refused at once (UNAVAILABLE), or on a loaded machine not within the 2 s: both name the server.
        "server-down": (f"sc://127.0.0.1:{_closed_port()}/;token={SECRET};database=lahman",
                        "Spark Connect server at sc://127.0.0.1:"),
        "no-answer": (f"sc://127.0.0.1:{silent_port}/;database=lahman", "did not answer within 2 s"),
        "no-warehouse": (f"spark-local:///{tmp_path};database=lahman", "is not a Spark warehouse"),
    }  # fmt: skip


CASES = ["not-a-url", "server-down", "no-answer", "no-warehouse"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["sql", "ask"])
def test_the_first_command_says_what_is_wrong(silent_server, cli_env, capsys, tmp_path, case, command):
    url, needle = _cases(silent_server, tmp_path)[case]
    argv = ["sql", "SELECT 1"] if command == "sql" else ["ask", "How many players are there?"]
    assert cli_main([*argv, "--db", url]) == 1
    line = _one_error_line(capsys.readouterr().err, needle)
    assert SECRET not in line  # a token is never printed


@pytest.mark.parametrize("case", CASES)
def test_doctor_says_what_is_wrong(silent_server, monkeypatch, tmp_path, case):
    url, needle = _cases(silent_server, tmp_path)[case]
    monkeypatch.setenv("SQLAGENT_DATABASE__URL", url)
    monkeypatch.setenv("SQLAGENT_LIMITS__CONNECT_TIMEOUT_S", "2")
    (check,) = _database(load_settings())
    assert (check.name, check.ok) == ("database", False)
    assert needle in check.detail and SECRET not in check.detail


@pytest.mark.engines
def test_a_database_the_catalog_does_not_have(spark_demo, monkeypatch):
    monkeypatch.setenv(
        "SQLAGENT_LIMITS__CONNECT_TIMEOUT_S", "120"
    )  # the server is up: only the database is wrong
    monkeypatch.setenv(
        "SQLAGENT_DATABASE__URL", spark_demo.connect_url.replace("database=lahman", "database=nope")
    )
    (check,) = _database(load_settings())
    assert not check.ok and "the catalog has no database 'nope'" in check.detail


def test_no_java_runtime_says_what_to_install(tmp_path):
    """A fresh process (no JVM yet) with JAVA_HOME pointing nowhere: the first command says to install
    a Java 17 runtime instead of PySpark's 'Java gateway process exited'."""
    (tmp_path / "metastore_db").mkdir()
    (tmp_path / "metastore_db" / "service.properties").write_text("")  # looks like a warehouse
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-jdk"), "SQLAGENT_TRACKING__ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "agent.apps.cli", "sql", "SELECT 1", "--db", f"spark-local:///{tmp_path};database=x"],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    line = _one_error_line(done.stderr, "needs a Java 17+ runtime")
    assert "apt-get install openjdk-17-jre-headless" in line
