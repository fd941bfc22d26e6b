"""The Spark engine's parts that need no JVM: its URLs, the statement guard's classification and its
check of an analyzed plan's text (Spark Connect), the Java check, memory and type names."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.config import PROJECT_ROOT, load_settings
from tools.sql.engines import engine_kind
from tools.sql.engines.base import SandboxError
from tools.sql.engines.spark import duckdb_type
from tools.sql.engines.spark_guard import check_joins, check_plan_json, check_plan_text, parse_refusal, wrap
from tools.sql.engines.spark_session import java_runtime, parse_url, spark_memory


def test_local_urls_follow_sqlalchemys_slashes():
    relative = parse_url("spark-local:///data/spark-warehouse;database=lahman", root=Path("/project"))
    assert (relative.mode, relative.warehouse, relative.database) == ("local", Path("/project/data/spark-warehouse"),
                                                                      "lahman")  # fmt: skip
    absolute = parse_url("spark-local:////srv/wh", root=Path("/project"))
    assert (absolute.warehouse, absolute.database) == (Path("/srv/wh"), None)


def test_a_connect_url_keeps_spark_connects_parameters_and_hides_the_token():
    target = parse_url("sc://spark.example.com:15002/;token=s3cret;use_ssl=true;database=main.lahman")
    assert target.mode == "connect" and target.database == "main.lahman"
    assert target.remote == "sc://spark.example.com:15002/;token=s3cret;use_ssl=true"
    assert "s3cret" not in target.display and "token=***" in target.display


@pytest.mark.parametrize(("url", "says"), [
    ("spark-local://data/wh", "three slashes"),
    ("spark-local:///wh;threads=4", "takes only ;database"),
    ("spark-local:///wh;database", "has no value"),
    ("sc://h:1/;database=lahman;drop table", "has no value"),
    ("sc://h:1/;database=a.b.c", "catalog.name"),
])  # fmt: skip
def test_bad_urls_say_what_to_write(url, says):
    with pytest.raises(ValueError, match=says):
        parse_url(url)


def test_the_configuration_resolves_a_relative_warehouse_against_the_project():
    settings = load_settings(database={"url": "spark-local:///data/spark-warehouse;database=lahman"})
    config = settings.database_config()
    assert (
        config.url
        == f"spark-local:////{str(PROJECT_ROOT / 'data/spark-warehouse').lstrip('/')};database=lahman"
    )
    assert (config.dialect, config.dialect_label) == ("spark", "Spark")
    assert engine_kind("sc://h:15002").name == "spark"


def test_the_wrapper_makes_one_subquery_of_one_query():
    assert wrap("SELECT 1;;  ") == "SELECT * FROM (\nSELECT 1\n) AS sqlagent_query"
    assert wrap("SELECT 1 -- note").endswith("-- note\n) AS sqlagent_query")  # the comment ends at its line


@pytest.mark.parametrize(("sql", "kind"), [
    ("DROP TABLE People", "refused"),
    ("/* hi */ ADD JAR /tmp/x.jar", "refused"),
    ("-- note\nINSERT OVERWRITE DIRECTORY '/tmp/x' SELECT 1", "refused"),
    ("SELECT 1; SELECT 2", "refused"),
    ("SELECT nameFirst FROM People WHERE", "execution"),
    ("SELEC 1", "execution"),
])  # fmt: skip
def test_what_spark_would_not_parse_as_a_subquery(sql, kind):
    assert parse_refusal(sql, "[PARSE_SYNTAX_ERROR] ...").kind == kind


# Recorded from Spark 4.3's EXPLAIN EXTENDED (the Spark Connect path reads this text).
_EXPLAINED = """== Parsed Logical Plan ==
...
== Analyzed Logical Plan ==
x: string
Project [{project}]
+- SubqueryAlias sqlagent_query
{leaf}
== Optimized Logical Plan ==
...
"""
_TABLE = "   +- Relation spark_catalog.lahman.people[ID#2,playerID#3] parquet"


@pytest.mark.parametrize(("project", "leaf", "refused"), [
    ("playerID#3", _TABLE, None),
    ("reflect(java.lang.System, getenv, HOME, true) AS x#33", "   +- OneRowRelation", "reflection"),
    ("java_method(java.lang.System, getenv, HOME, true) AS x#1", "   +- OneRowRelation", "reflection"),
    ("x#40", "   +- ScriptTransformation cat, [x#40], ScriptInputOutputSchema(...)\n      " + _TABLE.strip(),
     "operating-system command"),
    ("a#1", "   +- Relation [a#1] parquet", "catalog tables"),
])  # fmt: skip
def test_the_analyzed_plan_text_check(project, leaf, refused):
    explained = _EXPLAINED.format(project=project, leaf=leaf)
    if refused is None:
        check_plan_text(explained)
        return
    with pytest.raises(SandboxError, match=refused) as caught:
        check_plan_text(explained)
    assert caught.value.kind == "refused"


def test_the_plan_json_check_refuses_a_relation_without_a_catalog_table():
    node = '{"class": "org.apache.spark.sql.execution.datasources.LogicalRelation", "num-children": 0}'
    with pytest.raises(SandboxError, match="catalog tables"):
        check_plan_json(f"[{node}]")
    check_plan_json(f'[{node[:-1]}, "catalogTable": {{"identifier": "people"}}}}]')
    with pytest.raises(SandboxError, match="could not be inspected"):
        check_plan_json("not json")


def _fake_java(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return home


def test_a_missing_or_old_java_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(SandboxError, match="openjdk-17-jre-headless") as caught:
        java_runtime()
    assert caught.value.kind == "database" and "has no bin/java" in caught.value.message
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'java version "1.8.0_392"')))
    with pytest.raises(SandboxError, match="is Java 8"):
        java_runtime()
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path / "new", 'openjdk version "17.0.15" 2025-04-15')))
    assert java_runtime()[1] == 17
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SandboxError, match="no `java` on PATH"):
        java_runtime()
    assert os.environ["PATH"] == str(tmp_path / "empty")


def test_memory_and_type_names():
    assert (spark_memory("2GB"), spark_memory("512MB"), spark_memory("1GiB")) == ("2048m", "512m", "1024m")
    assert [duckdb_type(t) for t in ("string", "int", "double", "date", "decimal(9,2)", "bigint")] == [
        "VARCHAR", "INTEGER", "DOUBLE", "DATE", "DECIMAL(9, 2)", "BIGINT"]  # fmt: skip


# EXPLAIN COST's optimized plan as Spark 4.3 prints it (relations cut to the table name).
def _cost(join: str, left: list[str], right: list[str]) -> str:
    lines = [
        "== Optimized Logical Plan ==",
        "Aggregate [count(1) AS count(1)#1L], Statistics(sizeInBytes=16.0 B, rowCount=1)",
    ]
    lines.append(f"+- {join}, Statistics(sizeInBytes=908.2 MiB)")
    lines += [
        ("   :- " if i == 0 else "   :  " + "   " * (i - 1) + "+- ") + node for i, node in enumerate(left)
    ]
    lines += [
        ("   +- " if i == 0 else "      " + "   " * (i - 1) + "+- ") + node for i, node in enumerate(right)
    ]
    return "\n".join([*lines, "", "== Physical Plan ==", "BroadcastNestedLoopJoin BuildRight, Cross"])


PEOPLE = [
    "Project, Statistics(sizeInBytes=30.1 KiB)",
    "Relation spark_catalog.lahman.people[ID#5,playerID#6] parquet, Statistics(sizeInBytes=1250.7 KiB)",
]
ONE_ROW = [
    "Filter isnotnull(h#9), Statistics(sizeInBytes=16.0 B)",
    "Aggregate [avg(height#23) AS h#9], Statistics(sizeInBytes=16.0 B, rowCount=1)",
    *PEOPLE,
]
TWO_JOINED = ["Join Inner, (playerID#6 = playerID#31), Statistics(sizeInBytes=2.0 GiB)", *PEOPLE]


@pytest.mark.parametrize(
    ("join", "left", "right", "refused"),
    [
        ("Join Cross", PEOPLE, PEOPLE, True),
        ("Join Inner, (birthYear#7 < birthYear#123)", PEOPLE, PEOPLE, True),
        ("Join LeftOuter, NOT (teamID#1 = teamID#2)", PEOPLE, PEOPLE, True),
        ("Join Inner, ((teamID#1 = teamID#2) OR (W#3 > W#4))", PEOPLE, PEOPLE, True),
        ("Join Inner, ((teamID#1 = teamID#2) AND (W#3 > W#4))", PEOPLE, PEOPLE, False),
        ("Join Inner, (((teamIDloser#8 = teamID#63) AND (yearID#4 = yearID#61)) AND (((franchID#16 = NYY) AND "
         "(franchID#64 = LAD)) OR ((franchID#16 = LAD) AND (franchID#64 = NYY))))", PEOPLE, PEOPLE, False),
        ("Join Inner, (((W#3 > W#4) AND (L#5 < L#6)) AND ((teamID#1 = teamID#2) OR (W#3 = L#6)))", PEOPLE, PEOPLE,
         True),
        ("Join LeftAnti, ((playerID#6 = playerID#155) OR isnull((playerID#6 = playerID#155)))", PEOPLE, PEOPLE,
         False),  # NOT IN (SELECT ...): a null-aware hash join
        ("Join Inner, (playerID#6 = playerID#31)", PEOPLE, PEOPLE, False),
        ("Join Inner, (yearID#156 = (yearID#183 + 1))", PEOPLE, PEOPLE, False),
        ("Join Inner, (height#23 > h#9)", PEOPLE, ONE_ROW, False),  # players taller than the average
        ("Join Cross", ["GlobalLimit 5, Statistics(sizeInBytes=1.0 KiB, rowCount=5)", *PEOPLE], PEOPLE, False),
        ("Join Cross", ["GlobalLimit 5000, Statistics(sizeInBytes=1.0 MiB, rowCount=5.0E+3)", *PEOPLE], PEOPLE, True),
        ("Join Cross", TWO_JOINED, ONE_ROW[2:], True),  # a join's rows are not its inputs' count
    ],
)  # fmt: skip
def test_nested_loop_joins_of_two_large_sides_are_refused(join, left, right, refused):
    plan = _cost(join, left, right)
    if refused:
        with pytest.raises(SandboxError) as caught:
            check_joins(plan)
        assert caught.value.kind == "refused" and "equal keys" in caught.value.message
        assert "people and people" in caught.value.message
    else:
        check_joins(plan)
