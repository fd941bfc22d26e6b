"""The agent graph, top to bottom.

    guard ─┬─ refused ─────────────────────────────────────────────────────────────┐
           └─ rewrite ─┬─ ambiguous ─ clarify ⏸ ─┬─ a choice ─ retrieve            │
                       │                         └─ a new question ─ guard         │
                       └─ retrieve ─ generate ─ safety ─┬─ refused ────────────────┤
                                                        ├─ rejected ─ repair ─┐    │
                                 (limits.approve_sql) ──┼─ approve ⏸ ─ safety │    ├─ finish
                                                        └─ execute ─┬─ answer │    │
                                                                    ├─ repair ┘    │
                                                                    └─ failed ─────┘
    repair ─ safety (the loop is bounded by limits.max_repair_attempts)
    An LM step (rewrite, generate, repair, answer) that would take the turn past its token budget does
    not run: the turn goes to finish with the cost guard's message (agent/budget.py).
    guard: tools/sql/guard.py refuses injection, write and outside-the-database requests before any LM call.
    ⏸ interrupt(): the run pauses on its thread and resumes with `Command(resume=reply)`.

The context is `RunSettings` (plain JSON, what a LangGraph server sends) or a ready `AgentContext`
(what in-process callers pass); agent/runtime.py turns the first into the second once per process.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agent.nodes.answer import answer
from agent.nodes.approve import approve
from agent.nodes.clarify import clarify
from agent.nodes.execute import execute
from agent.nodes.finish import finish
from agent.nodes.generate import generate
from agent.nodes.guard import guard
from agent.nodes.repair import repair
from agent.nodes.retrieve import retrieve
from agent.nodes.rewrite import rewrite
from agent.nodes.safety import safety
from agent.runtime import RunSettings, agent_context
from agent.state import AgentState


def stopped(state: AgentState) -> bool:
    """The cost guard ended the turn before an LM step (agent/budget.py)."""
    return state.error_kind == "budget"


def after_guard(state: AgentState) -> Literal["rewrite", "finish"]:
    return "finish" if state.status == "refused" else "rewrite"


def after_rewrite(state: AgentState) -> Literal["retrieve", "clarify", "finish"]:
    if stopped(state):
        return "finish"
    return "clarify" if state.status == "clarify" else "retrieve"


def after_sql_step(state: AgentState) -> Literal["safety", "finish"]:
    """After generate or repair: the query goes to the policy, unless the budget stopped the step."""
    return "finish" if stopped(state) else "safety"


def after_clarify(state: AgentState) -> Literal["retrieve", "guard"]:
    # A reply that chose no candidate is the user's next question: its turn starts over, guard first.
    return "retrieve" if state.standalone_question else "guard"


def _can_repair(state: AgentState, runtime: Runtime) -> bool:
    # Read per question, not frozen into the compiled graph: one graph serves every configuration.
    return state.repairs < agent_context(runtime.context).settings.limits.max_repair_attempts


def after_safety(state: AgentState, runtime: Runtime) -> Literal["execute", "approve", "repair", "finish"]:
    if state.error is None:
        needs_approval = agent_context(runtime.context).settings.limits.approve_sql and not state.approved
        return "approve" if needs_approval else "execute"
    if state.status == "refused" or not _can_repair(state, runtime):
        return "finish"
    return "repair"


def after_approve(state: AgentState) -> Literal["safety", "finish"]:
    # Approved or edited, the query passes the policy once more (an edit is new SQL).
    return "finish" if state.status == "refused" else "safety"


def after_execute(state: AgentState, runtime: Runtime) -> Literal["answer", "repair", "finish"]:
    if state.error is None:
        return "answer"
    if state.status == "refused":
        return "finish"
    if _can_repair(state, runtime):
        return "repair"
    return "answer" if state.error_kind == "empty_result" else "finish"


def build_graph(checkpointer=None):
    graph = StateGraph(AgentState, context_schema=RunSettings)
    graph.add_node("guard", guard)
    graph.add_node("rewrite", rewrite)
    graph.add_node("clarify", clarify)
    graph.add_node("retrieve", retrieve)
    graph.add_node("generate", generate)
    graph.add_node("safety", safety)
    graph.add_node("approve", approve)
    graph.add_node("execute", execute)
    graph.add_node("repair", repair)
    graph.add_node("answer", answer)
    graph.add_node("finish", finish)

    graph.add_edge(START, "guard")
    graph.add_conditional_edges("guard", after_guard)
    graph.add_conditional_edges("rewrite", after_rewrite)
    graph.add_conditional_edges("clarify", after_clarify)
    graph.add_edge("retrieve", "generate")
    graph.add_conditional_edges("generate", after_sql_step)
    graph.add_conditional_edges("safety", after_safety)
    graph.add_conditional_edges("approve", after_approve)
    graph.add_conditional_edges("execute", after_execute)
    graph.add_conditional_edges("repair", after_sql_step)
    graph.add_edge("answer", END)
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name="sqlagent")


# The compiled graph is the module's export (langgraph.json points here).
graph = build_graph()
