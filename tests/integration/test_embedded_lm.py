"""The real embedded model (qwen2.5-coder-0.5b) through llama.cpp's server and dspy.LM.

The assembled GGUF goes to the default cache (~/.cache/sqlagent/models), so only the first run
on a machine pays for assembly (~2 s); later runs take the fast path.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import dspy
import pytest

from agent.config import EmbeddedSettings, LMSettings
from agent.lm.embedded import (
    ServerStartError,
    build_lm,
    complete_once,
    get_server,
    running_servers,
)
from agent.lm.models import (
    ModelNotInstalledError,
    ModelPart,
    ModelSpec,
    assemble,
    get_spec,
    is_cached,
    resolve_parts,
    verify,
)

pytestmark = pytest.mark.integration

MODEL = "qwen2.5-coder-0.5b"
SETTINGS = EmbeddedSettings()  # default cache dir, 2 threads, ctx 8192, flash attention off


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    spec = get_spec(MODEL)
    if not is_cached(spec, SETTINGS.cache_dir):
        try:
            resolve_parts(spec)
        except ModelNotInstalledError as exc:
            pytest.skip(f"embedded model weights not installed: {exc}")
    return spec


@pytest.fixture(scope="module")
def lm(spec):
    lm = build_lm(LMSettings(model=f"embedded/{MODEL}", max_tokens=64, cache=False), SETTINGS)
    yield lm
    for server in running_servers():
        server.stop()


def test_assemble_and_verify(spec):
    path = assemble(spec, SETTINGS.cache_dir)
    assert path.stat().st_size == spec.size_bytes
    result = verify(spec, SETTINGS.cache_dir)
    assert result.sha256 == spec.sha256 and result.path == path


def test_predict_answers_and_reports_usage(lm):
    with dspy.context(lm=lm):
        pred = dspy.Predict("question -> answer")(question="What is 2+3? Answer with a number.")
    assert "5" in pred.answer
    usage = lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 20 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_complete_once_writes_sql(lm):
    text, latency, usage = complete_once(
        lm, "Write one SQL query that counts the rows of the table players. Reply with the SQL only."
    )
    assert "count" in text.lower() and "players" in text.lower()
    assert latency > 0  # measured; speed itself is for `make bench`, not a test
    assert usage["completion_tokens"] > 0


def test_second_start_reuses_the_running_server(lm):
    server = get_server(MODEL, SETTINGS)
    assert server.running and server.health()
    assert lm.kwargs["api_base"] == server.base_url + "/v1"
    again = build_lm(LMSettings(model=f"embedded/{MODEL}"), SETTINGS)
    assert again.kwargs["api_base"] == lm.kwargs["api_base"]
    assert get_server(MODEL, EmbeddedSettings()) is server
    assert len(running_servers()) == 1


def test_server_is_loopback_only_and_needs_the_key(lm):
    server = get_server(MODEL, SETTINGS)
    assert server.base_url.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(server.base_url + "/v1/models", timeout=5)
    assert err.value.code == 401
    req = urllib.request.Request(
        server.base_url + "/v1/models", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert MODEL in json.dumps(json.loads(resp.read()))


def test_broken_gguf_gives_a_reason(tmp_path):
    data = b"GGUF\x03\x00\x00\x00" + b"\xff" * 64  # right magic, garbage header
    part_file = tmp_path / "part01.bin"
    part_file.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    broken = ModelSpec(
        name="broken",
        license="none",
        gguf_file="broken.gguf",
        size_bytes=len(data),
        sha256=digest,
        parts=[
            ModelPart(
                module="b", distribution="b==1", file="b/part01.bin", size_bytes=len(data), sha256=digest
            )
        ],
    )
    with pytest.raises(ServerStartError, match="failed to load model"):
        get_server(
            "broken",
            EmbeddedSettings(cache_dir=str(tmp_path / "cache")),
            spec=broken,
            resolve_part=lambda part: Path(part_file),
        )


def test_stop_is_clean_and_restart_works(lm):
    server = get_server(MODEL, SETTINGS)
    base_url = server.base_url
    server.stop()
    assert not server.running and not server.health()
    with pytest.raises(OSError):
        urllib.request.urlopen(base_url + "/health", timeout=2)
    assert running_servers() == []
    restarted = get_server(MODEL, SETTINGS)
    assert restarted is not server and restarted.health()
    text, _, _ = complete_once(
        build_lm(LMSettings(model=f"embedded/{MODEL}", max_tokens=8), SETTINGS), "Say OK."
    )
    assert text.strip()
