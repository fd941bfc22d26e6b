"""The tool registry: the only way nodes touch the database.

A tool is a typed function `fn(db, args) -> result` with pydantic argument and result models, a
name, one description and a read-only flag. Every call is validated and traced as an MLflow TOOL
span. `sqlagent tools --lint` keeps the registry small and free of overlap (see tools/lint.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, get_type_hints

import mlflow
from mlflow.entities import SpanType
from pydantic import BaseModel

if TYPE_CHECKING:
    from tools.sql.database import Database


class Tool(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    name: str
    description: str
    read_only: bool
    args_model: type[BaseModel] | None
    result_model: type[BaseModel] | None
    fn: Callable[..., Any]

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "read_only": self.read_only,
            "arguments": self.args_model.model_json_schema() if self.args_model else None,
            "result": self.result_model.model_json_schema() if self.result_model else None,
        }


def tool(*, name: str, read_only: bool = True) -> Callable[[Callable], Callable]:
    """Mark `fn(db, args: ArgsModel) -> ResultModel` as a tool (its docstring is the description).
    Marking registers nothing: tools/builtin.py lists the tools the agent gets."""

    def mark(fn: Callable) -> Callable:
        fn.__sqlagent_tool__ = (name, read_only)  # type: ignore[attr-defined]
        return fn

    return mark


class ToolRegistry:
    def __init__(self, fns: Iterable[Callable] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for fn in fns:
            self.add(fn)

    def add(self, fn: Callable) -> None:
        """Register a function marked with `@tool`."""
        marked = getattr(fn, "__sqlagent_tool__", None)
        if marked is None:
            raise TypeError(f"{fn.__qualname__} is not marked as a tool (decorate it with @tool(name=...)).")
        name, read_only = marked
        if name in self._tools:
            raise ValueError(f"A tool named {name!r} is already registered.")
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        args_model = hints.get(params[1]) if len(params) > 1 else None
        result_model = hints.get("return")
        self._tools[name] = Tool(
            name=name,
            description=inspect.cleandoc(fn.__doc__ or ""),
            read_only=read_only,
            args_model=args_model if _is_model(args_model) else None,
            result_model=result_model if _is_model(result_model) else None,
            fn=fn,
        )

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool:
        if name not in self._tools:
            raise KeyError(f"Unknown tool {name!r}; registered tools: {', '.join(sorted(self._tools))}.")
        return self._tools[name]

    def call(self, name: str, db: Database, args: BaseModel | dict[str, Any]) -> Any:
        tool = self.get(name)
        if tool.args_model is None:
            raise TypeError(f"Tool {name!r} has no typed arguments.")
        parsed = args if isinstance(args, tool.args_model) else tool.args_model.model_validate(args)
        with mlflow.start_span(name=f"tool.{name}", span_type=SpanType.TOOL) as span:
            span.set_inputs(parsed.model_dump())
            result = tool.fn(db, parsed)
            span.set_outputs(result.model_dump() if isinstance(result, BaseModel) else result)
        return result


def _is_model(value: Any) -> bool:
    return inspect.isclass(value) and issubclass(value, BaseModel)
