"""Which functions a query may call, per dialect: the allow-list of tools/sql/sql_functions.yaml
(and the one piece of syntax, QUALIFY, that some dialects cannot write back).

A deny-list cannot keep up with every engine (`lo_import` in PostgreSQL, `reflect` in Spark,
`read_text` in DuckDB): the policy allows what a read-only analytical query needs and refuses the
rest. A call is allowed when sqlglot parses it as a typed expression of an allowed class (value
functions: aggregates, windows, math, text, dates, arrays, JSON, conditionals, casts), or when it is
an unknown name (`exp.Anonymous`) on the dialect's list. Rows in FROM come only from the dialect's
`table_functions`.

Names are judged as the engine will read them: a typed node by the name the dialect writes for it
(Postgres `version()` is sqlglot's CurrentVersion), an anonymous one by its own lower-cased name.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import sqlglot
import yaml
from pydantic import BaseModel, Field
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

__all__ = [
    "GENERAL_REASON", "DialectRules", "FunctionRules", "dialect_rules", "engine_name",
    "forbidden_function_reason", "function_name", "load_rules", "plain_function_names", "refused_because",
]  # fmt: skip

RULES_FILE = Path(__file__).with_name("sql_functions.yaml")
GENERAL_REASON = (
    "only read-only analytical functions (aggregates, math, text, dates, conditionals, windows) may run"
)
# Nodes judged by their name, not their class: sqlglot knows nothing else about them.
_BY_NAME = (exp.Anonymous, exp.AnonymousAggFunc)
_QUOTES = '"`'
_CALL = re.compile(r"^\s*([A-Za-z_][\w$]*)\s*\(")


class RefusedGroup(BaseModel):
    reason: str
    names: set[str] = Field(default_factory=set)
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    except_: set[str] = Field(default_factory=set, alias="except")

    def matches(self, name: str) -> bool:
        if name in self.except_:
            return False
        return name in self.names or name.startswith(self.prefixes) or name.endswith(self.suffixes)


class ClassRules(BaseModel):
    families: list[str]
    also: list[str] = Field(default_factory=list)
    refused: list[str] = Field(default_factory=list)


class DialectRules(BaseModel):
    """One dialect's section: the names it may call, the rows it may read, the schemas it may name."""

    dialect: str
    schemas: list[str]
    catalogs: list[str] = Field(default_factory=list)
    file_sources: set[str] = Field(default_factory=set)  # Spark's `parquet.`/path`` style readers
    table_functions: set[str] = Field(default_factory=set)
    functions: set[str] = Field(default_factory=set)
    method_calls: bool = False  # DuckDB's `'x'.upper()`; elsewhere `a.f(x)` names a schema's function
    allowed_classes: frozenset[type] = frozenset()

    model_config = {"frozen": True}

    def allows(self, node: exp.Func) -> bool:
        if isinstance(node, _BY_NAME):
            return function_name(node) in self.functions
        return type(node) in self.allowed_classes

    def refusal(self, node: exp.Func) -> str | None:
        """Why the call `node` may not run, or None when it may."""
        if self.allows(node):
            return None
        name = engine_name(node, self.dialect)
        return f"Function {name} is not allowed: {refused_because(name) or GENERAL_REASON}."

    def syntax_refusal(self, tree: exp.Expression) -> tuple[str, str] | None:
        """(code, reason) for syntax sqlglot reads in this dialect but cannot write back faithfully."""
        # sqlglot writes QUALIFY, for PostgreSQL and Spark, as a subquery that keeps ORDER BY and LIMIT
        # inside, before the filter: other rows, and no cap on the outer query.
        if tree.find(exp.Qualify) and not _writes_qualify(self.dialect):
            return "parse_error", (
                f"QUALIFY is not {self.dialect} SQL: filter on the window function in an outer query "
                "(SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (...) AS rn FROM ...) AS t WHERE rn = 1)."
            )
        return None

    def tree_refusal(self, tree: exp.Expression) -> tuple[str, str] | None:
        """(policy code, reason) for the first call in `tree` that may not run, or None. Covers every
        call (scalar, aggregate, window, method-call and schema-qualified syntax) and every source of
        rows that is not a table (table functions in FROM, LATERAL, Snowflake's TABLE(...), stages)."""
        judged: set[int] = set()  # calls already judged through the qualified name around them
        for node in tree.walk():
            if isinstance(node, exp.Table | exp.Lateral | exp.TableFromRows):
                found = self._source_refusal(node)
                if found:
                    return found
                judged.add(id(node.this))  # an allowed table function: `range` need not be a scalar too
            if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
                judged.add(id(node.expression))
                reason = self._qualified_refusal(node)
            elif isinstance(node, exp.Func) and id(node) not in judged:
                reason = self.refusal(node)
            else:
                continue
            if reason:
                return "forbidden_function", reason
        return None

    def _qualified_refusal(self, dot: exp.Dot) -> str | None:
        call = dot.expression
        if not self.method_calls:
            name = f"{dot.this.sql(dialect=self.dialect)}.{engine_name(call, self.dialect)}"
            return (f"Function {name} is not allowed: call built-in functions by their plain name (a qualified "
                    "name can reach a user-defined function).")  # fmt: skip
        if not isinstance(call, _BY_NAME):
            return self.refusal(call)
        # `x.upper()` is upper(x): judge the call the dialect would make of it.
        return self.refusal(_plain_call(function_name(call), len(call.expressions) + 1, self.dialect))

    def _source_refusal(self, node: exp.Table | exp.Lateral | exp.TableFromRows) -> tuple[str, str] | None:
        inner = node.this
        if isinstance(node, exp.Table):
            if isinstance(inner, exp.Identifier):
                return None
            if isinstance(
                inner, exp.Var | exp.Literal
            ):  # Snowflake's `FROM @stage/path`, `FROM '/etc/passwd'`
                return (
                    "file_path",
                    f"Table '{inner.name}' looks like a file path or stage; only the database's tables can be queried.",
                )
        elif not isinstance(inner, exp.Func):
            return None  # LATERAL (SELECT ...): its tables are checked as tables
        if not isinstance(inner, exp.Func):
            shown = "ROWS FROM (...)" if inner is None else type(inner).__name__
            return (
                "forbidden_function",
                f"{shown} is not allowed in FROM: only the database's tables can be queried.",
            )
        name = engine_name(inner, self.dialect)
        qualified = isinstance(node, exp.Table) and (node.args.get("db") or node.args.get("catalog"))
        if name in self.table_functions and not qualified:
            return None
        return "forbidden_function", (
            forbidden_function_reason(name)
            or f"Function {name} is not allowed in FROM: only the database's tables can be queried."
        )


class FunctionRules(BaseModel):
    classes: ClassRules
    refused_names: list[RefusedGroup]
    dialects: dict[str, dict]


@functools.cache
def load_rules(path: Path = RULES_FILE) -> FunctionRules:
    return FunctionRules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def family_classes(family: str) -> set[type]:
    """The function classes sqlglot defines in `sqlglot.expressions.<family>`."""
    module = f"sqlglot.expressions.{family}"
    return {
        c for c in vars(exp).values()
        if isinstance(c, type) and issubclass(c, exp.Func) and c.__module__ == module
    }  # fmt: skip


def allowed_classes(rules: ClassRules) -> frozenset[type]:
    chosen: set[type] = set()
    for family in rules.families:
        chosen |= family_classes(family)
    for name in rules.also:
        chosen.add(_expression_class(name))
    return frozenset(chosen - {_expression_class(name) for name in rules.refused})


def _expression_class(name: str) -> type:
    cls = getattr(exp, name, None)
    if not (isinstance(cls, type) and issubclass(cls, exp.Func)):
        raise ValueError(
            f"{RULES_FILE.name}: {name} is not a sqlglot function class (sqlglot {sqlglot.__version__})."
        )
    return cls


@functools.cache
def dialect_rules(dialect: str) -> DialectRules:
    """The section of `dialect` (sqlglot's name or an alias of it), or a clear error naming the
    dialects that have one."""
    rules = load_rules()
    wanted = type(Dialect.get_or_raise(dialect))  # raises for a dialect sqlglot does not know
    for key, spec in rules.dialects.items():
        if type(Dialect.get_or_raise(key)) is wanted:
            return DialectRules(dialect=key, allowed_classes=allowed_classes(rules.classes), **spec)
    raise ValueError(
        f"Dialect {dialect!r} has no function allow-list; supported: {', '.join(rules.dialects)} "
        f"(add a section to tools/sql/{RULES_FILE.name})."
    )


def refused_because(name: str) -> str | None:
    """Why a function name is refused in every dialect ("it reads files outside the database"), or
    None when no rule names it. A name without such a reason may still be off the allow-list."""
    n = name.lower().strip(_QUOTES)
    return next((group.reason for group in load_rules().refused_names if group.matches(n)), None)


def forbidden_function_reason(name: str) -> str | None:
    """The sentence for a function refused by name in every dialect, or None (see refused_because)."""
    reason = refused_because(name)
    return None if reason is None else f"Function {name.lower().strip(_QUOTES)} is not allowed: {reason}."


def function_name(node: exp.Func) -> str:
    """The lower-cased SQL name of a function node (typed or anonymous)."""
    if isinstance(node, _BY_NAME):
        return str(node.name).lower()
    try:
        return node.sql_name().lower()
    except Exception:  # pragma: no cover - defensive
        return type(node).__name__.lower()


def plain_function_names(tree: exp.Expression) -> None:
    """Write the names of anonymous calls unquoted and lower-case, in place: the policy judged the
    name case-insensitively, and in PostgreSQL `"Age"(x)` would call a function named Age, not age."""
    for node in tree.find_all(exp.Anonymous):
        if isinstance(node.this, exp.Identifier) and node.this.quoted:
            node.set("this", function_name(node))


def _plain_call(name: str, arguments: int, dialect: str) -> exp.Func:
    """The node `dialect` makes of `name(NULL, ...)`: what a method call `x.name(...)` really calls."""
    if re.fullmatch(r"[A-Za-z_]\w*", name):
        try:
            select = sqlglot.parse_one(f"SELECT {name}({', '.join(['NULL'] * arguments)})", read=dialect)
            call = select.selects[0] if isinstance(select, exp.Select) and select.selects else None
            if isinstance(call, exp.Func):
                return call
        except sqlglot.errors.SqlglotError:
            pass
    return exp.Anonymous(this=name)


@functools.cache
def _writes_qualify(dialect: str) -> bool:
    return "QUALIFY" in sqlglot.parse_one("SELECT a FROM t QUALIFY a = 1").sql(dialect=dialect)


def engine_name(node: exp.Func, dialect: str) -> str:
    """The name the engine will run: what `dialect` writes for the node (Postgres writes sqlglot's
    CurrentVersion as `version()`), else sqlglot's own name for it."""
    if isinstance(node, _BY_NAME):
        return function_name(node)
    try:
        match = _CALL.match(node.sql(dialect=dialect))
    except Exception:  # a node the dialect cannot write: its sqlglot name
        match = None
    return match.group(1).lower() if match else function_name(node)
