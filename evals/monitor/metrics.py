"""The server's Prometheus metrics (prometheus_client), one registry per app.

Counters and histograms since the process started; Prometheus itself makes the rates over time
(`rate(sqlagent_answers_total[1h])`). `sqlagent monitor` reads the same from the trace store.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600)
TOKEN_BUCKETS = (0, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 50_000, 100_000)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.answers = Counter("sqlagent_answers", "Answers by how they ended", ["status"], registry=r)
        self.latency = Histogram(
            "sqlagent_answer_latency_seconds", "Wall time per answer", buckets=LATENCY_BUCKETS, registry=r
        )
        self.tokens = Counter(
            "sqlagent_lm_tokens", "LM tokens spent, by node and kind", ["node", "kind"], registry=r
        )
        self.answer_tokens = Histogram(
            "sqlagent_answer_tokens", "LM tokens per answer", buckets=TOKEN_BUCKETS, registry=r
        )
        self.cost = Counter("sqlagent_cost", "What the answers cost, in monitor.currency", registry=r)
        self.budget_stops = Counter(
            "sqlagent_budget_stops", "Questions stopped by the token budget", registry=r
        )
        self.scores = Counter(
            "sqlagent_code_scores",
            "Code scorer results of sampled answers (true/false)",
            ["scorer", "value"],
            registry=r,
        )
        self.verdicts = Counter(
            "sqlagent_judge_verdicts", "LLM judge verdicts on sampled answers", ["judge", "value"], registry=r
        )
        self.judge_failures = Counter(
            "sqlagent_judge_failures", "Judge calls that gave no verdict", ["judge"], registry=r
        )
        self.queue = Gauge("sqlagent_monitor_queue", "Answers waiting to be scored", registry=r)
        self.dropped = Counter(
            "sqlagent_monitor_dropped", "Sampled answers dropped: the queue was full", registry=r
        )
        self.alerts = Gauge(
            "sqlagent_monitor_alerts",
            "Thresholds crossed in the last check, by window",
            ["window"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
