"""The report's PNG charts: the eval's own numbers (matplotlib) and the items' results (Vega-Lite).

The eval's numbers (accuracy by tag, latency, time per node) are drawn with matplotlib, always
installed. A result is drawn from the very Vega-Lite spec the web page draws (agent/charts.py picks
it from the result's shape), rendered offline by vl-convert: Vega and Vega-Lite are compiled into its
wheel, and `allowed_base_urls=[]` refuses any data URL, so nothing is fetched. vl-convert is the
optional `charts` extra (a 32 MB wheel); without it the report says so in one line.

Which results: only items that expect an answer and whose rows have a chart shape (a one-cell answer,
an error, a refusal have none). What the agent got is drawn, and for a failed item also what was
expected, so the two can be compared; failed items come first, then the rest in dataset order, up
to `eval.report_charts.max_charts` PNG files. A chart that cannot be drawn is a line in the report,
never an exception that stops the eval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.charts import chart_spec
from agent.config_sections import ReportChartSettings
from evals import failures

CHART_DIR = "charts"  # beside report.md; emptied of its PNGs at each run, so no stale chart stays
MISSING = (
    "Charts of results were not drawn: vl-convert-python is not installed "
    "(the `charts` extra: `uv sync --extra charts`, which `make setup` does)."
)


def write_charts(out_dir: Path, summary: dict, records: list[dict]) -> dict[str, str]:
    """Three PNGs: accuracy by tag, latency distribution, mean time per node (Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts: dict[str, str] = {}
    tags = [(t, g) for t, g in summary["by_tag"].items() if g["accuracy"] is not None]
    if tags:
        tags.sort(key=lambda tg: tg[1]["accuracy"])
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(tags) + 1.2))
        ax.barh([f"{t} ({g['scored']})" for t, g in tags], [g["accuracy"] for _, g in tags], color="#4c78a8")
        ax.set_xlim(0, 100)
        ax.set_xlabel("% answered correctly")
        ax.set_title("Accuracy by question type (number of questions)")
        overall = summary["execution_accuracy"]
        if overall is not None:
            ax.axvline(overall, color="#e45756", linestyle="--", label=f"all answerable {overall:.0f}%")
            ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy_by_tag.png", dpi=100)
        plt.close(fig)
        charts["accuracy_by_tag"] = "accuracy_by_tag.png"

    latencies = [r["latency_ms"] / 1000 for r in records]
    if latencies:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.hist(latencies, bins=min(20, max(5, len(latencies) // 2)), color="#72b7b2")
        ax.set_xlabel("seconds per question")
        ax.set_ylabel("questions")
        ax.set_title("How long the answers took")
        fig.tight_layout()
        fig.savefig(out_dir / "latency.png", dpi=100)
        plt.close(fig)
        charts["latency"] = "latency.png"

    timing = summary["node_timing"]
    if timing:
        names = list(timing)
        # Mean over all questions (a node that ran on few questions weighs accordingly).
        means = [sum(r["node_ms"].get(n, 0) for r in records) / len(records) / 1000 for n in names]
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.bar(names, means, color="#f58518")
        ax.set_ylabel("seconds per question (mean)")
        ax.set_title("Where the time goes, step by step")
        fig.tight_layout()
        fig.savefig(out_dir / "node_time.png", dpi=100)
        plt.close(fig)
        charts["node_time"] = "node_time.png"
    return charts


# --- the items' results --------------------------------------------------------------------------


@dataclass
class View:
    """One result of one item to draw: what the agent got, or what was expected."""

    kind: str  # "got" | "expected"
    spec: dict[str, Any]
    shown: int  # rows in the record (predictions.jsonl keeps the first ROWS_KEPT)
    total: int  # rows the query returned

    @property
    def caption(self) -> str:
        what = "what the agent got" if self.kind == "got" else "what was expected"
        return what + (f" (the first {self.shown} of {self.total} rows)" if self.total > self.shown else "")


@dataclass
class ItemCharts:
    record: dict
    images: list[tuple[str, str]]  # (caption, path relative to report.md)


@dataclass
class ResultCharts:
    """What the report says about the results' charts: the drawn ones and one line per problem."""

    items: list[ItemCharts] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def link(self, item_id: str) -> str:
        """A markdown link to the item's first chart ("" when it has none), for the failure table."""
        found = next((i for i in self.items if i.record["id"] == item_id), None)
        return f" [chart]({found.images[0][1]})" if found and found.images else ""


def views(record: dict) -> list[View]:
    """The charts one record's results ask for (none: nothing worth a picture)."""
    if record["expected_status"] != "ok" or record["status"] != "ok":
        return []  # a refusal, a clarification, an error: no rows of the agent's to compare
    out = []
    spec = chart_spec(record["columns"], record["rows"])
    if spec is not None:
        out.append(View("got", spec, len(record["rows"]), record["row_count"]))
    # The expected result beside a wrong one; a right one is the same rows, drawn once.
    if record["correct"] is False and not record.get("gold_error") and record.get("gold_columns"):
        spec = chart_spec(record["gold_columns"], record["gold_rows"])
        if spec is not None:
            out.append(View("expected", spec, len(record["gold_rows"]), record["gold_row_count"]))
    return out


def plan(records: list[dict], max_charts: int) -> tuple[list[tuple[dict, list[View]]], int]:
    """The items to draw, failed ones first, within max_charts PNGs (an item is drawn whole or not at
    all), and how many chartable items were left out."""
    chartable = [(r, v) for r in records if (v := views(r))]
    chartable.sort(key=lambda rv: not failures.is_failed(rv[0]))  # stable: dataset order within each
    chosen, used = [], 0
    for record, item_views in chartable:
        if used + len(item_views) > max_charts:
            break
        chosen.append((record, item_views))
        used += len(item_views)
    return chosen, len(chartable) - len(chosen)


def _file_stem(item_id: str, taken: set[str]) -> str:
    """A file name from an id (Spider's ids hold slashes); two ids that clean alike get a suffix. No
    dot survives, so that an id `x.expected` cannot take the file of x's expected chart."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", item_id).strip("_") or "item"
    unique, n = stem, 1
    while unique in taken:
        n += 1
        unique = f"{stem}-{n}"
    taken.add(unique)
    return unique


def _png_spec(view: View, item_id: str, settings: ReportChartSettings) -> dict[str, Any]:
    # The page's spec as it is, with a fixed width (a PNG has no container to fill) and a title, so
    # that the file says what it shows when it is opened alone (an MLflow artifact).
    title = {"text": view.caption[0].upper() + view.caption[1:], "subtitle": item_id}
    return {**view.spec, "width": settings.width, "title": title}


def _problem(exc: Exception) -> str:
    # vl-convert's message: a headline, the JavaScript error, then its stack ("at ..."): keep two lines.
    lines = [x.strip() for x in str(exc).splitlines() if x.strip() and not x.strip().startswith("at ")]
    return f"{type(exc).__name__}: {' '.join(lines[:2])[:200]}"


def write_result_charts(out_dir: Path, records: list[dict], settings: ReportChartSettings) -> ResultCharts:
    """Draw the planned results as charts/<id>.png (and <id>.expected.png). Never raises: a chart
    that cannot be drawn, or a folder that cannot be written, is a note for the report."""
    result = ResultCharts()
    try:
        _draw(out_dir / CHART_DIR, records, settings, result)
    except Exception as exc:  # noqa: BLE001 - a line in the report, the eval goes on
        result.notes.append(f"Charts of results were not drawn ({_problem(exc)}).")
    return result


def _draw(chart_dir: Path, records: list[dict], settings: ReportChartSettings, result: ResultCharts) -> None:
    if chart_dir.is_dir():
        for stale in chart_dir.glob("*.png"):
            stale.unlink()
    if not settings.enabled:
        return
    chosen, left_out = plan(records, settings.max_charts)
    if not chosen and not left_out:
        return
    try:
        import vl_convert
    except ImportError:
        result.notes.append(MISSING)
        return
    if chosen:
        chart_dir.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    for record, item_views in chosen:
        stem = _file_stem(record["id"], taken)
        images = []
        for view in item_views:
            name = f"{stem}.png" if view.kind == "got" else f"{stem}.{view.kind}.png"
            try:
                png = vl_convert.vegalite_to_png(
                    _png_spec(view, record["id"], settings), scale=settings.scale, allowed_base_urls=[]
                )
                (chart_dir / name).write_bytes(png)
            except Exception as exc:  # noqa: BLE001 - a line in the report, the eval goes on
                result.notes.append(
                    f"`{record['id']}`: the chart of {view.caption} could not be drawn ({_problem(exc)})."
                )
                continue
            images.append((view.caption, f"{CHART_DIR}/{name}"))
        if images:
            result.items.append(ItemCharts(record, images))
    if left_out:
        result.notes.append(
            f"{left_out} more item(s) have a result with a chart shape; `eval.report_charts.max_charts` "
            f"(now {settings.max_charts} PNG files) caps how many are drawn."
        )


def render_section(charts: ResultCharts) -> list[str]:
    """The report's section of result charts (nothing when no item had one and nothing went wrong)."""
    if not charts.items and not charts.notes:
        return []
    out = [f"## Results as charts ({len(charts.items)})", ""]
    if charts.items:
        out += [
            "The chart the web page would draw for the result's shape (agent/charts.py), for the items "
            "whose rows have one; a wrong answer is drawn beside the expected one. Failed items first.",
            "",
        ]
    for item in charts.items:
        r = item.record
        verdict = {True: "right", False: "wrong", None: "not scored"}[r["correct"]]
        question = ("(follow-up) " if r.get("turns") else "") + r["question"]
        out += [f"### `{r['id']}` ({verdict})", "", question, ""]
        out += [f"![{caption}]({path})" for caption, path in item.images] + [""]
    out += [f"- {note}" for note in charts.notes] + ([""] if charts.notes else [])
    return out
