"""The modules of custpipe.matching import one another one way only: no import circle."""

import ast
from pathlib import Path

import custpipe.matching

PACKAGE = Path(custpipe.matching.__file__).parent


def import_graph() -> dict[str, set[str]]:
    """module -> the custpipe.matching modules it imports (at any depth of its code)."""
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name in modules:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "custpipe.matching":
                    targets |= {a.name for a in node.names}
                elif node.module.startswith("custpipe.matching."):
                    targets.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                targets |= {
                    a.name.split(".")[2]
                    for a in node.names
                    if a.name.startswith("custpipe.matching.")
                }
        graph[name] = targets & modules - {name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (as a path that returns to its start), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_matching_package_has_no_import_circle():
    graph = import_graph()
    assert {"consolidate", "model", "review", "workspace"} <= set(graph)
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_a_circle_through_a_lazy_import():
    assert cycle({"consolidate": {"model"}, "model": {"consolidate"}}) == [
        "consolidate",
        "model",
        "consolidate",
    ]
    assert cycle({"a": {"b"}, "b": set()}) is None
