"""evals/templates.py: literal masking, template groups and the nearest train question."""

from __future__ import annotations

import pytest

from evals.templates import leaking_groups, mask_question, mask_sql, nearest_train_questions, template_groups

SAME_TEMPLATE = [
    ("SELECT SUM(HR) AS HR FROM Batting WHERE playerID = 'aaronha01'",
     "SELECT SUM(HR) AS HR FROM Batting WHERE playerID = 'ortizda01'"),
    ("SELECT W FROM Teams WHERE teamID = 'NYA' AND yearID = 1998",
     "select w from teams where teamid = 'CHA' and yearid = 2005"),
    ("SELECT SUM(HR) AS HR FROM Batting WHERE playerID = 'x'",
     "SELECT SUM(HR) AS home_runs FROM Batting WHERE playerID = 'y'"),
    ("SELECT p.nameFirst FROM Batting b JOIN People p ON b.playerID = p.playerID WHERE b.yearID = 1927",
     "SELECT pe.nameFirst FROM Batting bat JOIN People pe ON bat.playerID = pe.playerID WHERE bat.yearID = 1961"),
    ("SELECT COUNT(*) AS n FROM People WHERE debut >= DATE '2000-01-01'",
     "SELECT COUNT(*) AS n FROM People WHERE debut >= DATE '1990-06-01'"),
    ("SELECT nameLast FROM People ORDER BY weight DESC LIMIT 1",
     "SELECT nameLast FROM People ORDER BY weight DESC LIMIT 10"),
]  # fmt: skip

OTHER_TEMPLATE = [
    ("SELECT SUM(HR) AS HR FROM Batting WHERE playerID = 'x'",
     "SELECT SUM(G) AS G FROM Batting WHERE playerID = 'x'"),
    ("SELECT SUM(W) FROM Pitching WHERE playerID = 'x'",
     "SELECT SUM(W) FROM Managers WHERE playerID = 'x'"),
    ("SELECT SUM(HR) FROM Batting WHERE playerID = 'x'",
     "SELECT SUM(HR) FROM Batting WHERE playerID = 'x' AND yearID = 1927"),
    ("SELECT nameLast FROM People ORDER BY weight DESC LIMIT 1",
     "SELECT nameLast FROM People ORDER BY weight ASC LIMIT 1"),
]  # fmt: skip


@pytest.mark.parametrize(("a", "b"), SAME_TEMPLATE)
def test_same_query_with_other_literals_and_names_is_one_template(a: str, b: str) -> None:
    assert mask_sql(a) == mask_sql(b)


@pytest.mark.parametrize(("a", "b"), OTHER_TEMPLATE)
def test_another_column_table_filter_or_order_is_another_template(a: str, b: str) -> None:
    assert mask_sql(a) != mask_sql(b)


def test_masked_sql_keeps_no_literal() -> None:
    masked = mask_sql("SELECT 'Yankees' AS x, 1927, 3.5 FROM Teams WHERE name = 'New York Yankees'")
    assert "yankees" not in masked and "1927" not in masked and "3.5" not in masked


def test_unparsable_sql_is_masked_by_pattern() -> None:
    assert mask_sql("SELEC HR FRM Batting WHERE yearID = 1927") == mask_sql(
        "SELEC HR FRM Batting WHERE yearID = 1961"
    )


QUESTIONS = [
    ("How many home runs did Babe Ruth hit in 1927?", ["Babe Ruth"], "how many home runs did # hit in #"),
    ("How many home runs did Barry Bonds hit in 2001?", ["Barry Bonds"], "how many home runs did # hit in #"),
    ("Teams in the 1990s with 3,000 strikeouts", [], "teams in the # with # strikeouts"),
    ("Who played for 'Boston'?", [], "who played for #"),
    ("Who managed the Big Red Machine?", ["Big Red Machine", "Big Red"], "who managed the #"),
]  # fmt: skip


@pytest.mark.parametrize(("question", "mentions", "masked"), QUESTIONS)
def test_mask_question(question: str, mentions: list[str], masked: str) -> None:
    assert mask_question(question, mentions) == masked


def _item(item_id: str, split: str, question: str, sql: str = "", **extra) -> dict:
    return {"id": item_id, "question": question, "gold_sql": sql, "split": split, **extra}


ITEMS = [
    _item("hr-a", "train", "How many home runs did Hank Aaron hit?",
          "SELECT SUM(HR) FROM Batting WHERE playerID = 'aaronha01'",
          expected_mappings=[{"mention": "Hank Aaron"}]),
    _item("hr-b", "test", "Career homers for Big Papi",
          "SELECT SUM(HR) FROM Batting WHERE playerID = 'ortizda01'"),
    _item("mgr", "train", "Who managed the Yankees in 1998?",
          "SELECT playerID FROM Managers WHERE teamID = 'NYA' AND yearID = 1998"),
    _item("mt", "dev", "And who did they beat?", "SELECT teamIDloser FROM SeriesPost WHERE yearID = 1998",
          turns=["Who managed the Yankees in 1998?"]),
    _item("wins", "test", "How many wins did the Cubs have in 2016?",
          "SELECT W FROM Teams WHERE teamID = 'CHN' AND yearID = 2016", expected_mappings=[{"mention": "Cubs"}]),
    _item("wins-q", "dev", "How many wins did the Reds have in 1975?",
          "SELECT W FROM Teams WHERE franchID = 'CIN' AND yearID = 1975", expected_mappings=[{"mention": "Reds"}]),
]  # fmt: skip


def test_groups_join_sql_twins_question_twins_and_earlier_turns() -> None:
    groups = {frozenset(g.ids) for g in template_groups(ITEMS)}
    assert groups == {frozenset({"hr-a", "hr-b"}), frozenset({"mgr", "mt"}), frozenset({"wins", "wins-q"})}


def test_leaking_groups_are_those_that_reach_into_train() -> None:
    leaks = {frozenset(g.ids): g.splits for g in leaking_groups(ITEMS)}
    assert leaks == {
        frozenset({"hr-a", "hr-b"}): ("test", "train"),
        frozenset({"mgr", "mt"}): ("dev", "train"),
    }
    assert all(g.why for g in leaking_groups(ITEMS)), "a group says what its members share"


def test_nearest_train_question_covers_earlier_turns() -> None:
    nearest = {(n.id, n.question): n for n in nearest_train_questions(ITEMS, "dev")}
    turn = nearest[("mt", "Who managed the Yankees in 1998?")]
    assert (turn.train_id, turn.similarity) == ("mgr", 1.0)
    assert nearest[("wins-q", "How many wins did the Reds have in 1975?")].train_id == "mgr"


PROMOTED = [
    ("a twin of a test item joins test", "Career homers for Hank Aaron?",
     "SELECT SUM(HR) FROM Batting WHERE playerID = 'aaronha01'", "test"),
    ("a twin of a train-only item stays in train", "How tall was Babe Ruth?",
     "SELECT height FROM People WHERE playerID = 'ruthba01'", "train"),
    ("a group that reaches dev through a conversation holds it in dev", "Who managed the Cubs in 2016?",
     "SELECT playerID FROM Managers WHERE teamID = 'CHN' AND yearID = 2016", "dev"),
    ("a new template goes to train", "Who had the most triples in 1912?",
     "SELECT playerID FROM Batting WHERE yearID = 1912 ORDER BY \"3B\" DESC LIMIT 1", "train"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "question", "sql", "split"), PROMOTED, ids=[p[0] for p in PROMOTED])
def test_a_promoted_item_never_becomes_the_worked_example_of_a_held_out_twin(
    why, question, sql, split
) -> None:
    from evals.promotion import split_for

    new = {"id": "promoted", "question": question, "gold_sql": sql, "split": "train"}
    items = [i for i in ITEMS if i["id"] != "hr-a"]  # hr-b (test) is then the only SUM(HR) item
    items.append(
        _item(
            "height",
            "train",
            "How tall is Aaron Judge?",
            "SELECT height FROM People WHERE playerID = 'judgeaa01'",
        )
    )
    assert split_for(new, items) == split
