"""The HTTP API and the feedback/review web app (FastAPI). Start it with `sqlagent serve`.

    POST /api/ask            {question, thread_id?, db?, role?} -> AskResult (as `sqlagent ask --json`)
    GET  /api/ask/stream     ?question=&thread_id=&db=&role= -> server-sent events: `node` per node
                             as it finishes (name, duration_ms, tokens, detail), then `result`
    GET  /api/traces/{id}    node timeline, SQL, rows, mappings and the trace's assessments
    POST /api/feedback       {trace_id, value, comment?, corrected_sql?, rubric?, user?}
    GET  /api/review         traces awaiting review (no feedback yet or negative), newest first
    POST /api/golden         {trace_id} -> promote a reviewed trace into the golden set (201, 409 if there)
    GET  /, /review          the web pages (agent/web: plain HTML, JS and CSS, no build step)

Concurrency: the embedded llama.cpp model has one slot, and a trace's root span is only the current
span on the thread that opened it. So every agent job (creating an Agent, `ask`, a whole
`ask_stream`) runs on ONE worker thread per app, in arrival order; request threads wait for their
job's future (or read its events from a queue). Everything else (traces, feedback, review, golden,
the corrected-SQL sandbox run) runs concurrently on the request threads.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import mlflow
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.config import PROJECT_ROOT, Settings, resolve_path
from agent.tracing import setup_tracing
from evals import feedback, promotion

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
DEFAULT_GOLDEN = "evals/golden.jsonl"
MAX_QUESTION = 20_000  # transport bound; the agent's own limit (limits.max_question_chars) answers below it

AgentFactory = Callable[[Settings, str | None, str | None], Any]


def default_agent_factory(settings: Settings, db: str | None, role: str | None):
    from agent.service import Agent

    return Agent(settings, db_path=db, role=role)


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate from a malformed question cannot break encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, default=str, separators=(",", ":")).encode()


# --- payloads ---------------------------------------------------------------------------------


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AskIn(Payload):
    question: str = Field(max_length=MAX_QUESTION)
    thread_id: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    db: str | None = Field(None, min_length=1, max_length=1000)
    role: str | None = Field(None, min_length=1, max_length=100)


class Rubric(Payload):
    label: Literal["correct", "partially", "wrong"]
    reason: str | None = Field(None, max_length=2000)


class FeedbackIn(Payload):
    trace_id: str = Field(min_length=1, max_length=200)
    value: StrictBool
    comment: str | None = Field(None, max_length=4000)
    corrected_sql: str | None = Field(None, max_length=20_000)
    rubric: Rubric | None = None
    user: str | None = Field(None, min_length=1, max_length=100)


class GoldenIn(Payload):
    trace_id: str = Field(min_length=1, max_length=200)


# --- agents and the single worker -------------------------------------------------------------


class AgentPool:
    """One Agent per (db, role), created lazily on the worker thread that runs all agent jobs."""

    def __init__(self, settings: Settings, factory: AgentFactory):
        self.settings = settings
        self.factory = factory
        self.agents: dict[tuple[str | None, str | None], Any] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlagent-lm")

    def submit(self, db: str | None, role: str | None, job: Callable[[Any], Any]) -> Future:
        return self.worker.submit(lambda: job(self._agent(db, role)))

    def _agent(self, db: str | None, role: str | None):  # worker thread only
        key = (db, role)
        if key not in self.agents:
            self.agents[key] = self.factory(self.settings, db, role)
        return self.agents[key]

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)


class AgentUnavailable(RuntimeError):
    pass


# MLflow exports traces through a batch span processor that waits up to 5 s by default; a client
# posts feedback on a trace right after its answer, so the server exports within ~0.1 s instead.
# (Read when MLflow builds its span processor: set before `setup_tracing`; process-wide.)
EXPORT_INTERVAL_ENV = "MLFLOW_ASYNC_TRACE_LOGGING_MAX_INTERVAL_MILLIS"


class TraceWaiter:
    """Waits until traces are in the tracking store, with ONE poller for all waiting requests.

    The poller lists the experiment's recent trace ids (one query, no spans) and wakes everyone;
    20 requests each fetching their whole trace in a loop would starve the worker of CPU.
    """

    def __init__(self, interval_s: float = 0.03, window_s: float = 600.0):
        self.interval_s = interval_s
        self.window_s = window_s
        self._poll = threading.Lock()
        self._cond = threading.Condition()
        self._found: set[str] = set()
        self._waiting: set[str] = set()

    def _recent_ids(self) -> set[str]:
        from mlflow.tracking.fluent import _get_experiment_id

        since = int((time.time() - self.window_s) * 1000)
        traces = mlflow.search_traces(locations=[_get_experiment_id()], filter_string=f"trace.timestamp_ms > {since}",
                                      include_spans=False, max_results=1000, return_type="list")
        return {t.info.trace_id for t in traces}

    def _readable(self, waiting: set[str]) -> set[str]:
        """Of the waited-for traces, those listed AND readable: a trace is listed as soon as its first
        spans are written, readable by `mlflow.get_trace` (what feedback uses) once complete."""
        listed = self._recent_ids() & waiting
        out = set()
        for trace_id in listed:
            try:
                if mlflow.get_trace(trace_id) is not None:
                    out.add(trace_id)
            except Exception:
                pass
        return out

    def wait(self, trace_id: str | None, timeout_s: float = 5.0) -> bool:
        if not trace_id:
            return True
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._waiting.add(trace_id)
        try:
            while time.monotonic() < deadline:
                with self._cond:
                    if trace_id in self._found:
                        self._found.discard(trace_id)
                        return True
                    waiting = set(self._waiting)
                if self._poll.acquire(blocking=False):
                    try:
                        ids = self._readable(waiting)
                    except Exception as exc:
                        log.warning("listing traces failed: %s", exc)
                        ids = set()
                    finally:
                        self._poll.release()
                    with self._cond:
                        self._found |= ids
                        self._cond.notify_all()
                    if trace_id in ids:
                        with self._cond:
                            self._found.discard(trace_id)
                        return True
                    time.sleep(self.interval_s)
                else:
                    with self._cond:
                        self._cond.wait(timeout=self.interval_s * 2)
        finally:
            with self._cond:
                self._waiting.discard(trace_id)
        log.warning("trace %s not in the store after %.1f s: flushing", trace_id, timeout_s)
        try:  # too slow (a span processor built before EXPORT_INTERVAL_ENV was set): force it
            mlflow.flush_trace_async_logging()
        except Exception as exc:  # tracing off or the store gone: the answer still stands
            log.warning("flushing traces failed: %s", exc)
        return False


def _tag(trace_id: str | None, db: str | None, role: str | None) -> None:
    if not trace_id:
        return
    for key, value in ((feedback.DB_TAG, db), (feedback.ROLE_TAG, role)):
        if value:
            mlflow.set_trace_tag(trace_id, key, value)


def _check_db(db: str | None) -> str | None:
    if db is None:
        return None
    path = resolve_path(db).resolve()
    if path.suffix != ".duckdb" or not path.is_file() or not path.is_relative_to(PROJECT_ROOT):
        raise HTTPException(422, f"db must be an existing .duckdb file inside the project; got {db!r}.")
    return str(path)


def _check_role(role: str | None, access_file: Path) -> str | None:
    if role is None:
        return None
    from tools.sql.policy import load_roles

    roles = load_roles(access_file)
    if role not in roles:
        raise HTTPException(422, f"Unknown role {role!r}; roles: {', '.join(sorted(roles))}.")
    return role


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=True, default=str)}\n\n"


# --- the app ----------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    agent_factory: AgentFactory | None = None,
    *,
    golden_path: str | Path | None = None,
) -> FastAPI:
    pool = AgentPool(settings, agent_factory or default_agent_factory)
    golden_file = resolve_path(golden_path or DEFAULT_GOLDEN)
    os.environ.setdefault(EXPORT_INTERVAL_ENV, "100")
    setup_tracing(settings)
    traces = TraceWaiter()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()

    app = FastAPI(title="sqlagent", default_response_class=SafeJSONResponse, lifespan=lifespan)
    app.state.pool = pool
    app.state.golden_path = golden_file
    app.state.settings = settings

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return SafeJSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return SafeJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    def run_job(db: str | None, role: str | None, job: Callable[[Any], Any]):
        try:
            return pool.submit(db, role, job).result()
        except (ValueError, FileNotFoundError) as exc:  # an unknown role, a missing database
            raise HTTPException(422, f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            log.exception("agent job failed")
            raise HTTPException(503, f"The agent is unavailable: {type(exc).__name__}: {exc}") from None

    # --- ask ------------------------------------------------------------------------------

    @app.post("/api/ask")
    def ask(body: AskIn) -> dict[str, Any]:
        db, role = _check_db(body.db), _check_role(body.role, resolve_path(settings.database.access_file))

        result = run_job(db, role, lambda agent: agent.ask(body.question, thread_id=body.thread_id))
        # On this request thread, not the worker: the next question runs meanwhile. Once the answer
        # is out, the trace is in the store, so feedback can be posted on it straight away.
        traces.wait(result.trace_id)
        _tag(result.trace_id, db, role)
        return result.model_dump()

    @app.get("/api/ask/stream")
    def ask_stream(
        question: Annotated[str, Query(max_length=MAX_QUESTION)],
        thread_id: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
        db: Annotated[str | None, Query(min_length=1, max_length=1000)] = None,
        role: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    ) -> StreamingResponse:
        db, role = _check_db(db), _check_role(role, resolve_path(settings.database.access_file))
        events: queue.Queue = queue.Queue()
        done = object()

        def job(agent):
            try:
                for kind, obj in agent.ask_stream(question, thread_id):
                    events.put((kind, obj))
            finally:
                events.put(done)

        future = pool.submit(db, role, job)

        def stream() -> Iterator[str]:
            while True:
                try:
                    item = events.get(timeout=1.0)
                except queue.Empty:
                    if future.done() and future.exception() is not None:
                        exc = future.exception()
                        yield _sse("failure", {"error": f"{type(exc).__name__}: {exc}"})
                        return
                    yield ": waiting\n\n"  # a comment keeps the connection visibly alive while queued
                    continue
                if item is done:
                    exc = future.exception() if future.done() else None
                    if exc is not None:
                        yield _sse("failure", {"error": f"{type(exc).__name__}: {exc}"})
                    return
                kind, obj = item
                if kind == "result":  # as in /api/ask: stored (and tagged) before the client sees it
                    traces.wait(obj.trace_id)
                    _tag(obj.trace_id, db, role)
                yield _sse(kind, obj.model_dump())

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # --- traces and feedback --------------------------------------------------------------

    def load_trace(trace_id: str):
        try:
            return feedback.get_trace(trace_id)
        except feedback.TraceNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    def trace_db(trace):
        from tools.sql.database import open_database

        tags = trace.info.tags or {}
        return open_database(settings.database_config(tags.get(feedback.DB_TAG) or None), tags.get(feedback.ROLE_TAG) or None)

    @app.get("/api/traces/{trace_id}")
    def get_trace(trace_id: str) -> dict[str, Any]:
        from agent.apps.trace_view import trace_timeline

        trace = load_trace(trace_id)
        try:
            view = trace_timeline(settings, trace_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        root = feedback.root_span(trace)
        outputs = (root.outputs if root else None) or {}
        outputs = outputs if isinstance(outputs, dict) else {}
        execute = [n for n in view["nodes"] if n["name"] == "execute"]
        last = execute[-1]["outputs"] if execute else {}
        info = feedback.summary(trace)
        return {
            **view,
            "nodes": [{k: n[k] for k in ("name", "duration_ms", "tokens", "detail")} for n in view["nodes"]],
            "thread_id": info["thread_id"],
            "rewritten_question": outputs.get("rewritten_question"),
            "mappings": outputs.get("mappings") or [],
            "sql": outputs.get("sql"),
            "answer": outputs.get("answer"),
            "error": outputs.get("error"),
            "columns": last.get("columns") or outputs.get("columns") or [],
            "rows": last.get("rows") or [],
            "truncated": bool(last.get("truncated")),
            "review": info["review"],
            "feedback": info["feedback"],
            "expected_sql": info["expected_sql"],
            "golden_id": info["golden_id"],
            "assessments": feedback.assessments(trace),
        }

    @app.post("/api/feedback")
    def post_feedback(body: FeedbackIn) -> dict[str, Any]:
        trace = load_trace(body.trace_id)
        corrected = None
        sql = (body.corrected_sql or "").strip() or None
        if sql:
            try:
                corrected = promotion.check_sql(trace_db(trace), sql)
            except promotion.PromotionError as exc:
                raise HTTPException(422, f"The corrected SQL was rejected: {exc}") from None
            corrected["rows"] = corrected["rows"][:100]
            sql = corrected["sql"]
        ids = feedback.log_feedback(
            body.trace_id, body.value, user=body.user or "web", comment=(body.comment or "").strip() or None,
            rubric=body.rubric.label if body.rubric else None,
            rubric_reason=((body.rubric.reason or "").strip() or None) if body.rubric else None,
            corrected_sql=sql,
        )
        return {"trace_id": body.trace_id, "assessment_ids": ids, "corrected": corrected}

    @app.get("/api/review")
    def review(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        items = feedback.review_queue(limit)
        return {"items": [{k: v for k, v in it.items() if k != "is_agent_trace"} for it in items]}

    @app.post("/api/golden", status_code=201)
    def promote(body: GoldenIn) -> dict[str, Any]:
        trace = load_trace(body.trace_id)
        tags = trace.info.tags or {}
        if tags.get(feedback.GOLDEN_TAG):
            raise HTTPException(409, f"The trace is already in the golden set as {tags[feedback.GOLDEN_TAG]!r}.")
        if tags.get(feedback.DB_TAG):
            raise HTTPException(422, "The golden set is for the default database; this trace used another one.")
        try:
            return promotion.promote(trace, trace_db(trace), golden_file)
        except promotion.DuplicateItem as exc:
            raise HTTPException(409, str(exc)) from None
        except promotion.PromotionError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "agents": len(pool.agents), "golden_path": str(golden_file)}

    # --- pages ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/review", include_in_schema=False)
    def review_page() -> FileResponse:
        return FileResponse(WEB_DIR / "review.html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, golden_path: str | None = None) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: the API has no authentication, anyone who can reach it can use it", host)
    uvicorn.run(create_app(settings, golden_path=golden_path), host=host, port=port, workers=1, log_level="info")

