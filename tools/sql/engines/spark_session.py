"""Where a Spark engine's SQL runs: a `database.url` read into a target, and the process-wide sessions.

    spark-local:///data/spark-warehouse;database=lahman    local mode, a warehouse relative to the project
    spark-local:////srv/warehouse;database=lahman           local mode, an absolute warehouse path
    sc://spark.example.com:15002/;token=...;database=lahman  a cluster through Spark Connect (Databricks
                                                             connects the same way, see docs/engines.md)

Parameters follow Spark Connect's `;key=value` syntax. `database` (optionally `catalog.database`)
names the namespace whose tables the agent sees; it is removed before the rest of an `sc://` URL
goes to Spark Connect.

**Local mode** runs Spark inside this process (PySpark starts a JVM through py4j) on
`local[limits.threads]` with `limits.memory_limit` of driver memory. The warehouse is a directory as
Spark writes it with Hive support (data/load_spark.py makes one): the table files and `metastore_db`,
the Derby database of Spark's catalog. Derby lets one process open a database at a time, so each
process opens a private copy of `metastore_db` (a few MB, removed at exit): several processes read
one warehouse, and nothing a session does to its catalog reaches the shared one. One process runs
one local warehouse (Spark allows one SparkContext per process); each engine gets its own
`newSession()` of it (its own current database and SQL settings). The JVM listens on loopback only.

**Spark Connect** opens one remote session per URL, after a bounded probe: a server that is down or a
wrong host fails within `limits.connect_timeout_s` with what to do, instead of the client's default
retries (minutes).

Both are opened lazily, once per process, by the first engine that needs them.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tools.sql.engines.base import SandboxError, clean_error

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOCAL_SCHEME = "spark-local"
CONNECT_SCHEME = "sc"
_URL_PARAMS = {"database"}  # ours; every other `;key=value` of an sc:// URL is Spark Connect's
LOG4J_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
MIN_JAVA = 17
_INSTALL_JAVA = (
    "install a Java 17+ runtime (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME "
    "to one, or run Spark as a server and use an sc:// URL"
)


@dataclass(frozen=True)
class SparkTarget:
    """A Spark `database.url`, read: local mode on a warehouse directory, or a Spark Connect server."""

    mode: Literal["local", "connect"]
    database: str | None  # the namespace to use ("lahman" or "catalog.lahman"); None: the session's
    warehouse: Path | None = None  # local mode
    remote: str | None = None  # connect: the sc:// URL Spark Connect gets (our parameters removed)
    secrets: tuple[str, ...] = field(default=(), compare=False)  # parameter values never to show

    @property
    def display(self) -> str:
        """The target as messages may show it: no token or password."""
        shown = f"{LOCAL_SCHEME}://{self.warehouse}" if self.mode == "local" else str(self.remote)
        for secret in self.secrets:
            shown = shown.replace(secret, "***")
        return shown + (f";database={self.database}" if self.database else "")


def parse_url(url: str, root: Path | None = None) -> SparkTarget:
    """Read a Spark URL (module docstring). A relative warehouse (`spark-local:///rel`) is resolved
    against `root` (the project root) when given, else kept relative to the working directory."""
    scheme, _, rest = url.partition("://")
    head, *params = rest.split(";")
    values: dict[str, str] = {}
    passed: list[str] = []
    for param in params:
        if not param:
            continue
        key, sep, value = param.partition("=")
        if not sep:
            raise ValueError(
                f"database.url {_redact(url)}: parameter {key!r} has no value (write ;{key}=VALUE)."
            )
        if key in _URL_PARAMS:
            values[key] = value
        else:
            passed.append(param)
    database = values.get("database") or None
    if database is not None and not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?", database):
        raise ValueError(
            f"database.url: database={database!r} must be a name or catalog.name (letters, digits, _)."
        )
    if scheme.lower() == CONNECT_SCHEME:
        remote = f"{scheme}://{head}" + "".join(f";{p}" for p in passed)
        secrets = tuple(
            v for k, _, v in (p.partition("=") for p in passed) if k.lower() in {"token", "password"}
        )
        return SparkTarget("connect", database, remote=remote, secrets=secrets)
    if scheme.lower() != LOCAL_SCHEME:
        raise ValueError(
            f"database.url {_redact(url)}: not a Spark URL ({LOCAL_SCHEME}:/// or {CONNECT_SCHEME}://)."
        )
    if passed:
        names = ", ".join(p.partition("=")[0] for p in passed)
        raise ValueError(f"database.url: {LOCAL_SCHEME} takes only ;database=NAME, not {names}.")
    # SQLAlchemy's convention: three slashes and a relative path, four for an absolute one.
    if not head.startswith("/") or head == "/":
        raise ValueError(
            f"database.url {url!r}: write the warehouse directory after three slashes, "
            f"{LOCAL_SCHEME}:///data/spark-warehouse (relative) or {LOCAL_SCHEME}:////srv/warehouse (absolute)."
        )
    path = Path(head[1:])
    if not path.is_absolute() and root is not None:
        path = root / path
    return SparkTarget("local", database, warehouse=path)


def _redact(url: str) -> str:
    return re.sub(r"(;(?:token|password)=)[^;]*", r"\1***", url, flags=re.IGNORECASE)


# -- what local mode needs on this machine -----------------------------------------------------------


def require_pyspark() -> None:
    if importlib.util.find_spec("pyspark") is None:
        raise SandboxError(
            "database",
            "The Spark engine needs PySpark: install the project's `spark` extra (`make setup` installs every "
            "extra; or `uv sync --extra spark`, or `pip install 'pyspark[connect]>=4.3,<5'`).",
        )


def java_runtime() -> tuple[str, int]:
    """The `java` PySpark will launch (JAVA_HOME's, else the one on PATH) and its major version, or a
    SandboxError("database") saying what to install."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).is_file():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH and JAVA_HOME is not set"
        raise SandboxError(
            "database", f"Spark local mode needs a Java {MIN_JAVA}+ runtime: {where}; {_INSTALL_JAVA}."
        )
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxError(
            "database", f"Cannot run {java} -version ({clean_error(error)}); {_INSTALL_JAVA}."
        ) from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        raise SandboxError("database", f"{java} -version did not print a Java version; {_INSTALL_JAVA}.")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # Java 8 and older say "1.8.0"
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise SandboxError(
            "database", f"Spark 4 needs Java {MIN_JAVA} or newer; {java} is Java {major}: {_INSTALL_JAVA}."
        )
    return java, major


def spark_memory(limit: str) -> str:
    """limits.memory_limit ("2GB", "512MiB") in Spark's notation ("2048m")."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", limit, re.IGNORECASE)
    if not match:
        raise ValueError(f"limits.memory_limit {limit!r}: expected a size such as 2GB or 512MB.")
    scale = {"": 1 / 2**20, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[match.group(2).upper()]
    return f"{max(256, int(float(match.group(1)) * scale))}m"


# -- the process-wide sessions ------------------------------------------------------------------------


@dataclass
class _Local:
    warehouse: Path
    session: SparkSession
    writable: bool


_lock = threading.Lock()
_local: _Local | None = None
_remote: dict[str, SparkSession] = {}


def local_session(
    warehouse: Path,
    *,
    threads: int,
    memory_limit: str,
    writable: bool = False,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """The process's Spark local-mode session on `warehouse`, started on first use.

    `writable` (the loader) opens the warehouse's own metastore, creating it if needed; otherwise a
    private copy of it. A process that already runs a session reuses it for the same warehouse (the
    tests load a warehouse and query it in one process) and refuses another warehouse.
    `extra_conf`: Spark settings added at start (the tests start a Spark Connect server with them).
    """
    global _local
    warehouse = warehouse.resolve()
    metastore = warehouse / "metastore_db"
    if not writable and not (metastore / "service.properties").is_file():
        raise SandboxError(
            "database",
            f"{warehouse} is not a Spark warehouse with a catalog ({metastore} is missing): build the demo "
            "one with `python -m data.load_spark`, or point database.url at a warehouse that Spark wrote "
            "with Hive support.",
        )
    with _lock:
        if _local is not None:
            if _local.warehouse != warehouse:
                raise SandboxError(
                    "database",
                    f"This process already runs Spark local mode on {_local.warehouse}; one process serves one "
                    f"local warehouse, not also {warehouse} (run another process, or use Spark Connect).",
                )
            return _local.session
        require_pyspark()
        java_runtime()
        if writable:
            warehouse.mkdir(parents=True, exist_ok=True)
            logs = warehouse
        else:
            logs = Path(tempfile.mkdtemp(prefix="sqlagent-spark-"))
            atexit.register(shutil.rmtree, logs, True)
            shutil.copytree(metastore, logs / "metastore_db", ignore=shutil.ignore_patterns("*.lck"))
            metastore = logs / "metastore_db"
        conf = _local_conf(warehouse, metastore, logs, threads, memory_limit, create=writable)
        conf.update(extra_conf or {})
        session = _start(conf)
        _local = _Local(warehouse, session, writable)
        atexit.register(_stop_local)
        return session


def _local_conf(
    warehouse: Path, metastore: Path, logs: Path, threads: int, memory_limit: str, *, create: bool
) -> dict[str, str]:
    java_options = (
        f"-Dderby.stream.error.file={logs / 'derby.log'} -Dlog4j2.configurationFile=file:{LOG4J_CONFIG}"
    )
    return {
        "spark.master": f"local[{max(1, int(threads))}]",
        "spark.app.name": "sqlagent",
        "spark.driver.memory": spark_memory(memory_limit),
        "spark.driver.extraJavaOptions": java_options,
        # Nothing listens beyond this machine, and no web UI.
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # A question reads thousands of rows, not billions: 200 shuffle partitions would be 200 tasks.
        "spark.sql.shuffle.partitions": str(max(1, int(threads))),
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={metastore};create={'true' if create else 'false'}"
        ),
        # Catalog tables only: `SELECT * FROM parquet.`/path`` and friends are not tables.
        "spark.sql.runSQLOnFiles": "false",
    }


def quiet_query_errors() -> None:
    """PySpark logs every failed query's error, with its stack trace, as JSON on stderr; the engine
    already raises it as a SandboxError that the agent routes on (the repair step reads it)."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True


def _start(conf: dict[str, Any]) -> SparkSession:
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    quiet_query_errors()

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the JVM's services bind to loopback only
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.enableHiveSupport().getOrCreate()
    except (PySparkException, OSError, RuntimeError) as error:
        raise SandboxError(
            "database",
            f"Spark local mode could not start its JVM: {clean_error(error)} (Java: {java_runtime()[0]}).",
        ) from None
    session.sparkContext.setLogLevel("OFF")  # errors reach the caller as exceptions, not as log lines
    return session


def _stop_local() -> None:
    global _local
    with _lock:
        if _local is not None:
            _local.session.stop()
            _local = None


def connect_session(remote: str, display: str, *, connect_timeout_s: float) -> SparkSession:
    """The process's Spark Connect session for `remote`, opened on first use after a probe that
    answers within `connect_timeout_s` (SandboxError("database") with what to check otherwise)."""
    with _lock:
        if remote in _remote:
            return _remote[remote]
        require_pyspark()
        quiet_query_errors()
        from pyspark.sql.connect.client.retries import DefaultPolicy
        from pyspark.sql.connect.session import SparkSession as RemoteSession

        try:
            session = RemoteSession.builder.remote(remote).create()
        except Exception as error:  # the URL itself (PySparkValueError INVALID_CONNECT_URL, ...)
            raise SandboxError("database", f"{display}: {clean_error(error)}") from None
        # One quick retry while probing, so a wrong address fails in seconds, then a few for queries
        # (a server restarting); the client's default retries a down server for minutes.
        session.client.set_retry_policies(
            [DefaultPolicy(max_retries=1, initial_backoff=200, max_backoff=1000)]
        )
        _probe(session, display, connect_timeout_s)
        session.client.set_retry_policies(
            [DefaultPolicy(max_retries=3, initial_backoff=200, max_backoff=5000)]
        )
        session.conf.set(
            "spark.sql.runSQLOnFiles", "false"
        )  # where the server allows it; the guard checks anyway
        _remote[remote] = session
        return session


def _probe(session: SparkSession, display: str, timeout_s: float) -> None:
    answer: list[Any] = []

    def ask() -> None:
        try:
            answer.append(session.version)
        except Exception as error:
            answer.append(error)

    probe = threading.Thread(target=ask, name="spark-connect-probe", daemon=True)
    probe.start()
    probe.join(timeout_s)
    if not answer:
        raise SandboxError(
            "database",
            f"The Spark Connect server at {display} did not answer within {timeout_s:g} s "
            "(limits.connect_timeout_s): check the host and port in database.url and that the server runs.",
        )
    if isinstance(answer[0], BaseException):
        detail = connect_error(answer[0])
        raise SandboxError(
            "database", f"Cannot reach the Spark Connect server at {display}: {detail}"
        ) from None


def connect_error(error: BaseException) -> str:
    """A gRPC failure in words: which status, and what to check."""
    text = str(error)
    status = re.search(r"status = StatusCode\.(\w+)", text)
    details = re.search(r'details = "([^"]*)"', text)
    code = status.group(1) if status else type(error).__name__
    said = details.group(1) if details else clean_error(error)
    hint = {
        "UNAVAILABLE": "is the server running (Spark's sbin/start-connect-server.sh) and are host and port right?",
        "UNAUTHENTICATED": "the server refused the credentials: check ;token= in database.url.",
        "PERMISSION_DENIED": "the server refused this user: check its grants.",
        "DEADLINE_EXCEEDED": "the server did not answer in time.",
    }.get(code, "check database.url.")
    return f"{code}: {said[:300]}; {hint}"
