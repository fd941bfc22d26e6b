"""The bench's aggregates and tables (bench/stats.py) and its before/after comparison (bench/compare.py)."""

from __future__ import annotations

import json

from bench import compare as cmp
from bench.bench_agent import main
from bench.stats import node_stats, node_table, percentile, table, token_totals, wall_summary


def run(name: str, ms: float, read: int = 0, cached: int = 0, written: int = 0) -> dict:
    return {
        "name": name,
        "duration_ms": ms,
        "tokens": read + cached + written,
        "tokens_read": read,
        "tokens_cached": cached,
        "tokens_written": written,
    }


QUESTIONS = [
    [run("guard", 1), run("generate", 100, read=50, cached=150, written=20), run("execute", 9)],
    [
        run("guard", 3),
        run("generate", 300, read=10, cached=190, written=40),
        run("execute", 7),
        run("generate", 200, read=30, cached=170, written=30),
    ],
]


def test_percentile_and_walls():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.95) == 5.0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95) == 10
    walls = wall_summary([9.0, 2.0, 4.0])
    assert walls["first_s"] == 9.0 and walls["p50_s"] == 4.0 and walls["p95_s"] == 9.0
    assert wall_summary([])["p50_s"] is None


def test_node_stats_per_node_in_first_run_order():
    stats = node_stats(QUESTIONS)
    assert list(stats) == ["guard", "generate", "execute"]
    gen = stats["generate"]
    assert gen["runs"] == 3 and gen["runs_per_question"] == 1.5
    assert gen["ms_total"] == 600 and gen["ms_mean"] == 200 and gen["ms_p50"] == 200
    assert (gen["tokens_read"], gen["tokens_cached"], gen["tokens_written"]) == (90, 510, 90)
    assert gen["tokens_read_mean"] == 30 and gen["tokens_cached_mean"] == 170
    assert abs(sum(s["ms_share"] for s in stats.values()) - 1) < 0.01
    assert stats["guard"]["tokens_read"] == 0


def test_records_without_the_split_count_as_zero():
    assert token_totals([{"name": "x", "duration_ms": 1, "tokens": 9}]) == {
        "read": 0,
        "cached": 0,
        "written": 0,
    }


def test_tables_print_every_node():
    text = node_table(node_stats(QUESTIONS))
    assert text.splitlines()[0].split()[:3] == ["node", "runs", "ms"]
    assert all(name in text for name in ("guard", "generate", "execute"))
    assert table(("a", "b"), [("x", None), ("y", 1234.5)]).splitlines()[2].split() == ["x", "-"]


# --- comparison --------------------------------------------------------------------------------


def result(p50: float, questions: list[list[dict]], spider: dict | None = None) -> dict:
    return {
        "meta": {
            "lm": "fake",
            "started_at": "t",
            "git": {"commit": "abc", "dirty": False},
            "loadavg_before": [p50 / 4, 0.5, 0.5],
        },
        "summary": {
            "questions": len(questions),
            "ok": 2,
            "p50_s": p50,
            "p95_s": p50 * 2,
            "first_s": 5.0,
            "peak_rss_mb": 700,
            "tokens_per_question": {"read": 45.0, "cached": 330.0, "written": 45.0},
        },
        "startup": {"model_load_s": 1.5, "total_s": 4.0},
        "nodes": node_stats(questions),
        "spider": spider or {"skipped": "no --spider DIR given"},
    }


def test_delta_cells():
    assert cmp.delta_cell(10, 8) == "10.0 -> 8.0 (-2.0, -20%)"
    assert cmp.delta_cell(0, 3, 0) == "0 -> 3 (+3)"
    assert cmp.delta_cell(None, 3) == "- -> 3.0"
    assert cmp.delta_cell("x", None) == "- -> -"


def test_compare_overall_and_per_node():
    old = result(4.0, QUESTIONS)
    faster = [[run("guard", 1), run("generate", 50, read=5, cached=195, written=20)]]
    new = result(
        2.0,
        faster,
        spider={
            "items": 2,
            "baseline": {"p50_s": 1.0},
            "agent": {"p50_s": 2.0, "nodes": node_stats(faster)},
            "ratio_p50": 2.0,
        },
    )
    text = cmp.compare(old, new)
    assert "wall p50 s" in text and "4.00 -> 2.00 (-2.00, -50%)" in text
    generate = next(line for line in text.splitlines() if line.startswith("generate"))
    assert "200.0 -> 50.0" in generate and "30.0 -> 5.0" in generate
    execute = next(line for line in text.splitlines() if line.startswith("execute"))
    assert "-> -" in execute  # a node only the old run had
    assert "spider agent/bare p50" in text and "spider node" in text
    assert "1.00 -> 0.50" in next(
        line for line in text.splitlines() if line.startswith("load avg 1 min before")
    )
    assert "load avg 1 min after" not in text  # neither file has it


def test_compare_two_files_without_running(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result(4.0, QUESTIONS)))
    b.write_text(json.dumps({"summary": {"p50_s": 3.0}}))  # an older, thinner format
    assert main(["--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "4.00 -> 3.00" in out and "generate" in out
    assert main(["--compare", str(tmp_path / "missing.json"), str(b)]) == 2


def test_spider_ratio_survives_sub_centisecond_calls():
    # A fake LM answers in microseconds: rounded p50s are 0.0 s, the ratio must still be there.
    from bench.spider import summarize

    def side(s: float) -> dict:
        return {
            "s": s,
            "correct": True,
            "status": "ok",
            "tokens_read": 1,
            "tokens_cached": 0,
            "tokens_written": 1,
        }

    rows = [{"id": f"x-{i}", "db_id": "x", "baseline": side(0.001), "agent": side(0.003)} for i in range(3)]
    result = summarize(rows)
    assert result["baseline"]["p50_s"] == 0.0
    assert result["ratio_p50"] == 3.0
