"""What the nodes need at run time, built once at the edge and passed in through LangGraph's context.

Nodes never read configuration or open databases themselves: the CLI, the server and the tests
build an `AgentContext` and hand it to the graph (`graph.invoke(..., context=ctx)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dspy

from agent.config import Settings, resolve_path
from agent.steps import LM_STEPS, fresh_modules
from prompts.adapter import adapter_for
from prompts.retrieve import Example, Retrieve, load_examples
from tools.registry import ToolRegistry
from tools.sql.database import Database
from tools.sql.entities import EntityMapping
from tools.sql.grounding import drop_copied_filters
from tools.sql.join_keys import complete_join_keys
from tools.sql.ties import keep_ties
from tools.sql.unused_joins import drop_unused_joins


@dataclass(frozen=True)
class Refined:
    sql: str
    notes: list[str]  # what was changed, for the node's trace detail


@dataclass
class AgentContext:
    settings: Settings
    db: Database
    tools: ToolRegistry
    lms: dict[str, dspy.LM]
    # One per LM step (agent/steps.py); None: fresh ones, the SQL steps told the database's dialect.
    modules: dict[str, dspy.Module] | None = None
    retrieve: Retrieve | None = None
    compiled: list[str] = field(default_factory=list)  # modules loaded from optimized artifacts
    # Per LM step, where its prompt came from (prompts/prompt_source.py): registry:..., file:... or code.
    prompt_sources: dict[str, str] = field(default_factory=dict)
    stable_schema: tuple[list[str], str] | None = None  # the retrieve step's stable part, built once

    def __post_init__(self) -> None:
        if self.modules is None:
            self.modules = fresh_modules(self.db.config.dialect_label)
        if self.retrieve is None:
            # A worked example that reads a hidden table or column would show it to the LM: the role's
            # bank holds only the examples its view can show.
            bank = load_examples(resolve_path(self.settings.retrieval.example_bank))
            examples = [e for e in bank if not self.db.reads_hidden(e.sql)]
            self.retrieve = Retrieve(
                self.db.schema,
                examples,
                max_tables=self.settings.retrieval.max_tables,
                k=self.settings.retrieval.examples_k,
                max_linked=self.settings.retrieval.max_linked_tables,
            )
        from prompts.prompt_source import load_prompts

        missing = sorted(set(LM_STEPS) - set(self.modules))
        if missing:
            raise ValueError(f"AgentContext.modules lacks the LM steps {', '.join(missing)} (agent/steps.py)")
        prompts = self.settings.prompts
        self.prompt_sources = load_prompts(
            self.modules,
            source=prompts.source,
            folder=resolve_path(prompts.compiled_dir),
            enabled=prompts.use_compiled,
            alias=prompts.registry_alias,
            registry_uri=self.settings.tracking.resolved_uri(),
            schema=self.db.full_schema,  # which database the artifacts were optimized on, whatever the role
        )
        self.compiled = [name for name, where in self.prompt_sources.items() if where != "code"]

    def refine(
        self, sql: str, question: str, mappings: Sequence[EntityMapping], examples: Sequence[Example]
    ) -> Refined:
        """The SQL a step wrote, with the mistakes that have one fix fixed without the LM: filters
        copied from a worked example dropped (tools/sql/grounding.py), joins nothing reads dropped
        (tools/sql/unused_joins.py), joins on part of a key completed (tools/sql/join_keys.py) and
        the rows tied at the top kept when the question asks for ties (tools/sql/ties.py).
        For every step that writes SQL."""
        settings, db = self.settings.generate, self.db
        # What the SQL reads is judged on the real tables (the policy then refuses a hidden column);
        # a join key the fix adds comes from the role's view.
        columns = db.full_schema.table_columns()
        notes: list[str] = []
        if settings.drop_copied_filters:
            grounded = drop_copied_filters(
                sql,
                question,
                [m.value for m in mappings] + [m.mention for m in mappings],
                [e.sql for e in examples],
                db.distinct_values,
                settings.copied_filter_min_distinct,
                dialect=db.config.dialect,
            )
            sql = grounded.sql
            notes += [grounded.detail()] if grounded.dropped else []
        if settings.drop_unused_joins:
            unused = drop_unused_joins(sql, columns, dialect=db.config.dialect)
            sql = unused.sql
            notes += [unused.detail()] if unused.dropped else []
        if settings.complete_join_keys:
            keys = {c.lower() for j in db.schema.joins for pair in j.on for c in pair}
            completed = complete_join_keys(sql, columns, keys, db.unique_on, dialect=db.config.dialect)
            sql = completed.sql
            notes += [completed.detail()] if completed.added else []
        if settings.keep_ties:
            kept = keep_ties(sql, question, dialect=db.config.dialect)
            sql = kept.sql
            notes += [kept.detail] if kept.detail else []
        return Refined(sql=sql, notes=notes)

    def module(self, step: str) -> dspy.Module:
        return self.modules[step]

    def lm(self, node: str) -> dspy.LM:
        return self.lms.get(node) or self.lms["default"]

    def adapter(self, node: str) -> dspy.Adapter:
        return adapter_for(self.settings.lm.for_node(node).prefills)
