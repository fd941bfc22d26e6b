"""Entity resolution: from a mention and its value candidates to one mapping, a clarification, or nothing.

Plain functions, no LM: the rewrite node calls them after the LM has listed the mentions, so every
decision here is deterministic, testable on real data and recorded in the trace.

The rules, in order:
1. Candidates below the match threshold were already dropped by the index; a fuzzy neighbour is
   dropped when an exact or whole-word match exists.
2. Years in the question select the era: a team name used 1911-1957 cannot mean a 1961 team.
3. Candidates are grouped by the identifier they resolve to (teamID, franchID, playerID...). A group
   is unambiguous when one identifier value clearly leads it.
4. Among groups that score within GROUP_TOLERANCE of the best, prefer an unambiguous one, then the
   identifier that joins the most tables (teamID over franchID: simpler SQL for the model).
5. An attribute (a city, a country, a park) maps to itself, and only when nothing else matches.
   A mention that is only part of several longer names ("Los Angeles") is left unmapped.
6. If the chosen group still has several identifier values and one of them dominates (DOMINANCE times
   the seasons of every other: the AL Browns' 52 over the 1880s Browns' 9, Rickey Henderson's 25 over
   the 2 of a fuzzy "Rick Anderson"), it is the one a fan means without a year. Otherwise ask the
   user (clarify) instead of guessing: the Senators of 1901-60, 1961-71 and the 1890s stay a question.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import BaseModel, Field

from tools.sql.values import ValueCandidate

TIE_TOLERANCE = 0.02
GROUP_TOLERANCE = 0.08
MAX_CLARIFY_OPTIONS = 6
DOMINANCE = 4.0
_YEAR = re.compile(r"\b(18[7-9]\d|19\d\d|20[0-4]\d)\b")


class EntityMapping(BaseModel):
    """mention -> table.column = value, with the evidence for it."""

    mention: str
    table: str
    column: str
    value: str
    matched: str = Field(description="The database text the mention matched, e.g. 'New York Yankees'.")
    matched_column: str
    score: float
    method: str
    years: str = ""

    def hint(self) -> str:
        return f"{self.table}.{self.column} = '{self.value}'"


class Ambiguity(BaseModel):
    mention: str
    candidates: list[ValueCandidate]

    def question(self) -> str:
        options = "; ".join(f"{i}) {c.label()}" for i, c in enumerate(self.candidates, 1))
        return f'"{self.mention}" matches several entries: {options}. Which one do you mean?'


def years_in(question: str) -> tuple[int, int] | None:
    years = [int(y) for y in _YEAR.findall(question)]
    return (min(years), max(years)) if years else None


def _in_era(candidate: ValueCandidate, era: tuple[int, int] | None) -> bool:
    if era is None or candidate.year_min is None:
        return True
    end = candidate.year_max if candidate.year_max is not None else 9999
    return candidate.year_min <= era[1] and end >= era[0]


def _generation(mention: str) -> str | None:
    match = re.search(r"\b(jr|junior|sr|senior)\b\.?", mention.lower())
    if match is None:
        return None
    return "jr" if match.group(1) in {"jr", "junior"} else "sr"


def _dominant(
    chosen: dict[str, ValueCandidate], key_rows: Callable[[str, str], int] | None
) -> ValueCandidate | None:
    spans = {key: candidate_seasons(c, key_rows) for key, c in chosen.items()}
    if any(span is None for span in spans.values()):
        return None  # an active career (no last year) cannot be compared
    ranked = sorted(chosen, key=lambda key: spans[key], reverse=True)
    first, second = spans[ranked[0]], spans[ranked[1]]
    return chosen[ranked[0]] if first >= DOMINANCE * max(second, 1) else None


def candidate_seasons(
    candidate: ValueCandidate, key_rows: Callable[[str, str], int] | None = None
) -> int | None:
    """How many seasons a candidate spans: its years when the index has them (None while it is still
    open), else the most rows a table has for its key (a franchise's team-seasons in Teams), when the
    caller can count them."""
    if candidate.year_min is not None:
        return None if candidate.year_max is None else candidate.year_max - candidate.year_min + 1
    return key_rows(candidate.key_column, candidate.key_value) if key_rows else None


def resolve(
    mention: str,
    candidates: list[ValueCandidate],
    era: tuple[int, int] | None,
    centrality: dict[str, int],
    key_rows: Callable[[str, str], int] | None = None,
) -> EntityMapping | Ambiguity | None:
    """Pick the mapping for one mention (see the module docstring for the rules)."""
    in_era = [c for c in candidates if _in_era(c, era)]
    if not in_era:
        return None
    groups: dict[str, list[ValueCandidate]] = {}
    for c in in_era:
        groups.setdefault(c.key_column.lower(), []).append(c)

    def leaders(group: list[ValueCandidate]) -> dict[str, ValueCandidate]:
        best = max(c.score for c in group)
        out: dict[str, ValueCandidate] = {}
        for c in sorted(group, key=lambda c: -c.score):
            if c.score >= best - TIE_TOLERANCE:
                out.setdefault(c.key_value, c)
        return out

    top = max(c.score for c in in_era)
    contenders = [g for g in groups.values() if max(c.score for c in g) >= top - GROUP_TOLERANCE]

    def rank(group: list[ValueCandidate]) -> tuple:
        best = max(c.score for c in group)
        weight = centrality.get(group[0].key_column.lower(), 0)
        if len(leaders(group)) == 1:
            return (1, weight, best)
        # Among ambiguous groups an exact match ("Senators" the nickname) beats part of a name.
        return (0, any(c.method != "word" for c in leaders(group).values()), weight, best)

    contenders.sort(key=rank, reverse=True)
    chosen = leaders(contenders[0])
    attribute = all(c.key_column == c.column for c in chosen.values())
    if attribute and len(contenders) > 1:
        return None  # "Boston": a city, a birthplace, part of team names... not one entity
    if len(chosen) > 1 and all(c.method == "word" for c in chosen.values()):
        return None  # "Los Angeles" is part of several names: leave it to the SQL, do not ask
    if len(chosen) > 1:
        generation = _generation(mention)
        if generation is not None:
            # Same name, two generations: "Jr." is the one who started later, "Sr." the earlier one.
            ordered = sorted(chosen.values(), key=lambda c: c.year_min if c.year_min is not None else -1)
            chosen = {"pick": ordered[-1] if generation == "jr" else ordered[0]}
    if len(chosen) > 1 and (dominant := _dominant(chosen, key_rows)) is not None:
        chosen = {"pick": dominant}
    if len(chosen) > 1:
        return Ambiguity(mention=mention, candidates=list(chosen.values())[:MAX_CLARIFY_OPTIONS])
    best = next(iter(chosen.values()))
    years = ""
    if best.year_min is not None:
        years = f"{best.year_min}-{best.year_max if best.year_max is not None else ''}"
    return EntityMapping(
        mention=mention,
        table=best.table,
        column=best.key_column,
        value=best.key_value,
        matched=best.value,
        matched_column=best.column,
        score=best.score,
        method=best.method,
        years=years,
    )


def choose_candidate(reply: str, ambiguity: Ambiguity) -> ValueCandidate | None:
    """Read the user's answer to a clarifying question: '2', 'griffke02', 'the one from 1989'..."""
    text = reply.strip().lower()
    options = ambiguity.candidates
    number = re.fullmatch(r"\D*?(\d)\D*", text)
    if number and 1 <= int(number.group(1)) <= len(options):
        return options[int(number.group(1)) - 1]
    for c in options:
        if c.key_value.lower() in text:
            return c
    era = years_in(reply)
    if era:
        fitting = [c for c in options if _in_era(c, era)]
        if len(fitting) == 1:
            return fitting[0]
    ordinals = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": len(options) - 1}
    for word, index in ordinals.items():
        if re.search(rf"\b{word}\b", text) and index < len(options):
            return options[index]
    return None


def annotate(question: str, mappings: list[EntityMapping]) -> str:
    """The rewritten question: each mapped mention followed by its database value, nothing else changed."""
    rewritten = question
    for m in mappings:
        pattern = re.compile(re.escape(m.mention), re.IGNORECASE)
        match = pattern.search(rewritten)
        note = f" ({m.hint()})"
        if match:
            rewritten = rewritten[: match.end()] + note + rewritten[match.end() :]
        else:
            rewritten = rewritten.rstrip() + f" [{m.mention}{note}]"
    return rewritten


_STOP = {
    "who", "what", "which", "how", "when", "where", "why", "list", "show", "give", "find", "name", "did",
    "does", "do", "is", "are", "was", "were", "the", "in", "for", "of", "and", "top", "most", "best", "tell",
    "me", "please", "can", "could", "i", "a", "an", "on", "at", "by", "with", "all", "any", "each", "every",
    "between", "since", "from", "to", "during", "total", "average", "number", "count", "career", "season",
    "year", "league", "team", "teams", "player", "players", "hall", "fame", "world", "series", "american",
    "national", "major", "baseball", "mlb", "and in", "also",
}  # fmt: skip


_QUOTED = re.compile(r"[\"“”]([^\"“”]{3,60})[\"“”]|(?<![A-Za-z])'([^']{3,60})'(?![A-Za-z])")


def quoted_spans(question: str) -> list[str]:
    """Text the user put in quotes ("the 'Big Red Machine'"): a name by the user's own account."""
    # findall gives one (double-quoted, single-quoted) pair per match, the other group empty.
    return [text.strip() for pair in _QUOTED.findall(question) for text in pair if text.strip()]


def capitalised_spans(question: str) -> list[str]:
    """Runs of capitalised words ('Babe Ruth', 'Red Sox', 'St. Louis Browns'), as written in the question.

    The mention finder of the rules mode (and the LM's safety net). A possessive ends a run
    ("Barry Bonds's OPS" -> "Barry Bonds"), so a statistic written after a name is not glued to it.
    """
    spans: list[str] = []
    start = end = None

    def close() -> None:
        if start is not None:
            spans.append(question[start:end].rstrip(".'’"))

    for match in re.finditer(r"[A-Za-z][A-Za-z.'’-]*|\S", question):
        token = match.group(0)
        possessive = re.search(r"['’]s?$", token) is not None and len(token) > 2
        word = re.sub(r"['’]s?$", "", token).strip(".'’")
        if word[:1].isupper() and word.lower() not in _STOP:
            if start is None:
                start = match.start()
            end = match.start() + len(re.sub(r"['’]s?$", "", token)) if possessive else match.end()
            if possessive:
                close()
                start = None
        else:
            close()
            start = None
    close()
    return [s for s in spans if len(s) >= 3]
