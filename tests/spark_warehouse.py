"""Spark for the tests marked `engines`: the demo warehouse and one local Spark session for the run.

`spark_demo` builds `data/spark-warehouse` with the project's loader (python -m data.load_spark, in a
subprocess like `make demo ENGINE=spark`; skipped when the build is up to date), then starts the
process's one Spark local-mode session on it (a private copy of its catalog, as in production) with
a Spark Connect server inside the same JVM on a free loopback port, so the Spark Connect code path is
tested too without a second JVM. Spark starts once per test run (~15-60 s on 2 cores).

Without PySpark or a Java 17+ runtime the tests are skipped with the reason, unless
SQLAGENT_REQUIRE_ENGINES=1 (CI sets it): then they fail.

`warehouse_digest` is what "nothing in the warehouse changed" means: every file under the warehouse
(table files, the catalog's Derby files) with its sha256.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.postgres_server import _unavailable

ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE = ROOT / "data" / "spark-warehouse"


@dataclass(frozen=True)
class SparkDemo:
    warehouse: Path
    url: str  # local mode on the warehouse
    connect_url: str  # the Spark Connect server in the same JVM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def spark_demo() -> SparkDemo:
    from tools.sql.engines.base import SandboxError
    from tools.sql.engines.spark_session import connect_session, java_runtime, local_session, require_pyspark

    try:
        require_pyspark()
        java_runtime()
    except SandboxError as error:
        _unavailable(error.message)
    built = subprocess.run([sys.executable, "-m", "data.load_spark", "--warehouse", str(WAREHOUSE)],
                           capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    if built.returncode != 0:
        pytest.fail(f"python -m data.load_spark failed:\n{built.stdout}\n{built.stderr}", pytrace=False)
    port = _free_port()
    local_session(WAREHOUSE, threads=2, memory_limit="1GB", extra_conf={
        "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    })  # fmt: skip
    demo = SparkDemo(
        warehouse=WAREHOUSE,
        url=f"spark-local:///{WAREHOUSE};database=lahman",
        connect_url=f"sc://127.0.0.1:{port}/;database=lahman",
    )
    # The Connect server's first session is slow (its own catalog client): open it once, patiently.
    connect_session(f"sc://127.0.0.1:{port}", demo.connect_url, connect_timeout_s=300)
    return demo


def warehouse_digest(warehouse: Path) -> dict[str, str]:
    return {
        str(path.relative_to(warehouse)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(warehouse.rglob("*"))
        if path.is_file()
    }
