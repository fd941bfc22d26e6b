"""The chart a result's shape asks for (agent/charts.py), table-driven."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from agent.charts import MAX_BARS, MAX_POINTS, chart_spec

RUTH_YEARS = [[1926, 47], [1927, 60], [1928, 54]]

# (id, columns, rows, mark or None, {encoding channel: title})
CASES = [
    ("year-and-measure-line", ["yearID", "HR"], RUTH_YEARS, "line", {"x": "yearID", "y": "HR"}),
    (
        "season-column-line",
        ["season", "wins"],
        [[1998, 114], [1999, 98]],
        "line",
        {"x": "season", "y": "wins"},
    ),
    (
        "dates-line",
        ["day", "runs"],
        [["2024-04-01", 5], ["2024-04-02", 3]],
        "line",
        {"x": "day", "y": "runs"},
    ),
    (
        "date-objects-line",
        ["day", "runs"],
        [[dt.date(2024, 4, 1), 5], [dt.date(2024, 4, 2), 3]],
        "line",
        {"x": "day", "y": "runs"},
    ),
    (
        "time-and-category-lines",
        ["yearID", "teamID", "W"],
        [[1998, "NYA", 114], [1998, "BOS", 92], [1999, "NYA", 98], [1999, "BOS", 94]],
        "line",
        {"x": "yearID", "y": "W", "color": "teamID"},
    ),
    (
        "two-measures-over-time",
        ["yearID", "HR", "RBI"],
        [[1927, 60, 165], [1928, 54, 146]],
        "line",
        {"x": "yearID", "color": None},
    ),
    (
        "category-bars",
        ["teamID", "W"],
        [["NYA", 114], ["BOS", 92], ["TOR", 88]],
        "bar",
        {"y": "teamID", "x": "W"},
    ),
    (
        "names-joined-bars",
        ["nameFirst", "nameLast", "HR"],
        [["Babe", "Ruth", 60], ["Lou", "Gehrig", 47]],
        "bar",
        {"y": "nameFirst nameLast", "x": "HR"},
    ),
    (
        "two-measures-scatter",
        ["HR", "RBI"],
        [[60, 165], [47, 175], [30, 120]],
        "point",
        {"x": "HR", "y": "RBI"},
    ),
    (
        "labelled-scatter",
        ["playerID", "HR", "SO"],
        [["ruthba01", 60, 89], ["gehrilo01", 47, 84]],
        "point",
        {"x": "HR", "y": "SO"},
    ),
    (
        "year-like-number-not-named-as-one",
        ["HR", "yearsPlayed"],
        [[1900, 2], [1950, 3]],
        "point",
        {"x": "HR", "y": "yearsPlayed"},
    ),
    # No chart: nothing to compare, or too much to draw.
    ("one-row", ["yearID", "HR"], [[1927, 60]], None, {}),
    ("one-column", ["HR"], [[60], [54]], None, {}),
    ("only-text", ["nameFirst", "nameLast"], [["Babe", "Ruth"], ["Lou", "Gehrig"]], None, {}),
    ("three-measures", ["HR", "RBI", "SO"], [[60, 165, 89], [47, 175, 84]], None, {}),
    (
        "category-and-three-measures",
        ["teamID", "W", "L", "R"],
        [["NYA", 114, 48, 965], ["BOS", 92, 70, 876]],
        None,
        {},
    ),
    ("too-many-bars", ["playerID", "HR"], [[f"p{i}", i] for i in range(MAX_BARS + 1)], None, {}),
    ("too-many-points", ["HR", "RBI"], [[i, i] for i in range(MAX_POINTS + 1)], None, {}),
    (
        "too-many-series",
        ["yearID", "teamID", "W"],
        [[1998, f"T{i}", i] for i in range(13)] + [[1999, "T0", 1]],
        None,
        {},
    ),
    ("bools-are-not-numbers", ["flag", "n"], [[True, False], [False, True]], None, {}),
]


@pytest.mark.parametrize(
    ("columns", "rows", "mark", "titles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_chart_from_shape(columns, rows, mark, titles):
    spec = chart_spec(columns, rows)
    if mark is None:
        assert spec is None
        return
    assert spec is not None and spec["mark"]["type"] == mark
    for channel, title in titles.items():
        assert spec["encoding"][channel]["title"] == title, channel
    json.dumps(spec)  # plain JSON, as the page receives it (dates as given by the sandbox: ISO strings)


def test_fields_are_renamed_so_odd_column_names_cannot_break_the_spec():
    spec = chart_spec(["t.name", "t.name"], [["a", 1], ["b", 2]])
    assert spec["encoding"]["y"]["field"] == "c0" and spec["encoding"]["x"]["field"] == "c1"
    assert spec["data"]["values"] == [{"c0": "a", "c1": 1}, {"c0": "b", "c1": 2}]


def test_bars_keep_the_query_order_and_years_have_no_thousands_separator():
    bars = chart_spec(["teamID", "W"], [["TOR", 88], ["NYA", 114]])
    assert bars["encoding"]["y"]["sort"] is None
    line = chart_spec(["yearID", "HR"], RUTH_YEARS)
    assert line["encoding"]["x"]["axis"]["format"] == "d" and line["encoding"]["x"]["scale"]["zero"] is False


def test_a_year_axis_labels_each_year_once():
    """Drawn by vl-convert (the `charts` extra): three seasons had five labels, 1926.5 written as 1927."""
    vl_convert = pytest.importorskip("vl_convert")
    svg = vl_convert.vegalite_to_svg(dict(chart_spec(["yearID", "HR"], RUTH_YEARS), width=600))
    x_labels = re.search(r"role-axis-label.*?</g>", svg).group(0)  # the first axis drawn is x
    assert re.findall(r">([^<]*)</text>", x_labels) == ["1926", "1927", "1928"]


def test_several_measures_over_time_are_one_line_each():
    spec = chart_spec(["yearID", "HR", "RBI"], [[1927, 60, 165], [1928, 54, 146]])
    assert spec["data"]["values"] == [
        {"c0": 1927, "measure": "HR", "value": 60}, {"c0": 1927, "measure": "RBI", "value": 165},
        {"c0": 1928, "measure": "HR", "value": 54}, {"c0": 1928, "measure": "RBI", "value": 146},
    ]  # fmt: skip
    assert spec["encoding"]["color"]["field"] == "measure"


def test_nulls_do_not_change_a_columns_kind():
    spec = chart_spec(["yearID", "HR"], [[1927, 60], [1928, None], [1929, 46]])
    assert spec["mark"]["type"] == "line"
