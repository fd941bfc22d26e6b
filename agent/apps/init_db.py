"""`sqlagent init`: point the agent at any DuckDB database.

    sqlagent init --db shop.duckdb [--out config/shop] [--no-draft] [--lm MODEL] [--questions N]

writes three files into the output directory, and builds the caches the agent needs:

- `descriptions.yaml`: every table and column with a description. Comments the database already has
  are kept (`source: database`); the rest are drafted by the LM from names and sample values
  (prompts/describe.py) and marked `draft: true` for a human to review. Re-running init keeps
  entries a human reviewed (`draft: false`).
- `golden.jsonl`: a golden-set skeleton in the evals format: a few questions with SQL drafted by the
  LM (prompts/draft_questions.py), each `unverified: true` and with `executed` saying whether its
  query ran. Queries that ran go in split `train` (the example bank); the others in split `draft`.
- `sqlagent.yaml`: config/sqlagent.yaml with `database.url`, `database.descriptions` and
  `retrieval.example_bank` pointing at the above and `prompts.compiled_dir` at `<out>/compiled`
  (optimized modules are per database), so `SQLAGENT_CONFIG=<out>/sqlagent.yaml sqlagent ask ...`
  (and eval, optimize) work on the new database unchanged.

The schema cache and the value index are built on the way (tools/sql/introspect.py, tools/sql/values.py).
No step raises on a bad LM reply: the entry stays empty, marked as a draft, with a note.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dspy
import yaml
from pydantic import ValidationError

from agent.config import DEFAULT_CONFIG_FILE, DatabaseSettings, RetrievalSettings, Settings
from prompts.describe import ColumnFacts, Describe
from prompts.draft_questions import DraftQuestions, QuestionSQL
from tools.sql.database import Database
from tools.sql.descriptions import apply_descriptions, load_descriptions
from tools.sql.introspect import DatabaseSchema, TableInfo, quote_identifier

DESCRIPTIONS_FILE = "descriptions.yaml"
GOLDEN_FILE = "golden.jsonl"
CONFIG_FILE = "sqlagent.yaml"
SUMMARY_TABLES = 12  # tables in the schema summary the question drafter sees
SUMMARY_COLUMNS = 12  # columns per table in that summary

Progress = Callable[[str], None]


@dataclass
class InitResult:
    db: str
    out_dir: str
    descriptions: str
    config: str
    golden: str
    tables: int = 0
    entries: int = 0  # tables + columns
    from_database: int = 0
    kept: int = 0  # reviewed entries kept from an earlier run
    drafted: int = 0
    empty: int = 0
    questions: int = 0
    executed: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def default_out_dir(db_path: Path) -> Path:
    return Path("config") / db_path.stem


# --- descriptions ----------------------------------------------------------------------------------


def _entry(description: str, source: str, draft: bool, note: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"description": description, "draft": draft, "source": source}
    if note:
        entry["note"] = note
    return entry


def _reviewed(previous: dict[str, Any], table: str, column: str | None = None) -> dict[str, Any] | None:
    """An entry of an earlier descriptions file that a human reviewed (draft: false, non-empty).

    Entries copied from database comments are read from the database again instead."""
    tables = previous.get("tables") if isinstance(previous, dict) else None
    entry = (tables or {}).get(table)
    if column is not None:
        entry = (entry.get("columns") or {}).get(column) if isinstance(entry, dict) else None
    if (
        isinstance(entry, dict)
        and entry.get("draft") is False
        and entry.get("source") != "database"
        and str(entry.get("description") or "").strip()
    ):
        return entry
    return None


def column_facts(db: Database, table: TableInfo, names: list[str]) -> list[ColumnFacts]:
    """Names, types and samples: frequent values of text columns, min..max of the others."""
    wanted = [c for c in table.columns if c.name in names]
    ranged = [c for c in wanted if not c.samples]
    ranges: dict[str, str] = {}
    if ranged and table.row_count:
        select = ", ".join(
            f"min({quote_identifier(c.name)}), max({quote_identifier(c.name)})" for c in ranged
        )
        try:
            row = db.sandbox.execute(f"SELECT {select} FROM {quote_identifier(table.name)}").rows[0]
        except Exception:  # a type without min/max (a list, a blob): no samples for it
            row = []
        for i, col in enumerate(ranged):
            if 2 * i + 1 < len(row) and row[2 * i] is not None:
                low, high = row[2 * i], row[2 * i + 1]
                ranges[col.name] = str(low) if low == high else f"{low}..{high}"
    return [
        ColumnFacts(
            name=c.name, type=c.type, samples=c.samples or ([ranges[c.name]] if c.name in ranges else [])
        )
        for c in wanted
    ]


def describe_tables(
    db: Database,
    previous: dict[str, Any],
    describer: Describe | None,
    lm: dspy.LM | None,
    result: InitResult,
    progress: Progress,
) -> dict[str, Any]:
    """The descriptions document: database comments first, reviewed entries kept, the rest drafted."""
    tables: dict[str, Any] = {}
    for table in db.schema.tables:
        started = time.perf_counter()
        entries: dict[str, dict[str, Any]] = {}
        todo: list[str] = []
        for col in table.columns:
            kept = _reviewed(previous, table.name, col.name)
            if kept is not None:
                entries[col.name], result.kept = kept, result.kept + 1
            elif col.comment.strip():
                entries[col.name] = _entry(col.comment.strip(), "database", False)
                result.from_database += 1
            else:
                todo.append(col.name)
        kept_table = _reviewed(previous, table.name)
        if kept_table is not None:
            table_entry = {k: v for k, v in kept_table.items() if k != "columns"}
            result.kept += 1
        elif table.comment.strip():
            table_entry = _entry(table.comment.strip(), "database", False)
            result.from_database += 1
        else:
            table_entry = None

        drafted_table, drafted_cols, notes = "", {}, []
        if describer is not None and lm is not None and (todo or table_entry is None):
            with dspy.context(lm=lm):
                pred = describer(
                    table=table.name,
                    columns=column_facts(db, table, todo),
                    describe_table=table_entry is None,
                )
            drafted_table, drafted_cols, notes = pred.table_description, pred.column_descriptions, pred.notes
        note = "; ".join(notes) or None
        skipped = "not drafted (--no-draft): write it" if describer is None else None

        if table_entry is None:
            text = drafted_table.strip()
            table_entry = _entry(text, "lm" if text else "none", True, None if text else (note or skipped))
            result.drafted += bool(text)
            result.empty += not text
        for name in todo:
            text = drafted_cols.get(name, "").strip()
            entries[name] = _entry(text, "lm" if text else "none", True, None if text else (note or skipped))
            result.drafted += bool(text)
            result.empty += not text
        table_entry["columns"] = {c.name: entries[c.name] for c in table.columns}
        tables[table.name] = table_entry
        result.entries += 1 + len(table.columns)
        if describer is not None and lm is not None and todo:
            progress(f"described {table.name} ({len(todo)} columns) in {time.perf_counter() - started:.1f} s")
    result.tables = len(tables)
    return {"database": db.url, "tables": tables}


def descriptions_header(db_path: Path) -> str:
    return (
        f"# Descriptions of {db_path.name}: used by retrieval to pick tables and columns, and shown in the prompt.\n"
        f"# Written by `sqlagent init` on {dt.date.today().isoformat()}. Review every `draft: true` entry: fix the\n"
        "# text (or write it, where it is empty) and set `draft: false`; re-running init keeps reviewed entries.\n"
        "# source: database = the database's own COMMENT, lm = drafted by the LM, none = still empty.\n"
        "# A description fills an empty database comment; `override: true` replaces a non-empty one.\n"
    )


# --- golden-set skeleton ---------------------------------------------------------------------------


def schema_summary(
    schema: DatabaseSchema, max_tables: int = SUMMARY_TABLES, max_columns: int = SUMMARY_COLUMNS
) -> str:
    """A compact schema for the question drafter: names, types, first words of descriptions, joins."""
    blocks = []
    for table in schema.tables[:max_tables]:
        lines = [f"TABLE {table.name} -- {table.comment[:80]}".rstrip(" -")]
        for col in table.columns[:max_columns]:
            lines.append(f"  {quote_identifier(col.name)} {col.type} -- {col.comment[:50]}".rstrip(" -"))
        blocks.append("\n".join(lines))
    names = {t.name for t in schema.tables[:max_tables]}
    joins = schema.joins_between(names)
    if joins:
        blocks.append("JOINS\n" + "\n".join(f"  {j.sql()}" for j in joins))
    return "\n".join(blocks)


def template_pairs(schema: DatabaseSchema, count: int) -> list[QuestionSQL]:
    """Questions that need no LM: how many rows each of the biggest tables has."""
    biggest = sorted(schema.tables, key=lambda t: (-t.row_count, t.name))[:count]
    return [
        QuestionSQL(
            question=f"How many rows does the {t.name} table have?",
            sql=f"SELECT count(*) AS n FROM {quote_identifier(t.name)}",
        )
        for t in biggest
    ]


def try_sql(db: Database, sql: str) -> tuple[bool, int, str | None]:
    """(executed, rows, error): the policy check, then one run in the read-only sandbox."""
    decision = db.policy.check(sql)
    if not decision.allowed:
        return False, 0, f"{decision.code}: {decision.reason}"
    try:
        ran = db.sandbox.execute(decision.sql)
    except Exception as exc:  # SandboxError: syntax, binder, timeout
        return False, 0, " ".join(str(exc).split())[:300]
    return True, ran.row_count, None


def _slug(text: str, words: int = 6) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:words]) or "question"


def golden_items(db: Database, pairs: list[tuple[QuestionSQL, str]]) -> list[dict[str, Any]]:
    items = []
    for number, (pair, source) in enumerate(pairs, 1):
        executed, rows, error = try_sql(db, pair.sql)
        item: dict[str, Any] = {
            "id": f"{db.name.lower()}-{number:02d}-{_slug(pair.question)}",
            "question": pair.question,
            "gold_sql": pair.sql,
            "split": "train" if executed and rows else "draft",
            "tags": ["drafted"],
            "unverified": True,
            "executed": executed,
            "result_rows": rows,
            "draft_source": source,
        }
        if error:
            item["error"] = error
        items.append(item)
    return items


def _previous_golden(path: Path) -> list[dict[str, Any]]:
    """Items of an earlier skeleton that a human verified (no `unverified: true`): init keeps them."""
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and not item.get("unverified"):
            kept.append(item)
    return kept


# --- configuration ---------------------------------------------------------------------------------


def _set_key(lines: list[str], section: str, key: str, value: str, after: str | None = None) -> list[str]:
    """Set `section.key` in YAML text, keeping every comment; add the key if the section lacks it."""
    out, current, done, insert_at = [], None, False, None
    for line in lines:
        top = re.match(r"^([A-Za-z_]\w*):", line)
        if top:
            if current == section and not done and insert_at is None:
                insert_at = len(out)
            current = top.group(1)
        elif current == section and re.match(rf"^  {key}:", line):
            comment = re.search(r"\s+#.*$", line.split(":", 1)[1])
            line = f"  {key}: {value}" + (comment.group(0) if comment else "")
            done = True
        out.append(line)
        if current == section and after and re.match(rf"^  {after}:", line) and not done:
            insert_at = len(out)
    if not done:
        if insert_at is None:
            out += ["", f"{section}:"] if current != section else []
            insert_at = len(out)
        out.insert(insert_at, f"  {key}: {value}")
    return out


def config_text(template: str, db_path: Path, descriptions: Path, golden: Path, out_dir: Path) -> str:
    """config/sqlagent.yaml with the database, its descriptions and its example bank filled in."""
    lines = template.splitlines()
    lines = _set_key(lines, "database", "url", json.dumps(str(db_path)))
    lines = _set_key(lines, "database", "descriptions", json.dumps(str(descriptions)), after="url")
    lines = _set_key(lines, "retrieval", "example_bank", json.dumps(str(golden)))
    # Optimized modules carry demos from the database they were optimized on: each database gets
    # its own folder, filled by `sqlagent optimize` against its own golden set.
    lines = _set_key(lines, "prompts", "compiled_dir", json.dumps(str(out_dir / "compiled")))
    data = yaml.safe_load("\n".join(lines)) or {}
    try:
        DatabaseSettings(**data.get("database", {}))
    except ValidationError:
        # Settings without a `database.descriptions` key: keep the line, commented, for when it has one.
        lines = [
            ("  # " + ln.strip() + "   # (this sqlagent version does not read it)")
            if re.match(r"^  descriptions:", ln)
            else ln
            for ln in lines
        ]
    RetrievalSettings(**(yaml.safe_load("\n".join(lines)) or {}).get("retrieval", {}))
    header = (
        f"# sqlagent configuration for {db_path.name}, written by `sqlagent init` on {dt.date.today().isoformat()}.\n"
        f'# Use it with: SQLAGENT_CONFIG={out_dir / CONFIG_FILE} sqlagent ask "..."\n'
    )
    return header + "\n".join(lines) + "\n"


# --- the whole step --------------------------------------------------------------------------------


def init_database(
    db_path: str | Path,
    out_dir: str | Path,
    settings: Settings,
    *,
    lm: dspy.LM | None = None,
    draft: bool = True,
    questions: int = 6,
    template: Path = DEFAULT_CONFIG_FILE,
    progress: Progress = lambda message: None,
) -> InitResult:
    """Introspect, index, describe, draft the skeleton and write the config. `lm=None` drafts nothing."""
    started = time.perf_counter()
    db_path = Path(db_path).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in (DESCRIPTIONS_FILE, GOLDEN_FILE, CONFIG_FILE)}
    result = InitResult(
        db=str(db_path),
        out_dir=str(out),
        descriptions=str(paths[DESCRIPTIONS_FILE]),
        config=str(paths[CONFIG_FILE]),
        golden=str(paths[GOLDEN_FILE]),
    )
    use_lm = lm if draft else None

    db = Database(
        settings.database_config(db_path)
    )  # introspection (cached) and the value index (cached), built here
    try:
        progress(
            f"{db_path.name}: {len(db.schema.tables)} tables, {len(db.schema.joins)} join paths; value index ready"
        )
        previous: dict[str, Any] = {}
        if paths[DESCRIPTIONS_FILE].is_file():
            try:
                previous = yaml.safe_load(paths[DESCRIPTIONS_FILE].read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                result.notes.append(
                    f"the earlier {DESCRIPTIONS_FILE} is not valid YAML and was replaced ({exc})"
                )
        describer = Describe() if use_lm is not None else None
        document = describe_tables(db, previous, describer, use_lm, result, progress)
        paths[DESCRIPTIONS_FILE].write_text(
            descriptions_header(db_path)
            + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110),
            encoding="utf-8",
        )

        described = apply_descriptions(db.schema, load_descriptions(paths[DESCRIPTIONS_FILE]))
        pairs: list[tuple[QuestionSQL, str]] = []
        if use_lm is not None and questions > 0:
            t0 = time.perf_counter()
            with dspy.context(lm=use_lm):
                pred = DraftQuestions()(db_schema=schema_summary(described), count=questions)
            pairs = [(p, "lm") for p in pred.pairs]
            result.notes += [f"questions: {n}" for n in pred.notes]
            progress(f"drafted {len(pairs)} questions in {time.perf_counter() - t0:.1f} s")
        asked = {p.question.lower() for p, _ in pairs}
        fill = [p for p in template_pairs(db.schema, questions) if p.question.lower() not in asked]
        pairs += [(p, "template") for p in fill[: max(0, questions - len(pairs))]]
        items = _previous_golden(paths[GOLDEN_FILE]) + golden_items(db, pairs)
        paths[GOLDEN_FILE].write_text(
            "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8"
        )
        drafted_items = [i for i in items if i.get("unverified")]
        result.questions = len(drafted_items)
        result.executed = sum(1 for i in drafted_items if i["executed"])
    finally:
        db.close()

    paths[CONFIG_FILE].write_text(
        config_text(
            template.read_text(encoding="utf-8"), db_path, paths[DESCRIPTIONS_FILE], paths[GOLDEN_FILE], out
        ),
        encoding="utf-8",
    )
    result.seconds = round(time.perf_counter() - started, 1)
    return result


# --- the command -----------------------------------------------------------------------------------


def run_init(args: Any) -> int:
    """`sqlagent init` (the parser is in agent/apps/cli.py)."""
    from agent.config import load_settings
    from agent.tracing import setup_tracing

    settings = load_settings(tracking={"enabled": False})
    setup_tracing(settings)
    db_path = Path(args.db).expanduser()
    if not db_path.is_file():
        print(f"error: database file {db_path} does not exist", file=sys.stderr)
        return 1
    lm = None
    if not args.no_draft:
        from agent.lm.embedded import build_lm

        lm_settings = settings.lm.for_node("init")  # lm.nodes.init overrides the drafting LM
        if args.lm:
            lm_settings = lm_settings.model_copy(update={"model": args.lm})
        lm_settings = lm_settings.model_copy(update={"max_tokens": max(lm_settings.max_tokens, 700)})
        try:
            lm = build_lm(lm_settings, settings.embedded)
        except Exception as exc:  # no model, no API key: say so, and suggest the LM-free path
            print(
                f"error: cannot start the LM ({type(exc).__name__}: {exc}); use --no-draft to skip drafting",
                file=sys.stderr,
            )
            return 1
    out_dir = Path(args.out) if args.out else default_out_dir(db_path)
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    result = init_database(
        db_path, out_dir, settings, lm=lm, draft=not args.no_draft, questions=args.questions, progress=say
    )
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    print(
        f"{result.descriptions}: {result.entries} entries ({result.tables} tables): {result.from_database} from "
        f"database comments, {result.kept} reviewed, {result.drafted} drafted, {result.empty} empty"
    )
    print(f"{result.golden}: {result.questions} unverified questions, {result.executed} of them executed")
    print(f"{result.config}")
    for note in result.notes:
        print(f"note: {note}")
    print(
        f'\nReview the drafts, then:\n  SQLAGENT_CONFIG={result.config} sqlagent ask "..."\n'
        f"  SQLAGENT_CONFIG={result.config} sqlagent eval --dataset {result.golden} --split train"
    )
    print(f"({result.seconds:.1f} s)", file=sys.stderr)
    return 0
