"""Each optimized version goes to the MLflow Prompt Registry as `sqlagent-<module>`.

The template is the module's prompt as text (instructions + demos, prompts.compiled.render_text).
Aliases: `candidate` always points at the latest optimized version; `production` at the version
that was written to prompts/compiled (the one the agent loads). Pin production by hand with
`mlflow.genai.set_prompt_alias("sqlagent-generate", alias="production", version=N)`; the version's
tags (`artifact_sha256`, `git_commit`) say which artifact file it is.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prompts.compiled import render_text


def register_version(name: str, program: Any, meta: dict[str, Any], settings: Any, *, production: bool) -> dict:
    import mlflow

    mlflow.set_tracking_uri(settings.tracking.resolved_uri())
    prompt_name = f"sqlagent-{name}"
    state = json.dumps(program.dump_state(), sort_keys=True, default=str)
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
    }
    version = mlflow.genai.register_prompt(
        name=prompt_name,
        template=render_text(program),
        commit_message=(f"{meta['optimizer']} budget {meta['budget']} on {meta['lm']}: dev "
                        f"{meta['dev_before']} -> {meta['dev_after']}"),
        tags=tags,
    )
    aliases = ["candidate"] + (["production"] if production else [])
    for alias in aliases:
        mlflow.genai.set_prompt_alias(prompt_name, alias=alias, version=version.version)
    return {"name": prompt_name, "version": version.version, "aliases": aliases}
