"""The web app end to end in headless Chromium, with auth on: refused without a token, the token
pasted into the page, ask, see SQL, rows and chart, thumbs-down with a corrected SQL, promote it
from the review page, explain a query; then check MLflow (under the token's user) and the (temporary) golden file."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import mlflow
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "screenshots"  # kept after the run, for a person to look at
BY_YEAR = (
    "SELECT yearID, SUM(HR) AS HR FROM Batting WHERE playerID = 'ruthba01' GROUP BY yearID ORDER BY yearID"
)
CORRECTED = "SELECT yearID, SUM(HR) AS HR FROM Batting WHERE playerID = 'ruthba01' AND yearID >= 1920 GROUP BY yearID ORDER BY yearID"
QUESTION = "How many home runs did Babe Ruth hit in each year?"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: `apt-get install -y chromium`"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _handlers():
    return {
        "standalone_question": lambda i: {"standalone_question": i["follow_up"]},
        "mentions": lambda i: {"mentions": ["Babe Ruth"]},
        "sql": lambda i: {"sql": BY_YEAR},
        "answer": lambda i: {"answer": "Babe Ruth's home runs by season: 60 in 1927 was his best."},
        "explanation": lambda i: {"explanation": "It adds up Babe Ruth's home runs in each season."},
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from agent.apps.server import create_app
    from agent.apps.users import UserStore
    from agent.service import Agent
    from tests.fake_lm import fake_lm
    from tests.tracking_store import temporary_tracking

    tmp = tmp_path_factory.mktemp("web")
    golden = tmp / "golden.jsonl"
    shutil.copy(ROOT / "evals" / "golden.jsonl", golden)

    def factory(s, db, role):
        lm, _ = fake_lm(_handlers())
        return Agent(s, db_path=db, role=role, lms={"default": lm}, persistent_threads=False)

    with temporary_tracking(tmp, "web-test") as settings:
        port = _free_port()
        users = UserStore(tmp / "users.sqlite")
        _, token = users.add("rev", "analyst", ["ask", "feedback", "review"])
        app = create_app(settings, agent_factory=factory, golden_path=golden, auth=True, users=users)
        uv = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not uv.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uv.started, "uvicorn did not start"
        try:
            yield {"url": f"http://127.0.0.1:{port}", "golden": golden, "tmp": tmp, "token": token}
        finally:
            uv.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_first_visit_empty_review_queue_then_suggestions(server, browser):
    """A newcomer's first pages, before anyone asked anything: the review page says its queue is
    empty (not a blank "Loading…"), and the ask page opens with questions from the golden set."""
    base = server["url"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/review")
    page.wait_for_selector("#queue .message.error", timeout=15_000)  # no token: the 401, said
    assert "Authentication required" in page.inner_text("#queue")
    page.fill("#token", server["token"])
    page.click("#token-save")
    page.wait_for_selector("#queue .card.empty", timeout=15_000)
    assert "Nothing awaits review" in page.inner_text("#queue") and "Loading" not in page.inner_text("#queue")
    page.screenshot(path=str(SCREENSHOTS / "review-empty.png"), full_page=True)

    page.goto(base + "/")
    page.wait_for_selector("#suggestions button.suggestion", timeout=15_000)
    offered = page.locator("#suggestions button.suggestion").all_inner_texts()
    assert 3 <= len(offered) <= 6 and offered[0] == "Who hit the most home runs in 1927, and how many?"
    page.screenshot(path=str(SCREENSHOTS / "start.png"), full_page=True)
    # A suggestion asks itself; the list gives way to the conversation.
    page.locator("#suggestions button.suggestion").first.click()
    page.wait_for_selector(".turn .result-card:not([hidden])", timeout=30_000)
    assert page.inner_text(".turn .turn-question") == offered[0] and page.is_hidden("#suggestions")
    assert errors == []
    page.close()


def test_ask_feedback_review_promote(server, browser):
    base, tmp = server["url"], server["tmp"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))

    # No token yet: the server's 401 is shown, saying where the token goes.
    page.goto(base + "/")
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    page.wait_for_selector(".turn:last-child .timeline li.failed", timeout=15_000)
    assert "Authentication required" in page.inner_text(
        ".turn:last-child .timeline"
    ) and "token" in page.inner_text(".turn:last-child .timeline")
    # The token field (shown because auth is on) keeps it in localStorage and says whose it is.
    page.fill("#token", server["token"])
    page.click("#token-save")
    page.wait_for_function("document.getElementById('whoami').textContent.startsWith('rev ')", timeout=15_000)
    assert "role analyst" in page.inner_text("#whoami")
    # A question the server refuses (422): its one-line reason, not a dump.
    page.fill("#question", "home runs \ufffd")
    page.click("#ask-button")
    page.wait_for_function(
        "document.querySelector('.turn:last-child .timeline li.failed')?.textContent.includes('UTF-8')",
        timeout=15_000,
    )
    assert page.inner_text(".turn:last-child .timeline li.failed") == (
        "The question is not valid UTF-8 text (U+FFFD, the mark of a failed decoding, at character 11)."
    )

    # Ask: the node timeline streams in, then the result with SQL, rows and a chart.
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    page.wait_for_selector(".turn:last-child .result-card:not([hidden])", timeout=30_000)
    names = page.locator(".turn:last-child .timeline li.node .name").all_inner_texts()
    assert names == ["guard", "rewrite", "retrieve", "generate", "safety", "execute", "answer"]
    assert "SELECT yearID" in page.inner_text("pre.sql")
    assert page.locator("table.rows tbody tr").count() == 22  # Ruth's seasons 1914-1935
    # One measure over seasons: Vega-Lite draws a line (vendored vega-embed, SVG renderer).
    page.wait_for_selector(".chart-wrap svg g.mark-line path", timeout=15_000)
    assert page.locator(".chart-wrap svg g.mark-symbol path").count() == 22  # a point per season
    assert "HR by yearID" in page.inner_text(".chart-wrap figcaption")
    assert "Babe Ruth" in page.inner_text(".mappings")
    # Explain: the query in plain words, only when asked (one LM call, POST /api/explain).
    page.click(".turn:last-child button.explain")
    page.wait_for_function(
        "document.querySelector('.turn:last-child .explanation')?.textContent.startsWith('It adds up')",
        timeout=15_000,
    )
    assert page.locator(".turn:last-child button.explain").count() == 0  # explained: the button is done
    trace_id = re.search(r"trace (\S+)", page.inner_text(".turn:last-child .trace-link")).group(1)
    page.screenshot(path=str(tmp / "ask.png"), full_page=True)
    shutil.copy(tmp / "ask.png", SCREENSHOTS / "ask.png")
    # The rows to take away: the CSV and the Parquet of the answer, with the page's token.
    with page.expect_download() as csv_download:
        page.click("button.download[data-format=csv]")
    csv_text = Path(csv_download.value.path()).read_text()
    assert csv_text.splitlines()[:3] == ["yearID,HR", "1914,0", "1915,4"] and len(csv_text.splitlines()) == 23
    with page.expect_download() as parquet_download:
        page.click("button.download[data-format=parquet]")
    assert parquet_download.value.suggested_filename == f"sqlagent-{trace_id}.parquet"
    import pyarrow.parquet as pq

    assert pq.read_table(parquet_download.value.path()).num_rows == 22

    # Thumbs down, a comment, a corrected SQL and a rubric.
    page.click(".thumb.down")
    page.fill("textarea.comment", "Only his Yankees years were asked for")
    page.fill("textarea.correction", CORRECTED)
    page.check("input[type=radio][value=wrong]")
    page.fill("input.reason", "includes the Red Sox years")
    page.check("input[data-judge=sql_answers_question][value=fail]")  # a label for an LLM judge
    page.click("button.send")
    page.wait_for_selector(".turn:last-child .feedback-box .message.ok", timeout=15_000)
    assert page.locator(".turn:last-child .feedback-box .message.ok table.rows tbody tr").count() > 0
    page.screenshot(path=str(tmp / "feedback.png"), full_page=True)

    # A follow-up on the same thread: a new turn below, the earlier one kept with its chart and rows.
    page.fill("#question", "And only from 1927 on?")
    page.click("#ask-button")
    page.wait_for_function(
        "document.querySelectorAll('.turn .result-card:not([hidden])').length === 2", timeout=30_000
    )
    answered = page.locator(".turn:has(.result-card:not([hidden]))")
    assert answered.nth(0).locator(".turn-question").inner_text() == QUESTION
    assert answered.nth(0).locator(".result table.rows tbody tr").count() == 22
    assert answered.nth(0).locator(".chart-wrap svg g.mark-line").count() == 1
    assert answered.nth(1).locator(".turn-question").inner_text() == "And only from 1927 on?"
    page.wait_for_selector(".turn:last-child .chart-wrap svg g.mark-line path", timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "conversation.png"), full_page=True)

    # The review page lists it; promote it to the golden set.
    page.goto(base + "/review")
    card = page.locator(f'article.review-item[data-trace="{trace_id}"]')
    card.wait_for(timeout=15_000)
    assert "rejected" in card.inner_text() and CORRECTED in card.inner_text()
    card.locator("button.promote").click()
    card.locator(".message.ok").wait_for(timeout=15_000)
    assert "Added to the golden set" in card.inner_text()
    page.screenshot(path=str(tmp / "review.png"), full_page=True)
    shutil.copy(tmp / "review.png", SCREENSHOTS / "review.png")
    assert errors == [] and external == []

    # Through MLflow: the human feedback and the expectation are on the trace.
    trace = mlflow.get_trace(trace_id)
    by_name = {a.name: a for a in trace.info.assessments}
    assert by_name["user_correctness"].value is False
    assert by_name["user_correctness"].source.source_type == "HUMAN"
    assert by_name["user_correctness"].source.source_id == "rev"  # the token's user
    assert trace.info.trace_metadata["mlflow.trace.user"] == "rev"
    assert by_name["user_correctness"].rationale == "Only his Yankees years were asked for"
    assert by_name["expected_sql"].value == CORRECTED
    assert by_name["user_rubric"].value == "wrong"
    assert by_name["sql_answers_question"].value == "fail"  # what `sqlagent judges align` reads
    assert by_name["sql_answers_question"].source.source_type == "HUMAN"
    # ... and the item is in the temporary golden file, in train, with the corrected SQL.
    items = [json.loads(line) for line in server["golden"].read_text().splitlines()]
    (item,) = [i for i in items if i["question"] == QUESTION]
    assert (item["gold_sql"], item["split"], item["tags"]) == (CORRECTED, "train", ["from-feedback"])
    page.close()
