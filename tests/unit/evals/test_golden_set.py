"""Validate the golden evaluation set evals/golden.jsonl (format, splits, coverage, gold SQL)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from evals.templates import leaking_groups, mask_sql, nearest_train_questions

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
GOLDEN = ROOT / "evals" / "golden.jsonl"
DB = ROOT / "data" / "lahman.duckdb"
PINS = ROOT / "evals" / "golden_answers.jsonl"
# The retriever's similarity above which a dev/test question counts as a copy of a train question
# (twins of different templates scored 0.67-1.0 before the re-split; different questions <= 0.5).
NEAR_TRAIN_MAX = 0.6

KEY_ORDER = [
    "id", "question", "gold_sql", "split", "tags", "difficulty",
    "expected_mappings", "must_pass", "expected_status", "turns",
]  # fmt: skip
REQUIRED = KEY_ORDER[:6]
SPLITS = {"train": 0.50, "dev": 0.25, "test": 0.25}
SPLIT_TOLERANCE = 0.08
TAGS = [
    "entity-matching", "nickname", "misspelling", "join", "aggregation", "ranking", "temporal",
    "multi-turn", "ambiguous-clarify", "unsafe-refuse", "rate-stat", "career", "no-rewrite",
]  # fmt: skip
# Provenance tags: allowed on any item, no coverage promised (the web app's promotions carry from-feedback;
# readme marks the questions the README promises, checked by tests/integration and `--tag readme`).
PROVENANCE_TAGS = ["from-feedback", "readme"]
# Rare conversational tags only need to be in train and test (they are in dev today too).
TRAIN_TEST_ONLY = {"multi-turn", "ambiguous-clarify", "unsafe-refuse"}
# Minimum number of items per tag (the coverage the set promises).
MIN_PER_TAG = {
    "entity-matching": 15, "nickname": 8, "misspelling": 8, "join": 25, "aggregation": 20,
    "ranking": 15, "temporal": 10, "multi-turn": 5, "ambiguous-clarify": 4, "unsafe-refuse": 5,
    "rate-stat": 6, "career": 8, "no-rewrite": 15,
}  # fmt: skip
DIFFICULTIES = {"easy", "medium", "hard"}
STATUSES = {"ok", "clarify", "refused"}
STATUS_TAG = {"clarify": "ambiguous-clarify", "refused": "unsafe-refuse"}
MAPPING_KEYS = ["mention", "table", "column", "value"]
ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _load() -> list[dict]:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    items = []
    for n, line in enumerate(lines, 1):
        assert line.strip(), f"golden.jsonl line {n} is blank"
        item = json.loads(line)
        assert isinstance(item, dict), f"golden.jsonl line {n} is not a JSON object"
        items.append(item)
    return items


ITEMS = _load()
SQL_ITEMS = [it for it in ITEMS if it.get("expected_status", "ok") == "ok"]
MAPPINGS = [(it["id"], i, mp) for it in ITEMS for i, mp in enumerate(it.get("expected_mappings", []))]


def _status(item: dict) -> str:
    return item.get("expected_status", "ok")


# ---------------------------------------------------------------- format


def test_size_and_unique_ids() -> None:
    assert len(ITEMS) >= 200
    dup = [i for i, n in Counter(it.get("id") for it in ITEMS).items() if n > 1]
    assert dup == []


def test_sorted_by_split_then_id() -> None:
    keys = [(it["split"], it["id"]) for it in ITEMS]
    assert keys == sorted(keys)


@pytest.mark.parametrize("item", ITEMS, ids=[str(it.get("id")) for it in ITEMS])
def test_item_format(item: dict) -> None:
    keys = list(item)
    assert set(REQUIRED) <= set(keys), f"missing {set(REQUIRED) - set(keys)}"
    assert set(keys) <= set(KEY_ORDER), f"unknown keys {set(keys) - set(KEY_ORDER)}"
    assert keys == [k for k in KEY_ORDER if k in item], "keys out of the documented order"

    assert isinstance(item["id"], str) and ID_RE.match(item["id"]), "id must be a lower-case slug"
    assert isinstance(item["question"], str) and item["question"].strip() == item["question"] != ""
    assert isinstance(item["gold_sql"], str)
    assert item["split"] in SPLITS
    tags = item["tags"]
    assert isinstance(tags, list) and tags, "tags must be a non-empty list"
    assert len(set(tags)) == len(tags), "duplicate tag"
    assert set(tags) <= set(TAGS + PROVENANCE_TAGS), f"unknown tags {set(tags) - set(TAGS + PROVENANCE_TAGS)}"
    assert item["difficulty"] in DIFFICULTIES

    status = _status(item)
    assert status in STATUSES
    if "expected_status" in item:
        assert status != "ok", "omit expected_status for ok items (ok is the default)"
    for st, tag in STATUS_TAG.items():
        assert (status == st) == (tag in tags), f"expected_status {st!r} <-> tag {tag!r}"
    if status == "ok":
        sql = item["gold_sql"].strip()
        assert sql == item["gold_sql"] and re.match(r"(?is)^(select|with)\b", sql), "gold SQL must be a query"
        assert ";" not in sql, "one statement, no trailing semicolon"
    else:
        assert item["gold_sql"] == "", "clarify/refused items have an empty gold_sql"

    if "must_pass" in item:
        assert item["must_pass"] is True, "must_pass is either true or omitted"
        assert item["difficulty"] == "easy"

    turns = item.get("turns")
    assert ("multi-turn" in tags) == (turns is not None), "turns <-> tag multi-turn"
    if turns is not None:
        assert isinstance(turns, list) and turns
        assert all(isinstance(t, str) and t.strip() for t in turns)

    mappings = item.get("expected_mappings")
    if mappings is not None:
        assert isinstance(mappings, list) and mappings, "omit expected_mappings rather than leave it empty"
        for mp in mappings:
            assert list(mp) == MAPPING_KEYS
            assert all(isinstance(mp[k], str) and mp[k] for k in MAPPING_KEYS)
        assert "no-rewrite" not in tags, "no-rewrite questions mention no entity to map"
    if "nickname" in tags or "misspelling" in tags:
        assert "entity-matching" in tags or status == "clarify"


# ---------------------------------------------------------------- splits and coverage


def test_split_proportions() -> None:
    counts = Counter(it["split"] for it in ITEMS)
    for split, share in SPLITS.items():
        actual = counts[split] / len(ITEMS)
        assert abs(actual - share) <= SPLIT_TOLERANCE, f"{split}: {actual:.1%} (want {share:.0%} +- 8)"


def test_every_tag_in_every_split() -> None:
    present = {s: Counter(t for it in ITEMS if it["split"] == s for t in it["tags"]) for s in SPLITS}
    missing = []
    for tag in TAGS:
        needed = ("train", "test") if tag in TRAIN_TEST_ONLY else tuple(SPLITS)
        missing += [f"{tag} not in {s}" for s in needed if not present[s][tag]]
    assert missing == []


def test_every_difficulty_in_every_split() -> None:
    present = {(it["split"], it["difficulty"]) for it in ITEMS}
    assert present == {(s, d) for s in SPLITS for d in DIFFICULTIES}


def test_tag_coverage_minimums() -> None:
    counts = Counter(t for it in ITEMS for t in it["tags"])
    short = {t: (counts[t], n) for t, n in MIN_PER_TAG.items() if counts[t] < n}
    assert short == {}


def test_must_pass_count() -> None:
    # Most of them in test (checked below), where the gate watches them; a few in train and dev.
    assert 10 <= sum(1 for it in ITEMS if it.get("must_pass")) <= 25


# ---------------------------------------------------------------- against the database


@pytest.fixture(scope="module")
def db():
    """The agent's own database handle: gold SQL runs in the same sandbox the agent's SQL runs in
    (DuckDB refuses a second in-process connection to one file with a different configuration)."""
    if not DB.is_file():
        pytest.skip(
            f"{DB.relative_to(ROOT)} is missing: build it with `.venv/bin/python -m data.build_lahman`"
        )
    from agent.config import load_settings
    from tools.sql.database import open_database

    return open_database(load_settings(tracking={"enabled": False}).database_config(DB))


@pytest.mark.parametrize("item", SQL_ITEMS, ids=[it["id"] for it in SQL_ITEMS])
def test_gold_sql_returns_rows(db, item: dict) -> None:
    rows = db.sandbox.execute(item["gold_sql"]).rows
    assert rows, f"gold SQL of {item['id']} returned no rows"


@pytest.fixture(scope="module")
def columns(db) -> set[tuple[str, str]]:
    return {(t.name, c.name) for t in db.schema.tables for c in t.columns}


def _qi(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.mark.parametrize("mapping", [m for _, _, m in MAPPINGS], ids=[f"{i}[{n}]" for i, n, _ in MAPPINGS])
def test_expected_mapping_value_exists(db, columns: set[tuple[str, str]], mapping: dict) -> None:
    table, column = mapping["table"], mapping["column"]
    assert (table, column) in columns, f"{table}.{column} is not a column of the database"
    literal = "'" + str(mapping["value"]).replace("'", "''") + "'"
    n = db.sandbox.execute(
        f"SELECT COUNT(*) FROM {_qi(table)} WHERE CAST({_qi(column)} AS VARCHAR) = {literal}"
    ).rows[0][0]
    assert n > 0, f"{mapping['value']!r} not found in {table}.{column}"


# ---------------------------------------------------------------- an honest split


def test_no_template_is_shared_between_train_and_another_split() -> None:
    """Train is the few-shot pool: a dev or test item with a twin there (the same query with other
    literals, the same question with other names, or a train question as an earlier turn) is a copy."""
    leaks = [f"{'/'.join(g.splits)}: {', '.join(g.ids)} [{g.why[0][:100]}]" for g in leaking_groups(ITEMS)]
    assert leaks == []


@pytest.mark.parametrize("split", ["test", "dev"])
def test_no_question_is_close_to_a_train_question(split: str) -> None:
    """By the retriever's own similarity, so a twin that masking misses still cannot be a worked example."""
    close = [
        f"{n.similarity:.2f} {n.id}: {n.question!r} ~ {n.train_id}: {n.train_question!r}"
        for n in nearest_train_questions(ITEMS, split)
        if n.similarity > NEAR_TRAIN_MAX
    ]
    assert close == []


def test_test_split_is_large_enough_to_measure() -> None:
    test = [it for it in ITEMS if it["split"] == "test"]
    answerable = [it for it in test if _status(it) == "ok"]
    assert len(answerable) >= 50
    assert len({mask_sql(it["gold_sql"]) for it in answerable}) >= 45, "test items of varied templates"
    assert sum(1 for it in test if it.get("must_pass")) >= 8


# ---------------------------------------------------------------- pinned answers


def test_every_answer_is_pinned_and_unchanged(db) -> None:
    """A gold (or a data build) that starts returning something else must be a reviewed decision:
    re-pin with `python -m evals.pinned --write` and commit the diff of evals/golden_answers.jsonl."""
    from evals.pinned import current_pins, differences, read_pins

    pinned = read_pins(PINS)
    changed = [
        f"{p['id']}: {why}" for p in current_pins(GOLDEN, db) if (why := differences(p, pinned.get(p["id"])))
    ]
    stale = sorted(set(pinned) - {it["id"] for it in SQL_ITEMS})
    assert changed == []
    assert stale == [], "pins of items that are gone or no longer answerable"


def _limit(sql: str) -> tuple[str, int] | None:
    """(the gold asking for one row more than its LIMIT, the LIMIT) for an ordered, limited gold."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    limit = tree.args.get("limit")
    if not tree.args.get("order") or not limit or not isinstance(limit.expression, exp.Literal):
        return None
    n = int(limit.expression.name)
    return tree.copy().limit(n + 1).sql(dialect="duckdb"), n


LIMITED = [it for it in SQL_ITEMS if _limit(it["gold_sql"])]


@pytest.mark.parametrize("item", LIMITED, ids=[it["id"] for it in LIMITED])
def test_no_tie_at_the_limit_boundary(db, item: dict) -> None:
    """`ORDER BY x DESC LIMIT 1` with two players tied at the top has two right answers and the gold
    picks one by chance: such a question must return every tied row (or ask something else)."""
    from evals.dataset import EvalItem
    from evals.runner import run_gold

    probe, n = _limit(item["gold_sql"])
    gold = run_gold(EvalItem(id=item["id"], question=item["question"], gold_sql=probe), db, 10_000)
    assert gold.error is None and gold.order_keys is not None, gold.error or gold.note
    if len(gold.rows) > n:
        last, next_ = gold.order_keys[n - 1], gold.order_keys[n]
        assert last != next_, (
            f"rows {n} and {n + 1} tie on the ORDER BY key {last}: {gold.rows[n - 1]} / {gold.rows[n]}"
        )


def test_the_readme_questions_are_items_and_never_worked_examples() -> None:
    from agent.config import resolve_path
    from evals.dataset import DatasetError, load_dataset
    from prompts.retrieve import load_examples

    readme = load_dataset(resolve_path("evals/golden.jsonl"), split="train", tag="readme").items
    assert {i.question for i in readme} >= {
        "Who hit the most home runs in 1927, and how many?",
        "How many games did the Yankees win in 1998?",
    }
    assert all(i.must_pass for i in readme)
    bank = {e.id for e in load_examples(resolve_path("evals/golden.jsonl"))}
    assert bank and not bank & {i.id for i in readme}
    with pytest.raises(DatasetError, match="no items tagged 'readme' in split 'test'"):
        load_dataset(resolve_path("evals/golden.jsonl"), split="test", tag="readme")
