"""The installed package's version, for `sqlagent --version` and the servers' self-description."""

from __future__ import annotations

import importlib.metadata


def version() -> str:
    try:
        return importlib.metadata.version("sqlagent")
    except importlib.metadata.PackageNotFoundError:  # run from a clone that was never installed
        return "(not installed: run `make setup`)"
