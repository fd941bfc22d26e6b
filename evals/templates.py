"""Templates: what two golden items share once their literals are masked, and the groups that a
split must keep together.

A test item is only a fair test when nothing in the few-shot pool (the train split) is the same
query with other literals: the retriever would hand the model its twin and the "answer" would be a
copy. So items are grouped by template and every group lives in one split:

- the SQL template: the gold query with every literal (string, number, date) replaced by `?`,
  identifiers lower-cased, table and column aliases renamed in order of appearance (`t1`, `a1`);
- the question template: the question with the annotated mentions, numbers and quoted text masked;
- conversations: an item whose earlier turn is another item's question belongs with it.

`python -m evals.templates` prints the groups that span splits and the test questions that come
closest to a train question by the retriever's own similarity.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from prompts.retrieve import question_similarity

MASK = "?"  # in SQL: sqlglot's placeholder
QUESTION_MASK = "#"  # in questions, where "?" is punctuation
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*(?:s\b)?")  # 1927, 3,000, .300, the 1990s
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_SPACE = re.compile(r"\s+")


def mask_sql(sql: str, dialect: str = "duckdb") -> str:
    """The gold SQL's template: literals masked, names canonical. Unparsable SQL masks by regex."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError:
        text = _QUOTED.sub(MASK, sql)
        return _SPACE.sub(" ", re.sub(r"\b\d+(?:\.\d+)?\b", MASK, text)).strip().lower()
    tree = tree.transform(_mask_literal)
    _canonical_aliases(tree)
    return tree.sql(dialect=dialect, normalize=True).lower()


def _mask_literal(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal):
        return exp.Placeholder()
    # DATE '2000-01-01' is a cast of a literal: one placeholder, whatever the type.
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Placeholder):
        return exp.Placeholder()
    return node


def _canonical_aliases(tree: exp.Expression) -> None:
    """Rename table aliases (t1, t2, ...) and projection aliases (a1, a2, ...) in order of appearance,
    and the references to them, so `b.HR` vs `bat.HR` or `AS HR` vs `AS home_runs` do not make two
    templates of one query."""
    tables: dict[str, str] = {}
    for alias in tree.find_all(exp.TableAlias):
        name = alias.name.lower()
        if name and name not in tables:
            tables[name] = f"t{len(tables) + 1}"
    outputs: dict[str, str] = {}
    for alias in tree.find_all(exp.Alias):
        name = alias.alias.lower()
        if name and name not in outputs and name not in tables:
            outputs[name] = f"a{len(outputs) + 1}"
    for node in list(tree.walk()):
        if isinstance(node, exp.TableAlias) and node.name.lower() in tables:
            node.set("this", exp.to_identifier(tables[node.name.lower()]))
        elif isinstance(node, exp.Alias) and node.alias.lower() in outputs:
            node.set("alias", exp.to_identifier(outputs[node.alias.lower()]))
        elif isinstance(node, exp.Column):
            if node.table and node.table.lower() in tables:
                node.set("table", exp.to_identifier(tables[node.table.lower()]))
            # Only ORDER BY reads an output alias by name; elsewhere `HR` is the column (SUM(HR) AS HR).
            elif not node.table and node.name.lower() in outputs and node.find_ancestor(exp.Order):
                node.set("this", exp.to_identifier(outputs[node.name.lower()]))
        elif isinstance(node, exp.Table) and not node.args.get("alias") and node.name.lower() in tables:
            node.set("this", exp.to_identifier(tables[node.name.lower()]))  # a CTE read by its name


def mask_question(question: str, mentions: Iterable[str] = ()) -> str:
    """The question's template: the named entities (longest first), numbers and quoted text masked."""
    text = question.lower()
    for mention in sorted({m.lower() for m in mentions if m}, key=len, reverse=True):
        text = text.replace(mention, QUESTION_MASK)
    text = _QUOTED.sub(QUESTION_MASK, text)
    text = _NUMBER.sub(QUESTION_MASK, text)
    text = re.sub(r"[^\w#]+", " ", text)
    return _SPACE.sub(" ", text).strip()


def _normal(question: str) -> str:
    return _SPACE.sub(" ", re.sub(r"[^\w]+", " ", question.lower())).strip()


# --- groups ------------------------------------------------------------------------------------


def _get(item: Any, key: str, default: Any = None) -> Any:
    return item.get(key, default) if isinstance(item, dict) else getattr(item, key, default)


def _mentions(item: Any) -> list[str]:
    return [str(_get(m, "mention") or "") for m in _get(item, "expected_mappings") or []]


@dataclass(frozen=True)
class Group:
    ids: tuple[str, ...]
    splits: tuple[str, ...]  # the distinct splits its members are in, sorted
    why: tuple[str, ...]  # the shared templates, for a reader

    @property
    def spans_splits(self) -> bool:
        return len(self.splits) > 1


def template_groups(items: Sequence[Any]) -> list[Group]:
    """Items joined by a shared SQL template, question template or conversation turn (union-find)."""
    ids = [str(_get(i, "id")) for i in items]
    parent = {i: i for i in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    keys: dict[str, list[str]] = defaultdict(list)
    for item, item_id in zip(items, ids, strict=True):
        sql = (_get(item, "gold_sql") or "").strip()
        if sql:
            keys[f"sql: {mask_sql(sql)}"].append(item_id)
        keys[f"question: {mask_question(_get(item, 'question'), _mentions(item))}"].append(item_id)
        for turn in _get(item, "turns") or []:
            keys[f"turn: {_normal(turn)}"].append(item_id)
        keys[f"turn: {_normal(_get(item, 'question'))}"].append(item_id)
    shared: dict[str, list[str]] = defaultdict(list)
    for key, members in keys.items():
        for other in members[1:]:
            parent[find(other)] = find(members[0])
        if len(set(members)) > 1:
            shared[members[0]].append(key)
    split_of = {i: str(_get(it, "split") or "") for it, i in zip(items, ids, strict=True)}
    members_of: dict[str, list[str]] = defaultdict(list)
    for item_id in ids:
        members_of[find(item_id)].append(item_id)
    groups = []
    for members in members_of.values():
        why = sorted({k for m in members for k in shared.get(m, [])})
        groups.append(Group(tuple(members), tuple(sorted({split_of[m] for m in members})), tuple(why)))
    return sorted(groups, key=lambda g: (-len(g.ids), g.ids))


def leaking_groups(items: Sequence[Any], pool: str = "train") -> list[Group]:
    """Groups with members both in the example pool and in another split."""
    return [g for g in template_groups(items) if pool in g.splits and g.spans_splits]


@dataclass(frozen=True)
class Nearest:
    id: str
    question: str
    train_id: str
    train_question: str
    similarity: float


def nearest_train_questions(items: Sequence[Any], split: str = "test", pool: str = "train") -> list[Nearest]:
    """For each question (and earlier turn) of `split`, the closest question of `pool`, closest first."""
    train = [
        (str(_get(i, "id")), q)
        for i in items
        if _get(i, "split") == pool
        for q in [_get(i, "question"), *(_get(i, "turns") or [])]
    ]
    out = []
    for item in items:
        if _get(item, "split") != split or not train:
            continue
        for question in [_get(item, "question"), *(_get(item, "turns") or [])]:
            score, train_id, train_q = max((question_similarity(question, q), i, q) for i, q in train)
            out.append(Nearest(str(_get(item, "id")), question, train_id, train_q, round(score, 3)))
    return sorted(out, key=lambda n: -n.similarity)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from agent.config import PROJECT_ROOT

    parser = argparse.ArgumentParser(prog="python -m evals.templates", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(PROJECT_ROOT / "evals" / "golden.jsonl"))
    parser.add_argument("--top", type=int, default=10, help="closest test questions to show")
    args = parser.parse_args(argv)
    lines = Path(args.dataset).read_text(encoding="utf-8").splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    spanning = [g for g in template_groups(items) if g.spans_splits]
    print(f"{len(items)} items, {len(template_groups(items))} template groups, {len(spanning)} across splits")
    for g in spanning:
        print(f"  {'/'.join(g.splits)}: {', '.join(g.ids)}")
        for why in g.why[:3]:
            print(f"      {why[:140]}")
    for split in ("test", "dev"):
        print(f"Closest {split} questions to a train question (retriever similarity):")
        for n in nearest_train_questions(items, split)[: args.top]:
            print(f"  {n.similarity:.2f}  {n.id}: {n.question!r} ~ {n.train_id}: {n.train_question!r}")
    return 1 if any("train" in g.splits for g in spanning) else 0


if __name__ == "__main__":
    sys.exit(main())
