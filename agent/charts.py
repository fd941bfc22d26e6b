"""Which chart a result's shape asks for, as a Vega-Lite spec: the web page draws it with vega-embed,
the eval report as PNG (evals/report_charts.py). Here, below both, so that neither draws its own.

    a time (a date, or a year-like integer column) and 1-4 measures -> a line per measure
    a time, one measure and one small category column (<= 12 values) -> a line per category
    categories (text columns, joined into one label) and one measure  -> horizontal bars, in row order
    two measures (and any labels)                                     -> a scatter
    anything else (one row, one column, many measures, too many rows)   -> no chart (None)

A pure function of the columns and rows: no I/O, no state, the same spec for the same result. The
fields are renamed c0, c1, ... so that a column called `a.b` or two columns of the same name cannot
break Vega-Lite's field access; the titles keep the real names. The rows keep their SQL order for
bars (the query's ORDER BY means something), and times are sorted.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # names the grammar's version; never fetched
MAX_POINTS = 500  # more rows than this is a table to download, not a chart
MAX_BARS = 50
MAX_SERIES = 12  # distinct values of a category that still make readable lines
MAX_LINES = 4  # measures on one time axis
_YEARLIKE_NAME = re.compile(r"year|season|decade", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
LABEL = "label"


def _present(values: list[Any]) -> list[Any]:
    return [v for v in values if v is not None]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numeric(values: list[Any]) -> bool:
    present = _present(values)
    return bool(present) and all(_is_number(v) for v in present)


def _date(values: list[Any]) -> bool:
    present = _present(values)
    return bool(present) and all(
        isinstance(v, dt.date) or (isinstance(v, str) and _ISO_DATE.match(v)) for v in present
    )


def _yearlike(name: str, values: list[Any]) -> bool:
    present = _present(values)
    return (
        bool(_YEARLIKE_NAME.search(name))
        and bool(present)
        and all(isinstance(v, int) and not isinstance(v, bool) and 1800 <= v <= 2200 for v in present)
    )


def _time_encoding(field: str, title: str, is_date: bool) -> dict[str, Any]:
    if is_date:
        return {"field": field, "type": "temporal", "title": title}
    # A year is a number on a continuous axis, written without a thousands separator and labelled at
    # whole years only: over three seasons Vega ticks every half year, and "d" wrote 1926.5 as a
    # second "1927" (tickMinStep alone does not stop it in every Vega version).
    return {"field": field, "type": "quantitative", "title": title, "scale": {"zero": False},
            "axis": {"format": "d", "tickMinStep": 1, "labelExpr": "datum.value % 1 ? '' : datum.label"}}  # fmt: skip


def _spec(values: list[dict[str, Any]], description: str, mark: dict[str, Any], encoding: dict[str, Any],
          **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {"$schema": SCHEMA, "description": description, "width": "container", "height": 260,
            "data": {"values": values}, "mark": mark, "encoding": encoding, **extra}  # fmt: skip


def chart_spec(columns: list[str], rows: list[list[Any]]) -> dict[str, Any] | None:
    """The Vega-Lite spec for a result, or None when no simple chart says more than the table."""
    if len(columns) < 2 or not 2 <= len(rows) <= MAX_POINTS or any(len(r) != len(columns) for r in rows):
        return None
    by_column = [[row[i] for row in rows] for i in range(len(columns))]
    fields = [f"c{i}" for i in range(len(columns))]
    dates = [i for i, values in enumerate(by_column) if _date(values)]
    years = [
        i for i, (name, values) in enumerate(zip(columns, by_column, strict=True)) if _yearlike(name, values)
    ]
    time = (dates or years or [None])[0]
    measures = [i for i, values in enumerate(by_column) if i != time and _numeric(values)]
    labels = [i for i in range(len(columns)) if i != time and i not in measures]
    rows = [
        [v.isoformat() if isinstance(v, dt.date) else v for v in row] for row in rows
    ]  # JSON, as Vega reads it
    values = [{fields[i]: v for i, v in enumerate(row)} for row in rows]
    if len(labels) > 1:  # nameFirst, nameLast -> "Babe Ruth": one label names a row
        for value, row in zip(values, rows, strict=True):
            value[LABEL] = " ".join(str(row[i]) for i in labels if row[i] is not None)
    label_field = LABEL if len(labels) > 1 else (fields[labels[0]] if labels else None)
    label_title = " ".join(columns[i] for i in labels)
    tooltip = [{"field": fields[i], "title": columns[i]} for i in range(len(columns))]

    if time is not None and measures:
        x = _time_encoding(fields[time], columns[time], time in dates)
        mark = {"type": "line", "point": True, "tooltip": True}
        series = {str(row[labels[0]]) for row in rows} if len(labels) == 1 else set()
        if len(measures) == 1 and len(labels) == 1 and len(series) <= MAX_SERIES:
            y = {"field": fields[measures[0]], "type": "quantitative", "title": columns[measures[0]]}
            color = {"field": label_field, "type": "nominal", "title": label_title}
            return _spec(values, f"{columns[measures[0]]} by {columns[time]} and {label_title}", mark,
                         {"x": x, "y": y, "color": color, "tooltip": tooltip})  # fmt: skip
        if labels or len(measures) > MAX_LINES:
            return None
        if len(measures) == 1:
            y = {"field": fields[measures[0]], "type": "quantitative", "title": columns[measures[0]]}
            return _spec(values, f"{columns[measures[0]]} by {columns[time]}", mark,
                         {"x": x, "y": y, "tooltip": tooltip})  # fmt: skip
        # Several measures on one time axis: one row per (time, measure), coloured by the measure's name.
        long = [
            {fields[time]: row[time], "measure": columns[i], "value": row[i]}
            for row in rows
            for i in measures
        ]
        return _spec(
            long, f"{', '.join(columns[i] for i in measures)} by {columns[time]}", mark,
            {"x": x, "y": {"field": "value", "type": "quantitative", "title": None},
             "color": {"field": "measure", "type": "nominal", "title": None, "sort": None},
             "tooltip": [{"field": fields[time], "title": columns[time]}, {"field": "measure"}, {"field": "value"}]},
        )  # fmt: skip
    if time is None and len(measures) == 1 and labels and len(rows) <= MAX_BARS:
        m = measures[0]
        return _spec(
            values, f"{columns[m]} by {label_title}", {"type": "bar", "tooltip": True},
            {"y": {"field": label_field, "type": "nominal", "title": label_title, "sort": None},
             "x": {"field": fields[m], "type": "quantitative", "title": columns[m]}, "tooltip": tooltip},
            height={"step": 18},
        )  # fmt: skip
    if time is None and len(measures) == 2:
        a, b = measures
        return _spec(
            values, f"{columns[b]} against {columns[a]}", {"type": "point", "filled": True, "tooltip": True},
            {"x": {"field": fields[a], "type": "quantitative", "title": columns[a], "scale": {"zero": False}},
             "y": {"field": fields[b], "type": "quantitative", "title": columns[b], "scale": {"zero": False}},
             "tooltip": tooltip},
        )  # fmt: skip
    return None
