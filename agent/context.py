"""What the nodes need at run time, built once at the edge and passed in through LangGraph's context.

Nodes never read configuration or open databases themselves: the CLI, the server and the tests
build an `AgentContext` and hand it to the graph (`graph.invoke(..., context=ctx)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dspy

from agent.config import Settings, resolve_path
from prompts.answer import Answer
from prompts.generate import Generate
from prompts.repair import Repair
from prompts.retrieve import Retrieve, load_examples
from prompts.rewrite import Rewrite
from tools.registry import ToolRegistry
from tools.sql.database import Database


@dataclass
class AgentContext:
    settings: Settings
    db: Database
    tools: ToolRegistry
    lms: dict[str, dspy.LM]
    rewrite: Rewrite = field(default_factory=Rewrite)
    generate: Generate = field(default_factory=Generate)
    repair: Repair = field(default_factory=Repair)
    answer: Answer = field(default_factory=Answer)
    retrieve: Retrieve | None = None
    compiled: list[str] = field(default_factory=list)  # modules loaded from optimized artifacts

    def __post_init__(self) -> None:
        if self.retrieve is None:
            examples = load_examples(resolve_path(self.settings.retrieval.example_bank))
            self.retrieve = Retrieve(
                self.db.schema,
                examples,
                max_tables=self.settings.retrieval.max_tables,
                k=self.settings.retrieval.examples_k,
            )
        from prompts.compiled import load_compiled_modules

        self.compiled = load_compiled_modules(
            self, resolve_path(self.settings.prompts.compiled_dir), self.settings.prompts.use_compiled
        )

    def lm(self, node: str) -> dspy.LM:
        return self.lms.get(node) or self.lms["default"]
