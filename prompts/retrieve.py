"""Retrieve: schema linking and worked-example selection.

A DSPy module with no LM call by default, like `dspy.Retrieve`: lexical scoring of tables and
columns (names, descriptions, sample values) against the question, the tables the resolved entities
live in, and the join paths that connect them. Kept as a module so a team can swap in an LM or
embedding linker and optimise it like any other step.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dspy
from pydantic import BaseModel
from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from tools.sql.introspect import DatabaseSchema
from tools.sql.read_tables import base_tables

_WORD = re.compile(r"[a-z0-9]+")
_STOP = set(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "and",
        "or",
        "for",
        "in",
        "on",
        "with",
        "by",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "who",
        "what",
        "which",
        "how",
        "many",
        "much",
        "did",
        "does",
        "do",
        "most",
        "least",
        "top",
        "all",
        "each",
        "every",
        "per",
        "than",
        "that",
        "this",
        "these",
        "those",
        "there",
        "their",
        "his",
        "her",
        "its",
        "give",
        "show",
        "list",
        "me",
        "find",
        "tell",
        "please",
        "any",
        "has",
        "have",
        "had",
    ]
)


def tokens(text: str) -> list[str]:
    out = []
    for w in _WORD.findall(text.lower()):
        if w in _STOP:
            continue
        out.append(w[:-1] if len(w) > 4 and w.endswith("s") else w)  # plural -> singular, cheaply
    return out


def overlap_similarity(a: Counter, b: Counter) -> float:
    """Weighted Jaccard of two token bags: how the retriever ranks worked examples, and how the
    golden-set check measures how close a test question comes to the example pool."""
    union = sum((a | b).values())
    return sum((a & b).values()) / union if union else 0.0


def question_similarity(a: str, b: str) -> float:
    return overlap_similarity(Counter(tokens(a)), Counter(tokens(b)))


class Example(BaseModel):
    id: str
    question: str
    sql: str


def load_examples(path: Path, splits: tuple[str, ...] = ("train",)) -> list[Example]:
    """The worked-example bank. Items tagged `readme` (the questions the README promises) are checked
    by the eval, never shown as examples: the README's answers must come from the agent, not a lookup."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if (
            item.get("split") in splits
            and item.get("gold_sql")
            and not item.get("turns")
            and "readme" not in item.get("tags", [])
        ):
            out.append(Example(id=item["id"], question=item["question"], sql=item["gold_sql"]))
    return out


def literal_filter_columns(sql: str) -> list[str]:
    """The columns `sql` compares with a text literal (`playerID = 'ruthba01'`, `teamID IN ('NYA')`):
    what kind of entity a worked example is about, as the value hints say it of a question."""
    try:
        tree = parse_one(sql, read="duckdb")
    except SqlglotError:
        return []
    out = []
    for node in tree.find_all(exp.EQ, exp.In):
        values = [node.expression] if isinstance(node, exp.EQ) else node.expressions
        if isinstance(node.this, exp.Column) and any(
            isinstance(v, exp.Literal) and v.is_string for v in values
        ):
            out.append(node.this.name.lower())
    return out


def _entity_tokens(columns: Sequence[str]) -> Counter:
    # Prefixed so that they only ever match each other, never a word of a question.
    return Counter(f"entity:{c.lower()}" for c in columns)


def _reads_only(sql: str, schema: DatabaseSchema) -> bool:
    """Whether every table `sql` reads is a table of `schema` (CTE names aside)."""
    try:
        tree = parse_one(sql, read="duckdb")
    except SqlglotError:
        return False
    return base_tables(tree).keys() <= {t.name.lower() for t in schema.tables}


class Retrieve(dspy.Module):
    def __init__(
        self,
        schema: DatabaseSchema,
        examples: list[Example],
        max_tables: int = 6,
        k: int = 3,
        max_linked: int = 2,
    ):
        super().__init__()
        self.max_linked = max_linked
        self.schema = schema
        # A worked example on another schema teaches names this database does not have: on a foreign
        # database (`sqlagent init`) the Lahman bank would show Batting and People to a soccer model.
        self.examples = [e for e in examples if _reads_only(e.sql, schema)]
        self.max_tables = max_tables
        self.k = k
        self._rows = {t.name: t.row_count for t in schema.tables}
        self._table_docs = {t.name: Counter(tokens(self._table_text(t))) for t in schema.tables}
        # An example is also about the kind of entity its SQL filters on: "the Amazin's record" (a team,
        # Teams.W) must not be the model's template for "Pedro Martinez's record" (a pitcher, Pitching.W).
        self._example_docs = [
            Counter(tokens(e.question)) + _entity_tokens(literal_filter_columns(e.sql)) for e in self.examples
        ]
        self._idf = self._inverse_document_frequency(list(self._table_docs.values()))
        self._hidden: set[str] = set()

    @contextmanager
    def excluding(self, ids: set[str]) -> Iterator[None]:
        """Leave these examples (and any with the same question text) out of the bank for a while: an
        item scored or optimized on must not find its own question and SQL among its examples."""
        texts = {" ".join(e.question.lower().split()) for e in self.examples if e.id in ids}
        hidden = {e.id for e in self.examples if e.id in ids or " ".join(e.question.lower().split()) in texts}
        before, self._hidden = self._hidden, self._hidden | hidden
        try:
            yield
        finally:
            self._hidden = before

    @staticmethod
    def _table_text(table) -> str:
        # Names weigh more than prose: repeat them.
        names = " ".join([table.name] * 3 + [c.name for c in table.columns] * 2)
        return f"{names} {table.comment} " + " ".join(
            f"{c.comment} {' '.join(c.samples)}" for c in table.columns
        )

    @staticmethod
    def _inverse_document_frequency(docs: list[Counter]) -> dict[str, float]:
        df = Counter(w for d in docs for w in d)
        return {w: math.log(1 + len(docs) / n) for w, n in df.items()}

    def table_scores(self, question: str) -> dict[str, float]:
        q = tokens(question)
        scores = {}
        for name, doc in self._table_docs.items():
            total = sum(doc.values()) or 1
            lexical = sum(self._idf.get(w, 0) * (1 + math.log(doc[w])) for w in set(q) if doc[w])
            # A mild prior for big tables: the main fact table (Batting) over its niche twin (BattingPost).
            size = math.log10(10 + self._rows.get(name, 0))
            scores[name] = lexical / math.log(2 + total) * (1 + 0.1 * size)
        return scores

    def link_tables(self, question: str, entity_tables: list[str], stable: Sequence[str] = ()) -> list[str]:
        """The tables this question points at. With a `stable` set (tables every prompt already
        shows), only tables outside it are returned, and only those the question points at at least
        as clearly as at any stable one: a stray word must not cost a table's worth of prompt."""
        scores = self.table_scores(question)
        ranked = [n for n, s in sorted(scores.items(), key=lambda kv: -kv[1]) if s > 0]
        if stable:
            held = set(stable)
            bar = max([scores.get(n, 0.0) for n in held] + [0.6 * scores[ranked[0]] if ranked else 0.0])
            chosen = [t for t in dict.fromkeys(entity_tables) if t not in held]
            for name in ranked:
                if len(chosen) >= self.max_linked:
                    break
                if name not in held and name not in chosen and scores[name] >= bar:
                    chosen.append(name)
            return chosen
        chosen: list[str] = list(dict.fromkeys(entity_tables))
        if not ranked and not chosen:
            # No word of the question points at a table: offer the best-connected ones rather than
            # the whole schema (thousands of prompt tokens on a wide database).
            chosen = self._central_tables()[:2]
        for name in ranked:
            if len(chosen) >= self.max_tables:
                break
            if name not in chosen and scores[name] >= 0.6 * scores[ranked[0]]:
                chosen.append(name)
        return self._with_name_tables(self._connect(chosen[: self.max_tables]))

    def _central_tables(self) -> list[str]:
        degree = Counter(name for j in self.schema.joins for name in (j.left, j.right))
        return [name for name, _ in sorted(degree.items(), key=lambda kv: (-kv[1], kv[0]))]

    def _with_name_tables(self, tables: list[str]) -> list[str]:
        """Add the lookup table that names a chosen table's key (Batting.playerID -> People names)."""
        result = list(tables)
        for j in self.schema.joins:
            if len(j.on) != 1 or len(result) >= self.max_tables + 1:
                continue
            for inside, other in ((j.left, j.right), (j.right, j.left)):
                other_table = self.schema.table(other)
                if (
                    inside in tables
                    and other not in result
                    and other_table is not None
                    and any(re.search(r"name", c.name, re.IGNORECASE) for c in other_table.columns)
                    and j.on[0][0].lower() == j.on[0][1].lower()
                ):
                    result.append(other)
        return result

    def relevant_columns(self, question: str, table_name: str, limit: int = 9) -> list[str]:
        """Names, join keys, then the columns the question's words point at; the rest stay out of the prompt."""
        table = self.schema.table(table_name)
        if table is None:
            return []
        if len(table.columns) <= limit:
            return [c.name for c in table.columns]
        join_keys = {a.lower() for j in self.schema.joins if table.name in (j.left, j.right) for a, b in j.on}
        join_keys |= {
            b.lower() for j in self.schema.joins if table.name in (j.left, j.right) for a, b in j.on
        }
        q = set(tokens(question))
        ranked = []
        for i, c in enumerate(table.columns):
            overlap = len(q & set(tokens(f"{c.name} {c.comment}")))
            if re.search(r"name", c.name, re.IGNORECASE):
                tier = 0
            elif c.name.lower() in join_keys and c.name.lower() not in {"lgid"}:
                tier = 1
            elif overlap:
                tier = 2
            else:
                tier = 3
            ranked.append((tier, -overlap, i, c.name))
        # Unmatched columns of a wide table only cost prompt tokens: leave them out.
        chosen = {name for tier, *_, name in sorted(ranked)[:limit] if tier < 3}
        return [c.name for c in table.columns if c.name in chosen]

    def _connect(self, tables: list[str]) -> list[str]:
        """Add the bridge tables needed so that every chosen table joins to the first one."""
        if len(tables) < 2:
            return tables
        graph: dict[str, set[str]] = {}
        for j in self.schema.joins:
            graph.setdefault(j.left, set()).add(j.right)
            graph.setdefault(j.right, set()).add(j.left)
        result = list(tables)
        for target in tables[1:]:
            if any(target in graph.get(t, set()) for t in result if t != target):
                continue
            path = self._shortest_path(graph, tables[0], target)
            for node in path[1:-1]:
                if node not in result:
                    result.append(node)
        return result

    @staticmethod
    def _shortest_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str]:
        frontier, seen = [[start]], {start}
        while frontier:
            path = frontier.pop(0)
            if path[-1] == goal:
                return path
            for nxt in sorted(graph.get(path[-1], ())):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(path + [nxt])
        return []

    def tables_by_use(self) -> list[str]:
        """Every table, the ones the worked examples' SQL reads most first, then by join degree: the
        order in which tables earn a place in the stable part of the prompt."""
        used: Counter = Counter()
        for e in self.examples:  # every one parses: _reads_only kept it
            tree = parse_one(e.sql, read="duckdb")
            used.update({t.name.lower() for t in tree.find_all(exp.Table)})
        degree = Counter(name.lower() for j in self.schema.joins for name in (j.left, j.right))
        names = [t.name for t in self.schema.tables]
        return sorted(names, key=lambda n: (-used[n.lower()], -degree[n.lower()], -self._rows.get(n, 0), n))

    def similar_examples(self, question: str, entity_columns: Sequence[str] = ()) -> list[Example]:
        """The k examples closest to the question's words and to the kinds of entity its value hints
        resolved (`entity_columns`, e.g. ["playerID"])."""
        q = Counter(tokens(question)) + _entity_tokens(entity_columns)
        scored = []
        for ex, doc in zip(self.examples, self._example_docs, strict=True):
            if ex.id in self._hidden:
                continue
            scored.append((overlap_similarity(q, doc), ex.id, ex))
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [ex for score, _, ex in scored[: self.k] if score > 0]

    def forward(
        self,
        question: str,
        entity_tables: list[str],
        stable: Sequence[str] = (),
        entity_columns: Sequence[str] = (),
    ) -> dspy.Prediction:
        return dspy.Prediction(
            tables=self.link_tables(question, entity_tables, stable),
            examples=self.similar_examples(question, entity_columns),
        )
