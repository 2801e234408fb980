"""tim/tree/graph.py: networkx round trips."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.errors import FormatError
from tim.tree import Task, TaskTree


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_networkx_round_trip_is_exact(strategies, data):
    tree = data.draw(strategies.trees(meta=True))
    graph = tree.to_networkx()
    assert TaskTree.from_networkx(graph) == tree
    assert graph.number_of_nodes() == tree.num_tasks + 1
    assert nx.is_arborescence(graph)
    assert graph.nodes["root"]["answer"] == tree.answer
    for path, task in tree.walk():
        key = ".".join(map(str, path))
        attrs = graph.nodes[key]
        assert (attrs["thought"], attrs["conclusion"], attrs["title"]) == (
            task.thought, task.conclusion, task.title)
        assert attrs["has_subtasks"] == (task.subtasks is not None)
        parent = ".".join(map(str, path[:-1])) or "root"
        assert graph.edges[parent, key]["order"] == path[-1]
    # node keys do not matter: a relabelled graph gives the same tree
    relabelled = nx.relabel_nodes(graph, {n: f"n{i}" for i, n in enumerate(graph.nodes)})
    assert TaskTree.from_networkx(relabelled) == tree
    # and the graph of the rebuilt tree matches the original, attributes included
    again = TaskTree.from_networkx(graph).to_networkx()
    assert nx.utils.graphs_equal(again, graph)


def test_graph_does_not_alias_the_tree():
    tree = TaskTree([Task("a", "b")], "x")
    tree.reasoning[0].tooluse = None
    graph = tree.to_networkx()
    graph.nodes["0"]["thought"] = "changed"
    assert tree.reasoning[0].thought == "a"


def _graph():
    return TaskTree([Task("a", "b", subtasks=[Task("c", "d"), Task("e", "f")])], "x").to_networkx()


def _two_roots(g):
    g.add_node("other", kind="root")


def _cycle(g):
    g.add_edge("0.1", "0", order=1)


def _bad_order(g):
    g.edges["0", "0.1"]["order"] = 5


def _no_subtasks(g):
    g.nodes["0"]["has_subtasks"] = False


def _missing_attr(g):
    del g.nodes["0.0"]["thought"]


def _bad_value(g):
    g.nodes["0.0"]["thought"] = 5


def _orphan(g):
    g.add_node("z", **dict(g.nodes["0.0"]))


@pytest.mark.parametrize("mutate, message", [
    (_two_roots, "expected exactly one node with kind='root', found 2"),
    (_cycle, "node '0': expected one parent, has 2"),
    (_bad_order, "node '0': child 'order' values are not 0..1"),
    (_no_subtasks, "node '0': has children but has_subtasks is false"),
    (_missing_attr, "node '0.0': not a task node (missing ['thought'])"),
    (_bad_value, "node '0.0': Task.thought must be str"),
    (_orphan, "node 'z': expected one parent, has 0"),
])
def test_malformed_graphs_name_the_node(mutate, message):
    graph = _graph()
    mutate(graph)
    with pytest.raises(FormatError) as info:
        TaskTree.from_networkx(graph)
    assert str(info.value).startswith(message)


def test_not_a_digraph():
    with pytest.raises(FormatError, match="Graph"):
        TaskTree.from_networkx(nx.Graph())
