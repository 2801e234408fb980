"""Inspect a task tree with networkx: depth, fan-out, leaves, and a round trip.

    python examples/inspect_networkx.py
"""

import os

import networkx as nx

import tim
from tim.tree import TaskTree

MODEL = os.environ.get("TIM_EXAMPLE_MODEL", "smollm2-135m")

rt = tim.Runtime(model=MODEL, format="parallel", max_depth=2, max_fanout=3)
result = rt.reason("Compare cats and dogs as pets.", max_new_tokens=300)
tree = result.tree
if tree is None:  # a run that ran out of tokens has no whole tree
    tree = TaskTree([tim.tree.Task("no tree", "-", title="placeholder")], answer="-")
    print("run ended early:", result.error)

graph = tree.to_networkx()
leaves = [n for n in graph if graph.out_degree(n) == 0]
print(f"{graph.number_of_nodes() - 1} tasks, {len(leaves)} leaves, "
      f"depth {nx.dag_longest_path_length(graph)}")
for node, data in graph.nodes(data=True):
    if node != "root":
        print(f"  {node}: {data.get('title')!r}")
assert TaskTree.from_networkx(graph) == tree  # the graph holds the whole tree
