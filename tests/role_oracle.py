"""What a narrowed role may not see, read from the database itself: the oracle of the role isolation
tests (tests/unit/agent/test_role_isolation.py, test_role_traces.py).

Hidden names are what the role's policy refuses; hidden values are what those hidden tables and
columns hold, in the full database, for the players and team-seasons a question names. Neither is
restated from config/access.yaml, so a change of the roles changes the oracle with it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from agent.config import load_settings
from tests.fake_lm import ScriptedEngine
from tools.builtin import BUILTIN_TOOLS
from tools.registry import ToolRegistry
from tools.sql.database import Database, open_database
from tools.sql.introspect import quote_identifier as q


def denied(db: Database, table: str, column: str | None = None) -> bool:
    """What the role's policy refuses: a table (any column of it), or one column of a table."""
    target = f'"{column}"' if column else "count(*)"
    return db.policy.check(f'SELECT {target} FROM "{table}"').code == "access_denied"


def hidden_names(db: Database) -> set[str]:
    """Every table and column name the role's policy refuses, lower-cased; a name also readable
    elsewhere (a visible table or column spelt the same) is not secret and left out."""
    catalog = db.policy.catalog.tables
    hidden, seen = set(), set()
    for table, columns in catalog.items():
        if denied(db, table):
            hidden.add(table.lower())
            continue
        seen.add(table.lower())
        for column in columns:
            (hidden if denied(db, table, column) else seen).add(column.lower())
    return hidden - seen


def visible(db: Database, table: str, column: str) -> bool:
    """A value's column ("nameFirst+nameLast" names two) is readable by the role."""
    return not denied(db, table) and not any(denied(db, table, part) for part in column.split("+"))


def leaks(text: str, words: Iterable[str], covers: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """The words found in `text`, each as a whole word: "Carolina" is not found in "Carolinas", and
    "P.R." (no word character at its end) is still bounded. Case-insensitive, but for a code written
    in capitals ("CAN", "BBWAA", "1B"): "can" the verb is not Canada. `covers` names, per word, the
    visible values that hold it ("New York" in "New York Yankees"): those are blanked out first, so
    only the word on its own counts."""
    found = set()
    for w in words:
        seen = text
        for visible_value in sorted((covers or {}).get(w, ()), key=len, reverse=True):
            seen = re.sub(re.escape(visible_value), " ", seen, flags=re.IGNORECASE)
        flags = re.IGNORECASE if any(c.islower() for c in w) else 0
        found |= {m.group(0) for m in re.finditer(rf"(?<!\w){re.escape(w)}(?!\w)", seen, flags)}
    return sorted(found)


def hidden_values(full: Database, role: Database, questions: list[str]) -> dict[str, set[str]]:
    """What the role's hidden tables and columns hold for the players and team-seasons the questions
    name, read from the full database (`full`, opened with the default role), as stored: each with
    the visible values that hold it as a word, for `leaks(..., covers=)` (Roberto Clemente's hidden
    birth city "Carolina" is in the visible school name "University of North Carolina": that name
    is no leak, "Carolina" alone is).

    Left out, because seeing them proves nothing: a value some visible column of the role's view
    holds whole (Babe Ruth's birth year 1895 is a season, his death city New York a park's city, his
    bbrefID his playerID), a value the role's own schema text says (a hidden Fielding.POS "2B" is
    also the name of Batting's doubles column; "executive" is in People's description), and a value
    a question itself says (the user typed "Lynwood Thomas").
    """
    players, seasons = _entities(full, questions)
    found: set[str] = set()
    for table, columns in role.policy.catalog.tables.items():
        hidden = columns if denied(role, table) else [c for c in columns if denied(role, table, c)]
        where = _about(columns, players, seasons)
        if hidden and where:
            found |= _distinct(full, table, hidden, where)
    whole, inside = _held_by_view(role, {v.lower() for v in found})
    said = " ".join([*questions, _schema_text(role)])
    return {v: inside.get(v.lower(), set()) for v in found if v.lower() not in whole and not leaks(said, [v])}


@functools.cache
def role_secrets(role: str, questions: tuple[str, ...]) -> dict[str, set[str]]:
    """`hidden_values` for a role's view, computed once per test session (~12 s a role): the
    isolation tests and the trace tests ask it for the same roles and questions."""
    config = load_settings(tracking={"enabled": False}).database_config()
    return hidden_values(open_database(config), open_database(config, role), list(questions))


def _entities(full: Database, questions: list[str]) -> tuple[set[str], set[tuple[str, int]]]:
    """Players whose name or given name a question says ("Babe Ruth", "Lynwood Thomas"), and the
    team-seasons of a team a question names in a year it names (the Yankees in 1998)."""
    phrases = {" ".join(w) for q_ in questions for w in _ngrams(re.findall(r"[\w.'-]+", q_.lower()))}
    players = {
        pid
        for pid, first, last, given in full.engine.read_all(
            "SELECT playerID, nameFirst, nameLast, nameGiven FROM People"
        )
        if f"{first} {last}".lower() in phrases or (given or "").lower() in phrases
    }
    seasons = set()
    for question in questions:
        years = {int(y) for y in re.findall(r"\b(1[89]\d\d|20\d\d)\b", question)}
        named = set(re.findall(r"(?<=\s)[A-Z][a-z]+", question))  # capitalised, not the first word
        for team, year, name in full.engine.read_all("SELECT teamID, yearID, name FROM Teams"):
            if year in years and named & set(name.split()):
                seasons.add((team, year))
    return players, seasons


def _ngrams(words: list[str], most: int = 4) -> Iterable[tuple[str, ...]]:
    return (tuple(words[i : i + n]) for n in range(1, most + 1) for i in range(len(words) - n + 1))


def _literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'" if isinstance(value, str) else str(value)


def _about(columns: list[str], players: set[str], seasons: set[tuple[str, int]]) -> str:
    """The WHERE clause picking a table's rows about the entities, or "" if it has no key for them."""
    names = {c.lower(): c for c in columns}
    terms = []
    if "playerid" in names and players:
        terms.append(f"{q(names['playerid'])} IN ({', '.join(map(_literal, sorted(players)))})")
    if {"teamid", "yearid"} <= names.keys():
        team, year = q(names["teamid"]), q(names["yearid"])
        terms += [f"({team} = {_literal(t)} AND {year} = {y})" for t, y in sorted(seasons)]
    return " OR ".join(terms)


def _distinct(db: Database, table: str, columns: list[str], where: str) -> set[str]:
    union = " UNION ALL ".join(
        f"SELECT CAST({q(c)} AS VARCHAR) AS v FROM {q(table)} WHERE {where}" for c in columns
    )
    return {v for (v,) in db.engine.read_all(f"SELECT DISTINCT v FROM ({union}) WHERE v IS NOT NULL")}


def _schema_text(role: Database) -> str:
    """Every name, description and sample value of the role's view: what its prompts may say."""
    parts = []
    for table in role.schema.tables:
        parts += [table.name, table.comment]
        for column in table.columns:
            parts += [column.name, column.comment, *column.samples]
    return "\n".join(parts)


def _held_by_view(role: Database, values: set[str]) -> tuple[set[str], dict[str, set[str]]]:
    """Of `values` (lower-cased): those some column of the role's view holds as a whole value, and
    per value the longer visible values that hold it as a whole word ("new york yankees")."""
    whole: set[str] = set()
    inside: dict[str, set[str]] = {}
    if not values:
        return whole, inside
    wanted = " UNION ALL ".join(f"SELECT {_literal(v)} AS s" for v in sorted(values))
    for table in role.schema.tables:
        union = " UNION ALL ".join(
            f"SELECT lower(CAST({q(c.name)} AS VARCHAR)) AS v FROM {q(table.name)}" for c in table.columns
        )
        # contains() finds the candidates in SQL; leaks() keeps those holding it as a whole word
        pairs = role.engine.read_all(
            f"SELECT DISTINCT s, v FROM ({wanted}) AS w JOIN (SELECT DISTINCT v FROM ({union})) AS t "
            "ON contains(t.v, w.s)"
        )
        for s, v in pairs:
            if s == v:
                whole.add(s)
            elif leaks(v, [s]):
                inside.setdefault(s, set()).add(v)
    return whole, inside


class Recording(ScriptedEngine):
    """The scripted LM, keeping the whole text of every request (instructions, demos, inputs)."""

    def __init__(self, handlers):
        super().__init__(handlers)
        self.prompts: list[str] = []

    def complete(self, request):
        system = (
            request.system
            if isinstance(request.system, str)
            else "".join(p.text for p in request.system or ())
        )
        self.prompts.append("\n".join([system, *(m.text or "" for m in request.messages)]))
        return super().complete(request)


class RecordingTools(ToolRegistry):
    """The agent's tools, keeping every result (what a look-up returned to the agent)."""

    def __init__(self) -> None:
        super().__init__(BUILTIN_TOOLS)
        self.results: list[tuple[str, Any]] = []

    def call(self, name, db, args):
        result = super().call(name, db, args)
        self.results.append((name, result))
        return result
