"""The tools the agent gets: an explicit list, so the registry imports no tool and no tool imports it
back. Adding a tool is its module plus one line here (docs/recipes/add-or-retire-a-tool.md)."""

from __future__ import annotations

from functools import lru_cache

from tools.lookup_values import lookup_values
from tools.registry import ToolRegistry
from tools.run_sql import run_sql
from tools.schema_info import describe_schema

BUILTIN_TOOLS = (describe_schema, lookup_values, run_sql)


@lru_cache(maxsize=1)
def registry() -> ToolRegistry:
    return ToolRegistry(BUILTIN_TOOLS)
