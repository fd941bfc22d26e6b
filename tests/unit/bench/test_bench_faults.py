"""The load-and-faults bench's parts, and one short run of the whole harness (3 clients, a few seconds).

The fake LM server must answer what DSPy's ChatAdapter really sends, each fault must break what it
says and repair it, the judge must call a 5xx or a traceback a failure, and a run must find the
feedback it was acknowledged.
"""

from __future__ import annotations

import json
import sqlite3

import dspy
import pytest

from bench import bench_faults
from bench.fake_lm_server import reply
from bench.fault_clients import judge_ask, judge_feedback
from bench.faults import DatabaseLog, FaultRecord, LMProcess, replace_database, store_unwritable
from tests.tracking_store import temporary_tracking


class ToSQL(dspy.Signature):
    """Write SQL."""

    question: str = dspy.InputField()
    sql: str = dspy.OutputField()


def test_fake_lm_answers_a_chat_adapter_prompt():
    adapter = dspy.ChatAdapter()
    messages = adapter.format(ToSQL, demos=[], inputs={"question": "Who hit the most home runs in 1961?"})
    parsed = adapter.parse(ToSQL, reply(messages))
    assert "b.yearID = 1961" in parsed["sql"]


def test_fake_lm_refuses_a_prompt_without_output_fields():
    with pytest.raises(ValueError, match="no output fields"):
        reply([{"role": "user", "content": "hello"}])


@pytest.mark.parametrize("http, body, ending, kind", [
    (200, {"status": "ok", "trace_id": "t"}, "answer", "ok"),
    (200, {"status": "error", "error_kind": "internal", "error": "The generate step failed: refused"},
     "clear_error", "internal"),
    (200, {"status": "error", "error": "no kind"}, "failure", "status error without error_kind"),
    (429, {"detail": "'a' asked 10 questions in the last minute"}, "clear_error", "http 429"),
    (500, {"detail": "Internal Server Error"}, "failure", "http 500"),
    (503, {"detail": "The agent is unavailable: boom"}, "failure", "http 503"),
    (422, {"detail": "Traceback (most recent call last):\n  File \"/x.py\""}, "failure", "http 422 unreadable"),
    (502, None, "failure", "http 502 unreadable"),
])  # fmt: skip
def test_judge_ask(http, body, ending, kind):
    got = judge_ask(http, json.dumps(body) if body else "<html>bad gateway</html>", body)
    assert got[:2] == (ending, kind)


def test_judge_feedback():
    assert judge_feedback(200, "{}", {"assessment_ids": ["a-1"]})[0] == "answer"
    assert judge_feedback(200, "{}", {"assessment_ids": []})[0] == "failure"
    assert judge_feedback(503, "{}", {"detail": "The tracking store is unavailable."})[0] == "clear_error"
    assert judge_feedback(500, "{}", {"detail": "Internal Server Error"})[0] == "failure"


def test_lm_process_dies_and_comes_back():
    lm = LMProcess(bench_faults.free_port())
    lm.start()
    try:
        with lm.killed() as detail:
            assert detail.startswith("SIGKILL pid ")
            assert not lm.healthy()
        assert lm.healthy()
    finally:
        lm.kill()


def _write(path, timeout: float) -> None:
    conn = sqlite3.connect(path, timeout=timeout)
    try:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
    finally:
        conn.close()


def test_store_unwritable_then_writable(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    db = store / "mlflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with store_unwritable(db), pytest.raises(sqlite3.OperationalError):
        _write(db, timeout=0.1)
    _write(db, timeout=0.1)
    assert (store.stat().st_mode & 0o200) and (db.stat().st_mode & 0o200)  # the modes are back


def test_replace_database_swaps_the_file_atomically(tmp_path):
    db = tmp_path / "x.duckdb"
    db.write_bytes(b"data")
    before = db.stat().st_ino
    with replace_database(db):
        pass
    assert db.stat().st_ino != before and db.read_bytes() == b"data"
    assert not (tmp_path / "x.duckdb.new").exists()


def test_the_database_log_says_what_followed_a_replaced_file():
    fault, t0 = FaultRecord(name="replace database file", started_s=2.0, ended_s=2.5), 100.0
    log = DatabaseLog()
    assert "no reopen" in log.after(fault, t0)
    log.entries = [(101.0, DatabaseLog.ENGINE), (102.4, DatabaseLog.ENGINE)]  # the first is older
    assert log.after(fault, t0).startswith(
        "the engine reopened the new file 0.4 s after the swap; same fingerprint"
    )
    log.entries.append((102.5, DatabaseLog.DATABASE))
    assert "stale until a restart" in log.after(fault, t0)


def test_a_short_run_with_faults_passes_and_finds_its_feedback(tmp_path, capsys):
    out = tmp_path / "run.json"
    with temporary_tracking(tmp_path, "unused"):  # for its cleanup: tracing back off for the next tests
        code = bench_faults.main(
            [
                "--clients",
                "3",
                "--seconds",
                "4",
                "--faults",
                "--hold",
                "0.5",
                "--store-hold",
                "0.5",
                "--timeout",
                "30",
                "--json",
                str(out),
            ]
        )
    record = json.loads(out.read_text())
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    assert [f["name"] for f in record["faults"]] == [
        "kill LM server",
        "tracking store unwritable",
        "replace database file",
    ]
    assert all(f["ended_s"] is not None and "failed" not in f["detail"] for f in record["faults"])
    replaced = record["faults"][2]["detail"]  # the server read the new file, its schema still current
    assert "the engine reopened the new file" in replaced and "same fingerprint" in replaced, replaced
    assert record["questions"] and {q["client"] for q in record["questions"]} == {0, 1, 2}
    rc = record["reconciliation"]
    assert rc["acknowledged"] > 0 and rc["found_via_api"] == rc["found_via_mlflow"] == rc["acknowledged"]
    assert "kill LM server" in printed.out and "lost 0" in printed.out
