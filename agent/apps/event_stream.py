"""Server-sent events of a question that runs on a worker thread, awaited on the event loop.

/api/ask/stream's events used to be read by a sync generator, which held one of the server's request
threads for a whole answer; here the worker puts its events on an asyncio queue and the response
awaits them, so a waiting stream holds no thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from typing import Any

KEEP_ALIVE_S = 1.0
_DONE = object()


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=True, default=str)}\n\n"


def _failure(exc: BaseException) -> str:
    return sse("failure", {"error": f"{type(exc).__name__}: {exc}"})


class ThreadEvents:
    """Made on the event loop; `put` and `close` are called from the worker thread."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()

    def put(self, kind: str, obj: Any) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, obj))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, _DONE)

    async def stream(self, job: Future, render: Callable[[str, Any], Awaitable[str]]) -> AsyncIterator[str]:
        """Each event as `render(kind, obj)` until the job closes the stream; the job's exception, if
        any, as a last `failure` event; a comment every KEEP_ALIVE_S while nothing happens."""
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=KEEP_ALIVE_S)
            except TimeoutError:
                if job.done() and job.exception() is not None:  # it never started
                    yield _failure(job.exception())
                    return
                yield ": waiting\n\n"  # keeps the connection visibly alive while queued
                continue
            if item is _DONE:
                try:  # the job closes the stream just before its future settles
                    await asyncio.wrap_future(job)
                except Exception as exc:  # noqa: BLE001 - reported to the client as the stream's end
                    yield _failure(exc)
                return
            yield await render(*item)
