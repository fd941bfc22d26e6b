"""The language model: one place that builds `dspy.LM` and owns the embedded llama.cpp server.

`lm.model: embedded/<name>` runs a model from config/models.yaml in this process: xllamacpp's
`Server` is llama.cpp's own OpenAI-compatible HTTP server, bound to loopback on a free port and
protected by a random per-process API key. DSPy then reaches it exactly like a hosted model
(`openai/<name>` + api_base), so moving to `openai/...`, `anthropic/...` or `ollama_chat/...` is a
configuration change only.

xllamacpp facts this module relies on (xllamacpp 2026.10.x):
- `Server(CommonParams)` blocks until the model is loaded and the HTTP server listens; it raises
  a bare RuntimeError("Failed to init server ...") on any failure (llama.cpp logs the reason
  only with verbosity >= 1, to fd 2).
- port 0 lets the OS pick the port; `server.listening_address` is "http://127.0.0.1:PORT".
- there is no stop method: dropping the last reference stops the HTTP server and frees the model.
- `/health` needs no key; every other endpoint needs `Authorization: Bearer <api key>`.
- responses carry OpenAI `usage` and llama.cpp `timings` (prompt/predicted tokens per second).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import EmbeddedSettings, LMSettings
from agent.lm.models import ModelSpec, PartResolver, assemble, get_spec, resolve_installed_part
from agent.lm.prompt_cache import slot_dir

if TYPE_CHECKING:
    import dspy

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded/"
# Host-RAM cache of idle slot states (llama.cpp default 8 GiB): bounded so RSS stays predictable.
PROMPT_CACHE_RAM_MIB = 1024
_HEALTH_POLL_S = 0.1


class LMError(RuntimeError):
    """Base class for LM configuration and embedded-server problems."""


class LMConfigError(LMError):
    pass


class MissingAPIKeyError(LMConfigError):
    pass


class InsufficientMemoryError(LMError):
    pass


class ServerStartError(LMError):
    pass


# --- memory -----------------------------------------------------------------------------------


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where that file does not exist)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(spec: ModelSpec, settings: EmbeddedSettings, available: int | None = None) -> None:
    available = available_memory_bytes() if available is None else available
    if available is None:
        return
    needed = spec.size_bytes + settings.min_free_memory_mb * 2**20
    if available < needed:
        mib = 2**20
        raise InsufficientMemoryError(
            f"Not enough free memory to run embedded model {spec.name!r}: need about {needed // mib} MiB "
            f"(model {spec.size_bytes // mib} MiB + embedded.min_free_memory_mb "
            f"{settings.min_free_memory_mb}), {available // mib} MiB available.\n"
            f"Close other programs, use the smaller model (SQLAGENT_LM__MODEL=embedded/qwen2.5-coder-0.5b), "
            f"lower embedded.min_free_memory_mb, or use a hosted model (e.g. SQLAGENT_LM__MODEL=openai/gpt-4o-mini "
            f"with SQLAGENT_LM__API_KEY_ENV=OPENAI_API_KEY)."
        )


# --- the embedded server ----------------------------------------------------------------------


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _capture_fd2():
    """Redirect the process's fd 2 (where llama.cpp logs) into a temp file; yields a reader."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield lambda: (tmp.seek(0), tmp.read().decode("utf-8", "replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class EmbeddedServer:
    """llama.cpp's HTTP server for one model, in this process, on loopback.

    Use `get_server()` rather than constructing this directly: it reuses a running server.
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: EmbeddedSettings,
        *,
        resolve_part: PartResolver = resolve_installed_part,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self._resolve_part = resolve_part
        self._api_key = secrets.token_urlsafe(32)
        self._server: Any = None
        self._base_url: str | None = None
        self._lock = threading.Lock()
        self.model_path: Path | None = None
        self.load_seconds: float | None = None
        self.assemble_seconds: float | None = None

    # public properties

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise ServerStartError(f"embedded server for {self.name!r} is not running; call start() first")
        return self._base_url

    @property
    def api_key(self) -> str:
        return self._api_key

    def __repr__(self) -> str:
        state = self._base_url if self.running else "stopped"
        return f"EmbeddedServer({self.name!r}, {state})"

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # lifecycle

    def start(self) -> EmbeddedServer:
        with self._lock:
            if self._server is not None:
                return self
            started = time.perf_counter()
            self.model_path = assemble(self.spec, self.settings.cache_dir, resolve_part=self._resolve_part)
            self.assemble_seconds = time.perf_counter() - started
            check_memory(self.spec, self.settings)
            host, port = self.settings.host, self.settings.port
            if port and not _port_is_free(host, port):
                raise ServerStartError(
                    f"Cannot start embedded model {self.name!r}: {host}:{port} is already in use. "
                    f"Set embedded.port to 0 (pick a free port) or to another port."
                )
            deadline = time.monotonic() + self.settings.startup_timeout_s
            load_started = time.perf_counter()
            server = self._construct(deadline)
            base_url = str(server.listening_address).rstrip("/")
            try:
                self._wait_healthy(base_url, deadline)
            except BaseException:
                del server
                gc.collect()
                raise
            self._server, self._base_url = server, base_url
            self.load_seconds = time.perf_counter() - load_started
            log.info("embedded model %s ready at %s in %.1fs", self.name, base_url, self.load_seconds)
            return self

    def stop(self) -> None:
        """Stop the HTTP server and free the model (xllamacpp does both when the Server is dropped)."""
        with self._lock:
            server, self._server, self._base_url = self._server, None, None
            if server is not None:
                del server
                gc.collect()
        _forget(self)

    def health(self, timeout: float = 2.0) -> bool:
        if self._base_url is None:
            return False
        try:
            with urllib.request.urlopen(f"{self._base_url}/health", timeout=timeout) as resp:
                return resp.status == 200 and json.loads(resp.read()).get("status") == "ok"
        except (OSError, ValueError):
            return False

    # internals

    def _params(self, verbosity: int = -1) -> Any:
        import xllamacpp as xlc

        s = self.settings
        p = xlc.CommonParams()
        p.model.path = str(self.model_path)
        p.model_alias = {self.name}
        p.n_ctx = s.ctx_size
        p.n_parallel = s.parallel
        p.cpuparams.n_threads = s.threads
        p.cpuparams_batch.n_threads = s.threads
        flash = xlc.llama_flash_attn_type
        p.flash_attn_type = (
            flash.LLAMA_FLASH_ATTN_TYPE_ENABLED if s.flash_attn else flash.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        p.no_extra_bufts = not s.repack_weights
        p.fit_params = False  # keep the configured ctx size instead of silently shrinking it
        p.hostnames = [s.host]
        p.port = s.port
        p.api_keys = [self._api_key]
        p.verbosity = verbosity
        p.ui = False  # no web UI
        p.offline = True  # never download anything
        p.endpoint_slots = False
        p.endpoint_metrics = False
        p.cache_ram_mib = PROMPT_CACHE_RAM_MIB
        if s.warm_prompt_cache:
            slots = slot_dir(s)
            slots.mkdir(parents=True, exist_ok=True)
            p.slot_save_path = str(slots) + os.sep  # llama.cpp appends the file name as is
        return p

    def _construct(self, deadline: float) -> Any:
        """Build xllamacpp's Server on a helper thread so startup_timeout_s is enforced."""
        import xllamacpp as xlc

        params = self._params()
        result: dict[str, Any] = {}
        done = threading.Event()
        abandoned = threading.Event()

        def run() -> None:
            try:
                server = xlc.Server(params)
            except BaseException as exc:  # noqa: BLE001 - reported on the caller's thread
                result["error"] = exc
            else:
                if abandoned.is_set():  # the caller gave up: free the model again
                    del server
                    gc.collect()
                else:
                    result["server"] = server
            finally:
                done.set()

        threading.Thread(target=run, name=f"xllamacpp-start-{self.name}", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            abandoned.set()
            raise ServerStartError(
                f"Embedded model {self.name!r} did not load within embedded.startup_timeout_s="
                f"{self.settings.startup_timeout_s}s (model {self.model_path}). The machine may be "
                f"overloaded or swapping: check `uptime`/free memory, raise embedded.startup_timeout_s, "
                f"or use the smaller model embedded/qwen2.5-coder-0.5b."
            )
        if "error" in result:
            raise ServerStartError(self._explain_failure(result["error"])) from result["error"]
        return result["server"]

    def _explain_failure(self, exc: BaseException) -> str:
        """Find out why llama.cpp refused to start: re-run once with its error log captured."""
        import xllamacpp as xlc

        reasons: list[str] = []
        path = self.model_path
        if path is None or not path.is_file():
            reasons.append(f"model file {path} does not exist")
        else:
            with path.open("rb") as fh:
                if fh.read(4) != b"GGUF":
                    reasons.append(f"{path} is not a GGUF file")
        if self.settings.port and not _port_is_free(self.settings.host, self.settings.port):
            reasons.append(f"{self.settings.host}:{self.settings.port} is in use")
        if not reasons:
            with _capture_fd2() as read_log:
                try:
                    retry = xlc.Server(self._params(verbosity=1))
                except RuntimeError:
                    retry = None
                logged = read_log()
            if retry is not None:
                del retry
                gc.collect()
                reasons.append("a second attempt succeeded, so the failure looks transient: try again")
            errors = [re.sub(r"^[\d.]+\s+E\s+", "", ln).strip() for ln in logged.splitlines() if " E " in ln]
            reasons.extend(dict.fromkeys(e for e in errors if e))  # unique, in order
        reason = "\n  - ".join(reasons[:8]) if reasons else "llama.cpp gave no reason"
        return (
            f"The embedded llama.cpp server for {self.name!r} failed to start ({exc}).\n  - {reason}\n"
            f"Check `sqlagent doctor`; if the model file is damaged, delete {path} and its .sha256 marker "
            f"so it is re-assembled; check embedded.ctx_size/threads in config/sqlagent.yaml."
        )

    def _wait_healthy(self, base_url: str, deadline: float) -> None:
        last = "no answer"
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/health", timeout=2) as resp:
                    body = resp.read()
                    if resp.status == 200 and json.loads(body).get("status") == "ok":
                        return
                    last = f"HTTP {resp.status} {body[:200]!r}"
            except urllib.error.HTTPError as exc:  # 503 while loading
                last = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"Embedded model {self.name!r} started at {base_url} but /health was not ready within "
                    f"embedded.startup_timeout_s={self.settings.startup_timeout_s}s (last answer: {last}). "
                    f"Raise the timeout or check that loopback connections are allowed."
                )
            time.sleep(_HEALTH_POLL_S)


_SERVERS: dict[tuple[str, str], EmbeddedServer] = {}
_REGISTRY_LOCK = threading.Lock()


def _key(name: str, settings: EmbeddedSettings) -> tuple[str, str]:
    return name, settings.model_dump_json()


def _forget(server: EmbeddedServer) -> None:
    with _REGISTRY_LOCK:
        for key, value in list(_SERVERS.items()):
            if value is server:
                del _SERVERS[key]


def get_server(
    name: str,
    settings: EmbeddedSettings | None = None,
    *,
    spec: ModelSpec | None = None,
    resolve_part: PartResolver = resolve_installed_part,
) -> EmbeddedServer:
    """The running server for this model and settings, started on first use (thread-safe)."""
    settings = settings or EmbeddedSettings()
    spec = spec or get_spec(name)
    key = _key(name, settings)
    with _REGISTRY_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = EmbeddedServer(spec, settings, resolve_part=resolve_part)
            _SERVERS[key] = server
    try:
        return server.start()  # no-op when already running; the server's lock serialises starts
    except BaseException:
        _forget(server)
        raise


def running_servers() -> list[EmbeddedServer]:
    with _REGISTRY_LOCK:
        return [s for s in _SERVERS.values() if s.running]


def stop_all() -> None:
    with _REGISTRY_LOCK:
        servers = list(_SERVERS.values())
    for server in servers:
        server.stop()


atexit.register(stop_all)

# A forked child (multiprocessing, some eval runners) inherits the Server objects but not their
# threads: it must never free them. It keeps talking to the parent's server over HTTP instead.
# Caveat (measured): a child forked after the server started hangs in a normal interpreter exit
# (llama.cpp's C++ exit handlers), even if it never touches the server. multiprocessing's fork
# workers end with os._exit and are fine; a bare os.fork() child must end with os._exit too.
_INHERITED: list[Any] = []


def _after_fork_in_child() -> None:
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()
    for server in _SERVERS.values():
        server._lock = threading.Lock()
        if server._server is not None:
            _INHERITED.append(server._server)
            server._server = _PARENT_SERVER


class _ParentServer:
    """Stand-in for a server object owned by the parent process (stop() just forgets it)."""


_PARENT_SERVER = _ParentServer()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- dspy.LM ----------------------------------------------------------------------------------


def embedded_name(model: str) -> str | None:
    """'embedded/qwen2.5-coder-1.5b' -> 'qwen2.5-coder-1.5b'; None for any other model string."""
    if model.startswith(EMBEDDED_PREFIX):
        name = model[len(EMBEDDED_PREFIX) :].strip()
        if not name:
            raise LMConfigError("lm.model 'embedded/' names no model: use e.g. embedded/qwen2.5-coder-1.5b")
        return name
    return None


def build_lm(lm: LMSettings, embedded: EmbeddedSettings | None = None) -> dspy.LM:
    """A dspy.LM for these settings; embedded models get their local server started (or reused)."""
    import dspy

    request = {"temperature": lm.temperature, "max_tokens": lm.max_tokens, "cache": lm.cache}
    # a hung endpoint must not stall a question for the client's 600 s
    common: dict[str, Any] = {**request, "timeout": lm.timeout_s, "num_retries": lm.num_retries}
    name = embedded_name(lm.model)
    if name is not None:
        if lm.api_base or lm.api_key_env:
            log.warning("lm.api_base/api_key_env are ignored for embedded model %s", lm.model)
        server = get_server(name, embedded := embedded or EmbeddedSettings())
        # llama.cpp reads on after its client timed out, so a retry waits behind itself (request_timeout_s)
        common["timeout"] = max(lm.timeout_s, embedded.request_timeout_s)
        return dspy.LM(f"openai/{name}", api_base=server.base_url + "/v1", api_key=server.api_key, **common)

    if "/" not in lm.model:
        raise LMConfigError(
            f"lm.model {lm.model!r} needs a provider prefix: 'embedded/<name>' for a local model, or "
            f"'openai/...', 'anthropic/...', 'ollama_chat/...' (any provider dspy.LM accepts)."
        )
    kwargs = dict(common)
    if lm.api_base:
        kwargs["api_base"] = lm.api_base
    if lm.api_key_env:
        key = os.environ.get(lm.api_key_env)
        if not key:
            raise MissingAPIKeyError(
                f"lm.model {lm.model!r} takes its API key from the environment variable {lm.api_key_env!r} "
                f"(lm.api_key_env), which is not set or empty. Export it (export {lm.api_key_env}=...), "
                f"or change lm.api_key_env / SQLAGENT_LM__API_KEY_ENV."
            )
        kwargs["api_key"] = key
    return dspy.LM(lm.model, **kwargs)


def complete_once(lm: dspy.LM, prompt: str) -> tuple[str, float, dict[str, Any]]:
    """One uncached completion: (text, latency in seconds, usage dict). Used by `sqlagent doctor`."""
    fresh = lm.copy(cache=False)
    started = time.perf_counter()
    outputs = fresh(prompt)
    latency = time.perf_counter() - started
    first = outputs[0] if outputs else ""
    text = first.get("text", "") if isinstance(first, dict) else str(first)
    usage = dict(fresh.history[-1].get("usage") or {}) if fresh.history else {}
    return text, latency, usage
