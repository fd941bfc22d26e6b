"""Load benchmark of the HTTP API: N concurrent clients (threads + httpx) on loopback, a fake LM.

Each client asks one question with POST /api/ask, then posts feedback on its trace. Asserts no HTTP
errors, every trace present in MLflow, and no feedback lost (one user_correctness assessment per
trace). Prints throughput and latency percentiles. Bounded: --clients (default 20) requests in
total, --timeout seconds overall (default 120).

    .venv/bin/python -m bench.bench_api [--clients 20] [--lm-delay-ms 50]

`--lm-delay-ms` makes each fake LM call sleep, standing in for a (much slower) real model; the
server runs all agent jobs on one worker thread, so the asks queue and the rest stays responsive.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agent  # noqa: E402,F401  (offline switches)

SQL = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = {year} ORDER BY b.HR DESC LIMIT 1"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _handlers(delay_s: float):
    import re

    def slow(fn):
        def run(inputs):
            if delay_s:
                time.sleep(delay_s)
            return fn(inputs)

        return run

    def sql(inputs):
        year = re.search(r"(19\d\d|20\d\d)", inputs.get("question", "")) or None
        return {"sql": SQL.format(year=year.group(1) if year else 1927)}

    return {
        "standalone_question": slow(lambda i: {"standalone_question": i["follow_up"]}),
        "mentions": slow(lambda i: {"mentions": []}),
        "sql": slow(sql),
        "answer": slow(lambda i: {"answer": "The leader."}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--lm-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 200:
        parser.error("--clients must be in 1..200")

    import httpx
    import mlflow
    import uvicorn

    from agent.apps.server import create_app
    from agent.apps.users import UserStore
    from agent.config import load_settings
    from agent.service import Agent
    from tests.fake_lm import fake_lm

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    settings = load_settings(tracking={
        "enabled": True, "uri": f"sqlite:///{tmp}/mlflow.db", "experiment": "bench-api",
        "checkpoint_db": f"{tmp}/threads.sqlite",
    })  # fmt: skip

    def factory(s, db, role):
        lm, _ = fake_lm(_handlers(args.lm_delay_ms / 1000))
        return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    golden = tmp / "golden.jsonl"
    golden.write_text("")
    # With tokens, one user per client: feedback is recorded under the token's user, which is what
    # the check below reads back (and the per-user limits hold no client back: one question each).
    users = UserStore(tmp / "users.sqlite")
    tokens = {n: users.add(f"bench-{n}", "analyst", ["ask", "feedback"])[1] for n in range(-1, args.clients)}
    app = create_app(settings, agent_factory=factory, golden_path=golden, auth=True, users=users)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"

    # Warm up: the first ask builds the agent (schema, value index) and imports what DSPy needs.
    started = time.perf_counter()
    with httpx.Client(
        base_url=base, timeout=args.timeout, headers={"Authorization": f"Bearer {tokens[-1]}"}
    ) as c:
        warm = c.post("/api/ask", json={"question": "Who hit the most home runs in 1927?"})
        warm.raise_for_status()
    warmup_s = time.perf_counter() - started

    deadline = time.monotonic() + args.timeout
    results: list[dict] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        record: dict = {"n": n, "errors": []}
        with httpx.Client(
            base_url=base,
            timeout=max(1.0, deadline - time.monotonic()),
            headers={"Authorization": f"Bearer {tokens[n]}"},
        ) as c:
            t0 = time.perf_counter()
            try:
                r = c.post("/api/ask", json={"question": f"Who hit the most home runs in {1950 + n}?"})
                record["ask_ms"] = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    record["errors"].append(f"ask {r.status_code}: {r.text[:200]}")
                else:
                    body = r.json()
                    record["trace_id"], record["status"] = body.get("trace_id"), body.get("status")
                    if body.get("status") != "ok":
                        record["errors"].append(f"ask status {body.get('status')}: {body.get('error')}")
                    t1 = time.perf_counter()
                    f = c.post(
                        "/api/feedback",
                        json={"trace_id": body["trace_id"], "value": n % 2 == 0, "comment": f"client {n}"},
                    )
                    record["feedback_ms"] = (time.perf_counter() - t1) * 1000
                    if f.status_code != 200:
                        record["errors"].append(f"feedback {f.status_code}: {f.text[:200]}")
            except httpx.HTTPError as exc:
                record["errors"].append(f"{type(exc).__name__}: {exc}")
        record["total_ms"] = (time.perf_counter() - t0) * 1000
        with lock:
            results.append(record)

    t_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        futures = [pool.submit(client, n) for n in range(args.clients)]
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
    elapsed = time.perf_counter() - t_start

    # Everything in MLflow? Every trace, and exactly one human correctness feedback on each.
    mlflow.flush_trace_async_logging()
    missing, lost = [], []
    for rec in results:
        if not rec.get("trace_id"):
            continue
        trace = mlflow.get_trace(rec["trace_id"])
        if trace is None:
            missing.append(rec["trace_id"])
            continue
        fb = [a for a in trace.info.assessments if a.name == "user_correctness"]
        if (
            len(fb) != 1
            or fb[0].value is not (rec["n"] % 2 == 0)
            or fb[0].source.source_id != f"bench-{rec['n']}"
        ):
            lost.append(rec["trace_id"])

    server.should_exit = True
    thread.join(timeout=10)

    errors = [e for rec in results for e in rec["errors"]]
    asks = sorted(rec["ask_ms"] for rec in results if "ask_ms" in rec)
    feedback = sorted(rec["feedback_ms"] for rec in results if "feedback_ms" in rec)

    def pct(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]

    summary = {
        "clients": args.clients,
        "completed": len(results),
        "timed_out": len(pending),
        "errors": len(errors),
        "traces_missing": len(missing),
        "feedback_lost": len(lost),
        "elapsed_s": round(elapsed, 2),
        "throughput_asks_per_s": round(len(asks) / elapsed, 2) if elapsed else None,
        "ask_ms": {
            "p50": pct(asks, 0.5),
            "p95": pct(asks, 0.95),
            "max": asks[-1] if asks else None,
            "mean": round(statistics.fmean(asks), 1) if asks else None,
        },
        "feedback_ms": {"p50": pct(feedback, 0.5), "p95": pct(feedback, 0.95)},
        "warmup_s": round(warmup_s, 2),
        "lm_delay_ms": args.lm_delay_ms,
        "load_avg": os.getloadavg(),
    }
    for key in ("ask_ms", "feedback_ms"):
        summary[key] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in summary[key].items()}
    print(json.dumps(summary, indent=2))
    for e in errors[:10]:
        print("error:", e, file=sys.stderr)
    ok = not errors and not pending and not missing and not lost and len(results) == args.clients
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
