"""TaskTree <-> ``networkx.DiGraph``.

Node keys are strings: ``"root"`` for the root and the dotted path for a task
(``"0"``, ``"0.1"``). Each node has ``kind`` (``"root"`` or ``"task"``); the root carries
``answer``; a task carries every :class:`~tim.tree.task.Task` field except ``subtasks``
(``title``, ``thought``, ``tooluse`` (a ``ToolUse`` or None), ``conclusion``, ``node_id``,
``status``, ``num_tokens``, ``pruned``, ``error``) plus ``path`` and ``has_subtasks``
(whether ``subtasks`` is a list, even an empty one). Edges go parent -> child with an
``order`` attribute, the child's index in its parent's list.
"""

from __future__ import annotations

import copy
from typing import Any

import networkx as nx

from tim.errors import FormatError
from tim.tree.task import Task, TaskPath, TaskTree

__all__ = ["tree_to_networkx", "tree_from_networkx", "ROOT"]

ROOT = "root"
_TASK_ATTRS = ("title", "thought", "tooluse", "conclusion", "node_id", "status", "num_tokens",
               "pruned", "error")


def node_key(path: TaskPath) -> str:
    """The graph key of the task at ``path``: ``"root"`` for ``()``, else ``"0.1.2"``."""
    return ".".join(map(str, path)) if path else ROOT


def tree_to_networkx(tree: TaskTree) -> nx.DiGraph:
    """Build the graph described in the module docstring.

    Examples
    --------
    >>> from tim.tree.task import Task, TaskTree
    >>> g = tree_to_networkx(TaskTree([Task("a", "b", subtasks=[Task("c", "d")])], "42"))
    >>> sorted(g.edges(data="order"))
    [('0', '0.0', 0), ('root', '0', 0)]
    >>> g.nodes["root"]["answer"], g.nodes["0.0"]["thought"]
    ('42', 'c')
    >>> tree_from_networkx(g) == TaskTree([Task("a", "b", subtasks=[Task("c", "d")])], "42")
    True
    """
    graph = nx.DiGraph()
    graph.add_node(ROOT, kind="root", answer=tree.answer)
    for path, task in tree.walk():
        attrs = {name: copy.deepcopy(getattr(task, name)) for name in _TASK_ATTRS}
        graph.add_node(node_key(path), kind="task", path=path,
                       has_subtasks=task.subtasks is not None, **attrs)
        graph.add_edge(node_key(path[:-1]), node_key(path), order=path[-1])
    return graph


def tree_from_networkx(graph: nx.DiGraph) -> TaskTree:
    """Rebuild the tree from a graph shaped like :func:`tree_to_networkx`'s output.

    Node keys may be anything (a relabelled graph works); the root is the one node with
    ``kind == "root"`` and children are ordered by the edges' ``order``.

    Raises
    ------
    tim.errors.FormatError
        Naming the node: no or several roots, a node with no or two parents, a cycle, a
        missing attribute, ``order`` values that are not 0..n-1, or children under a node
        whose ``has_subtasks`` is false.
    """
    if not isinstance(graph, nx.DiGraph):
        raise FormatError(f"expected a networkx.DiGraph, got {type(graph).__name__}")
    roots = [n for n, kind in graph.nodes(data="kind") if kind == "root"]
    if len(roots) != 1:
        raise FormatError(f"expected exactly one node with kind='root', found {len(roots)}")
    root = roots[0]
    for node in graph.nodes:
        if node != root and graph.in_degree(node) != 1:
            raise FormatError(f"node {node!r}: expected one parent, has {graph.in_degree(node)}")
    if graph.in_degree(root):
        raise FormatError(f"root node {root!r} has a parent")
    seen = {root}
    reasoning = [_task(graph, child, seen) for child in _children(graph, root)]
    if len(seen) != graph.number_of_nodes():
        stray = sorted(map(repr, set(graph.nodes) - seen))[:3]
        raise FormatError(f"nodes not reachable from the root: {', '.join(stray)}")
    return TaskTree(reasoning, graph.nodes[root].get("answer"))


def _children(graph: nx.DiGraph, node: Any) -> list:
    edges = list(graph.out_edges(node, data="order"))
    orders = sorted(order for _, _, order in edges if isinstance(order, int))
    if orders != list(range(len(edges))):
        raise FormatError(f"node {node!r}: child 'order' values are not 0..{len(edges) - 1}")
    return [child for _, child, _ in sorted(edges, key=lambda e: e[2])]


def _task(graph: nx.DiGraph, node: Any, seen: set) -> Task:
    if node in seen:
        raise FormatError(f"node {node!r} is reached twice (the graph has a cycle)")
    seen.add(node)
    attrs = graph.nodes[node]
    missing = [name for name in (*_TASK_ATTRS, "has_subtasks") if name not in attrs]
    if missing or attrs.get("kind") != "task":
        raise FormatError(f"node {node!r}: not a task node (missing {missing or ['kind']})")
    children = _children(graph, node)
    if children and not attrs["has_subtasks"]:
        raise FormatError(f"node {node!r}: has children but has_subtasks is false")
    subtasks = [_task(graph, c, seen) for c in children] if attrs["has_subtasks"] else None
    try:
        return Task(subtasks=subtasks,
                    **{name: copy.deepcopy(attrs[name]) for name in _TASK_ATTRS})
    except ValueError as e:
        raise FormatError(f"node {node!r}: {e}") from None
