"""A throwaway PostgreSQL cluster on a loopback port, for the tests and `make demo ENGINE=postgres`.

    python -m data.pg_local start [--dir DIR]   # initdb (once) + pg_ctl start; prints the admin URL
    python -m data.pg_local stop [--dir DIR]
    python -m data.pg_local url [--dir DIR]     # start, load the demo (data/load_postgres.py), print
                                                # the read-only role's URL
    python -m data.pg_local run -- CMD ARGS...  # start, load, run CMD with SQLAGENT_DATABASE__URL set
                                                # to the read-only role, stop

It needs PostgreSQL's server binaries (Debian: `apt-get install postgresql`; found through
SQLAGENT_PG_BINDIR, `pg_config --bindir` or /usr/lib/postgresql/*/bin). PostgreSQL refuses to run as
root: as root the cluster runs as the `postgres` user the Debian package creates (or SQLAGENT_PG_USER),
and its directory is handed to that user. The cluster listens on 127.0.0.1 only, with password
(scram-sha-256) authentication for every connection; the superuser's password is generated once and
kept in DIR/admin.password (mode 0600), the demo reader's in DIR/reader.password.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ADMIN = "sqlagent_admin"


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped (the message says why)."""


def find_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres live, or None when PostgreSQL's server is not installed."""
    candidates = []
    if os.environ.get("SQLAGENT_PG_BINDIR"):
        candidates.append(Path(os.environ["SQLAGENT_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            candidates.append(Path(out))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    candidates += reversed(versions)
    return next((d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()), None)


def _os_user() -> str | None:
    """The user the server runs as: None for the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("SQLAGENT_PG_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ClusterError(
            f"PostgreSQL cannot run as root and there is no user {name!r} to run it as: install "
            "the Debian package (it creates `postgres`) or set SQLAGENT_PG_USER."
        ) from None
    return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    directory: Path
    port: int
    password: str
    reader_password: str  # for the demo's read-only role (data/load_postgres.py)

    def url(self, database: str = "postgres", user: str = ADMIN, password: str | None = None) -> str:
        return f"postgresql://{user}:{password or self.password}@127.0.0.1:{self.port}/{database}"


class LocalCluster:
    def __init__(self, directory: str | Path, bindir: Path | None = None) -> None:
        self.directory = Path(directory).resolve()
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise ClusterError(
                "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
                "`apt-get install postgresql` (Debian), or set SQLAGENT_PG_BINDIR."
            )
        self.user = _os_user()
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        # nice: the server shares the machine with the tests (and the embedded model)
        done = subprocess.run(["nice", "-n", "19", *command], capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise ClusterError(
                f"{args[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done

    def _handover(self, path: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        """initdb once: a cluster whose only superuser is ADMIN, with a generated password."""
        if (self.data / "PG_VERSION").is_file():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self._handover(self.directory)
        password_file = self.directory / "admin.password"
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
        self._handover(password_file)
        reader_file = self.directory / "reader.password"
        reader_file.write_text(secrets.token_urlsafe(18))
        reader_file.chmod(0o600)
        self._run("initdb", "-D", str(self.data), "-U", ADMIN, f"--pwfile={password_file}", "--auth=scram-sha-256",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip

    def port(self) -> int:
        file = self.directory / "port"
        if not file.is_file():
            file.write_text(str(_free_port()))
        return int(file.read_text())

    def running(self) -> bool:
        return (self.data / "postmaster.pid").is_file() and self._run(
            "pg_ctl", "status", "-D", str(self.data), check=False
        ).returncode == 0

    def start(self) -> Cluster:
        self.init()
        port = self.port()
        if not self.running():
            options = (
                f"-p {port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=40 -c shared_buffers=64MB"
            )
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                )
            except ClusterError as error:
                log = self.log.read_text()[-800:] if self.log.is_file() else ""
                raise ClusterError(f"{error}\n{log}") from None
        return Cluster(
            self.directory,
            port,
            (self.directory / "admin.password").read_text().strip(),
            (self.directory / "reader.password").read_text().strip(),
        )

    def stop(self) -> None:
        if self.running():
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def default_dir(name: str = "demo") -> Path:
    """The demo cluster's home: under ~/.cache/sqlagent, or /var/tmp for root (the server's user
    cannot enter root's home)."""
    if os.geteuid() == 0:
        return Path("/var/tmp/sqlagent-pg") / name
    return Path.home() / ".cache" / "sqlagent" / "pg" / name


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m data.pg_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "url", "run"],
                        help="url: start, load the demo and print the read-only role's URL")  # fmt: skip
    parser.add_argument("--dir", default=None, help=f"the cluster's directory (default {default_dir()})")
    args = parser.parse_args(argv)
    if args.action == "run" and not command:
        parser.error("run needs a command: python -m data.pg_local run -- CMD ARGS...")
    try:
        cluster = LocalCluster(Path(args.dir) if args.dir else default_dir())
        if args.action == "stop":
            cluster.stop()
            return 0
        started = cluster.start()
        if args.action == "start":
            print(started.url())
            return 0
        from data.load_postgres import load_demo

        try:
            reader_url = load_demo(
                started.url(), started.reader_password, progress=lambda m: print(m, file=sys.stderr)
            )
        except BaseException:
            if args.action == "run":
                cluster.stop()
            raise
        if args.action == "url":
            print(reader_url)
            return 0
        try:
            return subprocess.run(
                command, env={**os.environ, "SQLAGENT_DATABASE__URL": reader_url}, check=False
            ).returncode
        finally:
            cluster.stop()
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
