"""Graphviz drawings: labels, colours, fork boxes, tool shapes, escaping, a missing `dot`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.viz.conftest import HOSTILE, hostile, needs_dot
from tim.errors import TimError
from tim.tree import TaskStatus
from tim.viz import dot_source, render_graphviz
from tim.viz.dot import PRUNED_COLORS, STATUS_COLORS, TOOL_COLORS

SVG = "{http://www.w3.org/2000/svg}"


def _nodes(svg_path) -> dict[str, ET.Element]:
    """Graphviz SVG groups by their <title> (the DOT node or cluster name)."""
    root = ET.parse(svg_path).getroot()
    return {g.find(f"{SVG}title").text: g for g in root.iter(f"{SVG}g")
            if g.get("class") in ("node", "cluster")}


def _texts(group: ET.Element) -> str:
    return "\n".join(t.text or "" for t in group.iter(f"{SVG}text"))


def _fill(group: ET.Element) -> str:
    shape = next(e for e in group if e.tag in (f"{SVG}path", f"{SVG}polygon"))
    return shape.get("fill")


@needs_dot
def test_svg_of_a_real_run(tmp_path, parallel_path):
    out = render_graphviz(parallel_path, tmp_path / "tree.svg")
    nodes = _nodes(out)
    assert "compute B" in _texts(nodes["t_0_1"]) and "✂ pruned" in _texts(nodes["t_0_1"])
    assert "175 tok" in _texts(nodes["t_0"]) and "What is 17*23" in _texts(nodes["root"])
    assert _fill(nodes["t_0"]) == STATUS_COLORS[TaskStatus.DONE][0]
    assert _fill(nodes["t_0_0"]) == _fill(nodes["t_0_1"]) == PRUNED_COLORS[0]
    tool = nodes["tool_t_0_1"]
    assert _fill(tool) == TOOL_COLORS[0] and 'calc(op="mul", a=3, b=4) → 12' in _texts(tool)
    clusters = {_texts(g) for name, g in nodes.items() if name.startswith("cluster")}
    assert clusters == {"fork at step 52 · 2 workers", "fork at step 158 · 2 workers"}


def test_fork_boxes_hold_the_concurrent_siblings(parallel_path):
    src = dot_source(parallel_path)
    second = src[src.index("subgraph cluster_1"):]
    second = second[: second.index("}")]
    assert "t_0_0 [" in second and "t_0_1 [" in second and "t_1 [" not in second
    assert "shape=tab" in second  # the tool node sits with its task


def test_statuses_have_their_colors(unfinished_path):
    src = dot_source(unfinished_path)
    running, _ = STATUS_COLORS[TaskStatus.RUNNING]
    line = next(x for x in src.splitlines() if x.strip().startswith("t_0_0 ["))
    assert f'fillcolor="{running}"' in line


def test_sequential_subtask_lists_are_boxed_without_a_record(hostile_tree):
    assert "subtasks (in sequence)" in dot_source(hostile_tree)


@needs_dot
def test_hostile_labels_stay_text(tmp_path, hostile_tree):
    out = render_graphviz(hostile_tree, tmp_path / "hostile.svg")
    root = ET.parse(out).getroot()  # still well-formed XML
    assert sum(g.get("class") == "node" for g in root.iter(f"{SVG}g")) == 5  # root, 3 tasks, tool
    tags = {e.tag.removeprefix(SVG) for e in root.iter()}
    assert tags <= {"svg", "g", "title", "text", "path", "polygon", "ellipse", "polyline"}
    text = "\n".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "<script>alert(1)</script>" in text and "</style><script>" in text
    assert "\\l \\N" in text  # DOT escapes printed literally


@needs_dot
def test_png_output(tmp_path, thread2_path):
    out = render_graphviz(thread2_path, tmp_path / "tree.png", format="png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_missing_dot_says_how_to_install(tmp_path, monkeypatch, parallel_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TimError, match="apt-get install graphviz"):
        render_graphviz(parallel_path, tmp_path / "tree.svg")
    assert not (tmp_path / "tree.svg").exists()


def test_bad_format(tmp_path, parallel_path):
    with pytest.raises(ValueError, match="'gif'"):
        render_graphviz(parallel_path, tmp_path / "t.gif", format="gif")


def test_hostile_text_cannot_break_the_dot_source(hostile_tree):
    src = dot_source(hostile_tree)
    assert src.count(" [label=") == 5  # root, 3 tasks and 1 tool
    assert all(h.replace("\u2028", " ").replace("\u2029", " ")[:8] in src.replace("\\\\", "\\")
               for h in HOSTILE)


@needs_dot
def test_graphviz_reads_hostile_labels_as_text(hostile_tree):
    import json

    import graphviz

    # dot itself parses the source: exactly the nodes and edges we made, nothing injected
    parsed = json.loads(graphviz.Source(dot_source(hostile_tree)).pipe(format="json"))
    labels = {o["name"]: o["label"] for o in parsed["objects"] if "nodes" not in o}
    assert set(labels) == {"root", "t_0", "t_1", "t_0_0", "tool_t_0_0"}
    assert len(parsed["edges"]) == 4
    # ... and each label, read as dot reads it, holds its field's text: quotes and
    # backslashes are text, not line breaks (\n \l \r) or names (\N \G ...)
    first_line = {name: _dot_text(label).split("\n")[0] for name, label in labels.items()}
    assert first_line["t_0"].startswith(hostile(10)[:30])  # a title
    assert first_line["t_1"].startswith(hostile(11)[:30])  # a thought (no title)
    assert first_line["t_0_0"].startswith(hostile(6)[:30])  # \l and \N stay text
    assert first_line["tool_t_0_0"].startswith(f"⚙ {hostile(0)}(")
    assert _dot_text(labels["root"]).endswith(f"answer: {hostile(13)}")


def _dot_text(label: str) -> str:
    """What Graphviz shows for a DOT escString: escapes read, names (``\\N``, ...) as NUL."""
    import re

    def read(match: re.Match) -> str:
        char = match.group(1)
        return "\n" if char in "nlr" else char if char in '\\"' else "\0"

    return re.sub(r"\\(.)", read, label)
