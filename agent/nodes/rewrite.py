"""Rewrite: standalone question, entity mentions, and their resolution to database values."""

from __future__ import annotations

import re

from agent.context import AgentContext
from agent.nodes.instrument import node
from agent.state import AgentState, PendingClarification
from tools.lookup_values import LookupValuesArgs
from tools.sql.database import vocabulary_key
from tools.sql.entities import (
    Ambiguity,
    EntityMapping,
    capitalised_spans,
    quoted_spans,
    resolve,
    years_in,
)


def candidate_mentions(question: str, lm_mentions: list[str]) -> list[str]:
    """The LM's mentions (none in the rules mode) plus quoted text and capitalised spans, longest
    first so that "New York Yankees" is resolved before "York"."""
    mentions = list(dict.fromkeys([*lm_mentions, *quoted_spans(question), *capitalised_spans(question)]))
    mentions.sort(key=len, reverse=True)
    return mentions


def _as_written(question: str, mention: str) -> str:
    start = question.lower().find(mention.lower())
    return question[start : start + len(mention)] if start >= 0 else mention


def resolve_mentions(
    question: str, mentions: list[str], ctx: AgentContext, lm_mentions: list[str] | None = None
) -> tuple[list[EntityMapping], Ambiguity | None]:
    """Look each mention up with the value tool and apply the resolution rules (tools/sql/entities.py)."""
    era = years_in(question)
    threshold = ctx.settings.retrieval.value_match_threshold
    mappings: list[EntityMapping] = []
    seen_spans: list[str] = []
    for mention in mentions:
        low = mention.lower()
        if low not in question.lower() or not re.search(r"[a-z]", low):
            continue  # not in the question (an LM invention), or a number/year (years select the era)
        if any(low in s.lower() for s in seen_spans):
            continue  # part of a longer mention already resolved ("Sox" in "Red Sox")
        found = ctx.tools.call(
            "lookup_values", ctx.db, LookupValuesArgs(mention=mention, min_score=threshold)
        )
        candidates = found.candidates
        single_unlisted = (
            lm_mentions is not None and mention not in lm_mentions and " " not in mention.strip()
        )
        if _as_written(question, mention).islower() or single_unlisted:
            # Lower-case words are ordinary words ("season"); one capitalised word the LM did not
            # list ("Rookies") is no evidence for a fuzzy neighbour ("Rockies").
            # A misspelt name is written with capitals and listed ("Micky Mantle"). Only exact and
            # whole-word hits count here.
            candidates = [c for c in candidates if c.method != "fuzzy"]
        if vocabulary_key(mention) in ctx.db.vocabulary:
            # A statistic or schema word ("home runs", "HR"): only an exact, case-sensitive name counts.
            candidates = [c for c in candidates if c.method == "exact"]
        outcome = resolve(mention, candidates, era, ctx.db.centrality, ctx.db.key_rows)
        if isinstance(outcome, Ambiguity):
            return mappings, outcome
        if outcome is not None:
            # Point at the table the model should filter (Teams.franchID, not TeamNicknames.franchID).
            outcome.table = ctx.db.hubs.get(outcome.column.lower(), outcome.table)
            if era is not None:
                # A franchise in a given year is one team-season: "Bronx Bombers" in 1998 is NYA.
                finer = ctx.db.finer_key(outcome.column, outcome.value, era)
                if finer is not None:
                    outcome.table, outcome.column, outcome.value = finer
                    outcome.method += "+era"
            mappings.append(outcome)
            seen_spans.append(mention)
    return mappings, None


def resolve_question(
    question: str, lm_mentions: list[str], ctx: AgentContext
) -> tuple[list[str], list[EntityMapping], Ambiguity | None]:
    """The rewrite step's resolution of a standalone question: (mentions tried, mappings, ambiguity).
    The node and the optimizer's rewrite metric both call this, so the metric scores what runs."""
    mentions = candidate_mentions(question, lm_mentions)
    mappings, ambiguity = resolve_mentions(question, mentions, ctx, lm_mentions=lm_mentions)
    return mentions, mappings, ambiguity


@node("rewrite")
def rewrite(state: AgentState, ctx: AgentContext) -> dict:
    previous = state.history[-1].standalone_question if state.history else None
    find_mentions = ctx.settings.rewrite.mentions == "lm"
    pred = ctx.module("rewrite")(
        question=state.question, previous_question=previous, find_mentions=find_mentions
    )
    standalone = pred.standalone_question
    mentions, mappings, ambiguity = resolve_question(standalone, list(pred.mentions), ctx)
    if ambiguity is not None:
        return {
            "standalone_question": standalone,
            "mentions": mentions,
            "mappings": mappings,
            "clarification": ambiguity.question(),
            "pending_clarification": PendingClarification(
                question=standalone, ambiguity=ambiguity, resolved=mappings
            ),
            "status": "clarify",
            "_detail": f"ambiguous: {ambiguity.mention}",
        }
    return {
        "standalone_question": standalone,
        "mentions": mentions,
        "mappings": mappings,
        "pending_clarification": None,
        "_detail": "; ".join(f"{m.mention} -> {m.hint()} ({m.method} {m.score:.2f})" for m in mappings)
        or "unchanged",
    }
