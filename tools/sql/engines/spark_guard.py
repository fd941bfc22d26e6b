"""The Spark engine's statement guard: one query over catalog tables, checked before anything runs.

Spark has no read-only session and no switch for its dangerous functions, so the guard does two
things with Spark's own parser and analyzer, in local mode and through Spark Connect alike:

1. **Only a query can run.** The SQL is parsed as the body of `SELECT * FROM (<sql>) AS q`: a command
   (INSERT, CREATE, DROP, ADD JAR, CREATE FUNCTION ... USING JAR, LOAD DATA, INSERT OVERWRITE
   DIRECTORY, SET, CACHE, MSCK, EXPLAIN, SHOW...), a second statement or a SQL script cannot be a
   subquery, so Spark's parser refuses it; `spark.sql` of a query only plans it, so nothing has run.
2. **The analyzed plan is inspected** before it executes. Refused: `TRANSFORM ... USING 'cmd'`
   (ScriptTransformation runs an operating-system command), the reflection functions (`reflect`,
   `java_method`, `try_reflect` call any static Java method: `System.getenv`, `System.exit`),
   user-defined functions (Python, Scala, Hive or SQL UDFs), and any relation that is not a catalog
   table (file paths, JDBC and other data sources; `spark.sql.runSQLOnFiles=false` also stops the
   `parquet.`/path`` form in Spark's parser). In local mode the plan is read as JSON (node and
   expression classes); through Spark Connect, which exposes no plan object, as the analyzed plan's
   text from EXPLAIN EXTENDED, where Spark prints those functions and operators by name (a string
   literal with such a name refuses a harmless query; nothing slips through by spelling).

3. **Joins Spark could not stop are refused.** A join without an equal-keys condition runs as a
   nested loop, and Spark's cancel does not reach a task inside one: after a cross join of People
   with itself twice timed out, its two tasks went on using both cores for 17 minutes (measured,
   Spark 4.3 local mode), starving every later query. So a nested-loop join (a cross join, or only
   `<`, `>`, `<>`... between the two sides) runs only when Spark's plan knows one side has at most
   `MAX_LOOP_SIDE_ROWS` rows (an aggregate, a LIMIT, VALUES), from the optimized plan of EXPLAIN COST.

What it does not do: limit which catalog tables are read (the policy and the roles do), or stop a
query that is merely expensive (the engine's timeout cancels its jobs; an equal-keys join on a key
nearly every row shares can still outlive it, see docs/engines.md).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from tools.sql.engines.base import SandboxError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_QUERY_START = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(\(|\w+)", re.DOTALL)
# Statements Spark runs that are not queries: a parse failure that starts with one is a refusal, any
# other is a query with a syntax error (the repair step gets Spark's message).
_COMMANDS = {
    "add", "alter", "analyze", "begin", "cache", "call", "clear", "comment", "commit", "copy", "create",
    "declare", "delete", "desc", "describe", "drop", "execute", "explain", "export", "grant", "import",
    "insert", "list", "load", "merge", "msck", "optimize", "refresh", "repair", "replace", "reset", "revoke",
    "rollback", "set", "show", "truncate", "uncache", "unset", "update", "use", "vacuum",
}  # fmt: skip

REFLECTION = (
    "Spark's reflection functions (reflect, java_method, try_reflect) call Java methods and are refused."
)
SCRIPT = "TRANSFORM ... USING runs an operating-system command and is refused."
NOT_CATALOG = (
    "Only catalog tables can be read; this query reads {what} (files, JDBC and other sources are refused)."
)
UDF = "User-defined functions are refused ({what}); use Spark's built-in functions."

# Leaf plan nodes a query over catalog tables may have (LogicalRelation and DataSourceV2Relation only
# with a catalog table behind them, checked below).
_LEAVES = {
    "LogicalRelation",  # a datasource table of the session catalog (USING parquet...)
    "HiveTableRelation",  # a Hive-format table
    "DataSourceV2Relation",  # a table of a V2 catalog (Iceberg, Delta, Unity Catalog)
    "OneRowRelation",  # SELECT 1
    "LocalRelation",  # VALUES
    "Range",  # range(n)
    "CTERelationRef",  # a WITH name
    "InMemoryRelation",  # a cached table
}
_UDF_CLASS = re.compile(r"UDF|UDAF|UDTF|ScalaAggregator|UserDefined|SQLFunction", re.IGNORECASE)


def wrap(sql: str) -> str:
    """`sql` as the body of a subquery: Spark's parser accepts it only if it is one query."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    # The body on its own lines: a trailing -- comment ends at its newline, not at our parenthesis.
    return f"SELECT * FROM (\n{text}\n) AS sqlagent_query"


def refuse_command(sql: str) -> None:
    """Refuse SQL that starts with a command's keyword before Spark sees it: the subquery wrapper
    would stop it anyway, as a syntax error or a table named like the keyword (`SHOW` -> "table
    SHOW not found"); this says what it is."""
    match = _QUERY_START.match(sql)
    word = (match.group(1) if match else "").lower()
    if word in _COMMANDS:
        raise SandboxError("refused", f"Only one SELECT query can run; found {word.upper()}.")


def parse_refusal(sql: str, message: str) -> SandboxError:
    """The error for SQL Spark would not parse as a subquery: a refusal when it is not a query at all
    (a command), else the parser's message (a query with a syntax error, for the repair step)."""
    match = _QUERY_START.match(sql)
    word = (match.group(1) if match else "").lower()
    if word in _COMMANDS:
        return SandboxError("refused", f"Only one SELECT query can run; found {word.upper()}.")
    if re.search(r";\s*\S", sql.strip().rstrip(";")):
        return SandboxError("refused", "Exactly one statement is allowed; found more than one.")
    return SandboxError("execution", message)


def check_plan_json(plan_json: str) -> None:
    """Local mode: refuse what the module docstring lists, from the analyzed plan's JSON."""
    try:
        nodes = json.loads(plan_json)
    except ValueError:
        raise SandboxError("refused", "The query plan could not be inspected, so it does not run.") from None
    for node in _nodes(nodes):
        name = str(node["class"]).rsplit(".", 1)[-1]
        if name == "CallMethodViaReflection":
            raise SandboxError("refused", REFLECTION)
        if "ScriptTransformation" in name:
            raise SandboxError("refused", SCRIPT)
        if _UDF_CLASS.search(name):
            raise SandboxError("refused", UDF.format(what=node.get("name") or name))
        is_expression = ".catalyst.expressions." in str(node["class"])
        if not is_expression and node.get("num-children") == 0:
            if name not in _LEAVES:
                raise SandboxError("refused", NOT_CATALOG.format(what=name))
            if name in {"LogicalRelation", "DataSourceV2Relation"} and not _names_a_table(node):
                raise SandboxError("refused", NOT_CATALOG.format(what=f"a {name} without a catalog table"))


def _nodes(value: Any):
    """Every tree node (a dict with a "class") anywhere in the JSON: plan nodes, their expressions,
    and the plans of subqueries nested inside expressions."""
    if isinstance(value, dict):
        if isinstance(value.get("class"), str):
            yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


def _names_a_table(node: dict) -> bool:
    if node.get("catalogTable") not in (None, [], {}):
        return True
    return node.get("catalog") not in (None, [], {}) and node.get("identifier") not in (None, [], {})


_OPERATOR = re.compile(r"^[\s:|+\-]*([A-Za-z]\w*)")
_REFLECT_CALL = re.compile(r"\b(?:reflect|java_method|try_reflect)\s*\(", re.IGNORECASE)
_PATH_RELATION = re.compile(r"^[\s:|+\-]*Relation \[", re.MULTILINE)


def check_plan_text(explained: str) -> None:
    """Spark Connect: refuse what the module docstring lists, from EXPLAIN EXTENDED's analyzed plan."""
    analyzed = explained.split("== Analyzed Logical Plan ==", 1)[-1].split("== Optimized Logical Plan ==", 1)[
        0
    ]
    if _REFLECT_CALL.search(analyzed):
        raise SandboxError("refused", REFLECTION)
    operators = {m.group(1) for line in analyzed.splitlines() if (m := _OPERATOR.match(line))}
    if any("ScriptTransformation" in op for op in operators):
        raise SandboxError("refused", SCRIPT)
    if _PATH_RELATION.search(analyzed):
        raise SandboxError("refused", NOT_CATALOG.format(what="a relation without a catalog table"))


def check(df: DataFrame, classic: bool) -> None:
    """Refuse `df` (a planned, not executed, query) if its analyzed plan holds what this module refuses."""
    if classic:
        check_plan_json(str(df._jdf.queryExecution().analyzed().toJSON()))
    else:
        check_plan_text(df._explain_string(extended=True))


MAX_LOOP_SIDE_ROWS = 1000
LOOP_JOIN = (
    "This query joins {sides} without an equal-keys condition, a nested loop over every pair of rows "
    "that Spark cannot stop once it runs, so it is refused. Join on equal keys (a.playerID = b.playerID), "
    "or reduce one side to at most {limit} rows first (an aggregate or a LIMIT)."
)
_TREE_LINE = re.compile(r"^(?P<prefix>[ :+\-]*)(?P<node>\w.*)$")  # Spark's tree text: 3 characters a level
_JOIN = re.compile(r"^Join (?P<kind>\w+(?:\(.*?\))?)(?:, (?P<condition>.*?))?, Statistics\(")
_ROWS = re.compile(r"Statistics\([^)]*rowCount=(?P<rows>[0-9.E+]+)")
_RELATION = re.compile(r"^Relation \S*?(\w+)\[")


def check_joins(explained_cost: str) -> None:
    """Refuse a nested-loop join of two sides that are not known to be small (docstring, point 3),
    from EXPLAIN COST's optimized logical plan (each node with its Statistics)."""
    plan = explained_cost.split("== Optimized Logical Plan ==", 1)[-1].split("== Physical Plan ==", 1)[0]
    nodes = [
        (len(m.group("prefix")) // 3, m.group("node"))
        for line in plan.splitlines()
        if (m := _TREE_LINE.match(line))
    ]
    for i, (depth, node) in enumerate(nodes):
        join = _JOIN.match(node)
        if not join or _has_equal_keys(join.group("condition") or ""):
            continue
        sides: list[list[str]] = []  # each child's subtree, its own node first
        for below, text in nodes[i + 1 :]:
            if below <= depth:
                break
            if below == depth + 1:
                sides.append([])
            sides[-1].append(text)
        if not any(_small(side) for side in sides):
            names = " and ".join(_name(side) for side in sides)
            raise SandboxError("refused", LOOP_JOIN.format(sides=names, limit=MAX_LOOP_SIDE_ROWS))


def _has_equal_keys(condition: str) -> bool:
    """Whether one of the condition's AND-ed terms is an equality (what Spark turns into a hash or a
    sort-merge join): `(a = b)`, `((a = b) AND (c < d))`, `(((a = b) AND (c = d)) AND (x OR y))`,
    `(y = (x + 1))`; not `NOT (a = b)` or `OR`."""
    terms = _conjuncts(_unwrap(condition))
    if len(terms) == 1:
        return _is_equality(_unwrap(terms[0]))
    return any(_has_equal_keys(term) for term in terms)  # Spark nests AND-ed terms in pairs


_NULL_AWARE = re.compile(r"^\((?P<key>.+)\) OR isnull\(\((?P=key)\)\)$")  # NOT IN: a null-aware hash join


def _is_equality(term: str) -> bool:
    if null_aware := _NULL_AWARE.match(term):
        term = null_aware.group("key")
    top = _top_level(term)  # the term with every parenthesised part blanked out
    return (" = " in top or " <=> " in top) and " OR " not in top and not top.startswith("NOT ")


def _top_level(text: str) -> str:
    out, depth = [], 0
    for char in text:
        if char == ")":
            depth -= 1
        out.append(char if depth == 0 else "_")
        if char == "(":
            depth += 1
    return "".join(out)


def _unwrap(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return -1


def _conjuncts(text: str) -> list[str]:
    top, terms, start = _top_level(text), [], 0
    while (at := top.find(" AND ", start)) >= 0:
        terms.append(text[start:at])
        start = at + 5
    return [*terms, text[start:]]


# Nodes that can return more rows than their input: a side's row count is not known past one.
_GROWS = ("Join", "Union", "Generate", "Expand", "Intersect", "Except")


def _small(side: list[str]) -> bool:
    """A side's rows are at most the first row count Spark knows down its chain of filters,
    projections, sorts and limits (an aggregate's 1, a LIMIT's n, VALUES)."""
    for node in side:
        if node.startswith(_GROWS):
            return False
        rows = _ROWS.search(node)
        if rows is not None:
            return float(rows.group("rows")) <= MAX_LOOP_SIDE_ROWS
    return False


def _name(side: list[str]) -> str:
    tables = [m.group(1) for text in side if (m := _RELATION.match(text))]
    return ", ".join(dict.fromkeys(tables)) if tables else side[0].split(",", 1)[0]
