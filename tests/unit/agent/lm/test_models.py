"""Model registry and GGUF assembly with tiny fake parts (the real weights are for integration tests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import agent.lm.models as models
from agent.config import EmbeddedSettings, LMSettings
from agent.lm.embedded import (
    InsufficientMemoryError,
    LMConfigError,
    MissingAPIKeyError,
    build_lm,
    check_memory,
    embedded_name,
)
from agent.lm.models import (
    ModelIntegrityError,
    ModelNotInstalledError,
    ModelPart,
    ModelSpec,
    UnknownModelError,
    assemble,
    load_registry,
    marker_path,
    resolve_installed_part,
    verify,
)

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"second part \x00\x01" * 50, b"tail"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_parts(tmp_path: Path, chunks: list[bytes] = CHUNKS) -> dict[str, Path]:
    part_dir = tmp_path / "site-packages"
    part_dir.mkdir(exist_ok=True)
    paths = {}
    for i, chunk in enumerate(chunks, start=1):
        path = part_dir / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths[f"fake_part{i}"] = path
    return paths


def make_spec(chunks: list[bytes] = CHUNKS, *, sha256: str | None = None) -> ModelSpec:
    whole = b"".join(chunks)
    return ModelSpec(
        name="fake-model",
        license="Apache-2.0",
        gguf_file="fake.gguf",
        size_bytes=len(whole),
        sha256=sha256 or sha(whole),
        extra="model-fake",
        parts=[
            ModelPart(
                module=f"fake_part{i}",
                distribution=f"fake-part{i}==1.0",
                file=f"fake_part{i}/data/part{i:02d}.bin",
                size_bytes=len(c),
                sha256=sha(c),
            )
            for i, c in enumerate(chunks, start=1)
        ],
    )


class CountingResolver:
    def __init__(self, paths: dict[str, Path]):
        self.paths = paths
        self.calls = 0

    def __call__(self, part: ModelPart) -> Path:
        self.calls += 1
        if part.module not in self.paths:
            raise ModelNotInstalledError(f"package {part.distribution} is not installed")
        return self.paths[part.module]


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_assemble_concatenates_parts_in_order(tmp_path):
    resolver = CountingResolver(make_parts(tmp_path))
    cache = tmp_path / "cache"
    path = assemble(make_spec(), cache, resolve_part=resolver)
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert marker_path(path).read_text().split() == [sha(b"".join(CHUNKS)), "fake.gguf"]
    assert cache_files(cache) == ["fake.gguf", "fake.gguf.sha256"]  # no temp file left behind


def test_assemble_streams_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "CHUNK_SIZE", 7)  # parts are far bigger than one read
    path = assemble(make_spec(), tmp_path / "cache", resolve_part=CountingResolver(make_parts(tmp_path)))
    assert path.read_bytes() == b"".join(CHUNKS)


def test_digest_mismatch_raises_and_leaves_no_file(tmp_path):
    spec = make_spec(sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelIntegrityError) as err:
        assemble(spec, cache, resolve_part=CountingResolver(make_parts(tmp_path)))
    msg = str(err.value)
    assert "fake-model" in msg and "0" * 64 in msg and sha(b"".join(CHUNKS)) in msg
    assert "--force-reinstall" in msg and "'fake-part1==1.0'" in msg
    assert cache_files(cache) == []


def test_corrupted_part_is_detected_and_named(tmp_path):
    paths = make_parts(tmp_path)
    data = bytearray(paths["fake_part2"].read_bytes())
    data[10] ^= 0xFF  # same size, different content
    paths["fake_part2"].write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ModelIntegrityError) as err:
        assemble(make_spec(), cache, resolve_part=CountingResolver(paths))
    msg = str(err.value)
    assert "fake-part2==1.0" in msg
    assert "differs" in msg and "fake-part1==1.0" not in msg.split("differs")[1].split("\n")[0]
    assert cache_files(cache) == []


def test_truncated_part_is_detected(tmp_path):
    paths = make_parts(tmp_path)
    paths["fake_part1"].write_bytes(CHUNKS[0][:-5])
    cache = tmp_path / "cache"
    with pytest.raises(ModelIntegrityError, match=r"fake-part1==1\.0.*expected") as err:
        assemble(make_spec(), cache, resolve_part=CountingResolver(paths))
    assert "wrong size" in str(err.value)
    assert cache_files(cache) == []


def test_missing_part_package_names_the_fix(tmp_path):
    paths = make_parts(tmp_path)
    del paths["fake_part2"], paths["fake_part3"]
    with pytest.raises(ModelNotInstalledError) as err:
        assemble(make_spec(), tmp_path / "cache", resolve_part=CountingResolver(paths))
    msg = str(err.value)
    assert "2 of 3" in msg and "fake-part2==1.0" in msg and "fake-part3==1.0" in msg
    assert "uv sync --extra model-fake" in msg and "make setup" in msg


def test_default_resolver_reports_uninstalled_distribution():
    part = ModelPart(
        module="sqlagent_no_such_part",
        distribution="sqlagent-no-such-part==9.9",
        file="x/part.bin",
        size_bytes=1,
        sha256="0" * 64,
    )
    with pytest.raises(ModelNotInstalledError, match="sqlagent-no-such-part==9.9"):
        resolve_installed_part(part)


def test_fast_path_does_not_read_parts(tmp_path, monkeypatch):
    paths = make_parts(tmp_path)
    cache = tmp_path / "cache"
    spec = make_spec()
    first = assemble(spec, cache, resolve_part=CountingResolver(paths))

    resolver = CountingResolver(paths)
    hashed: list[Path] = []
    monkeypatch.setattr(models, "sha256_file", lambda p, *a, **k: hashed.append(p))
    for path in paths.values():
        path.unlink()  # the parts are not even needed any more
    assert assemble(spec, cache, resolve_part=resolver) == first
    assert resolver.calls == 0 and hashed == []


def test_stale_marker_triggers_reassembly(tmp_path):
    paths = make_parts(tmp_path)
    cache = tmp_path / "cache"
    spec = make_spec()
    path = assemble(spec, cache, resolve_part=CountingResolver(paths))
    marker_path(path).write_text("f" * 64 + "  fake.gguf\n")
    resolver = CountingResolver(paths)
    assemble(spec, cache, resolve_part=resolver)
    assert resolver.calls == len(CHUNKS)
    assert marker_path(path).read_text().split()[0] == spec.sha256


def test_verify_rehashes_and_removes_a_corrupted_cache(tmp_path):
    paths = make_parts(tmp_path)
    cache = tmp_path / "cache"
    spec = make_spec()
    resolver = CountingResolver(paths)
    result = verify(spec, cache, resolve_part=resolver)  # absent: assembled first
    assert result.assembled and result.sha256 == spec.sha256
    assert not verify(spec, cache, resolve_part=resolver).assembled

    path = cache / spec.gguf_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))  # same size: the fast path cannot see this, verify must
    with pytest.raises(ModelIntegrityError, match="corrupted and was removed"):
        verify(spec, cache, resolve_part=resolver)
    assert cache_files(cache) == []
    assert assemble(spec, cache, resolve_part=resolver).read_bytes() == b"".join(CHUNKS)


def test_registry_lists_both_models_consistently():
    registry = load_registry()
    assert registry.names() == ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"]
    for spec in registry.models:
        assert spec.license == "Apache-2.0"
        assert sum(p.size_bytes for p in spec.parts) == spec.size_bytes
        assert all("==" in p.distribution for p in spec.parts)
        assert spec.extra in {"model-1_5b", "model-0_5b"}
    assert len(registry.get("qwen2.5-coder-1.5b").parts) == 22
    assert len(registry.get("qwen2.5-coder-0.5b").parts) == 6
    with pytest.raises(UnknownModelError, match="qwen2.5-coder-0.5b"):
        registry.get("gpt-5")


def test_unpinned_part_is_rejected():
    with pytest.raises(ValueError, match="pinned"):
        ModelPart(module="m", distribution="m>=1", file="f", size_bytes=1, sha256="0" * 64)


# --- agent.lm.embedded without a model -----------------------------------------------------------------


def test_build_lm_passes_hosted_settings_through(monkeypatch):
    monkeypatch.setenv("SQLAGENT_TEST_KEY", "sk-test-123")
    settings = LMSettings(
        model="openai/gpt-4o-mini",
        api_base="https://llm.example.com/v1",
        api_key_env="SQLAGENT_TEST_KEY",
        temperature=0.3,
        max_tokens=77,
        cache=False,
    )
    lm = build_lm(settings, EmbeddedSettings())
    assert lm.model == "openai/gpt-4o-mini"
    assert lm.cache is False
    assert lm.kwargs["api_base"] == "https://llm.example.com/v1"
    assert lm.kwargs["api_key"] == "sk-test-123"
    assert lm.kwargs["temperature"] == 0.3 and lm.kwargs["max_tokens"] == 77


def test_an_embedded_request_may_outlast_a_cold_prompt(monkeypatch):
    """A client that times out does not stop llama.cpp reading the prompt, and the retry queues
    behind it: the embedded model gets embedded.request_timeout_s unless lm.timeout_s is longer."""

    class Running:
        base_url, api_key = "http://127.0.0.1:1", "k"

    monkeypatch.setattr("agent.lm.embedded.get_server", lambda name, settings: Running())
    model = "embedded/qwen2.5-coder-0.5b"
    lm = build_lm(LMSettings(model=model, timeout_s=120), EmbeddedSettings(request_timeout_s=900))
    assert lm.kwargs["timeout"] == 900 and lm.model == "openai/qwen2.5-coder-0.5b"
    lm = build_lm(LMSettings(model=model, timeout_s=1200), EmbeddedSettings(request_timeout_s=900))
    assert lm.kwargs["timeout"] == 1200
    hosted = build_lm(LMSettings(model="ollama_chat/qwen2.5-coder", timeout_s=120), EmbeddedSettings())
    assert hosted.kwargs["timeout"] == 120


def test_build_lm_without_key_env_sends_no_key():
    lm = build_lm(LMSettings(model="ollama_chat/qwen2.5-coder"))
    assert "api_key" not in lm.kwargs and "api_base" not in lm.kwargs


def test_build_lm_missing_api_key_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("SQLAGENT_MISSING_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="SQLAGENT_MISSING_KEY") as err:
        build_lm(LMSettings(model="anthropic/claude-x", api_key_env="SQLAGENT_MISSING_KEY"))
    assert "export SQLAGENT_MISSING_KEY=" in str(err.value)


def test_build_lm_rejects_a_model_without_provider():
    with pytest.raises(LMConfigError, match="provider prefix"):
        build_lm(LMSettings(model="gpt-4o-mini"))


def test_unknown_embedded_model_fails_before_starting_anything():
    assert embedded_name("embedded/qwen2.5-coder-0.5b") == "qwen2.5-coder-0.5b"
    assert embedded_name("openai/gpt-4o") is None
    with pytest.raises(UnknownModelError, match="Known models"):
        build_lm(LMSettings(model="embedded/no-such-model"))


def test_memory_check_is_actionable():
    spec = load_registry().get("qwen2.5-coder-1.5b")
    with pytest.raises(InsufficientMemoryError, match="qwen2.5-coder-0.5b"):
        check_memory(spec, EmbeddedSettings(min_free_memory_mb=1024), available=512 * 2**20)
    check_memory(spec, EmbeddedSettings(min_free_memory_mb=1024), available=64 * 2**30)
