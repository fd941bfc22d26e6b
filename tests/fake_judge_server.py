"""A scripted OpenAI-compatible chat endpoint for MLflow judges, on a loopback thread.

MLflow judges do not go through DSPy: they POST to a chat-completions URL themselves. This server
stands in for the embedded llama.cpp one, so the tests exercise the real path (make_judge, MLflow's
adapter, HTTP, the JSON reply parsed into a Feedback). `reply(system, user, body)` says what "the
model" answers: a dict with `result` and `rationale`, sent back as the JSON text a model writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[str, str, dict[str, Any]], dict[str, Any]]
KEY = "test-judge-key"


@dataclass
class FakeJudgeServer:
    reply: Reply
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    @property
    def chat_url(self) -> str:
        return self.url + "/v1/chat/completions"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, dict))


@contextmanager
def fake_judge_server(reply: Reply) -> Iterator[FakeJudgeServer]:
    state = FakeJudgeServer(reply)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            messages = body.get("messages") or []
            system = "".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
            user = "".join(_text(m.get("content")) for m in messages if m.get("role") == "user")
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                return self._send(401, {"error": {"message": "bad key"}})
            text = json.dumps(state.reply(system, user, body))
            self._send(
                200,
                {
                    "id": "fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": len(system + user) // 4,
                        "completion_tokens": len(text) // 4,
                        "total_tokens": (len(system + user) + len(text)) // 4,
                    },
                },
            )

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def judge_model(server: FakeJudgeServer, temperature: float = 0.0):
    """An embedded-like JudgeModel pointing at the fake server."""
    import os

    from agent.config import LMSettings
    from evals.judges.model import JudgeModel

    os.environ.setdefault("OPENAI_API_KEY", "sqlagent-embedded-judge")
    return JudgeModel(
        uri="openai:/fake-judge",
        lm=LMSettings(model="embedded/fake", temperature=temperature, max_tokens=256),
        base_url=server.chat_url,
        extra_headers={"Authorization": f"Bearer {KEY}"},
    )
