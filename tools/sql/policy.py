"""Static SQL policy: decide, from sqlglot's AST, whether a query may run in the sandbox.

Every SQL text (from the LM or typed by an operator) goes through `SqlPolicy.check` before it reaches
`tools.sql.sandbox.Sandbox`. The policy is the first of two layers: the sandbox connection is read-only with
external access disabled, so a gap here must still not reach files, the network or the database file.
It speaks the engine's dialect (`dialect`: duckdb, postgres, spark, databricks, snowflake; another one
is refused when the policy is built) and allows, per dialect, only what a read-only analytical query needs.

What `check` does, in order (the first failure wins and is reported as one readable sentence):

1. Text hygiene. A leading BOM is dropped, the text is NFKC-normalised (fullwidth `ＤＲＯＰ` becomes
   `DROP`, non-breaking spaces become spaces), then control characters (except tab/CR/LF) and invisible
   format characters (zero-width space/joiner, bidi overrides, ...) are refused anywhere outside string
   literals - including quoted identifiers and comments. Inside string literals they are kept (data can
   contain them). NFKC also applies inside literals: a fullwidth value is compared as ASCII.
2. Parse with sqlglot in the dialect. Exactly one statement: trailing `;` and comment-only trailing
   statements (`SELECT 1; -- note`) are ignored; anything else is `multiple_statements`.
3. The root must be SELECT, a set operation (UNION/INTERSECT/EXCEPT) or a parenthesised query; no
   DML/DDL/commands anywhere in the tree (data-modifying CTEs, `SELECT ... INTO`, row locks, Spark's
   `TRANSFORM ... USING`, `exp.Command` fall-backs such as LOAD/CALL/EXPLAIN/ADD JAR, `CHECKPOINT` which
   sqlglot parses as a bare column). QUALIFY only where the dialect can write it.
4. Functions: an allow-list per dialect (tools/sql/function_rules.py, data in sql_functions.yaml).
   Every call anywhere in the tree (scalar, aggregate, window, table function, DuckDB's method-call
   syntax `'x'.read_text()`) must be a typed sqlglot value function (aggregates, math, text, dates,
   arrays, JSON, conditionals, casts) or a name on the dialect's list; schema-qualified calls are
   refused outside DuckDB (`myschema.f()` can reach a user-defined function). Rows in FROM, LATERAL or
   TABLE(...) come only from the dialect's generators (DuckDB `range`, `generate_series`, `unnest`);
   `generate_series(1, 1e12)` can still be a CPU bomb - the sandbox timeout is the backstop for that.
5. Known tables only: every table reference that is not a CTE in scope (resolved with sqlglot's scope
   analysis, so a CTE named like a real table cannot hide it) must be in the catalog (case-insensitive
   in every dialect), optionally qualified with the dialect's schema (`main`, `public`, `default`, or the
   catalog's `schema_name`) and catalog. Quoted paths (`FROM '/etc/passwd'`), stages (`@stage`), Spark
   data sources (`parquet.`/path``) and system schemas (information_schema, pg_catalog) are refused.
6. Role: tables outside `allowed_tables` are refused; denied columns are refused wherever they are
   referenced (select list, WHERE, JOIN, ...), including through `SELECT *`, `t.*`, `COLUMNS(...)`,
   positional `#n` columns, whole-row references (`SELECT p FROM People p`) and column-renaming table
   aliases (`People AS p(a, b, c)`). `* EXCLUDE (denied, ...)` is accepted.
7. Known columns only, via `sqlglot.optimizer.qualify(..., validate_qualify_columns=True)` on a copy.
8. LIMIT cap on the outer query: added when missing, reduced when larger, refused when not a literal.
9. Output `sql` is generated from the validated tree with comments dropped (a `--` comment containing
   `*/` would otherwise be re-emitted as a block comment and could break out of it), and re-parsed to
   check it round-trips to a single read-only statement whose calls all pass step 4.

`check` never raises: an unexpected error becomes `allowed=False, code="parse_error"`.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import sqlglot
import yaml
from pydantic import BaseModel, Field
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope
from sqlglot.schema import MappingSchema
from sqlglot.tokens import TokenType

from tools.sql.function_rules import dialect_rules, forbidden_function_reason, plain_function_names
from tools.sql.unknown_columns import unknown_column_message

# forbidden_function_reason is re-exported: the guard and the fuzz tests read it from here.
__all__ = ["AccessRole", "Catalog", "PolicyDecision", "SqlPolicy", "default_role_name", "forbidden_function_reason",
           "load_roles"]  # fmt: skip


class Catalog(BaseModel):
    """The tables the policy knows: table name -> column names, spelled as in the database."""

    tables: dict[str, list[str]]
    # Optional database (catalog) name, e.g. "lahman": `lahman.main.People` is then accepted too.
    database: str | None = None
    # The schema the tables live in, when not the dialect's default (main, public, default).
    schema_name: str | None = None


class AccessRole(BaseModel):
    name: str
    allowed_tables: list[str] | None = None  # None = every table of the catalog
    denied_tables: list[str] = Field(default_factory=list)  # refused even when allowed_tables is None
    denied_columns: dict[str, list[str]] = Field(default_factory=dict)  # table -> columns; "*" = any table
    description: str = ""


PolicyCode = Literal[
    "parse_error", "empty", "multiple_statements", "not_read_only", "invisible_character", "forbidden_function",
    "system_catalog", "file_path", "unknown_table", "unknown_column", "access_denied", "invalid_limit",
]  # fmt: skip
# Refusals that a repair must not "fix": the model was asked for something it may not do. The others
# (unknown names, a bad LIMIT, unparsable text) are model mistakes that a repair can mend.
TERMINAL_CODES: frozenset[str] = frozenset({
    "not_read_only", "multiple_statements", "forbidden_function", "access_denied",
    "file_path", "system_catalog", "invisible_character",
})  # fmt: skip


class PolicyDecision(BaseModel):
    allowed: bool
    reason: str | None = None
    code: PolicyCode | None = None
    sql: str = ""
    tables: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)

    @property
    def terminal(self) -> bool:
        """A refusal to report, not a mistake to repair."""
        return self.code in TERMINAL_CODES


def load_roles(path: str | Path) -> dict[str, AccessRole]:
    """Read `config/access.yaml`: {"roles": {name: {allowed_tables, denied_tables, denied_columns, description}}}.

    The file's `default_role` key (the role to use when none is given) is read by `default_role_name`.
    """
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    roles = data.get("roles", data)
    out: dict[str, AccessRole] = {}
    for name, spec in (roles or {}).items():
        spec = dict(spec or {})
        spec.setdefault("name", name)
        spec["denied_columns"] = spec.get("denied_columns") or {}
        spec["denied_tables"] = spec.get("denied_tables") or []
        out[name] = AccessRole(**spec)
    return out


def default_role_name(path: str | Path) -> str:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return str(data.get("default_role", "analyst"))


class _Refusal(Exception):
    def __init__(self, code: PolicyCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# ---------------------------------------------------------------------------------------------------
# What may appear in a query
# ---------------------------------------------------------------------------------------------------

_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast", "system", "temp", "sys", "account_usage"}

# Statement/expression types that must never appear anywhere in an allowed tree.
_FORBIDDEN_NODE_NAMES = [
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Copy", "Attach",
    "Detach", "Install", "Pragma", "Set", "Use", "Into", "Transaction", "Commit", "Rollback", "LoadData",
    "Describe", "Summarize", "TruncateTable", "Analyze", "Show", "Refresh", "Grant", "Revoke", "Export",
    "Kill", "Cache", "Uncache", "Comment", "Declare", "Load", "Lock", "QueryTransform",
]  # fmt: skip
FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n) for n in _FORBIDDEN_NODE_NAMES if isinstance(getattr(exp, n, None), type)
)
_ALLOWED_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery)
_QUOTED_TOKENS = {
    TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.RAW_STRING, TokenType.HEREDOC_STRING,
    TokenType.BYTE_STRING, TokenType.HEX_STRING, TokenType.BIT_STRING, TokenType.UNICODE_STRING,
}  # fmt: skip
_UPPERCASE = (NormalizationStrategy.UPPERCASE, NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE)
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
_DESCRIBED = {"Into": "SELECT ... INTO", "Lock": "SELECT ... FOR UPDATE/SHARE (a row lock)",
              "QueryTransform": "TRANSFORM ... USING (an external program)"}  # fmt: skip


def _describe_root(node: exp.Expression | None) -> str:
    if node is None:
        return "an empty statement"
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, exp.Column):
        return str(node.name).upper()
    return _DESCRIBED.get(type(node).__name__, node.key.upper())


# ---------------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------------


class SqlPolicy:
    def __init__(
        self, catalog: Catalog, limit_cap: int, dialect: str = "duckdb", role: AccessRole | None = None
    ) -> None:
        self.catalog = catalog
        self.limit_cap = int(limit_cap)
        self.dialect = dialect
        self.role = role
        self._rules = dialect_rules(dialect)  # raises for a dialect without an allow-list
        schemas = [catalog.schema_name] if catalog.schema_name else self._rules.schemas
        self._schemas = {s.lower() for s in schemas}
        self._catalogs = {c.lower() for c in self._rules.catalogs} | {(catalog.database or "").lower()}
        # lower-cased name -> spelling in the database
        self._tables = {name.lower(): name for name in catalog.tables}
        self._columns = {name.lower(): {c.lower(): c for c in cols} for name, cols in catalog.tables.items()}
        self._schema = {
            name.lower(): {c.lower(): "TEXT" for c in cols} for name, cols in catalog.tables.items()
        }
        self._allowed_tables = (
            None if role is None or role.allowed_tables is None else {t.lower() for t in role.allowed_tables}
        )
        self._denied_tables = {t.lower() for t in role.denied_tables} if role is not None else set()
        self._denied: dict[str, set[str]] = {}  # table (lower) -> denied columns (lower)
        if role is not None:
            any_table = {c.lower() for c in role.denied_columns.get("*", [])}
            for table, cols in self._columns.items():
                denied = {
                    c.lower() for t, cs in role.denied_columns.items() if t.lower() == table for c in cs
                }
                denied = (denied | any_table) & set(cols)  # ignore columns this database does not have
                if denied:
                    self._denied[table] = denied

    # -- public ------------------------------------------------------------------------------------

    def check(self, sql: str) -> PolicyDecision:
        try:
            return self._check(sql)
        except _Refusal as refusal:
            return PolicyDecision(allowed=False, code=refusal.code, reason=refusal.reason, sql="")
        except Exception as error:  # a bug or an unexpected sqlglot error must never escape
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return PolicyDecision(
                allowed=False,
                code="parse_error",
                reason=f"The query could not be checked ({type(error).__name__}: {first[:200]}).",
                sql="",
            )

    # -- steps -------------------------------------------------------------------------------------

    def _check(self, sql: str) -> PolicyDecision:
        if not isinstance(sql, str):
            raise _Refusal("parse_error", "The query must be text.")
        text = unicodedata.normalize("NFKC", sql.lstrip("\ufeff"))
        if not text.strip().strip(";").strip():
            raise _Refusal("empty", "The query is empty.")
        self._check_tokens(text)

        try:
            statements = sqlglot.parse(text, dialect=self.dialect)
        except (ParseError, TokenError) as error:
            raise _Refusal("parse_error", f"The SQL could not be parsed: {_first_line(error)}") from None
        statements = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
        if not statements:
            raise _Refusal("empty", "The query is empty.")
        if len(statements) > 1:
            kinds = ", ".join(_describe_root(s) for s in statements[:4])
            raise _Refusal(
                "multiple_statements",
                f"Only one statement is allowed; found {len(statements)} ({kinds}).",
            )
        tree = statements[0]

        self._check_root(tree)
        self._check_functions(tree)
        plain_function_names(tree)

        self._tree = tree
        # Names are compared case-insensitively, as the catalog holds them (DuckDB's rule, in every dialect).
        norm = normalize_identifiers(tree.copy(), dialect="duckdb")
        tables = self._check_tables(norm)
        self._check_role_shapes(norm)
        self._apply_limit(tree)
        columns = self._check_columns(norm)

        out = tree.sql(dialect=self.dialect, comments=False)
        self._check_roundtrip(out, type(tree))
        return PolicyDecision(
            allowed=True,
            sql=out,
            tables=sorted(self._tables[t] for t in tables),
            columns=sorted(columns),
        )

    def _check_tokens(self, text: str) -> None:
        """Refuse control/invisible characters outside string literals, and `2B`-style number+name."""
        try:
            tokens = sqlglot.Dialect.get_or_raise(self.dialect).tokenize(text)
        except Exception:
            tokens = []  # the parser will report the error
        inside = [(t.start, t.end) for t in tokens if t.token_type in _QUOTED_TOKENS]
        for i, ch in enumerate(text):
            if _invisible(ch) and not any(start <= i <= end for start, end in inside):
                name = unicodedata.name(ch, "control character")
                raise _Refusal(
                    "invisible_character",
                    f"The query contains an invisible or control character ({name}, U+{ord(ch):04X}) "
                    "outside a string literal; retype the query without it.",
                )
        # DuckDB reads an unquoted `2B` as the number 2 aliased B: a silent wrong answer for Lahman's
        # "2B"/"3B" columns. sqlglot does the same, so look at the tokens: a number glued to a name.
        for prev, tok in zip(tokens, tokens[1:], strict=False):
            if (
                prev.token_type == TokenType.NUMBER
                and tok.token_type == TokenType.VAR
                and tok.start == prev.end + 1
                and not (prev.text == "0" and tok.text[:1] in "xXbBoO")  # 0x1F, 0b101 literals
            ):
                glued = f"{prev.text}{tok.text}"
                raise _Refusal(
                    "unknown_column",
                    f'Unknown column {glued}: write "{glued}" in double quotes (unquoted, {glued} means '
                    f"the number {prev.text} named {tok.text}).",
                )

    def _check_root(self, tree: exp.Expression) -> None:
        root_ok = isinstance(tree, _ALLOWED_ROOTS)
        if isinstance(tree, exp.Subquery):
            root_ok = isinstance(tree.unnest(), exp.Query)
        if not root_ok:
            raise _Refusal(
                "not_read_only",
                f"Only read-only SELECT queries are allowed; found {_describe_root(tree)}.",
            )
        for node in tree.walk():
            if isinstance(node, FORBIDDEN_NODES):
                raise _Refusal(
                    "not_read_only",
                    f"Only read-only SELECT queries are allowed; found {_describe_root(node)}.",
                )

    def _check_functions(self, tree: exp.Expression) -> None:
        found = self._rules.syntax_refusal(tree) or self._rules.tree_refusal(tree)
        if found:
            raise _Refusal(*found)  # type: ignore[arg-type]

    def _check_tables(self, norm: exp.Expression) -> set[str]:
        """Every table reference must be a CTE in scope or a catalog table; returns real tables (lower)."""
        cte_refs: set[int] = set()
        for scope in traverse_scope(norm):
            for table in scope.tables:
                if not table.args.get("db") and not isinstance(
                    scope.sources.get(table.alias_or_name), exp.Table
                ):
                    cte_refs.add(id(table))
        real: set[str] = set()
        originals = {
            id(n): o for n, o in zip(norm.find_all(exp.Table), self._tree.find_all(exp.Table), strict=False)
        }
        for table in norm.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier) or id(table) in cte_refs:
                continue
            original_table = originals.get(id(table), table)
            name, db, cat = table.name, table.db.lower(), table.catalog.lower()
            shown = ".".join(p for p in (table.catalog, table.db, name) if p)
            if db in _SYSTEM_SCHEMAS or cat in _SYSTEM_SCHEMAS or name in _SYSTEM_SCHEMAS:
                raise _Refusal(
                    "system_catalog",
                    f"Table '{shown}' is not available: system catalogs cannot be queried.",
                )
            if db in self._rules.file_sources and not cat:
                raise _Refusal(
                    "file_path",
                    f"Table '{shown}' reads files through the {db} data source; only the database's tables can be queried.",
                )
            if any(ch in name for ch in "/\\:.~") or name.startswith(("$", "@")):
                raise _Refusal(
                    "file_path",
                    f"Table '{name}' looks like a file path or URL; only the database's tables can be queried.",
                )
            if (db and db not in self._schemas) or (cat and cat not in self._catalogs):
                raise _Refusal(
                    "unknown_table",
                    f"Unknown table '{shown}': only tables of the {' or '.join(sorted(self._schemas))} schema can be queried.",
                )
            if name not in self._tables:
                original = original_table.name if original_table.name.lower() == name else name
                # Suggest only tables the role may read: "Salarie" must not teach the public role "Salaries".
                readable = [t for t in self._tables if t not in self._denied_tables
                            and (self._allowed_tables is None or t in self._allowed_tables)]  # fmt: skip
                hint = difflib.get_close_matches(name, readable, n=1, cutoff=0.75)
                suffix = f" Did you mean '{self._tables[hint[0]]}'?" if hint else ""
                raise _Refusal("unknown_table", f"Unknown table '{original}'.{suffix}")
            if name in self._denied_tables or (
                self._allowed_tables is not None and name not in self._allowed_tables
            ):
                raise _Refusal(
                    "access_denied",
                    f"Table {self._tables[name]} is not available to role '{self.role.name}'.",  # type: ignore[union-attr]
                )
            real.add(name)
        return real

    def _check_role_shapes(self, norm: exp.Expression) -> None:
        """Refuse constructs that would expose denied columns without naming them."""
        if not self._denied:
            return
        role = self.role.name  # type: ignore[union-attr]
        for scope in traverse_scope(norm):
            denied_sources: dict[str, str] = {}
            for alias, (_node, source) in scope.selected_sources.items():
                if isinstance(source, exp.Table) and source.name in self._denied:
                    denied_sources[alias] = source.name
                    table_alias = source.args.get("alias")
                    if isinstance(table_alias, exp.TableAlias) and table_alias.columns:
                        raise _Refusal(
                            "access_denied",
                            f"Renaming the columns of {self._tables[source.name]} in an alias is not allowed "
                            f"for role '{role}'; name the columns you need instead.",
                        )
            if not denied_sources:
                continue
            for node in scope.walk():
                if isinstance(node, exp.Star):
                    self._check_star(node, denied_sources, role)
                elif isinstance(node, exp.Columns):
                    raise _Refusal(
                        "access_denied",
                        f"COLUMNS(...) is not allowed on {self._tables[next(iter(denied_sources.values()))]} "
                        f"for role '{role}'; name the columns you need.",
                    )
                elif isinstance(node, exp.PositionalColumn):
                    raise _Refusal(
                        "access_denied",
                        f"Positional column references (#n) are not allowed for role '{role}'; name the columns.",
                    )
                elif isinstance(node, exp.Column) and not node.table and node.name in denied_sources:
                    table = self._tables[denied_sources[node.name]]
                    raise _Refusal(
                        "access_denied",
                        f"Selecting the whole row of {table} is not allowed for role '{role}'; "
                        "name the columns you need.",
                    )

    def _check_star(self, star: exp.Star, denied_sources: dict[str, str], role: str) -> None:
        parent = star.parent
        if isinstance(parent, exp.Count):
            return
        if isinstance(parent, exp.Column) and parent.table:
            targets = [denied_sources[parent.table]] if parent.table in denied_sources else []
        else:
            targets = list(denied_sources.values())
        excluded = {e.name for e in star.args.get("except_") or star.args.get("except") or []}
        for table in targets:
            missing = sorted(self._denied[table] - excluded)
            if missing:
                # Not named: the query did not name them, and the role's view hides that they exist.
                raise _Refusal(
                    "access_denied",
                    f"SELECT * on {self._tables[table]} would include columns not available to role "
                    f"'{role}'; name the columns you need.",
                )

    def _check_columns(self, norm: exp.Expression) -> set[str]:
        qualified = norm.copy()
        for table in qualified.find_all(exp.Table):  # db/catalog were validated above
            table.set("db", None)
            table.set("catalog", None)
        schema: dict | MappingSchema = self._schema
        if Dialect.get_or_raise(self.dialect).normalization_strategy in _UPPERCASE:
            # Snowflake upper-cases unquoted names and keeps quoted ones ("2b" would not match 2B): give
            # the qualifier the copy and the schema upper-cased and quoted alike (the engine, not the
            # policy, tells "a" from "A").
            for identifier in qualified.find_all(exp.Identifier):
                identifier.set("this", identifier.name.upper())
                identifier.set("quoted", True)
            upper = {t.upper(): {c.upper(): k for c, k in cols.items()} for t, cols in self._schema.items()}
            schema = MappingSchema(upper, dialect=self.dialect, normalize=False)
        try:
            qualified = qualify(
                qualified,
                schema=schema,
                dialect=self.dialect,
                validate_qualify_columns=True,
                quote_identifiers=False,
            )
        except OptimizeError as error:
            message = unknown_column_message(_first_line(error), self._tree, self._columns, self._tables,
                                             self._original_name)  # fmt: skip
            raise _Refusal("unknown_column", message) from None

        seen: set[str] = set()
        for scope in traverse_scope(qualified):
            for column in scope.columns:
                source = scope.sources.get(column.table)
                if not isinstance(source, exp.Table):
                    continue
                table, col = source.name.lower(), column.name.lower()
                if table not in self._columns or col not in self._columns[table]:
                    continue
                if col in self._denied.get(table, set()):
                    raise _Refusal(
                        "access_denied",
                        f"Column '{self._columns[table][col]}' of {self._tables[table]} is not available "
                        f"to role '{self.role.name}'.",  # type: ignore[union-attr]
                    )
                seen.add(f"{self._tables[table]}.{self._columns[table][col]}")
        return seen

    def _apply_limit(self, tree: exp.Expression) -> None:
        cap = exp.Limit(expression=exp.Literal.number(self.limit_cap))
        limit = tree.args.get("limit")
        if limit is None:
            tree.set("limit", cap)
            return
        if isinstance(limit, exp.Fetch):
            count = limit.args.get("count")
            value = _literal_int(count) if count is not None else 1
            options = limit.args.get("limit_options")
            if value is None or (
                options is not None and (options.args.get("percent") or options.args.get("with_ties"))
            ):
                raise _Refusal("invalid_limit", f"FETCH must use a literal row count; found {limit.sql()}.")
            tree.set("limit", exp.Limit(expression=exp.Literal.number(min(value, self.limit_cap))))
            return
        value_node = limit.expression
        options = limit.args.get("limit_options")
        if options is not None and options.args.get("percent"):
            raise _Refusal(
                "invalid_limit",
                f"LIMIT with a percentage is not allowed; use a row count of at most {self.limit_cap}.",
            )
        if isinstance(value_node, exp.Null) or (
            isinstance(value_node, exp.Var) and value_node.name.upper() == "ALL"
        ):
            limit.set("expression", exp.Literal.number(self.limit_cap))
            return
        value = _literal_int(value_node)
        if value is None or value < 0:
            raise _Refusal(
                "invalid_limit",
                f"LIMIT must be a non-negative literal number; found LIMIT {value_node.sql(self.dialect) if value_node else ''}.",
            )
        if value > self.limit_cap:
            limit.set("expression", exp.Literal.number(self.limit_cap))

    def _check_roundtrip(self, out: str, root_type: type) -> None:
        reparsed = [s for s in sqlglot.parse(out, dialect=self.dialect) if s is not None]
        if len(reparsed) != 1 or not isinstance(reparsed[0], _ALLOWED_ROOTS):
            raise _Refusal("parse_error", "The query could not be normalised safely.")
        # What runs is the regenerated text: it must hold no statement and no call the policy refuses.
        root = reparsed[0]
        if any(isinstance(n, FORBIDDEN_NODES) for n in root.walk()) or self._rules.tree_refusal(root):
            raise _Refusal("parse_error", "The query could not be normalised safely.")

    # -- helpers -----------------------------------------------------------------------------------

    def _original_name(self, lowered: str) -> str:
        lowered = lowered.lower()
        for node in self._tree.find_all(exp.Column, exp.Identifier):
            if node.name.lower() == lowered:
                return node.name
        for tables in self._columns.values():
            if lowered in tables:
                return tables[lowered]
        return self._tables.get(lowered, lowered)


def _invisible(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def _literal_int(node: Any) -> int | None:
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        inner = _literal_int(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(str(node.this))
        except ValueError:
            return None
    return None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # sqlglot underlines the offending token with ANSI codes
    return (text.splitlines() or [type(error).__name__])[0][:300]
