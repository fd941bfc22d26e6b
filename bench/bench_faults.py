"""Load and faults: N authenticated clients for a bounded time while the LM, the store and the data fail.

The real HTTP server (uvicorn on loopback, auth on, one token per client from the users store)
runs an agent whose LM is bench/fake_lm_server.py, a separate process reached over HTTP through
`lm.api_base`; the MLflow store is a sqlite file and the database a copy of data/lahman.duckdb, both
in a temporary directory. Each client (bench/fault_clients.py) asks questions and gives feedback on
its answered traces. With --faults, one at a time (bench/faults.py): the LM server is SIGKILLed and
restarted, the tracking store made unwritable and restored, the database file replaced by a copy
(which the server must reopen: the fault's record says when it did).

It passes when no question ends as a failure (5xx, unreadable body, traceback, hang), the server
answers its health probe throughout and a question after the last fault, and every acknowledged
feedback is in the store (read back through the API with the client's token, and through MLflow).
Without --faults, every question must also be answered.

    .venv/bin/python -m bench.bench_faults --clients 50 --seconds 30 --faults [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import agent  # noqa: E402,F401  (offline switches)
from bench.fault_clients import Recorder, run_client  # noqa: E402
from bench.fault_report import Outcome, reconcile, report  # noqa: E402
from bench.faults import (  # noqa: E402
    ROOT,
    DatabaseLog,
    FaultRecord,
    LMProcess,
    replace_database,
    store_unwritable,
)

KEY_ENV = "SQLAGENT_FAKE_LM_KEY"
RESULTS = ROOT / "bench" / "results"
REPLACE = "replace database file"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0, help="how long clients start new questions")
    p.add_argument("--faults", action="store_true", help="inject the three faults, one at a time")
    p.add_argument(
        "--hold", type=float, default=3.0, help="seconds the LM stays dead and the database swapped"
    )
    p.add_argument(
        "--store-hold", type=float, default=4.0, help="seconds the tracking store stays unwritable"
    )
    # 50 clients on one worker: the last in the queue waits ~50 questions plus the trace export
    # backlog; on a 2-core machine that was up to 93 s, and 25-30 of 65-77 questions passed 60 s.
    p.add_argument("--timeout", type=float, default=120.0, help="a request unanswered after this is hung")
    p.add_argument("--lm-delay-ms", type=float, default=0.0)
    p.add_argument(
        "--json", type=Path, help="write the full record here (default: bench/results/faults-<time>.json)"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (store, database copy, users)")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= 200:
        p.error("--clients must be in 1..200")
    if args.seconds <= 0:
        p.error("--seconds must be positive")
    return args


def settings_for(tmp: Path, lm: LMProcess, db: Path):
    from agent.config import load_settings

    os.environ[KEY_ENV] = "fake"  # the OpenAI client wants a key; the fake LM ignores it
    return load_settings(
        tracking={"enabled": True, "uri": f"sqlite:///{tmp}/store/mlflow.db", "experiment": "bench-faults",
                  "checkpoint_db": f"{tmp}/threads.sqlite"},
        # cache off: every question reaches the LM server; a short timeout: a dead LM is an error in
        # seconds, not after the default 120 s.
        lm={"model": "openai/fake-lm", "api_base": lm.api_base, "api_key_env": KEY_ENV, "cache": False,
            "timeout_s": 10, "num_retries": 1},
        database={"url": str(db)},
        # One client asks one question at a time; the per-minute limit would refuse a fast fake LM's
        # clients, which is the limits' test (test_limits.py), not this one.
        server={"questions_per_minute": 100000},
    )  # fmt: skip


class Server:
    """uvicorn with the app in a thread of this process, on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited before it started")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def monitor(base: str, stop: threading.Event, clock, misses: list[dict]) -> None:
    """GET /api/health twice a second: the server keeps serving while a fault holds."""
    import httpx

    with httpx.Client(base_url=base, timeout=2.0) as c:
        while not stop.wait(0.5):
            try:
                ok = c.get("/api/health").status_code == 200
            except httpx.HTTPError as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            else:
                why = None if ok else "non-200"
            if not ok:
                misses.append({"at_s": round(clock(), 2), "why": why})


def inject(
    args, lm: LMProcess, store_file: Path, db: Path, t0: float, deadline: float, faults: list[FaultRecord]
) -> None:
    """The faults, one at a time, spread over the run; each one's hold is inside the run."""
    clock = lambda: time.monotonic() - t0  # noqa: E731
    plan = [
        ("kill LM server", 0.15, args.hold, lm.killed),
        ("tracking store unwritable", 0.40, args.store_hold, lambda: store_unwritable(store_file)),
        (REPLACE, 0.75, args.hold, lambda: replace_database(db)),
    ]
    for name, at, hold, fault in plan:
        time.sleep(max(0.0, at * args.seconds - clock()))
        if time.monotonic() >= deadline:
            faults.append(FaultRecord(name=name, started_s=clock(), detail="skipped: the run ended first"))
            continue
        record = FaultRecord(name=name, started_s=round(clock(), 2))
        try:
            with fault() as detail:
                record.detail = detail
                time.sleep(hold)
        except Exception as exc:  # a harness problem, reported with the fault, never silent
            record.detail += f" | the fault failed: {type(exc).__name__}: {exc}"
        record.ended_s = round(clock(), 2)
        faults.append(record)


def ask_once(client, question: str) -> str:
    """ "<HTTP status> <AskResult status>" of one question, or why there was no response."""
    import httpx

    try:
        r = client.post("/api/ask", json={"question": question})
    except httpx.HTTPError as exc:
        return f"no response: {type(exc).__name__}: {exc}"
    if r.status_code != 200:
        return f"{r.status_code} {r.text[:200]}"
    return f"200 {r.json().get('status')}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import httpx

    from agent.apps.server import create_app
    from agent.apps.users import UserStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    (tmp / "store").mkdir()
    db = tmp / "lahman.duckdb"
    shutil.copy2(ROOT / "data" / "lahman.duckdb", db)  # the replace fault must never touch data/
    lm = LMProcess(free_port(), args.lm_delay_ms)
    lm.start()
    settings = settings_for(tmp, lm, db)
    users = UserStore(tmp / "users.sqlite")
    names = [f"client-{n}" for n in range(args.clients)]
    tokens = {name: users.add(name, "analyst", ["ask", "feedback"])[1] for name in [*names, "probe"]}
    (tmp / "golden.jsonl").write_text("")
    server = Server(create_app(settings, golden_path=tmp / "golden.jsonl", auth=True, users=users))
    server.start()
    probe = httpx.Client(
        base_url=server.base, timeout=args.timeout, headers={"Authorization": f"Bearer {tokens['probe']}"}
    )
    db_log = DatabaseLog().attach()
    try:
        warm_started = time.perf_counter()  # the first question builds the agent: schema, value index
        warm = ask_once(probe, "Who hit the most home runs in 1927?")
        if warm != "200 ok":
            raise RuntimeError(f"the warm-up question failed: {warm}")
        warmup_s = time.perf_counter() - warm_started

        t0 = time.monotonic()
        clock = lambda: round(time.monotonic() - t0, 3)  # noqa: E731
        deadline = t0 + args.seconds
        rec, faults, misses, stop = Recorder(clock), [], [], threading.Event()
        watch = threading.Thread(target=monitor, args=(server.base, stop, clock, misses), daemon=True)
        watch.start()
        injector = threading.Thread(
            target=inject,
            daemon=True,
            name="faults",
            args=(args, lm, tmp / "store" / "mlflow.db", db, t0, deadline, faults),
        )
        if args.faults:
            injector.start()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            futures = [
                pool.submit(run_client, n, name, tokens[name], server.base, deadline, args.timeout, rec)
                for n, name in enumerate(names)
            ]
        # A client that died is a harness bug, not a server result: it must fail the run, not vanish.
        crashed = [f"{type(e).__name__}: {e}" for f in futures if (e := f.exception()) is not None]
        if args.faults:
            injector.join()
        elapsed = time.monotonic() - t0
        after = ask_once(probe, "Who hit the most home runs in 1961?")
        stop.set()
        watch.join()
        for fault in faults:
            if fault.name == REPLACE and fault.ended_s is not None:
                fault.detail += f" | {db_log.after(fault, t0)}"
        outcome = Outcome(
            clients=args.clients, seconds=args.seconds, elapsed_s=round(elapsed, 2), warmup_s=round(warmup_s, 2),
            faults=faults, health_misses=misses, server_alive=server.thread.is_alive(),
            after_faults=after, client_crashes=crashed,
            questions=rec.questions, feedback=rec.feedback,
            reconciliation=reconcile(server.base, tokens, rec.feedback, rec.questions),
            load_avg=list(os.getloadavg()),
        )  # fmt: skip
    finally:
        db_log.detach()
        probe.close()
        server.stop()
        lm.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    out = args.json or RESULTS / f"faults-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(outcome.model_dump_json(indent=2))
    ok = outcome.passed(require_all_answered=not args.faults)
    print(report(outcome))
    print(f"full record: {out}", file=sys.stderr)
    print("PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
