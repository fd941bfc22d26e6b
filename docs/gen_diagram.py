"""Regenerate the graph diagram in docs/architecture.md from the compiled graph (no network).

    .venv/bin/python docs/gen_diagram.py          # rewrite the diagram between the markers
    .venv/bin/python docs/gen_diagram.py --check  # exit 1 if the committed diagram is out of date (CI)
    .venv/bin/python docs/gen_diagram.py --print  # print the Mermaid text only

Uses `draw_mermaid()` (text). `draw_mermaid_png()` calls a web service: do not use it here.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "architecture.md"
START, END = "<!-- graph:start (docs/gen_diagram.py) -->", "<!-- graph:end -->"


def mermaid() -> str:
    from agent.graph import graph

    return graph.get_graph().draw_mermaid().strip()


def updated(text: str, diagram: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{DOC}: the markers {START!r} and {END!r} are missing")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n```mermaid\n{diagram}\n```\n{END}{tail}"


def main(argv: list[str]) -> int:
    diagram = mermaid()
    if "--print" in argv:
        print(diagram)
        return 0
    text = DOC.read_text(encoding="utf-8")
    new = updated(text, diagram)
    if "--check" in argv:
        if new != text:
            print(
                f"{DOC.relative_to(ROOT)} is out of date: run .venv/bin/python docs/gen_diagram.py",
                file=sys.stderr,
            )
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote the diagram into {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
