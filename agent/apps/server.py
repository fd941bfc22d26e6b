"""The HTTP API and the feedback/review web app (FastAPI). Start it with `sqlagent serve`.

    POST /api/ask            {question, thread_id?, db?, role?} -> AskResult (as `sqlagent ask --json`)
                             + trace_stored: false when the tracking store did not take its trace
    POST /api/explain        {sql, question?, trace_id?, db?, role?} -> ExplainResult: the SQL in plain
                             words (agent/explain.py), refused when the role may not run it
    GET  /api/ask/stream     ?question=&thread_id=&db=&role= -> server-sent events: `node` per node
                             as it finishes (name, duration_ms, tokens, detail), then `result`
    GET  /api/traces/{id}    node timeline, SQL, rows, chart, mappings and the trace's assessments
    GET  /api/traces/{id}/rows.csv|rows.parquet   the answer's rows as a file (as stored on the trace)
    POST /api/feedback       {trace_id, value, comment?, corrected_sql?, rubric?}
    GET  /api/review         traces awaiting review (no feedback yet or negative), newest first
    POST /api/golden         {trace_id} -> promote a reviewed trace into the golden set (201, 409 if there)
    GET  /api/me             who the token belongs to: name, role, permissions
    GET  /api/suggestions    a few questions from the golden set that the caller's role can ask
    GET  /metrics, /api/monitor, /monitor   Prometheus metrics, rates over time windows, the monitor
                             page (agent/apps/quality.py, with the token budgets and the sampler)
    GET  /, /review          the web pages (agent/web: plain HTML, JS and CSS, no build step)

Who may do what (agent/apps/auth.py): with `server.auth` on, every /api route but /api/health needs
`Authorization: Bearer <token>` (`sqlagent users add`). Asking needs the `ask` permission and runs
with the token's role; feedback needs `feedback` and is recorded under the token's user; the review
queue, promotion and other users' traces need `review`. Questions are limited per user
(agent/apps/limits.py: 429 with Retry-After). Without auth (loopback only) everything is allowed.
While the tracking store cannot be read or written, the routes that need it are 503 with
Retry-After (a question is still answered: its trace tags travel inside the trace).

Concurrency: the embedded llama.cpp model has one slot, and a trace's root span is only the current
span on the thread that opened it. So every agent job (creating an Agent, `ask`, a whole
`ask_stream`) runs on ONE worker thread per app, in arrival order; request threads wait for their
job's future (or read its events from a queue). Everything else (traces, feedback, review, golden,
the corrected-SQL sandbox run) runs concurrently on the request threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from mlflow.exceptions import MlflowException
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.apps.agent_pool import AgentFactory, AgentPool, default_agent_factory
from agent.apps.auth import Auth, Principal, check_bind, role_for, scoped_thread, unscoped_thread
from agent.apps.event_stream import ThreadEvents, sse
from agent.apps.limits import QuestionLimits, TooManyQuestions
from agent.apps.payloads import (
    BAD_BODY,
    MAX_QUESTION,
    THREAD_PATTERN,
    AskIn,
    ExplainIn,
    SafeJSONResponse,
    validation_message,
)
from agent.apps.quality import Quality
from agent.apps.review_api import review_routes
from agent.apps.suggestions import suggested_questions
from agent.apps.trace_wait import EXPORT_INTERVAL_ENV, TraceWaiter
from agent.apps.users import UserStore
from agent.charts import chart_spec
from agent.config import PROJECT_ROOT, Settings, resolve_path
from agent.question_check import question_problem
from agent.tracing import setup_tracing
from evals import feedback
from evals.monitor.windows import ORIGIN_SERVE, ORIGIN_TAG

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
DEFAULT_GOLDEN = "evals/golden.jsonl"
STORE_RETRY_S = 2  # Retry-After of a 503 while the tracking store cannot be read or written


def _tags(db: str | None, role: str | None, answer: bool = True) -> dict[str, str]:
    """The trace tags of a question: which database and role it ran with (review_api reads them to
    decide who sees its rows), and that the server answered it (what monitoring reads; not on an
    explanation, which is no answer). Written inside the trace: a tag set after the answer was lost,
    and the answer was a 500, when the store refused that one write."""
    tags = {key: value for key, value in ((feedback.DB_TAG, db), (feedback.ROLE_TAG, role)) if value}
    return {**tags, ORIGIN_TAG: ORIGIN_SERVE} if answer else tags


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


def _user_facing(result: Any, who: Principal, *, trace_stored: bool = True) -> dict[str, Any]:
    out = result.model_dump()
    # False when the tracking store did not take the trace in time (it was down or slow): MLflow
    # drops what it cannot export, so feedback on this answer may find no trace (404).
    out["trace_stored"] = bool(out.get("trace_id")) and trace_stored
    out["thread_id"] = unscoped_thread(who, out.get("thread_id"))
    out["chart"] = chart_spec(out["columns"], out["rows"])  # Vega-Lite, drawn by the page (agent/charts.py)
    return out


# --- the app ----------------------------------------------------------------------------------


def create_app(
    settings: Settings,
    agent_factory: AgentFactory | None = None,
    *,
    golden_path: str | Path | None = None,
    auth: bool | None = None,
    users: UserStore | None = None,
) -> FastAPI:
    """`auth` None: `server.auth` from the settings; `users` None: the store at `server.users_file`."""
    pool = AgentPool(settings, agent_factory or default_agent_factory)
    golden_file = resolve_path(golden_path or DEFAULT_GOLDEN)
    os.environ.setdefault(EXPORT_INTERVAL_ENV, "100")
    setup_tracing(settings)
    traces = TraceWaiter()
    auth_on = settings.server.auth if auth is None else auth
    store = (users or UserStore(resolve_path(settings.server.users_file))) if auth_on else None
    if store is not None and not store.list():
        log.warning(
            "auth is on and %s has no users: every request will be 401. "
            "Create one with `sqlagent users add NAME --role ROLE --permissions ask,feedback`.",
            store.path,
        )
    gate = Auth(store)
    # The local operator (no auth) is not limited: the limits share the model between users.
    limits = (
        QuestionLimits(settings.server.max_concurrent_questions, settings.server.questions_per_minute)
        if auth_on
        else None
    )
    access_file = resolve_path(settings.database.access_file)
    quality = Quality(settings, auth_on, traces.wait)  # token budgets, metrics, the background sampler

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()
        quality.close()

    app = FastAPI(title="sqlagent", default_response_class=SafeJSONResponse, lifespan=lifespan)
    app.state.pool = pool
    app.state.golden_path = golden_file
    app.state.settings = settings
    app.state.auth = gate
    app.state.quality = quality

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return SafeJSONResponse({"detail": validation_message(list(exc.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's words
            detail = BAD_BODY
        return SafeJSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(feedback.StoreUnavailable)
    async def _store_down(request: Request, exc: feedback.StoreUnavailable):
        # The store comes back (a full disk cleared, a lock released): say so, rather than a 500.
        return SafeJSONResponse(
            {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(STORE_RETRY_S)}
        )

    @app.exception_handler(MlflowException)
    async def _store_error(request: Request, exc: MlflowException):
        # Any other route's store call (the review queue, a promotion's tag): the same 503 when the
        # store is down; anything else is ours to fix, logged, and one line for the client.
        problem = feedback.store_problem(exc, "be used")
        if problem is not None:
            return await _store_down(request, problem)
        log.error("tracking store error on %s", request.url.path, exc_info=exc)
        return SafeJSONResponse(
            {"detail": f"Tracking store error: {' '.join(str(exc).split())[:300]}"}, status_code=500
        )

    def admit(who: Principal, question: str | None) -> Callable[[], None]:
        """Refuse what cannot be asked before it takes a place in the queue; count it for `who`.
        `question` None: an explanation without one (the model's time is counted all the same)."""
        problem = question is not None and question_problem(question, settings.limits.max_question_chars)
        if problem:
            raise HTTPException(422, problem)
        if limits is None:
            return lambda: None
        try:
            return limits.acquire(who.name)
        except TooManyQuestions as exc:
            raise HTTPException(429, exc.message, headers={"Retry-After": str(exc.retry_after_s)}) from None

    def submit(
        db: str | None, role: str | None, job: Callable[[Any], Any], release: Callable[[], None]
    ) -> Future:
        quality.started()
        future = pool.submit(db, role, job)
        future.add_done_callback(lambda _: (release(), quality.finished()))  # free once the model is
        return future

    async def job_result(future: Future):
        try:
            return await asyncio.wrap_future(future)
        except (ValueError, FileNotFoundError) as exc:  # an unknown role, a missing database
            raise HTTPException(422, f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            log.exception("agent job failed")
            raise HTTPException(503, f"The agent is unavailable: {type(exc).__name__}: {exc}") from None

    # Defaults, not Annotated aliases: with postponed annotations FastAPI cannot see local names.
    asker, caller = Depends(gate.require("ask")), Depends(gate.principal)

    # --- ask ------------------------------------------------------------------------------

    def queue_ask(body: AskIn, who: Principal) -> Future:
        db, role = _check_db(body.db), _check_role(role_for(who, body.role), access_file)
        budget = quality.budget_for(who)
        release = admit(who, body.question)
        thread, tags = scoped_thread(who, body.thread_id), _tags(db, role)

        def job(agent):
            started = time.perf_counter()
            result = agent.ask(body.question, thread_id=thread, user=who.name, tags=tags, budget=budget)
            quality.answered(who, result, time.perf_counter() - started)
            return result

        return submit(db, role, job, release)

    # async: a queued question waits on the event loop, not on one of the 40 threads that serve every
    # sync route. With 50 clients queued, a thread per waiting question left none for /api/health
    # and feedback (the health probe timed out, answered clients waited for a thread to give feedback).
    @app.post("/api/ask")
    async def ask(body: AskIn, who: Principal = asker) -> dict[str, Any]:
        result = await job_result(await run_in_threadpool(queue_ask, body, who))
        # On a thread, not the worker: the next question runs meanwhile. Once the answer is out,
        # the trace is in the store, so feedback can be posted on it straight away.
        stored = await run_in_threadpool(traces.wait, result.trace_id)
        return _user_facing(result, who, trace_stored=stored)

    # async for the same reason as /api/ask: the events of a queued or running question wait on the
    # event loop. A sync generator held one of the 40 request threads for its whole answer.
    @app.get("/api/ask/stream")
    async def ask_stream(
        question: Annotated[str, Query(max_length=MAX_QUESTION)],
        thread_id: Annotated[str | None, Query(min_length=1, max_length=200, pattern=THREAD_PATTERN)] = None,
        db: Annotated[str | None, Query(min_length=1, max_length=1000)] = None,
        role: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
        who: Principal = asker,
    ) -> StreamingResponse:
        events = ThreadEvents()

        def queue_stream() -> Future:
            db_, role_ = _check_db(db), _check_role(role_for(who, role), access_file)
            budget = quality.budget_for(who)
            release = admit(who, question)
            thread, tags = scoped_thread(who, thread_id), _tags(db_, role_)

            def job(agent):
                started = time.perf_counter()
                try:
                    for kind, obj in agent.ask_stream(
                        question, thread, user=who.name, tags=tags, budget=budget
                    ):
                        if kind == "result":
                            quality.answered(who, obj, time.perf_counter() - started)
                        events.put(kind, obj)
                finally:
                    events.close()

            return submit(db_, role_, job, release)

        future = await run_in_threadpool(queue_stream)

        async def render(kind: str, obj: Any) -> str:
            if kind == "result":  # as in /api/ask: stored before the client sees it
                stored = await run_in_threadpool(traces.wait, obj.trace_id)
                return sse(kind, _user_facing(obj, who, trace_stored=stored))
            return sse(kind, obj.model_dump())

        return StreamingResponse(
            events.stream(future, render),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/api/explain")
    async def explain(body: ExplainIn, who: Principal = asker) -> dict[str, Any]:
        """The same permission, role, limits and token budget as a question; not the same trace."""
        db, role = _check_db(body.db), _check_role(role_for(who, body.role), access_file)
        quality.budget_for(who)  # 429 past the user's token budget
        release = admit(who, body.question or None)
        tags = _tags(db, role, answer=False)

        def job(agent):
            return agent.explain(body.sql, body.question, user=who.name, tags=tags, about=body.trace_id)

        result = await job_result(await run_in_threadpool(submit, db, role, job, release))
        quality.explained(who, result)
        return result.model_dump()

    # --- traces, feedback, review and golden (agent/apps/review_api.py) -------------------

    app.include_router(review_routes(settings, gate, golden_file))
    app.include_router(quality.router(gate, WEB_DIR))  # /metrics, /api/monitor, /monitor

    @app.get("/api/suggestions")
    def suggestions(who: Principal = asker) -> dict[str, Any]:
        """The ask page's first questions: from the configured database's golden set, for the caller's role."""
        from tools.sql.database import open_database

        db = open_database(settings.database_config(), _check_role(role_for(who, None), access_file))
        return {
            "questions": suggested_questions(resolve_path(settings.retrieval.example_bank), db.reads_hidden)
        }

    @app.get("/api/me")
    def me(who: Principal = caller) -> dict[str, Any]:
        return who.model_dump()

    @app.get("/api/health")
    async def health() -> dict[str, Any]:  # open: a load balancer's probe has no token
        return {"status": "ok", "agents": len(pool.agents), "auth": gate.enabled}

    # --- pages ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/review", include_in_schema=False)
    def review_page() -> FileResponse:
        return FileResponse(WEB_DIR / "review.html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    golden_path: str | None = None,
    auth: bool | None = None,
) -> None:
    """Raises ServeRefused (before anything starts) for a non-loopback host without auth."""
    auth_on = settings.server.auth if auth is None else auth
    check_bind(host, auth_on)
    import uvicorn

    uvicorn.run(
        create_app(settings, golden_path=golden_path, auth=auth_on),
        host=host,
        port=port,
        workers=1,
        log_level="info",
    )
