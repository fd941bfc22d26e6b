"""`sqlagent doctor`: versions, database, model and tracking store, each checked with a precise message."""

from __future__ import annotations

import importlib.metadata
import time

from pydantic import BaseModel

from agent.config import Settings, resolve_path

PACKAGES = ("dspy", "langgraph", "mlflow", "duckdb", "psycopg", "sqlglot", "pydantic", "xllamacpp")


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


def _versions() -> Check:
    parts = []
    for name in PACKAGES:
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            return Check(name="versions", ok=False, detail=f"{name} is not installed: run `make setup`.")
    return Check(name="versions", ok=True, detail=", ".join(parts))


def _database(settings: Settings) -> list[Check]:
    from tools.sql.database import open_database
    from tools.sql.engines import redacted, url_scheme

    url = settings.database.url
    where = redacted(url) if url_scheme(url) else str(resolve_path(url))
    try:
        db = open_database(settings.database_config())
    except Exception as exc:
        return [Check(name="database", ok=False, detail=f"{where}: {exc}")]
    tables = db.schema.tables
    rows = sum(t.row_count for t in tables)
    uncommented = [t.name for t in tables if not t.comment]
    name = db.url.rsplit("/", 1)[-1]
    detail = f"{name}: {len(tables)} tables, {rows:,} rows, {len(db.schema.joins)} join paths"
    if uncommented:
        detail += f"; tables without a description: {', '.join(uncommented)}"
    engine = [Check(name=c.name, ok=c.ok, detail=c.detail) for c in db.engine.checks()]
    return [Check(name="database", ok=True, detail=detail), *engine]


def _model(settings: Settings, full_verify: bool) -> list[Check]:
    from agent.lm.embedded import build_lm, complete_once, embedded_name
    from agent.lm.models import assemble, get_spec, verify

    checks = []
    name = embedded_name(settings.lm.model)
    if name:
        try:
            spec = get_spec(name)
            started = time.perf_counter()
            path = (verify if full_verify else assemble)(spec, resolve_path(settings.embedded.cache_dir))
            how = "re-hashed" if full_verify else "marker"
            checks.append(
                Check(
                    name="model",
                    ok=True,
                    detail=f"{path.name} sha256 {spec.sha256[:12]}… ({how}, "
                    f"{time.perf_counter() - started:.1f} s)",
                )
            )
        except Exception as exc:
            return [Check(name="model", ok=False, detail=str(exc))]
    try:
        started = time.perf_counter()
        lm = build_lm(settings.lm, settings.embedded)
        load = time.perf_counter() - started
        text, latency, usage = complete_once(
            lm, "Write the SQL keyword that reads rows from a table. One word."
        )
        checks.append(
            Check(
                name="lm",
                ok=bool(text.strip()),
                detail=f"{settings.lm.model}: load {load:.1f} s, "
                f"answer {text.strip()[:30]!r} in {latency:.2f} s, usage {usage.get('total_tokens')} tokens",
            )
        )
    except Exception as exc:
        checks.append(Check(name="lm", ok=False, detail=f"{settings.lm.model}: {exc}"))
    return checks


def _tracking(settings: Settings) -> Check:
    if not settings.tracking.enabled:
        return Check(name="tracking", ok=True, detail="disabled (tracking.enabled: false)")
    import mlflow

    from agent.tracing import setup_tracing

    try:
        setup_tracing(settings)
        experiment = mlflow.get_experiment_by_name(settings.tracking.experiment)
    except Exception as exc:
        return Check(name="tracking", ok=False, detail=f"{settings.tracking.resolved_uri()}: {exc}")
    return Check(
        name="tracking",
        ok=True,
        detail=f"{settings.tracking.resolved_uri()} experiment {experiment.name!r} ({experiment.experiment_id})",
    )


def run_checks(settings: Settings, full_verify: bool = False) -> list[Check]:
    return [_versions(), *_database(settings), *_model(settings, full_verify), _tracking(settings)]
