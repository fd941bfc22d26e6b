"""The graph behind a real LangGraph API server (`langgraph dev`, the in-memory server that
LangGraph Studio talks to), driven with the LangGraph SDK: create a thread, run, get interrupted
(a clarifying question, then the SQL awaiting approval), resume with `Command(resume=...)`, read
the state. "The model" is bench/fake_lm_server.py, a separate process behind an OpenAI endpoint,
so the server builds its LM from configuration alone, as it would for a hosted model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bench.bench_faults import free_port
from bench.faults import LMProcess

ROOT = Path(__file__).resolve().parents[3]
LANGGRAPH = Path(sys.executable).with_name("langgraph")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not LANGGRAPH.exists():
        pytest.fail(f"{LANGGRAPH} is missing: langgraph-cli[inmem] is a dev dependency (uv sync)")
    work = tmp_path_factory.mktemp("langgraph")
    lm = LMProcess(free_port())
    lm.start()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SQLAGENT_LM__MODEL": "openai/fake-lm", "SQLAGENT_LM__API_BASE": lm.api_base,
        "SQLAGENT_LM__API_KEY_ENV": "SQLAGENT_FAKE_LM_KEY", "SQLAGENT_FAKE_LM_KEY": "fake",
        "SQLAGENT_LM__CACHE": "false", "SQLAGENT_LIMITS__APPROVE_SQL": "true",
        "SQLAGENT_TRACKING__URI": f"sqlite:///{work}/mlflow.db",
        "SQLAGENT_TRACKING__CHECKPOINT_DB": str(work / "threads.sqlite"),
        "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false",
    }  # fmt: skip
    log = (work / "server.log").open("w")
    # cwd: the in-memory server keeps its state in ./.langgraph_api, so not in the project.
    proc = subprocess.Popen(
        [
            str(LANGGRAPH),
            "dev",
            "--no-browser",
            "--no-reload",
            "--allow-blocking",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--config",
            str(ROOT / "langgraph.json"),
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"langgraph dev exited ({proc.returncode}):\n{(work / 'server.log').read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{base}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"langgraph dev did not start in 120 s:\n{(work / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        lm.kill()
        log.close()
        shutil.rmtree(work / ".langgraph_api", ignore_errors=True)


def test_thread_run_interrupt_resume_state(server):
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    assert any(a["graph_id"] == "sqlagent" for a in client.assistants.search())
    thread = client.threads.create()
    tid = thread["thread_id"]

    client.runs.wait(
        tid,
        "sqlagent",
        input={"question": "How many home runs did Ken Griffey hit?"},
        context={"role": "public"},
    )
    state = client.threads.get_state(tid)
    assert state["next"] == ["clarify"]
    (pause,) = [i for task in state["tasks"] for i in task["interrupts"]]
    assert pause["value"]["kind"] == "clarify" and "griffke02" in [
        c["value"] for c in pause["value"]["candidates"]
    ]

    client.runs.wait(tid, "sqlagent", command={"resume": "2"}, context={"role": "public"})
    state = client.threads.get_state(tid)
    assert state["next"] == ["approve"]  # limits.approve_sql: the checked SQL waits for a person
    (pause,) = [i for task in state["tasks"] for i in task["interrupts"]]
    assert pause["value"]["kind"] == "approve_sql" and pause["value"]["sql"].startswith("SELECT")
    assert [m["value"] for m in state["values"]["mappings"]] == ["griffke02"]

    client.runs.wait(tid, "sqlagent", command={"resume": "yes"}, context={"role": "public"})
    state = client.threads.get_state(tid)
    values = state["values"]
    assert state["next"] == [] and values["status"] == "ok", values.get("error")
    assert values["rows"] and values["answer"]
    assert [n["name"] for n in values["nodes"]][-3:] == ["safety", "execute", "answer"]
