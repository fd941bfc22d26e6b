"""A deterministic fake LM behind a real OpenAI-compatible HTTP endpoint, in its own process.

The fault benchmark (bench/bench_faults.py) points `lm.api_base` at it, so the agent reaches "the
model" the way it reaches llama.cpp or a hosted one, and "the LM server dies" is a real SIGKILL of
this process. Standard library only: a restart must be up in a fraction of a second (importing
DSPy would take seconds).

It answers DSPy ChatAdapter prompts as tests/fake_lm.py does: the output fields come from the
system message, the reply is the script below (the SQL names the year of the question).

    python -m bench.fake_lm_server --port 8766
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SQL = (
    "SELECT p.nameFirst, p.nameLast, b.HR FROM Batting b JOIN People p USING (playerID) "
    "WHERE b.yearID = {year} ORDER BY b.HR DESC LIMIT 1"
)
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", re.DOTALL)
_YEAR = re.compile(r"\b(19\d\d|20[0-2]\d)\b")


def _text(content) -> str:
    """An OpenAI message content: a string, or a list of parts of which the text ones count."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def output_fields(system: str) -> list[str]:
    part = system.split("Your output fields are:", 1)[-1].split("All interactions will be structured", 1)[0]
    return re.findall(r"\d+\. `(\w+)`", part)


def script(key: str, inputs: dict[str, str]) -> dict[str, object]:
    """What "the model" says at each step: no rewriting, no mentions, the SQL, a fixed answer and
    explanation."""
    if key == "standalone_question":
        return {"standalone_question": inputs.get("follow_up", "")}
    if key == "mentions":
        return {"mentions": []}
    if key == "sql":
        year = _YEAR.search(inputs.get("question", ""))
        return {"sql": SQL.format(year=year.group(1) if year else 1927)}
    if key == "answer":
        return {"answer": "The leader."}
    if key == "explanation":
        return {"explanation": "It reads the batting records of one season."}
    raise ValueError(f"the fake LM has no reply for output field {key!r}")


def reply(messages: list[dict]) -> str:
    system = "".join(_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    users = [m for m in messages if m.get("role") == "user"]
    user = _text(users[-1].get("content")) if users else ""
    user = user.split("Respond with the corresponding output fields", 1)[0]
    outputs = output_fields(system)
    if not outputs:
        raise ValueError("the system message names no output fields (not a DSPy ChatAdapter prompt)")
    inputs = {k: v.strip() for k, v in _FIELD.findall(user)}
    values = script(outputs[0], inputs)
    return (
        "\n\n".join(
            f"[[ ## {name} ## ]]\n{v if isinstance(v := values[name], str) else json.dumps(v)}"
            for name in outputs
        )
        + "\n\n[[ ## completed ## ]]"
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_s = 0.0

    def log_message(self, format, *args):  # quiet: the bench prints what matters
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/health"):
            return self._send(200, {"status": "ok"})
        return self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send(
                404, {"error": {"message": f"the fake LM serves /v1/chat/completions, not {self.path}"}}
            )
        if body.get("stream"):
            return self._send(400, {"error": {"message": "the fake LM does not stream"}})
        try:
            text = reply(body.get("messages") or [])
        except ValueError as exc:
            return self._send(400, {"error": {"message": str(exc)}})
        if self.delay_s:
            time.sleep(self.delay_s)
        tokens_in = sum(len(_text(m.get("content"))) for m in body.get("messages") or []) // 4
        self._send(200, {
            "id": "fake-1", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": len(text) // 4,
                      "total_tokens": tokens_in + len(text) // 4},
        })  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="sleep per reply, standing in for a real model"
    )
    args = parser.parse_args(argv)
    Handler.delay_s = args.delay_ms / 1000
    server = ThreadingHTTPServer(
        ("127.0.0.1", args.port), Handler
    )  # allow_reuse_address: restart on the same port
    server.daemon_threads = True
    print(f"fake LM on http://127.0.0.1:{args.port}/v1", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
