"""The introspected schema on disk: one JSON file per database and fingerprint, read back while the
engine's fingerprint (a DuckDB file's path, size and mtime; a server's catalog and write counters)
says nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from tools.sql.engines.base import Engine
from tools.sql.introspect import DatabaseSchema


def load_schema(engine: Engine, cache_dir: Path) -> DatabaseSchema:
    """The schema of an open engine's database, from the cache when its fingerprint has not changed."""
    cache_file = cache_dir / f"{engine.name}-{engine.fingerprint()}.schema.json"
    if cache_file.exists():
        try:
            return DatabaseSchema.model_validate_json(cache_file.read_text())
        except ValueError:
            cache_file.unlink()  # stale format from another version: rebuild below
    schema = engine.introspect()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(schema.model_dump(), indent=1))
    tmp.replace(cache_file)
    return schema
