"""Optimized prompt modules on disk: `prompts/compiled/<module>.json` + `<module>.meta.json`.

`<module>.json` is DSPy's own `program.save` format (demos, instructions, signature per predictor),
loaded with `module.load(path)`. The provenance (optimizer, settings, LM, data digest, dev scores
before/after, date, git commit, registry version) lives in the sibling `<module>.meta.json`, not
inside the DSPy file: `load` ignores unknown keys today, but DSPy owns that file's layout (it already
writes its own `metadata` key), so extra keys there could collide with a later DSPy version.

The agent calls `load_compiled_modules(modules, folder, enabled, schema)` once when its context is built
(config `prompts.use_compiled`, `prompts.compiled_dir`). A file that does not match the module
(e.g. a signature changed since it was compiled), whose metadata names a database with other
tables than the one the agent is asked about, or whose instruction was edited in code since it was
compiled, is skipped with a warning; the module keeps its
hand-written prompt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import dspy

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parent / "compiled"


def artifact_paths(name: str, folder: str | Path = DEFAULT_DIR) -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / f"{name}.json", folder / f"{name}.meta.json"


def _fields(module: dspy.Module) -> dict[str, list[str]]:
    return {n: sorted(p.signature.fields) for n, p in module.named_predictors()}


def check_compatible(module: dspy.Module, state: dict[str, Any]) -> str | None:
    """Why `state` cannot be loaded into `module` (None when it can)."""
    for name, fields in _fields(module).items():
        saved = state.get(name)
        if not isinstance(saved, dict):
            return f"no state for predictor {name!r}"
        saved_fields = (saved.get("signature") or {}).get("fields") or []
        if len(saved_fields) != len(fields):
            return f"predictor {name!r} was compiled for {len(saved_fields)} fields, the module has {len(fields)}"
        for demo in saved.get("demos", []):
            unknown = set(demo) - set(fields) - {"augmented"}
            if unknown:
                return f"predictor {name!r} has demos with fields {sorted(unknown)} the module does not have"
    return None


def schema_digest(schema: Any) -> str:
    """Which database a module was optimized on: its table and column names (not its rows or file)."""
    names = sorted(f"{t.name}.{c.name}".lower() for t in schema.tables for c in t.columns)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def database_mismatch(schema: Any, meta: dict[str, Any] | None) -> str | None:
    """Why an artifact's demos do not fit this database (None when they do or nothing is recorded)."""
    recorded = (meta or {}).get("database") or {}
    if not recorded.get("schema_digest") or schema is None:
        return None
    if recorded["schema_digest"] == schema_digest(schema):
        return None
    return (
        f"it was optimized on database {recorded.get('name')!r}, whose tables differ from this one's: "
        f"its demos would show the model another schema. Run `sqlagent optimize` for this database or "
        f"point prompts.compiled_dir at its own folder"
    )


def instruction_digests(module: dspy.Module) -> dict[str, str]:
    """Per predictor, a digest of the instruction written in code (the Signature docstring)."""
    return {
        n: hashlib.sha256(p.signature.instructions.encode()).hexdigest()[:16]
        for n, p in module.named_predictors()
    }


def instructions_changed(module: dspy.Module, meta: dict[str, Any] | None) -> str | None:
    """Why an artifact is stale: its module's instruction was edited in code after it was compiled.

    A saved program carries its own copy of the instructions and `load` would silently put that copy
    back over the edit.
    """
    recorded = (meta or {}).get("code_instructions")
    if not recorded:
        return None
    changed = sorted(n for n, d in instruction_digests(module).items() if recorded.get(n) not in (None, d))
    if not changed:
        return None
    return (
        f"the instruction of {', '.join(changed)} was edited since it was compiled; the edit wins. "
        f"Re-run `sqlagent optimize` to compile the new instruction"
    )


def apply_state(
    module: dspy.Module, state: dict[str, Any], meta: dict[str, Any] | None, schema: Any = None
) -> None:
    """Load a saved DSPy state into `module`, or raise ValueError saying why it does not fit (another
    database, an instruction edited since, other fields). The files and the registry share it."""
    problem = (
        database_mismatch(schema, meta)
        or instructions_changed(module, meta)
        or check_compatible(module, state)
    )
    if problem:
        raise ValueError(problem)
    module.load_state(state)


def warn_skipped(message: str) -> None:
    log.warning(message)
    warnings.warn(message, stacklevel=3)


def load_compiled_modules(
    modules: dict[str, dspy.Module],
    folder: str | Path = DEFAULT_DIR,
    enabled: bool = True,
    schema: Any = None,
) -> list[str]:
    """Load every `<name>.json` in `folder` into `modules[name]`; returns the names loaded.
    `schema` is the database's, checked against the one an artifact was optimized on."""
    if not enabled:
        return []
    loaded = []
    for name, module in modules.items():
        path, _ = artifact_paths(name, folder)
        if not path.is_file():
            continue
        try:
            apply_state(module, json.loads(path.read_text()), read_meta(name, folder), schema)
        except Exception as exc:  # a stale or broken artifact must never stop the agent
            warn_skipped(f"Not using {path}: {type(exc).__name__}: {exc}")
            continue
        loaded.append(name)
    return loaded


def read_meta(name: str, folder: str | Path = DEFAULT_DIR) -> dict[str, Any] | None:
    _, meta = artifact_paths(name, folder)
    return json.loads(meta.read_text()) if meta.is_file() else None


def save_compiled(
    module: dspy.Module, name: str, meta: dict[str, Any], folder: str | Path = DEFAULT_DIR
) -> Path:
    """Write `<name>.json` (program.save) and `<name>.meta.json`; returns the program path."""
    path, meta_path = artifact_paths(name, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.json")
    module.save(str(tmp))
    tmp.replace(path)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return path


def _cut(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_text(module: dspy.Module, field_limit: int = 600) -> str:
    """The module's prompt as readable text: per predictor its instructions, fields and demos."""
    blocks = []
    for name, pred in module.named_predictors():
        sig = pred.signature
        lines = [
            f"## {name}",
            sig.instructions.strip(),
            "",
            "inputs: " + ", ".join(sig.input_fields),
            "outputs: " + ", ".join(sig.output_fields),
        ]
        for i, demo in enumerate(pred.demos, 1):
            lines.append(f"\n### example {i}")
            for key in [*sig.input_fields, *sig.output_fields]:
                if key in demo:
                    lines.append(f"{key}: {_cut(demo[key], field_limit)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
