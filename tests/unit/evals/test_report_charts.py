"""The report's charts of results (evals/report_charts.py): which items get a PNG, the cap, the links
from report.md, and that a chart that cannot be drawn is a line in the report, not a failed eval.

The records are made by the runner's own `build_record` from a stub prediction and gold (as in
test_gate.py), the PNGs by the real vl-convert (CI installs every extra), so no model and no database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_settings
from agent.config_sections import ReportChartSettings
from evals import cli, report, report_charts, runner
from evals.dataset import EvalItem
from evals.runner import Gold, Prediction

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUTH = (["yearID", "HR"], [[1926, 47], [1927, 60], [1928, 54]])
WINS = (["teamID", "W"], [["NYA", 114], ["BOS", 92], ["TOR", 88]])


def record(
    item_id: str,
    pred: tuple[list[str], list[list[Any]]] | None,
    gold: tuple[list[str], list[list[Any]]] | None,
    *,
    expected: str = "ok",
    pred_status: str = "ok",
) -> dict:
    """A record as the runner builds it (real build_record and scorer, stub prediction and gold)."""
    item = EvalItem(
        id=item_id,
        question=f"question {item_id}",
        expected_status=expected,
        gold_sql="SELECT 1 AS x" if gold is not None else None,
        split="test",
        tags=["ranking"],
    )
    columns, rows = pred or ([], [])
    gold_result = Gold(columns=gold[0], rows=gold[1]) if gold is not None else None
    return runner.build_record(
        item,
        Prediction(status=pred_status, columns=columns, rows=rows, sql="SELECT 1", latency_ms=10.0),
        gold_result,
        pipeline="baseline",
    )


def eval_records() -> list[dict]:
    """One item of each kind the charts tell apart, in dataset order."""
    return [
        record("ruth-by-year", RUTH, RUTH),  # right, a time series: one chart (got)
        record("one-cell", (["hr"], [[755]]), (["hr"], [[755]])),  # one cell: no chart
        record(
            "names", (["nameFirst", "nameLast"], [["Babe", "Ruth"], ["Roger", "Maris"]]), None
        ),  # no measure
        record("broken", None, WINS, pred_status="error"),  # the query failed: nothing of the agent's
        record("unsafe", (["playerID"], [["aaronha01"]]), None, expected="refused"),  # a status item
        record("wins", (WINS[0], WINS[1][:2]), WINS),  # wrong bars: got and expected
    ]


def write(out: Path, records: list[dict], **chart_settings: Any) -> str:
    summary = report.build_summary(records, {"pipeline": "baseline"})
    path = report.write_report(out, summary, records, result_charts=ReportChartSettings(**chart_settings))
    return path.read_text()


def pngs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "charts").glob("*.png"))}


def test_chartable_items_get_pngs_linked_from_the_report(tmp_path):
    records = eval_records()
    assert [(r["id"], r["correct"]) for r in records if r["id"] in ("ruth-by-year", "wins")] == [
        ("ruth-by-year", True),
        ("wins", False),
    ]
    md = write(tmp_path, records)
    files = pngs(tmp_path)
    # Only the time series and the wrong bars (with their expected bars) have a chart shape.
    assert sorted(files) == ["ruth-by-year.png", "wins.expected.png", "wins.png"]
    for name, data in files.items():
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
    section = md[md.index("## Results as charts (2)") :]
    assert "![what the agent got](charts/ruth-by-year.png)" in section
    assert "![what the agent got](charts/wins.png)" in section
    assert "![what was expected](charts/wins.expected.png)" in section
    # The failed item first, then the right one; unchartable items are not in the section.
    assert section.index("### `wins` (wrong)") < section.index("### `ruth-by-year` (right)")
    assert not any(f"`{i}`" in section for i in ("one-cell", "names", "broken", "unsafe"))
    # The failure table links the failed item's chart.
    failures = md[md.index("## What went wrong") : md.index("## Results as charts")]
    wins_row = next(line for line in failures.splitlines() if "`wins`" in line)
    assert "[chart](charts/wins.png)" in wins_row
    assert "[chart]" not in next(line for line in failures.splitlines() if "`broken`" in line)


def test_the_png_is_the_web_pages_spec_with_a_width_and_a_title():
    view = report_charts.views(record("wins", (WINS[0], WINS[1][:2]), WINS))[1]
    spec = report_charts._png_spec(view, "wins", ReportChartSettings(width=480))
    from agent.charts import chart_spec

    page = chart_spec(*WINS)
    assert {k: v for k, v in spec.items() if k not in ("width", "title")} == {
        k: v for k, v in page.items() if k != "width"
    }
    assert spec["width"] == 480 and page["width"] == "container"
    assert spec["title"] == {"text": "What was expected", "subtitle": "wins"}


def test_a_result_cut_to_the_kept_rows_says_so():
    years = [[1900 + i, i] for i in range(runner.ROWS_KEPT + 10)]
    r = record("long", (["yearID", "HR"], years), None)
    assert (len(r["rows"]), r["row_count"]) == (runner.ROWS_KEPT, runner.ROWS_KEPT + 10)
    (view,) = report_charts.views(r)
    assert (
        view.caption == f"what the agent got (the first {runner.ROWS_KEPT} of {runner.ROWS_KEPT + 10} rows)"
    )


@pytest.mark.parametrize(
    "max_charts, files, left_out",
    [
        # The failed item takes two PNGs; the right one does not fit in two and is left out.
        (2, ["wins.expected.png", "wins.png"], 1),
        # An item is drawn whole or not at all: one PNG is not enough for the failed item.
        (1, [], 2),
        (0, [], 2),
    ],
)
def test_the_cap_counts_png_files_and_says_what_it_left_out(tmp_path, max_charts, files, left_out):
    md = write(tmp_path, eval_records(), max_charts=max_charts)
    assert sorted(pngs(tmp_path)) == files
    assert (
        f"- {left_out} more item(s) have a result with a chart shape; `eval.report_charts.max_charts` "
        f"(now {max_charts} PNG files) caps how many are drawn." in md
    )


def test_off_draws_nothing_and_removes_an_earlier_runs_charts(tmp_path):
    write(tmp_path, eval_records())
    assert pngs(tmp_path)
    md = write(tmp_path, eval_records(), enabled=False)
    assert pngs(tmp_path) == {} and "## Results as charts" not in md


def test_an_eval_without_chartable_results_has_no_section(tmp_path):
    md = write(tmp_path, eval_records()[1:5])
    assert "## Results as charts" not in md and not (tmp_path / "charts").exists()


def test_a_chart_that_cannot_be_drawn_is_a_line_and_the_others_are_drawn(tmp_path, monkeypatch):
    import vl_convert

    real = vl_convert.vegalite_to_png

    def failing_for_expected(spec, **kwargs):
        if spec["title"]["text"] == "What was expected":  # as vl-convert reports a JavaScript error
            raise ValueError("Vega-Lite to PNG conversion failed:\nTypeError: bad mark\n    at oi (x.js:7:1)")
        return real(spec, **kwargs)

    monkeypatch.setattr(vl_convert, "vegalite_to_png", failing_for_expected)
    md = write(tmp_path, eval_records())
    assert sorted(pngs(tmp_path)) == ["ruth-by-year.png", "wins.png"]
    assert (
        "- `wins`: the chart of what was expected could not be drawn "
        "(ValueError: Vega-Lite to PNG conversion failed: TypeError: bad mark)." in md
    )
    assert "![what was expected]" not in md and "![what the agent got](charts/wins.png)" in md


def test_a_folder_that_cannot_be_written_is_a_line(tmp_path):
    (tmp_path / "charts").write_text("a file where the folder goes")
    md = write(tmp_path, eval_records())
    assert "- Charts of results were not drawn (FileExistsError: " in md
    assert "## What went wrong" in md  # the rest of the report is there


def test_without_vl_convert_the_report_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vl_convert", None)  # `import vl_convert` raises ImportError
    md = write(tmp_path, eval_records())
    assert f"- {report_charts.MISSING}" in md and md.count("vl-convert-python is not installed") == 1
    assert not (tmp_path / "charts").exists()


def test_ids_that_are_not_file_names_get_distinct_files(tmp_path):
    records = [record(i, RUTH, RUTH) for i in ("dev/1", "dev_1", "..", "wins.expected")]
    records.append(record("wins", (WINS[0], WINS[1][:2]), WINS))
    md = write(tmp_path, records)
    files = ["dev_1-2.png", "dev_1.png", "item.png", "wins.expected.png", "wins.png", "wins_expected.png"]
    assert sorted(pngs(tmp_path)) == files
    assert "![what the agent got](charts/dev_1.png)" in md


class ChartPipeline:
    """Answers every item with Ruth's home runs by year; no model, no database."""

    name = "baseline"
    loaded_compiled: list[str] = []

    def prepare(self, items):
        pass

    def database(self, item):
        return None

    def predict(self, item):
        return Prediction(status="ok", sql="SELECT yearID, HR FROM Batting", columns=RUTH[0], rows=RUTH[1])


def test_run_eval_reads_eval_report_charts_from_the_settings(tmp_path, monkeypatch):
    items = [
        {"id": f"q{n}", "question": f"Ruth's home runs by year, take {n}", "gold_sql": "SELECT 1"}
        for n in range(3)
    ]
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("".join(json.dumps(i) + "\n" for i in items))
    monkeypatch.setattr(cli, "_build_pipeline", lambda *a, **k: ChartPipeline())
    monkeypatch.setattr(runner, "run_gold", lambda item, db, max_rows: Gold(columns=RUTH[0], rows=RUTH[1]))
    settings = load_settings(tracking={"enabled": False}, eval={"report_charts": {"max_charts": 2}})
    opts = cli.EvalOptions(dataset=str(dataset), out=str(tmp_path / "out"), mlflow=False, progress=False)
    outcome = cli.run_eval(opts, settings=settings)
    assert sorted(pngs(outcome.out_dir)) == ["q0.png", "q1.png"]
    assert "- 1 more item(s) have a result with a chart shape" in (outcome.out_dir / "report.md").read_text()


def test_mlflow_gets_the_charts_where_report_md_links_them(tmp_path):
    import mlflow

    from evals import mlflow_log
    from tests.tracking_store import temporary_tracking

    records = eval_records()
    summary = report.build_summary(records, {"pipeline": "baseline"})
    report.write_report(tmp_path / "out", summary, records)
    with temporary_tracking(tmp_path, "report-charts") as settings:
        mlflow.set_tracking_uri(settings.tracking.uri)
        experiment = mlflow.create_experiment("report-charts", artifact_location=str(tmp_path / "artifacts"))
        run_id = mlflow.MlflowClient().create_run(experiment).info.run_id
        mlflow_log.log_outputs(run_id, summary, tmp_path / "out")
        logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "charts")}
    assert logged == {"charts/ruth-by-year.png", "charts/wins.png", "charts/wins.expected.png"}
