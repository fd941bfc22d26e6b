import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# pg_cluster / pg_demo: a throwaway PostgreSQL server for the tests marked `engines`; spark_demo: the
# demo Spark warehouse and the run's one Spark session.
pytest_plugins = ["tests.postgres_server", "tests.spark_warehouse"]


@pytest.fixture(autouse=True, scope="session")
def _no_tracing_unless_asked():
    """Unit tests do not write traces; tests of tracing enable it into their own temporary store."""
    import mlflow

    mlflow.tracing.disable()
    yield
