"""The faults bench/bench_faults.py injects into a running server, one at a time.

Each fault is a context manager: entering breaks something, leaving repairs it; the bench holds it
for a few seconds while the clients keep asking. What each did is a `FaultRecord`.

- `LMProcess`: the fake LM server (bench/fake_lm_server.py) as a child process; the fault is a
  SIGKILL, the repair a restart on the same port (so `lm.api_base` stays right).
- `store_unwritable`: the MLflow sqlite store cannot be written: chmod (file read-only, directory
  read-only so no journal can be created) when that stops this process; as root chmod stops
  nothing, so the store's directory is moved away for the while (a lock would not do: MLflow sets
  a 20 s busy timeout, so writers would only wait).
- `replace_database`: the database file is replaced by a copy with an atomic rename, as a deploy
  that ships new data would. The engine reopens the new file at its next query (after the queries
  still running on the old one end) and the copy has the same fingerprint, so the schema and value
  index stay current; `DatabaseLog` reads what the engine and the Database logged about it, and the
  fault's record says when the reopen came (or that it never did).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent


class FaultRecord(BaseModel):
    name: str
    started_s: float  # since the run began
    ended_s: float | None = None
    detail: str = ""


class LMProcess:
    def __init__(self, port: int, delay_ms: float = 0.0):
        self.port = port
        self.delay_ms = delay_ms
        self.proc: subprocess.Popen | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 10.0) -> None:
        # stderr to a file, not a pipe: nobody reads a pipe during the run, and a full one would block
        # the server. The child keeps its own descriptor once this one is closed.
        with tempfile.TemporaryFile() as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.fake_lm_server", "--port", str(self.port),
                 "--delay-ms", str(self.delay_ms)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(
                        f"the fake LM server exited with {self.proc.returncode}: "
                        f"{log.read().decode(errors='replace')[-500:]}"
                    )
                if self.healthy():
                    return
                time.sleep(0.05)
        raise RuntimeError(f"the fake LM server did not answer on port {self.port} within {timeout_s} s")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_base}/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # no clean shutdown: connections drop mid-reply
            self.proc.wait(timeout=10)
        self.proc = None

    @contextlib.contextmanager
    def killed(self) -> Iterator[str]:
        pid = self.proc.pid if self.proc else None
        self.kill()
        try:
            yield f"SIGKILL pid {pid}"
        finally:
            self.start()


def _can_write(directory: Path) -> bool:
    probe = directory / ".write-probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


@contextlib.contextmanager
def store_unwritable(db_file: Path) -> Iterator[str]:
    """`db_file` cannot be written while inside; yields how that was done."""
    directory = db_file.parent
    file_mode, dir_mode = stat.S_IMODE(db_file.stat().st_mode), stat.S_IMODE(directory.stat().st_mode)
    db_file.chmod(0o444)
    directory.chmod(0o555)  # and no journal can be created next to it: open connections cannot write either
    try:
        if not _can_write(directory):
            yield "chmod 0444 file, 0555 directory"
            return
    finally:
        directory.chmod(dir_mode)
        db_file.chmod(file_mode)
    # Root: the modes stop nothing. Move the directory away instead: a new connection cannot open the
    # file and an open one cannot create its journal (sqlite names it after the path it opened).
    aside = directory.with_name(directory.name + ".aside")
    os.rename(directory, aside)
    try:
        yield "store directory moved away (running as root: chmod cannot stop writes)"
    finally:
        if directory.exists():
            raise RuntimeError(f"{directory} was recreated while the store was away; the store is in {aside}")
        os.rename(aside, directory)


@contextlib.contextmanager
def replace_database(db_file: Path) -> Iterator[str]:
    """Replace `db_file` by a copy of itself, atomically: readers see the old file or the new one
    (the server reopens the new one at its next query: tools/sql/engines/duckdb.py)."""
    staged = db_file.with_name(db_file.name + ".new")
    shutil.copy2(db_file, staged)
    before = db_file.stat().st_ino
    os.replace(staged, db_file)
    yield f"os.replace: inode {before} -> {db_file.stat().st_ino}"


class DatabaseLog(logging.Handler):
    """The warnings tools/sql/engines/duckdb.py (a replaced file reopened) and tools/sql/database.py
    (the schema is stale: a restart is needed) log while attached, at `time.monotonic()`."""

    ENGINE, DATABASE = "tools.sql.engines.duckdb", "tools.sql.database"

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.entries: list[tuple[float, str]] = []  # (monotonic time, logger name)

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append((time.monotonic(), record.name))

    def attach(self) -> DatabaseLog:
        for name in (self.ENGINE, self.DATABASE):
            logging.getLogger(name).addHandler(self)
        return self

    def detach(self) -> None:
        for name in (self.ENGINE, self.DATABASE):
            logging.getLogger(name).removeHandler(self)

    def after(self, fault: FaultRecord, t0: float) -> str:
        """What followed a `replace_database` fault (its times are seconds since `t0`)."""
        swapped = t0 + fault.started_s
        seen = [(t, name) for t, name in self.entries if t >= swapped]
        reopened = [t for t, name in seen if name == self.ENGINE]
        if not reopened:
            return "the engine logged no reopen after the swap: the server still reads the old file"
        stale = any(name == self.DATABASE for _, name in seen)
        return f"the engine reopened the new file {reopened[0] - swapped:.1f} s after the swap; " + (
            "other contents: the schema and value index are stale until a restart"
            if stale
            else "same fingerprint: the schema and value index still describe it"
        )
