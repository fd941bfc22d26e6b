"""A judge's definition: one versioned YAML file per judge (evals/judges/<name>.yaml).

An aligned version (`sqlagent judges align`) is the same file with new instructions and an
`aligned` record (evals/judges/aligned/<name>.yaml); it is used when `judges.use_aligned` is on and
it was aligned from the current version of the judge.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.config import JudgeSettings, resolve_path

log = logging.getLogger(__name__)

TABLES_PLACEHOLDER = "<<database tables>>"  # replaced by the database's tables when a judge is built


class JudgeSpecError(ValueError):
    """A judge file that cannot be used; the message names the file."""


class Agreement(BaseModel):
    n: int
    accuracy: float | None = None
    kappa: float | None = None  # None: undefined (one value only, on both sides)


class AlignmentRecord(BaseModel):
    """How an aligned version was made: from which version, on which labels, and what it changed."""

    from_version: int
    optimizer: str
    lm: str
    aligned_at: str
    labels: str  # the labelled set (path) and its digest
    labels_sha256: str
    train: int
    heldout: int
    before: Agreement
    after: Agreement
    registered_version: int | None = None  # the MLflow scorer registry's version, when registered


class JudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(ge=1)
    description: str
    values: list[str] = Field(min_length=2)
    passing: str
    applies_to: Literal["answered", "sql", "all"]
    human_labels: list[str] = Field(min_length=1)
    rationale_first: bool = True
    instructions: str
    aligned: AlignmentRecord | None = None

    @model_validator(mode="after")
    def _consistent(self) -> JudgeSpec:
        if self.passing not in self.values:
            raise ValueError(f"passing {self.passing!r} is not one of the values {self.values}")
        if "{{ inputs }}" not in self.instructions and "{{ outputs }}" not in self.instructions:
            raise ValueError("the instructions must read {{ inputs }} or {{ outputs }}")
        return self

    @property
    def value_type(self) -> Any:
        return Literal[tuple(self.values)]  # make_judge's feedback_value_type: the model must pick one

    @property
    def tag(self) -> str:
        """The version a verdict was made with: grounding@v1, grounding@v1+aligned-2026-12-02."""
        tag = f"{self.name}@v{self.version}"
        return tag + f"+aligned-{self.aligned.aligned_at[:10]}" if self.aligned else tag

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.instructions.encode()).hexdigest()[:12]

    def render(self, database_tables: str) -> str:
        """The instructions a judge is made with: the database's tables in place of the placeholder."""
        return self.instructions.replace(TABLES_PLACEHOLDER, database_tables.strip())

    def with_instructions(self, rendered: str, database_tables: str, record: AlignmentRecord) -> JudgeSpec:
        """An aligned version: its instructions with the database's tables put back as the
        placeholder, so that the file does not hold one database's schema."""
        tables = database_tables.strip()
        text = (
            rendered.replace(tables, TABLES_PLACEHOLDER)
            if tables and TABLES_PLACEHOLDER in self.instructions
            else rendered
        )
        return self.model_copy(update={"instructions": text, "aligned": record})


def read_spec(path: Path) -> JudgeSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return JudgeSpec.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise JudgeSpecError(f"{path}: {' '.join(str(exc).split())[:400]}") from exc


def write_spec(spec: JudgeSpec, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{spec.name}.yaml"
    data = spec.model_dump(exclude_none=True)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100, default_style=None)
    path.write_text(
        f"# Aligned by `sqlagent judges align`: review the instructions before committing.\n{text}",
        encoding="utf-8",
    )
    return path


def load_specs(settings: JudgeSettings, names: list[str] | None = None) -> list[JudgeSpec]:
    """The judges in `settings.dir` (all, or those named), each replaced by its aligned version when
    `use_aligned` is on and the aligned file was made from the judge's current version."""
    directory, aligned_dir = resolve_path(settings.dir), resolve_path(settings.aligned_dir)
    specs = {s.name: s for s in (read_spec(p) for p in sorted(directory.glob("*.yaml")))}
    if names:
        unknown = sorted(set(names) - set(specs))
        if unknown:
            raise JudgeSpecError(
                f"no judge named {', '.join(unknown)} in {directory}; judges: {', '.join(specs)}"
            )
        specs = {n: specs[n] for n in names}
    out = []
    for name, base in specs.items():
        path = aligned_dir / f"{name}.yaml"
        if settings.use_aligned and path.is_file():
            aligned = read_spec(path)
            if aligned.aligned and aligned.aligned.from_version == base.version:
                out.append(aligned)
                continue
            log.warning(
                "%s was aligned from another version of %s (v%s): using v%s as written; re-run "
                "`sqlagent judges align --judge %s`",
                path,
                name,
                aligned.aligned.from_version if aligned.aligned else "?",
                base.version,
                name,
            )
        out.append(base)
    return out
