"""Each optimized version goes to the MLflow Prompt Registry as `sqlagent-<module>`.

The template is the module's DSPy state as JSON (instructions + demos: what `module.load_state`
reads), so that `prompts.source: registry` can load the version an alias points at
(prompts/prompt_source.py); the commit message says what the optimizer found, the `sqlagent.meta`
tag holds the database and instruction digests that decide whether a version fits.
Aliases: `candidate` always points at the latest optimized version; `production` at the version
that was written to prompts/compiled (the one the agent loads). Pin production by hand with
`mlflow.genai.set_prompt_alias("sqlagent-generate", alias="production", version=N)`; the version's
tags (`artifact_sha256`, `git_commit`) say which artifact file it is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prompts.prompt_source import FORMAT, FORMAT_TAG, META_TAG, prompt_name


def register_version(
    name: str, program: Any, meta: dict[str, Any], settings: Any, *, production: bool
) -> dict:
    import mlflow

    mlflow.set_tracking_uri(settings.tracking.resolved_uri())
    prompt = prompt_name(name)
    state = json.dumps(program.dump_state(), sort_keys=True, default=str)
    fits = {key: meta[key] for key in ("database", "code_instructions") if key in meta}
    tags = {
        "module": name,
        "optimizer": str(meta["optimizer"]),
        "lm": str(meta["lm"]),
        "dev_before": f"{meta['dev_before']}",
        "dev_after": f"{meta['dev_after']}",
        "git_commit": str(meta.get("git_commit")),
        "dataset_sha256": str(meta["dataset"]["sha256"]),
        "artifact_sha256": hashlib.sha256(state.encode()).hexdigest(),
        "status": "written" if production else "rejected",
        FORMAT_TAG: FORMAT,
        META_TAG: json.dumps(fits, sort_keys=True, default=str),
    }
    version = mlflow.genai.register_prompt(
        name=prompt,
        template=state,
        commit_message=(
            f"{meta['optimizer']} budget {meta['budget']} on {meta['lm']}: dev "
            f"{meta['dev_before']} -> {meta['dev_after']}"
        ),
        tags=tags,
    )
    aliases = ["candidate"] + (["production"] if production else [])
    for alias in aliases:
        mlflow.genai.set_prompt_alias(prompt, alias=alias, version=version.version)
    return {"name": prompt, "version": version.version, "aliases": aliases}
