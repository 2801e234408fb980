"""docs/pruning.md runs, and its table of evictions is what the tracker does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tim.pruning import PruneTracker, get_rule

DOC = Path(__file__).resolve().parents[2] / "docs" / "pruning.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_doc_has_python_blocks() -> None:
    assert len(python_blocks(DOC.read_text(encoding="utf-8"))) >= 3


@pytest.mark.parametrize("index", [0, 1, 2])
def test_doc_python_blocks_run(index: int) -> None:
    block = python_blocks(DOC.read_text(encoding="utf-8"))[index]
    exec(compile(block, f"{DOC.name} block {index}", "exec"), {"__name__": "doc_example"})


def test_doc_quotes_the_spec_error_exactly() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    quoted = re.search(r"`ValueError: (invalid pruning rule .*?)`\.", text).group(1)
    with pytest.raises(ValueError) as info:
        get_rule("bufer:1")
    assert quoted == str(info.value)


def doc_table() -> dict[str, list[tuple[set[str], set[str]]]]:
    """Parse the 'list completed' table: per rule, (evicts, keeps) after each completion."""
    text = DOC.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| list completed"))
    specs = re.findall(r"`(buffer:\d+)`", header)
    rows = text.split(header, 1)[1].splitlines()[2:]
    table: dict[str, list] = {spec: [] for spec in specs}
    for row in rows:
        if not row.startswith("|"):
            break
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        for spec, cell in zip(specs, cells, strict=True):
            evicts, keeps = (
                {name for name in side.replace(",", " ").split() if name != "–"}
                for side in cell.split("→")
            )
            table[spec].append((evicts, keeps))
    return table


def replay(spec: str) -> list[tuple[set[str], set[str]]]:
    """The doc's tree, in one view: T1 [ T1.1, T1.2 [ T1.2.1, T1.2.2 ] ] T2 [ .. ] T3 [ . ]"""
    tracker = PruneTracker(get_rule(spec))
    tracker.add_view(0)
    names: dict[int, str] = {}
    steps = []

    def grow(name: str, items: list, parent_list: int | None) -> None:
        task = tracker.open_task(parent_list)
        if items is not None:
            lst = tracker.open_list(task, view=0)
            names[lst] = "L" + name.removeprefix("T").replace(".", "")
            for i, sub in enumerate(items, 1):
                grow(f"{name}.{i}", sub, lst)
            tracker.close_list(lst)
            evicted = {names[i] for plan in tracker.prune() for i in plan.now}
            kept = {names[info.id] for info in tracker.snapshot().completed_lists(0)}
            steps.append((evicted, kept))
        tracker.finish_task(task)

    grow("T1", [None, [None, None]], None)
    grow("T2", [None, None], None)
    grow("T3", [None], None)
    return steps


def test_doc_table_matches_the_tracker() -> None:
    table = doc_table()
    assert sorted(table) == ["buffer:0", "buffer:1", "buffer:2"]
    for spec, steps in table.items():
        assert replay(spec) == steps, spec
