"""The base tables a query reads: one rule for the retriever, the scorer and the error analysis."""

from __future__ import annotations

from sqlglot import exp


def base_tables(tree: exp.Expression) -> dict[str, str]:
    """Lower-cased name -> as written, of every table the statement reads (CTE names excluded)."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower(): t.name for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}
