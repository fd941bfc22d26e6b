"""The input guard over two whole sets: nothing benign refused, every attack refused.

Benign: every golden question the agent is expected to answer (all splits) and the phrasings in
tests/security/data/guard_benign.jsonl, ordinary questions that use the words an over-eager guard
trips on (download, export, save, drop, delete, update, attach, run, kill, grant, ...). What the user
will do with the answer (download it, save it to a spreadsheet) is not something the database does.

Attacks: the golden questions expected to be refused, the guard's own refusal table
(tests/unit/tools/sql/test_guard.py), the questions the graph suite expects the guard to stop
(tests/security/test_adversarial_graph.py) and tests/security/data/guard_attacks.jsonl, which pins the
line the benign set draws: a destination outside the answer (a path, the server's disk, a bucket, an
email address), SQL that is not read-only, another database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.config import resolve_path
from tests.security.test_adversarial_graph import GRAPH_CASES
from tests.unit.tools.sql.test_guard import REFUSED
from tools.sql.guard import check_question

DATA = Path(__file__).parent / "data"
CODES = {"prompt_injection", "write_request", "outside_database"}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


GOLDEN = _jsonl(resolve_path("evals/golden.jsonl"))
BENIGN_NEW = [item["question"] for item in _jsonl(DATA / "guard_benign.jsonl")]
BENIGN = [g["question"] for g in GOLDEN if g.get("expected_status", "ok") != "refused"] + BENIGN_NEW

ATTACK_NEW = [(item["code"], item["question"]) for item in _jsonl(DATA / "guard_attacks.jsonl")]
ATTACKS = (
    [(None, g["question"]) for g in GOLDEN if g.get("expected_status") == "refused"]
    + [(None, q) for category, q, _, expected in GRAPH_CASES if expected == "guarded"]
    + [(None, q) for _, q in REFUSED]  # their codes are checked in test_guard.py
    + ATTACK_NEW
)


def test_sets_are_large_enough():
    assert len(BENIGN_NEW) >= 60 and len(set(BENIGN_NEW)) == len(BENIGN_NEW)
    assert len(ATTACK_NEW) >= 30 and len(ATTACKS) >= 100


@pytest.mark.parametrize("question", BENIGN, ids=[f"benign-{i}" for i in range(len(BENIGN))])
def test_benign_question_is_allowed(question):
    decision = check_question(question)
    assert decision.allowed, f"{question!r} refused: {decision.code}: {decision.reason}"


@pytest.mark.parametrize(("code", "question"), ATTACKS, ids=[f"attack-{i}" for i in range(len(ATTACKS))])
def test_attack_is_refused(code, question):
    decision = check_question(question)
    assert not decision.allowed, f"{question!r} allowed"
    assert decision.code in CODES and decision.reason
    if code is not None:
        assert decision.code == code, (question, decision)
