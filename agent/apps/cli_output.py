"""The CLI's output: --format table|json|csv|parquet, --out FILE, and `-` for standard input.

`resolve_format` settles the format once (from --format, --json or the --out suffix); `emit` writes
text or bytes to --out or standard output; `emit_rows` writes a result's rows as CSV or Parquet
(agent/apps/export.py). csv and parquet put nothing but the rows on standard output, so they pipe.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL = 0, 1


def printable(text: str) -> str:
    # Undecodable argv bytes arrive as lone surrogates, which stdout cannot encode: print them as \udcXX.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n"


def emit(args: argparse.Namespace, data: str | bytes) -> int:
    """Write the output to --out, or print it. Returns EXIT_FAIL when the file cannot be written
    (so `return emit(...) or code` keeps the command's own code otherwise), else 0."""
    if not args.out:
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(printable(data))
        return EXIT_OK
    path = Path(args.out)
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        print(f"error: cannot write {printable(str(path))}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"wrote {printable(str(path))} ({args.format}, {len(data):,} bytes)", file=sys.stderr)
    return EXIT_OK


def emit_rows(args: argparse.Namespace, columns: list[str], rows: list[list[Any]], truncated: bool) -> int:
    from agent.apps.export import rows_csv, rows_parquet

    if truncated:
        print(f"note: the result was cut at {len(rows)} rows (limits.max_rows)", file=sys.stderr)
    return emit(args, rows_parquet(columns, rows) if args.format == "parquet" else rows_csv(columns, rows))


def resolve_format(args: argparse.Namespace) -> str | None:
    """Settle --format from --json and the --out suffix; None when fine, else the one-line problem."""
    from agent.apps.export import format_for

    if not hasattr(args, "format"):
        return None
    if args.json:
        if args.format not in (None, "json"):
            return f"--json and --format {args.format} ask for two formats; give one."
        args.format = "json"
    if args.format is None:
        args.format = (format_for(args.out) if args.out else None) or "table"
    args.json = args.format == "json"
    if args.format == "parquet" and not args.out and sys.stdout.isatty():
        return "Parquet is binary: give --out FILE.parquet (or redirect the output to a file)."
    return None


def add_output_arguments(parser: argparse.ArgumentParser, table_is: str) -> None:
    from agent.apps.export import FORMATS

    parser.add_argument(
        "--format",
        choices=FORMATS,
        help=f"table (default: {table_is}), json, csv or parquet (default: from the --out suffix)",
    )
    parser.add_argument("--out", metavar="FILE", help="write the output to FILE instead of standard output")


def read_stdin(args: argparse.Namespace) -> None:
    """`-` as the question or the SQL: read it from standard input, decoded as argv is (undecodable
    bytes become lone surrogates), so the same one-line checks name the byte that is wrong."""
    for dest in ("question", "sql"):
        if getattr(args, dest, None) == "-":
            setattr(args, dest, sys.stdin.buffer.read().decode("utf-8", "surrogateescape").strip())
