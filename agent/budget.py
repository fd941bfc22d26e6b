"""The cost guard: a question stops before an LM step that would take it past its token budget.

The budget counts every LM token of the turn as providers bill them (prompt + completion, the
`tokens` of each NodeRun). What the next step will cost is not known before it runs, so it is
estimated as the dearest LM step of the turn so far: a repair re-reads the SQL prompt, an answer
reads less. The first LM step of a turn always runs (nothing is known yet); a step that spends more
than estimated can end a turn over budget, and the next step then does not run.

The message says where the tokens went, node by node; the node's span and the root span say the same.
"""

from __future__ import annotations

from collections.abc import Mapping

BUDGET_KIND = "budget"


def spent(tokens_by_node: Mapping[str, int]) -> int:
    return sum(tokens_by_node.values())


def breakdown(tokens_by_node: Mapping[str, int]) -> str:
    """'generate 4,512, repair 4,730': the nodes that spent tokens, in the order they ran."""
    return ", ".join(f"{name} {tokens:,}" for name, tokens in tokens_by_node.items() if tokens) or "none"


def stop_message(
    step: str,
    tokens_by_node: Mapping[str, int],
    budget: int | None,
    dearest: int,
    source: str = "budget.tokens_per_question",
) -> str | None:
    """Why `step` must not run, or None when it may. `dearest`: the largest single LM step so far."""
    if not budget:
        return None
    used = spent(tokens_by_node)
    if used == 0 and dearest == 0:
        return None
    if used + dearest <= budget:
        return None
    return (
        f"Stopped before the {step} step: this question has used {used:,} LM tokens "
        f"({breakdown(tokens_by_node)}) and the next step would take about {dearest:,} more, over its budget "
        f"of {budget:,} tokens ({source}). Ask a narrower question, or raise the budget."
    )
