"""The ask page's first questions (agent/apps/suggestions.py)."""

from __future__ import annotations

import json

from agent.apps.suggestions import suggested_questions


def _golden(tmp_path, items):
    path = tmp_path / "golden.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def _item(id_, question, sql, **extra):
    return {"id": id_, "question": question, "gold_sql": sql, "split": "train", "difficulty": "easy", **extra}


def test_readme_first_one_per_template_role_view_applies(tmp_path):
    golden = _golden(tmp_path, [
        _item("wins-1998", "How many games did the Yankees win in 1998?", "SELECT W FROM Teams WHERE yearID = 1998"),
        _item("wins-2001", "How many games did the Mariners win in 2001?", "SELECT W FROM Teams WHERE yearID = 2001"),
        _item("salary", "Top salary?", "SELECT MAX(salary) FROM Salaries"),
        _item("hard", "A hard one?", "SELECT 1", difficulty="hard"),
        _item("turns", "And then?", "SELECT 2", turns=[{"question": "x"}]),
        _item("no-sql", "Refused?", None),
        _item("readme-hr", "Who hit the most home runs in 1927?", "SELECT 3", tags=["readme"], difficulty="medium"),
    ])  # fmt: skip
    hidden = lambda sql: "Salaries" in sql  # noqa: E731
    assert suggested_questions(golden, hidden) == [
        "Who hit the most home runs in 1927?",  # the README's, whatever its difficulty
        "How many games did the Yankees win in 1998?",  # the 2001 twin is the same query: not repeated
    ]
    assert "Top salary?" in suggested_questions(golden, lambda sql: False)
    assert suggested_questions(golden, lambda sql: False, count=1) == ["Who hit the most home runs in 1927?"]


def test_no_golden_set_no_suggestions(tmp_path):
    assert suggested_questions(tmp_path / "missing.jsonl", lambda sql: False) == []
