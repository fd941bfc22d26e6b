"""Where a run came from: the commit the code ran at (eval summaries, bench results)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def git_commit(cwd: Path | None = None) -> dict[str, Any]:
    """The commit the code ran at, and whether the tree had local changes (None outside git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
