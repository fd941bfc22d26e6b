"""Configuration sections that need nothing of agent/config.py, kept apart so that it stays small:
the base `Section`, the eval's report and online monitoring. agent/config.py assembles them into
`Settings` and loads the file.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A config section: an unknown key is an error, so a typo in the YAML is reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


# A time window: minutes, hours or days ("15m", "1h", "7d").
Window = Annotated[str, Field(pattern=r"^[1-9][0-9]*[mhd]$")]


class TokenPrices(Section):
    """Price per million tokens, to say what an answer costs (0 for the embedded model)."""

    read: float = Field(0.0, ge=0)  # prompt tokens the model processed
    cached: float = Field(0.0, ge=0)  # prompt tokens served from a prompt cache
    written: float = Field(0.0, ge=0)  # completion tokens


class MonitorThresholds(Section):
    """When `sqlagent monitor --check` (and the server's log) raises an alert; null turns one off.
    Rates are shares (0-1) of the answers in the window; nothing is judged below min_answers."""

    min_answers: int = Field(5, ge=1)
    error_rate: float | None = 0.2
    refusal_rate: float | None = 0.3
    clarify_rate: float | None = 0.3
    empty_result_rate: float | None = 0.5
    p95_latency_ms: float | None = 120_000
    tokens_per_answer: float | None = 30_000
    cost_per_answer: float | None = None
    judge_pass_rate: dict[str, float] = Field(default_factory=dict)  # judge name -> lowest pass rate


class MonitorSettings(Section):
    """Online monitoring of the server's answers (evals/monitor/): sampled, scored in the background."""

    enabled: bool = True
    sample_rate: float = Field(1.0, ge=0, le=1)  # answers scored by the code scorers (no LM)
    judge_sample_rate: float = Field(0.0, ge=0, le=1)  # answers also scored by the LLM judges
    judges: list[str] = Field(default_factory=lambda: ["grounding", "sql_answers_question", "fan_rubric"])
    queue_size: int = Field(200, ge=1)  # answers waiting to be scored; more are dropped (and counted)
    windows: list[Window] = Field(default_factory=lambda: ["1h", "24h"])  # `sqlagent monitor`, the page
    max_traces: int = Field(5000, ge=1)  # traces read per window
    check_interval_s: float = Field(300, gt=0)  # the server checks the thresholds this often (a log line)
    prices: TokenPrices = Field(default_factory=TokenPrices)
    currency: str = "USD"
    thresholds: MonitorThresholds = Field(default_factory=MonitorThresholds)


class ReportChartSettings(Section):
    """Charts of the results in the eval's report (evals/report_charts.py): the web page's Vega-Lite
    spec (agent/charts.py) drawn as PNG by vl-convert (the `charts` extra), for the items whose result
    has a chart shape, failed items first."""

    enabled: bool = True
    max_charts: int = Field(12, ge=0)  # PNG files per report (an item has one, two when got != expected)
    width: int = Field(560, ge=100, le=2000)  # pixels; the page fills its container instead
    scale: float = Field(1.0, gt=0, le=4)  # pixel density of the PNG (2: sharp on a high-DPI screen)


class EvalSettings(Section):
    """`sqlagent eval` (evals/cli.py)."""

    report_charts: ReportChartSettings = Field(default_factory=ReportChartSettings)
