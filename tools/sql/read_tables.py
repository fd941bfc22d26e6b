"""The base tables a query reads: one rule for the retriever, the scorer and the error analysis; and
the columns its filters read (the explain metric)."""

from __future__ import annotations

from sqlglot import exp


def base_tables(tree: exp.Expression) -> dict[str, str]:
    """Lower-cased name -> as written, of every table the statement reads (CTE names excluded)."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower(): t.name for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


def filter_columns(tree: exp.Expression) -> dict[str, str]:
    """Lower-cased name -> as written, of every column a WHERE, HAVING or QUALIFY clause reads (at any
    depth; an output alias such as `hr` in `HAVING hr > 50` is not a column and left out)."""
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}
    out: dict[str, str] = {}
    for clause in tree.find_all(exp.Where, exp.Having, exp.Qualify):
        for column in clause.find_all(exp.Column):
            if column.name and column.name.lower() not in aliases:
                out.setdefault(column.name.lower(), column.name)
    return out
