"""Configuration: config/sqlagent.yaml loaded into typed settings, overridden by SQLAGENT_* env vars.

Precedence (highest first): explicit keyword arguments to `load_settings`, environment variables
(`SQLAGENT_LM__MODEL`, nested keys joined by `__`), the YAML file (`SQLAGENT_CONFIG` or
config/sqlagent.yaml), then the defaults below.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from agent.config_sections import EvalSettings, MonitorSettings, Section

if TYPE_CHECKING:
    from tools.sql.database import DatabaseConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "sqlagent.yaml"
# The YAML file of the settings being built now (`load_settings(config_file=...)`), else SQLAGENT_CONFIG.
_config_file: ContextVar[Path | None] = ContextVar("sqlagent_config_file", default=None)


def resolve_path(value: str | Path) -> Path:
    """Expand ~ and make relative paths relative to the project root, not the caller's cwd."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


class ConfigNotFound(FileNotFoundError):
    """No configuration file: the message says where sqlagent looked and what to do."""


class NodeLMSettings(Section):
    """Overrides for one node's LM; unset fields inherit from the top-level `lm` section."""

    model: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    prefill: Literal["auto", "on", "off"] | None = None


class LMSettings(Section):
    model: str = "embedded/qwen2.5-coder-1.5b"
    api_base: str | None = None
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 400
    cache: bool = True
    timeout_s: float = 120
    num_retries: int = 2
    # Start the model's reply inside its single output field (prompts/adapter.py): ~14 fewer tokens
    # written per call. auto: on for embedded models (llama.cpp continues the message), off otherwise.
    prefill: Literal["auto", "on", "off"] = "auto"
    nodes: dict[str, NodeLMSettings] = Field(default_factory=dict)

    @property
    def prefills(self) -> bool:
        return self.prefill == "on" or (self.prefill == "auto" and self.model.startswith("embedded/"))

    def for_node(self, node: str) -> LMSettings:
        """The effective LM settings for one node (its overrides on top of the defaults)."""
        override = self.nodes.get(node)
        return self if override is None else self.overridden(override)

    def overridden(self, override: NodeLMSettings) -> LMSettings:
        """These settings with the override's set fields on top (a node's, the judges')."""
        merged = self.model_dump(exclude={"nodes"})
        merged.update(override.model_dump(exclude_none=True))
        return LMSettings(**merged)


class EmbeddedSettings(Section):
    cache_dir: str = "~/.cache/sqlagent/models"
    threads: int = 2
    ctx_size: int = 8192
    parallel: int = 1
    flash_attn: bool = True
    repack_weights: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout_s: float = 120
    # The in-process server keeps working on a request whose client gave up, so a timeout and retry
    # only queue a second copy behind the first: an embedded request may take this long (lm.timeout_s
    # if that is longer). config/sqlagent.yaml says how it was measured.
    request_timeout_s: float = 900
    min_free_memory_mb: int = 1024
    # Save the model's prompt state after a question and restore it when the next process starts,
    # so its first question finds the stable prompt prefix already read (<cache_dir>/slots).
    warm_prompt_cache: bool = True


class DatabaseSettings(Section):
    # A DuckDB file (relative paths are resolved against the project root) or an engine URL:
    # postgresql://reader@host:5432/db (tools/sql/engines/__init__.py).
    url: str = "data/lahman.duckdb"
    # The SQL dialect the model writes and the policy parses: null = the engine's (duckdb, postgres).
    # Another one only changes the prompt and the policy (e.g. to test a dialect's policy on the
    # DuckDB demo); the engine still runs its own.
    dialect: str | None = None
    # The environment variable holding the server password (never the password itself); libpq's own
    # PGPASSWORD and ~/.pgpass work too.
    password_env: str | None = None
    # A server login that can write (or create) is refused at connect time; false only warns in
    # `sqlagent doctor` (the READ ONLY transaction then is the last layer). docs/engines.md.
    require_read_only_role: bool = True

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "path" in data:
            raise ValueError(
                "database.path is now database.url (a DuckDB file path or an engine URL): rename the "
                "key in the YAML, or set SQLAGENT_DATABASE__URL instead of SQLAGENT_DATABASE__PATH."
            )
        return data

    # YAML of table/column descriptions (written by `sqlagent init`), laid over the database's comments.
    descriptions: str | None = None
    catalog_cache_dir: str = "~/.cache/sqlagent/catalogs"
    access_file: str = "config/access.yaml"  # the access roles (--role)


class LimitSettings(Section):
    query_timeout_s: float = 10
    max_rows: int = 1000
    max_result_bytes: int = 5_000_000
    limit_cap: int = 1000
    rows_in_prompt: int = 20
    memory_limit: str = "2GB"
    db_threads: int = 2
    work_mem: str = "64MB"
    connect_timeout_s: float = 5
    db_pool_size: int = 4
    max_repair_attempts: int = 2
    max_question_chars: int = 2000
    approve_sql: bool = (
        False  # pause before each query runs until a person approves it (agent/nodes/approve.py)
    )


class RetrievalSettings(Section):
    max_tables: int = 4
    examples_k: int = 3
    example_bank: str = "evals/golden.jsonl"
    value_match_threshold: float = 0.88
    # The stable schema: tables described in full in every prompt, always first and in the same
    # order, so the model's prompt cache serves them and only the rest of a question is read.
    stable_tables: list[str] | None = None  # None: the tables the worked examples use most
    stable_schema_chars: int = 12000  # the size of the stable block when chosen automatically
    max_linked_tables: int = 2  # tables a question adds beside the stable ones


class RewriteSettings(Section):
    # rules: capitalised spans and quoted names looked up in the value index, no LM call (the LM
    # still makes a follow-up standalone); lm: the LM lists the names, the spans are a safety net.
    mentions: Literal["rules", "lm"] = "rules"


class GenerateSettings(Section):
    # Drop a WHERE filter whose value the model copied from a worked example (tools/sql/grounding.py):
    # in the question neither as written nor as a value hint, on a column with at least
    # copied_filter_min_distinct distinct values (ids, seasons; not flags, leagues or awards).
    drop_copied_filters: bool = True
    copied_filter_min_distinct: int = 100
    # Complete a join on part of a key (Teams ON teamID only) with the key column both tables have
    # (yearID): tools/sql/join_keys.py.
    complete_join_keys: bool = True
    # Drop a plain join whose table the query never reads (tools/sql/unused_joins.py).
    drop_unused_joins: bool = True
    # When the question asks for ties, the outer ORDER BY ... LIMIT N keeps every row tied within the
    # top N (tools/sql/ties.py).
    keep_ties: bool = True


class AnswerSettings(Section):
    # template: said from the question and the rows, no LM call; lm: the LM words it; auto: the
    # template for small results (at most template_max_rows rows of template_max_columns), else the LM.
    mode: Literal["auto", "template", "lm"] = "auto"
    template_max_rows: int = 20
    template_max_columns: int = 4


class PromptSettings(Section):
    use_compiled: bool = True  # load optimized modules (from `source`) when present
    compiled_dir: str = "prompts/compiled"
    # files: compiled_dir; registry: the MLflow Prompt Registry's `registry_alias` version of each
    # module (prompts/prompt_source.py), falling back to compiled_dir with a warning.
    source: Literal["files", "registry"] = "files"
    registry_alias: str = "production"


class ToolSettings(Section):
    budget: int = 6  # `sqlagent tools --lint` fails above this many tools


class TrackingSettings(Section):
    enabled: bool = True
    uri: str = "sqlite:///mlruns/mlflow.db"
    experiment: str = "sqlagent"
    checkpoint_db: str = "mlruns/threads.sqlite"

    def resolved_uri(self) -> str:
        """Make a relative sqlite path absolute so the store does not depend on the cwd."""
        prefix = "sqlite:///"
        if self.uri.startswith(prefix) and not self.uri.startswith(prefix + "/"):
            return prefix + str(resolve_path(self.uri[len(prefix) :]))
        return self.uri


class ServerSettings(Section):
    """`sqlagent serve`: who may use the HTTP API, and how much (agent/apps/auth.py, limits.py)."""

    # Bearer tokens (`sqlagent users add`). Off is only allowed on a loopback address: `make serve`
    # on 127.0.0.1 turns it off with --no-auth; any other bind address needs it.
    auth: bool = True
    users_file: str = "mlruns/users.sqlite"  # token hashes, roles and permissions, never a token
    max_concurrent_questions: int = Field(2, ge=1)  # per user, queued or running
    questions_per_minute: int = Field(10, ge=1)  # per user, a sliding 60 s window


class McpSettings(Section):
    """`sqlagent mcp`: the database's tools for MCP clients (agent/apps/mcp_server.py)."""

    # The access role (config/access.yaml) of every call over stdio, and over HTTP without auth; with
    # auth, each call runs with its token's role. None: the file's default role. `--role` overrides.
    role: str | None = None
    host: str = "127.0.0.1"  # streamable HTTP: bind address; anything but loopback needs auth
    port: int = 8001
    path: str = "/mcp"


class JudgeAlignSettings(Section):
    """`sqlagent judges align`: MLflow's SIMBA optimizer over the human labels (evals/judges/align.py).

    Each step samples `batch_size` labelled cases `candidates` times and tries up to `candidates` + 1
    new instructions on them; the end scores the best candidates on every training case. Small by
    default: on the embedded model one judge call takes ~17 s on 2 cores."""

    heldout: float = Field(0.34, gt=0, lt=1)  # share of each label kept out of alignment, for before/after
    max_steps: int = Field(2, ge=1)
    candidates: int = Field(2, ge=1)
    batch_size: int = Field(8, ge=1)
    max_demos: int = Field(2, ge=0)
    # The judge samples at this temperature while SIMBA explores (a judge at 0 answers every sample
    # alike and leaves SIMBA nothing to compare); the aligned judge runs at lm.temperature again.
    temperature: float = Field(0.7, ge=0)
    threads: int = Field(1, ge=1)  # the embedded model has one slot
    seed: int = 0
    # At most this many training labels per judge (None: all); SIMBA's last step judges every one of
    # them once per candidate, the dearest part of a run.
    train_limit: int | None = Field(None, ge=10)


class JudgeSettings(Section):
    """The LLM judges (evals/judges/*.yaml), made with mlflow.genai.judges.make_judge."""

    dir: str = "evals/judges"
    aligned_dir: str = "evals/judges/aligned"  # what `sqlagent judges align` writes
    use_aligned: bool = True  # load an aligned version when there is one
    labels: str = "evals/judges/labels/lahman.jsonl"  # the shipped, hand-reviewed labelled set
    # The judges' LM: the `lm` section with these keys on top (e.g. {model: openai/gpt-4o-mini}).
    lm: NodeLMSettings = Field(default_factory=lambda: NodeLMSettings(max_tokens=256))
    # `sqlagent eval` runs them only with --judges (or this on): each is one more LM call per
    # answered item, ~17 s on the embedded model, about tripling a run.
    in_eval: bool = False
    align: JudgeAlignSettings = Field(default_factory=JudgeAlignSettings)


class BudgetSettings(Section):
    """The cost guard: LM tokens (prompt + completion) one question, and one user, may spend; 0 = no
    limit. A question stops before an LM step that would take it over (agent/budget.py)."""

    tokens_per_question: int = Field(30_000, ge=0)
    # Per user over user_window_s, with auth on (the local operator has no user budget).
    tokens_per_user: int = Field(0, ge=0)
    user_window_s: float = Field(86_400, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SQLAGENT_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    lm: LMSettings = Field(default_factory=LMSettings)
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    rewrite: RewriteSettings = Field(default_factory=RewriteSettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)

    judges: JudgeSettings = Field(default_factory=JudgeSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)

    def database_url(self, url: str | Path | None = None) -> str:
        """`url` (e.g. --db) or database.url: a file path resolved against the project root, an engine
        URL with the password from database.password_env filled in."""
        from tools.sql.engines import engine_kind, url_scheme, with_password

        raw = str(url or self.database.url)
        if not url_scheme(raw):
            return str(resolve_path(raw))
        raw = engine_kind(raw).load().resolve_url(raw, PROJECT_ROOT)
        env = self.database.password_env
        if env:
            if not os.environ.get(env):
                raise ValueError(
                    f"database.password_env names {env}, which is not set: export {env}=... "
                    "(or unset database.password_env to use PGPASSWORD or ~/.pgpass)."
                )
            return with_password(raw, os.environ[env])
        return raw

    def database_config(self, url: str | Path | None = None) -> DatabaseConfig:
        """The database section and the limits, paths resolved: what tools.sql.database opens."""
        from tools.sql.database import DatabaseConfig
        from tools.sql.engines.base import EngineLimits

        db, limits = self.database, self.limits
        return DatabaseConfig(
            url=self.database_url(url),
            dialect_override=db.dialect,
            descriptions=resolve_path(db.descriptions) if db.descriptions else None,
            catalog_cache_dir=resolve_path(db.catalog_cache_dir),
            access_file=resolve_path(db.access_file),
            limit_cap=limits.limit_cap,
            limits=EngineLimits(
                timeout_s=limits.query_timeout_s, max_rows=limits.max_rows, max_result_bytes=limits.max_result_bytes,
                memory_limit=limits.memory_limit, threads=limits.db_threads, work_mem=limits.work_mem,
                connect_timeout_s=limits.connect_timeout_s, pool_size=limits.db_pool_size,
                require_read_only_role=db.require_read_only_role,
            ),
        )  # fmt: skip

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = _config_file.get() or Path(os.environ.get("SQLAGENT_CONFIG", DEFAULT_CONFIG_FILE))
        if not yaml_file.exists():
            if "SQLAGENT_CONFIG" in os.environ:
                raise ConfigNotFound(f"Configuration file {yaml_file} (SQLAGENT_CONFIG) does not exist.")
            # The wheel holds the code only: config/, data/ and evals/ live in the clone (README, Install).
            raise ConfigNotFound(
                f"Configuration file {yaml_file} does not exist. sqlagent is a template that runs from its "
                "clone: `git clone` the repository and run `make setup` there (it installs this package in "
                "editable mode), or restore config/sqlagent.yaml."
            )
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the configuration afresh (tests and the CLI call this once, at the edge), from
    `config_file` when given, else from SQLAGENT_CONFIG or config/sqlagent.yaml."""
    token = _config_file.set(resolve_path(config_file)) if config_file else None
    try:
        return Settings(**overrides)
    finally:
        if token is not None:
            _config_file.reset(token)


@lru_cache(maxsize=1)
def default_settings() -> Settings:
    return load_settings()
