"""Tool: find database values that a mention of a name may refer to (players, teams, parks...)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.registry import tool
from tools.sql.database import Database
from tools.sql.values import ValueCandidate


class LookupValuesArgs(BaseModel):
    mention: str = Field(min_length=1, max_length=200, description="The words as the user wrote them.")
    limit: int = Field(8, ge=1, le=50)
    min_score: float = Field(0.88, ge=0.0, le=1.0, description="Similarity threshold for fuzzy matches.")


class LookupValuesResult(BaseModel):
    mention: str
    candidates: list[ValueCandidate]


@tool(name="lookup_values")
def lookup_values(db: Database, args: LookupValuesArgs) -> LookupValuesResult:
    """Match a name or nickname against stored text values: exact, case-insensitive, whole word, fuzzy."""
    return LookupValuesResult(
        mention=args.mention,
        candidates=db.values.search(args.mention, limit=args.limit, min_score=args.min_score),
    )
