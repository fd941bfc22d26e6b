"""The `sqlagent` command.

Exit codes: 0 done; 1 the command failed (a refusal, an error, a missing database); 2 bad input (an
argument that is not valid UTF-8, holds a NUL byte, is empty or too long), said in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pydantic import ValidationError

import agent  # noqa: F401  (sets the offline switches before any library import)
from agent.apps import cli_explain as explain
from agent.apps.bad_input import validation_message
from agent.apps.cli_output import (
    add_output_arguments,
    emit,
    emit_rows,
    json_text,
    printable,
    read_stdin,
    resolve_format,
)
from agent.apps.render import table, timeline
from agent.apps.version import version
from agent.config import ConfigNotFound, load_settings
from agent.text_check import TextKind, text_problem

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

# What each text argument holds (argparse dest -> kind; any other string argument is a name) and
# what the one-line error calls it.
_TEXT_KINDS: dict[str, TextKind] = {
    "question": "text", "sql": "text",
    "db": "path", "out": "path", "golden": "path", "dataset": "path", "baseline": "path", "from_dir": "path",
    "to": "path", "cache_dir": "path",
}  # fmt: skip
_CALLED = {"question": "The question", "sql": "The SQL", "trace_id": "The trace id", "from_dir": "--from"}


def _print_json(obj: Any) -> None:
    print(printable(json.dumps(obj, indent=2, default=str, ensure_ascii=False)))


def cmd_ask(args: argparse.Namespace) -> int:
    from agent.service import Agent

    settings = load_settings()
    if args.lm:
        settings.lm.model = args.lm
    try:
        bot = Agent(settings, db_path=args.db, role=args.role)
    except Exception as exc:  # a missing database, an unknown role, a model that will not load
        return _fail(args, f"{type(exc).__name__}: {exc}")
    result = bot.ask(args.question, thread_id=args.thread)
    if result.error_kind == "bad_input":  # empty or too long: one line, like every other bad argument
        if args.json:
            _print_json(result.model_dump())
            return EXIT_USAGE
        return _fail(args, result.error or "The question is not valid.", EXIT_USAGE)
    code = (
        EXIT_OK if result.status in ("ok", "clarify", "approve") else EXIT_FAIL
    )  # the last two wait for a reply
    explained = explain.explain_turn(bot, result) if args.explain else None
    code = code or explain.explain_code(explained)
    if args.format == "json":
        extra = explain.explanation_fields(explained) if args.explain else {}
        return emit(args, json_text({**result.model_dump(), **extra})) or code
    if args.format == "table":
        lines = []
        if result.rewritten_question and result.rewritten_question != args.question:
            lines.append(f"Rewritten: {result.rewritten_question}")
        if result.sql:
            lines.append(f"SQL:\n  {result.sql}\n")
        if result.columns:
            lines.append(table(result.columns, result.rows) + "\n")
        lines.append(f"[{result.status}] {result.answer or result.error}")
        lines += [f"\n{explain.explanation_text(explained)}"] if explained else []
        lines.append(f"\nthread {result.thread_id}  trace {result.trace_id}")
        lines.append(timeline([n.model_dump() for n in result.nodes]))
        return emit(args, "\n".join(lines) + "\n") or code
    # csv / parquet: only the rows reach the output, so that it can be piped; the rest is said on stderr.
    print(f"[{result.status}] {printable(result.answer or result.error or '')}", file=sys.stderr)
    if explained:
        print(printable(explain.explanation_text(explained)), file=sys.stderr)
    print(f"thread {result.thread_id}  trace {result.trace_id}", file=sys.stderr)
    if not result.columns:
        return code
    return emit_rows(args, result.columns, result.rows, result.truncated) or code


def cmd_sql(args: argparse.Namespace) -> int:
    from agent.tracing import setup_tracing
    from tools.builtin import registry
    from tools.run_sql import RunSqlArgs
    from tools.sql.database import open_database

    try:
        sql_args = RunSqlArgs(sql=args.sql)
    except ValidationError as exc:  # empty, too long, not UTF-8: the tool's own limits, said in one line
        return _fail(args, validation_message(exc, "The SQL"), EXIT_USAGE)
    # No LM and no trace, unless --explain: the explanation is an LM step, traced as the others.
    settings = load_settings() if args.explain else load_settings(tracking={"enabled": False})
    setup_tracing(settings)
    try:
        db = open_database(settings.database_config(args.db), args.role)
    except Exception as exc:
        return _fail(args, f"{type(exc).__name__}: {exc}")
    result = registry().call("run_sql", db, sql_args)
    code = EXIT_OK if result.status == "ok" else EXIT_FAIL
    explained = None
    if args.explain and result.status == "ok":  # what the role may not run is not explained
        try:
            explained = explain.explain_query(settings, args.db, args.role, sql_args.sql)
        except Exception as exc:  # a model that will not load
            return _fail(args, f"{type(exc).__name__}: {exc}")
        code = explain.explain_code(explained)
    if args.format == "json":
        extra = explain.explanation_fields(explained) if args.explain else {}
        return emit(args, json_text({**result.model_dump(), **extra})) or code
    if result.status != "ok":
        print(f"[{result.status}] {result.error}", file=sys.stderr)
        return code
    said = f"\n{explain.explanation_text(explained)}\n" if explained else ""
    if args.format == "table":
        return emit(args, table(result.columns, result.rows, limit=50) + "\n" + said) or code
    if said:  # csv, parquet: only the rows on standard output
        print(printable(said.strip()), file=sys.stderr)
    return emit_rows(args, result.columns, result.rows, result.truncated) or code


def cmd_tools(args: argparse.Namespace) -> int:
    from tools.builtin import registry
    from tools.lint import lint

    reg = registry()
    budget = args.budget or load_settings().tools.budget
    if args.lint:
        problems = lint(reg, budget)
        for p in problems:
            print(f"{p.rule}: {p.message}")
        print(f"{len(reg)} tools, budget {budget}: {'FAIL' if problems else 'ok'}")
        return EXIT_FAIL if problems else EXIT_OK
    specs = [t.spec() for t in reg]
    if args.json:
        _print_json(specs)
    else:
        for s in specs:
            kind = "read-only" if s["read_only"] else "WRITES"
            print(f"{s['name']} ({kind}): {s['description']}")
            print("  arguments: " + json.dumps(s["arguments"]["properties"], default=str))
    return EXIT_OK


def cmd_trace(args: argparse.Namespace) -> int:
    from agent.apps.trace_view import trace_timeline

    settings = load_settings()
    try:
        view = trace_timeline(settings, args.trace_id)
    except LookupError as exc:
        return _fail(args, str(exc))
    if args.json:
        _print_json(view)
    else:
        print(f"trace {view['trace_id']}  status {view['status']}  question: {view['question']}")
        print(timeline(view["nodes"]))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.apps.doctor import run_checks

    checks = run_checks(load_settings(), full_verify=args.verify)
    ok = all(check.ok for check in checks)
    if args.json:
        _print_json({"ok": ok, "checks": [check.model_dump() for check in checks]})
    else:
        for check in checks:
            print(f"[{'ok  ' if check.ok else 'FAIL'}] {check.name:<10} {check.detail}")
    return EXIT_OK if ok else EXIT_FAIL


def cmd_init(args: argparse.Namespace) -> int:
    from agent.apps.init_db import run_init  # introspection, descriptions, golden skeleton, config

    return run_init(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from agent.apps.auth import ServeRefused
    from agent.apps.server import serve  # the HTTP API and the feedback/review web app

    try:
        serve(
            load_settings(),
            host=args.host,
            port=args.port,
            golden_path=args.golden,
            auth=False if args.no_auth else None,
        )
    except ServeRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_mcp(args: argparse.Namespace) -> int:
    from agent.apps.auth import ServeRefused
    from agent.apps.mcp_serve import serve_mcp  # the database's tools for MCP clients

    try:
        serve_mcp(
            load_settings(),
            transport=args.transport,
            role=args.role,
            db=args.db,
            host=args.host,
            port=args.port,
            auth=False if args.no_auth else None,
        )
    except ServeRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as exc:  # an unknown role, a missing database
        return _fail(args, f"{type(exc).__name__}: {exc}")
    return EXIT_OK


def _fail(args: argparse.Namespace, message: str, code: int = EXIT_FAIL) -> int:
    if getattr(args, "json", False):
        _print_json({"status": "error", "error": message})
    else:
        print(f"error: {printable(message)}", file=sys.stderr)
    return code


def _bad_argument(args: argparse.Namespace) -> str | None:
    """The first text argument that no command can use (not UTF-8, a NUL byte, an empty name ...)."""
    for dest, value in vars(args).items():
        if dest == "command" or not isinstance(value, str):
            continue
        called = _CALLED.get(dest, f"--{dest.replace('_', '-')}")
        problem = text_problem(value, called, _TEXT_KINDS.get(dest, "name"))
        if problem:
            return problem
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlagent", description="Ask a database questions in plain language."
    )
    parser.add_argument("--version", action="version", version=f"sqlagent {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question with the agent graph")
    ask.add_argument("question", help="the question, or - to read it from standard input")
    ask.add_argument("--db", help="a DuckDB file or a server URL (default: database.url from the config)")
    ask.add_argument(
        "--thread",
        help="continue a conversation: a follow-up, or the reply to a clarifying question "
        "or to a query awaiting approval (limits.approve_sql)",
    )
    ask.add_argument("--role", help="access role from config/access.yaml")
    ask.add_argument("--lm", help="override lm.model, e.g. embedded/qwen2.5-coder-0.5b or openai/gpt-4o-mini")
    ask.add_argument("--json", action="store_true", help="print one JSON object (= --format json)")
    ask.add_argument(
        "--explain", action="store_true", help="also explain the SQL in plain words (one LM call)"
    )
    add_output_arguments(ask, "the answer, SQL, rows and timeline; csv and parquet: the rows only")
    ask.set_defaults(func=cmd_ask)

    sql = sub.add_parser("sql", help="run SQL through the safety policy and sandbox (no LM but --explain)")
    sql.add_argument("sql", help="one SELECT statement, or - to read it from standard input")
    sql.add_argument("--db")
    sql.add_argument("--role")
    sql.add_argument("--json", action="store_true", help="= --format json")
    sql.add_argument(
        "--explain", action="store_true", help="also explain the query in plain words (uses the LM)"
    )
    add_output_arguments(sql, "the rows as a table")
    sql.set_defaults(func=cmd_sql)

    tools = sub.add_parser("tools", help="list the tool registry, or lint it for sprawl")
    tools.add_argument("--lint", action="store_true")
    tools.add_argument(
        "--budget", type=int, help="maximum number of tools (default: tools.budget in the config)"
    )
    tools.add_argument("--json", action="store_true")
    tools.set_defaults(func=cmd_tools)

    trace = sub.add_parser("trace", help="print a question's per-node timeline from its MLflow trace")
    trace.add_argument("trace_id")
    trace.add_argument("--json", action="store_true")
    trace.set_defaults(func=cmd_trace)

    doctor = sub.add_parser("doctor", help="check versions, database, model and tracking store")
    doctor.add_argument("--verify", action="store_true", help="re-hash the model file in full")
    doctor.add_argument("--json", action="store_true", help="print {ok, checks: [{name, ok, detail}]}")
    doctor.set_defaults(func=cmd_doctor)

    serve = sub.add_parser("serve", help="run the HTTP API and the feedback/review web app")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--golden", help="golden set file that promotions go to (default evals/golden.jsonl)")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="no tokens: everyone who can connect may do everything (refused unless --host is loopback)",
    )
    serve.set_defaults(func=cmd_serve)

    mcp = sub.add_parser("mcp", help="serve describe_schema, lookup_values, run_sql and ask to MCP clients")
    mcp.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (default: Claude Desktop, IDEs start the command) or streamable HTTP",
    )
    mcp.add_argument(
        "--role", help="access role of every call (default mcp.role); over HTTP with auth, the token's"
    )
    mcp.add_argument("--db", help="a DuckDB file (default: database.path from the config)")
    mcp.add_argument("--host", help="HTTP bind address (default mcp.host, loopback)")
    mcp.add_argument("--port", type=int, help="HTTP port (default mcp.port)")
    mcp.add_argument(
        "--no-auth", action="store_true", help="HTTP without tokens (refused unless --host is loopback)"
    )
    mcp.set_defaults(func=cmd_mcp)

    from agent.apps.users_cli import add_users_parser  # `users add|list|revoke`: the API's tokens

    add_users_parser(sub)

    from evals.cli import add_eval_parser  # `eval` and `eval-accept` live with the evals

    add_eval_parser(sub)

    from evals.judges.cli import add_judges_parser  # `judges list|load-labels|align|agree|register`

    add_judges_parser(sub)

    from evals.monitor.cli import add_monitor_parser  # `monitor [--window 1h] [--check]`

    add_monitor_parser(sub)

    from prompts.optimize.cli import add_optimize_parser  # `optimize`: DSPy prompt optimization

    add_optimize_parser(sub)

    init = sub.add_parser(
        "init", help="set the agent up for a DuckDB database: descriptions, config, golden skeleton"
    )
    init.add_argument("--db", required=True, help="the DuckDB file")
    init.add_argument("--out", help="output directory (default: config/<database name>)")
    init.add_argument(
        "--no-draft", action="store_true", help="no LM: keep database comments, leave the rest empty"
    )
    init.add_argument(
        "--lm", help="drafting LM, e.g. embedded/qwen2.5-coder-0.5b (default: lm.nodes.init or lm.model)"
    )
    init.add_argument("--questions", type=int, default=6, help="questions in the golden skeleton (default 6)")
    init.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    init.set_defaults(func=cmd_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    read_stdin(args)
    problem = _bad_argument(args) or resolve_format(args)
    if problem:
        return _fail(args, problem, EXIT_USAGE)
    started = time.perf_counter()
    try:
        code = args.func(args)
    except ConfigNotFound as exc:  # an installed wheel without its clone, or a wrong SQLAGENT_CONFIG
        return _fail(args, str(exc))
    if not getattr(args, "json", False) and args.command in ("ask",) and code != EXIT_USAGE:
        print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
