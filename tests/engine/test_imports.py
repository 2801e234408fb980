"""The engine's import graph has no cycles, and the cache never imports the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2] / "tim"


def imports_of(path: Path) -> set[str]:
    """Modules ``path`` imports at run time (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("tim.")}


def module_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph.add_node(name)
        for target in imports_of(path):
            graph.add_edge(name, target)
    return graph


def test_no_import_cycles_inside_the_engine():
    engine = module_graph().subgraph(n for n in module_graph() if n.startswith("tim.engine"))
    assert len(engine) >= 12
    assert list(nx.simple_cycles(engine)) == []


def test_the_cache_does_not_import_the_engine():
    graph = module_graph()
    cache = [n for n in graph if n.startswith("tim.cache")]
    assert cache and not any(t.startswith("tim.engine") for n in cache for t in graph[n])
