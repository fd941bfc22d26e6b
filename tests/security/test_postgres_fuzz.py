"""Property tests on the PostgreSQL engine: SQL-shaped noise (the policy fuzzer's generators, plus
PostgreSQL's own dangerous words) sent straight to the engine, the policy bypassed. Whatever the text,
`execute` returns a result or raises SandboxError (never another exception, never a hang past the
timeout), the pool keeps serving, and afterwards nothing in the database has changed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.postgres_server import database_digest
from tests.security.test_policy_fuzz import IDENTIFIERS, KEYWORDS, PUNCTUATION, select_prefixed
from tools.sql.engines import open_engine
from tools.sql.engines.base import EngineLimits, ExecutionResult, SandboxError

pytestmark = pytest.mark.engines

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                    HealthCheck.function_scoped_fixture])  # fmt: skip
POSTGRES_WORDS = [
    "pg_read_file('/etc/passwd')", "lo_import('/etc/passwd')", "lo_create(0)", "set_config('statement_timeout', '0', false)",
    "pg_sleep(0.01)", "COPY", "PROGRAM 'id'", "STDOUT", "DO $$ BEGIN END $$", "FUNCTION", "LANGUAGE sql", "EXTENSION",
    "dblink", "FOR UPDATE", "RETURNING *", "query_to_xml('DELETE FROM \"People\"', true, true, '')", "\"People\"",
    "\"Batting\"", "lahman.", "pg_catalog.", "current_setting('search_path')", "LOCK", "GRANT", "ROLE", "::text",
]  # fmt: skip

postgres_grammarish = st.lists(
    st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(IDENTIFIERS), st.sampled_from(PUNCTUATION),
              st.sampled_from(POSTGRES_WORDS)),
    min_size=1, max_size=25,
).map(" ".join)  # fmt: skip


@pytest.fixture(scope="module")
def engine(pg_demo):
    before = database_digest(pg_demo.admin_url)
    with open_engine(pg_demo.reader_url, EngineLimits(timeout_s=1, max_rows=50, pool_size=2)) as e:
        yield e
        assert e.execute('SELECT count(*) FROM "People"').rows == [[21271]]  # the pool still serves
    assert database_digest(pg_demo.admin_url) == before


def _run(engine, text: str) -> None:
    try:
        assert isinstance(engine.execute(text), ExecutionResult)
    except SandboxError as error:
        assert error.kind in ("refused", "execution", "timeout") and error.message, error


@SETTINGS
@given(text=postgres_grammarish)
def test_noise_is_refused_or_harmless(engine, text: str) -> None:
    _run(engine, text)


@SETTINGS
@given(text=select_prefixed)
def test_select_prefixed_noise_is_refused_or_harmless(engine, text: str) -> None:
    _run(engine, text)


@SETTINGS
@given(text=st.text(max_size=200))
def test_arbitrary_text(engine, text: str) -> None:
    _run(engine, text)
