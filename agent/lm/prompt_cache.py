"""The warm prompt cache: llama.cpp's slot state saved to disk after a question and restored when
the next process starts, so its first question finds the stable part of the SQL prompt already read.

llama.cpp's server saves and restores a slot with `POST /slots/0?action=save|restore` when it was
started with a slot save path; a restored slot serves the common prefix of the next prompt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agent.config import EmbeddedSettings

log = logging.getLogger(__name__)


def slot_dir(settings: EmbeddedSettings) -> Path:
    return Path(settings.cache_dir).expanduser() / "slots"


def slot_file(server: Any, database: str) -> str:
    # A saved state is only valid for the same model file and the same numerics, and it warms the
    # stable prompt of one database: a process that also asked a Spider database must not leave that
    # database's prompt for the next Lahman process (measured: first question 17.7 s -> 108.8 s).
    s = server.settings
    key = json.dumps([server.spec.sha256, s.ctx_size, s.flash_attn, s.repack_weights, database])
    return f"{server.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.bin"


def _slot_action(server: Any, action: str, database: str) -> bool:
    request = urllib.request.Request(
        f"{server.base_url}/slots/0?action={action}",
        data=json.dumps({"filename": slot_file(server, database)}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {server.api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status == 200
    except (OSError, ValueError) as exc:
        # A cold cache costs time, never an answer: say so and go on.
        log.warning("embedded model %s: prompt cache %s failed: %s", server.name, action, exc)
        return False


def save_prompt_cache(server: Any, database: str) -> bool:
    """Write the prompt state of the (only) slot to disk, for the next process on `database` to start warm."""
    return bool(
        server.settings.warm_prompt_cache and server.running and _slot_action(server, "save", database)
    )


def restore_prompt_cache(server: Any, database: str) -> bool:
    """Load the prompt state saved for `database`, if there is one: the next prompt reuses its common prefix."""
    if not (server.settings.warm_prompt_cache and server.running):
        return False
    if not (slot_dir(server.settings) / slot_file(server, database)).is_file():
        return False
    return _slot_action(server, "restore", database)
