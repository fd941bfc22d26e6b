"""Rewrite: make a follow-up standalone, then list the entity mentions to resolve against the database.

The LM only *finds* mentions; resolving them to database values is done by the value-lookup tool and
plain rules (tools/sql/entities.py), so every mapping is explainable and a question without entities
passes through unchanged.
"""

from __future__ import annotations

import dspy


class ContextualizeQuestion(dspy.Signature):
    """Rewrite the follow-up into one standalone question, using the previous question for whatever the
    follow-up leaves out (the person, team, statistic or year). The standalone question asks only what
    the follow-up asks: it replaces the previous question, it does not add to it ("Who won the AL MVP
    in 2001?" then "And the NL one?" gives "Who won the NL MVP in 2001?"). Keep the user's own words.
    If the follow-up is already a complete question on its own, return it exactly as it is."""

    previous_question: str = dspy.InputField()
    follow_up: str = dspy.InputField()
    standalone_question: str = dspy.OutputField()


class ExtractMentions(dspy.Signature):
    """List the proper names in the question that must be looked up in the database: people, teams,
    team nicknames, franchises, leagues, awards, ballparks, schools, cities. Copy each one exactly as
    written, including misspellings. Do not list statistics, generic words, numbers or years. Return
    an empty list when the question names nothing specific."""

    question: str = dspy.InputField()
    mentions: list[str] = dspy.OutputField()


class Rewrite(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.contextualize = dspy.Predict(ContextualizeQuestion)
        self.extract = dspy.Predict(ExtractMentions)

    def forward(
        self, question: str, previous_question: str | None = None, find_mentions: bool = True
    ) -> dspy.Prediction:
        """`find_mentions=False` (config rewrite.mentions: rules) skips the extract call: the caller
        finds the names itself, and a one-turn question then costs no LM call at all."""
        standalone = question
        if previous_question:
            standalone = (
                self.contextualize(
                    previous_question=previous_question, follow_up=question
                ).standalone_question.strip()
                or question
            )
        if not find_mentions:
            return dspy.Prediction(standalone_question=standalone, mentions=[])
        mentions = self.extract(question=standalone).mentions or []
        unique = list(dict.fromkeys(m.strip() for m in mentions if isinstance(m, str) and m.strip()))
        return dspy.Prediction(standalone_question=standalone, mentions=unique)
