"""Where each module's prompt comes from: the optimized files, or the MLflow Prompt Registry.

    prompts.source: files      prompts/compiled/<module>.json (prompts/compiled.py), as before
    prompts.source: registry   the `@production` version (prompts.registry_alias) of `sqlagent-<module>`
                               in the tracking server's Prompt Registry; moving the alias changes what
                               the agent says from its next start. A module without a usable version
                               (none registered, the registry unreachable, a version of another
                               database or of an older signature) falls back to its file, with a warning.

A registered version's template is the module's DSPy state as JSON (instructions and demos, what
`module.load_state` reads; prompts/optimize/registry.py writes it), and its `sqlagent.meta` tag
holds what decides whether it fits (the database's schema digest, the code's instruction digests).

`load_prompts` returns, per module, what answered: `registry:sqlagent-generate@production/v3`,
`file:/…/prompts/compiled/answer.json` or `code` (the hand-written Signature). The agent writes it on
every trace (agent/service.py), so a trace says which prompt version produced its answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import dspy

from prompts.compiled import apply_state, artifact_paths, load_compiled_modules, warn_skipped

Source = Literal["files", "registry"]
FORMAT_TAG, FORMAT = "sqlagent.format", "dspy-state-v1"
META_TAG = "sqlagent.meta"


def prompt_name(module: str) -> str:
    return f"sqlagent-{module}"


def _from_registry(name: str, module: dspy.Module, alias: str, schema: Any, registry_uri: str | None) -> str:
    """Load the alias's version into `module`; returns its label. Raises with the reason it cannot."""
    import mlflow

    client = mlflow.MlflowClient(registry_uri=registry_uri)
    version = client.get_prompt_version_by_alias(prompt_name(name), alias)
    tags = version.tags or {}
    if tags.get(FORMAT_TAG) != FORMAT:
        raise ValueError(f"version {version.version} is not a DSPy state (tag {FORMAT_TAG} is "
                         f"{tags.get(FORMAT_TAG)!r}); re-register it with `sqlagent optimize`")  # fmt: skip
    apply_state(module, json.loads(version.template), json.loads(tags.get(META_TAG) or "{}"), schema)
    return f"registry:{prompt_name(name)}@{alias}/v{version.version}"


def load_prompts(
    modules: dict[str, dspy.Module],
    *,
    source: Source = "files",
    folder: str | Path,
    enabled: bool = True,
    schema: Any = None,
    alias: str = "production",
    registry_uri: str | None = None,
) -> dict[str, str]:
    """Load each module's optimized prompt from `source`; returns where every module's prompt came from."""
    sources = dict.fromkeys(modules, "code")
    if not enabled:
        return sources
    fallback: dict[str, dspy.Module] = {}
    for name, module in modules.items():
        if source != "registry":
            fallback[name] = module
            continue
        try:
            sources[name] = _from_registry(name, module, alias, schema, registry_uri)
        except Exception as exc:  # the files still answer: a registry problem must not stop the agent
            path = artifact_paths(name, folder)[0]
            instead = str(path) if path.is_file() else "the hand-written prompt"
            warn_skipped(f"Prompt Registry: not using {prompt_name(name)}@{alias}: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:300]}; falling back to {instead}")  # fmt: skip
            fallback[name] = module
    for name in load_compiled_modules(fallback, folder, True, schema=schema):
        sources[name] = f"file:{artifact_paths(name, folder)[0]}"
    return sources
