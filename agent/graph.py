"""The agent graph, top to bottom.

    guard ─┬─ refused ─────────────────────────────────────────────────────────────┐
           └─ rewrite ─┬─ clarify? ────────────────────────────────────────────────┤
                       └─ retrieve ─ generate ─ safety ─┬─ refused ────────────────┤
                                                        ├─ rejected ─ repair ─┐    │
                                                        └─ execute ─┬─ answer │    ├─ finish
                                                                    ├─ repair ┘    │
                                                                    └─ failed ─────┘
    repair ─ safety (the loop is bounded by limits.max_repair_attempts)
    guard: tools/sql/guard.py refuses injection, write and outside-the-database requests before any LM call.
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agent.context import AgentContext
from agent.nodes.answer import answer
from agent.nodes.execute import execute
from agent.nodes.finish import finish
from agent.nodes.generate import generate
from agent.nodes.guard import guard
from agent.nodes.repair import repair
from agent.nodes.retrieve import retrieve
from agent.nodes.rewrite import rewrite
from agent.nodes.safety import safety
from agent.state import AgentState


def after_guard(state: AgentState) -> Literal["rewrite", "finish"]:
    return "finish" if state.status == "refused" else "rewrite"


def after_rewrite(state: AgentState) -> Literal["retrieve", "finish"]:
    return "finish" if state.status == "clarify" else "retrieve"


def _can_repair(state: AgentState, runtime: Runtime[AgentContext]) -> bool:
    # Read per question, not frozen into the compiled graph: one graph serves every configuration.
    return state.repairs < runtime.context.settings.limits.max_repair_attempts


def after_safety(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["execute", "repair", "finish"]:
    if state.error is None:
        return "execute"
    if state.status == "refused" or not _can_repair(state, runtime):
        return "finish"
    return "repair"


def after_execute(state: AgentState, runtime: Runtime[AgentContext]) -> Literal["answer", "repair", "finish"]:
    if state.error is None:
        return "answer"
    if state.status == "refused":
        return "finish"
    if _can_repair(state, runtime):
        return "repair"
    return "answer" if state.error_kind == "empty_result" else "finish"


def build_graph(checkpointer=None):
    graph = StateGraph(AgentState, context_schema=AgentContext)
    graph.add_node("guard", guard)
    graph.add_node("rewrite", rewrite)
    graph.add_node("retrieve", retrieve)
    graph.add_node("generate", generate)
    graph.add_node("safety", safety)
    graph.add_node("execute", execute)
    graph.add_node("repair", repair)
    graph.add_node("answer", answer)
    graph.add_node("finish", finish)

    graph.add_edge(START, "guard")
    graph.add_conditional_edges("guard", after_guard)
    graph.add_conditional_edges("rewrite", after_rewrite)
    graph.add_edge("retrieve", "generate")
    graph.add_edge("generate", "safety")
    graph.add_conditional_edges("safety", after_safety)
    graph.add_conditional_edges("execute", after_execute)
    graph.add_edge("repair", "safety")
    graph.add_edge("answer", END)
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, name="sqlagent")


# The compiled graph is the module's export (langgraph.json points here).
graph = build_graph()
