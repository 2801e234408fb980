"""load_run / as_view: run files, plain Thread-2 trees, and files that are not either."""

from __future__ import annotations

import json

import pytest

from tim.errors import TraceError
from tim.result import Result
from tim.tree import TaskStatus, TaskTree
from tim.viz import RunView, as_view, load_run


def test_run_file_gives_tree_record_and_stats(parallel_path):
    view = load_run(parallel_path)
    assert view.answer == "403" and view.error is None and not view.partial
    assert view.question == "What is 17*23 + 3*4?"
    assert view.record.format == "parallel" and len(view.record.forks) == 2
    assert view.stats.num_forks == 2 and view.stats.tokens_evicted > 0
    pruned = {path: task.pruned for path, task in view.tree.walk()}
    assert pruned == {(0,): False, (0, 0): True, (0, 1): True, (1,): False}
    assert view.tree.task_at((0, 1)).tooluse.tool_result == 12


def test_result_record_and_path_give_the_same_view(parallel_path):
    result = Result.load(parallel_path)
    from_result, from_path = as_view(result), as_view(str(parallel_path))
    from_record = as_view(result.record)
    assert from_result.tree == from_path.tree == from_record.tree
    assert from_result.stats == from_record.stats
    assert as_view(from_result) is from_result


def test_plain_thread2_file(tmp_path):
    doc = {"reasoning": [{"title": "t", "thought": "a", "tooluse": None,
                          "subtasks": [{"thought": "b", "conclusion": "c"}], "conclusion": "d"}],
           "answer": "42"}
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(doc))
    view = load_run(path)
    assert view.record is None and view.stats is None and view.answer == "42"
    assert view.tree == TaskTree.from_json(doc)


def test_unfinished_run_gets_a_partial_tree(unfinished_path):
    view = load_run(unfinished_path)
    assert view.partial and view.answer is None
    assert "max_new_tokens" in view.error
    status = {path: task.status for path, task in view.tree.walk()}
    assert status[(1,)] is TaskStatus.DONE
    assert status[(0,)] is TaskStatus.RUNNING and status[(0, 0)] is TaskStatus.RUNNING


def _run_json(parallel_path) -> dict:
    return json.loads(parallel_path.read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("record"), "damaged"),
    (lambda d: d.update(tim_run=99), "version 99"),
    (lambda d: d["record"]["timeline"][3].pop("live_tokens"), r"timeline\[3\]\.live_tokens"),
    (lambda d: d["record"]["streams"][1].update(path=["x"]), r"streams\[1\]\.path"),
    (lambda d: d["record"]["streams"][1].update(path=7), "damaged"),
    (lambda d: d["record"]["streams"][1]["forced"].pop(), "forced"),
    (lambda d: d["record"]["streams"][1]["token_ids"].append(-3), r"streams\[1\]\.token_ids"),
    (lambda d: d["record"]["streams"][1].update(path=[5, 5]), "no parent stream"),
    (lambda d: d["record"]["evictions"][0]["ranges"][0].__setitem__(2, 10**6),
     r"evictions\[0\]\.ranges\[0\]"),
    (lambda d: d["record"]["evictions"][0].update(fed=10**6), r"evictions\[0\]\.fed"),
    (lambda d: d["record"]["joins"][0].update(child=[9, 9]), r"joins\[0\]\.child"),
    (lambda d: d["record"]["evictions"].append(d["record"]["evictions"][0] | {"step": 0}),
     "steps go backwards"),
    (lambda d: d["record"]["forks"][0].update(step="soon"), "fork"),
    (lambda d: d["record"]["evictions"][0].update(list_owner=[-1]), "eviction"),
    (lambda d: d["record"]["streams"].append("stream"), "damaged"),
    (lambda d: d["tree"]["reasoning"][0].update(thought=5), "damaged"),
    (lambda d: d["stats"].update(bogus=1), "damaged"),
    (lambda d: d["stats"].update(num_steps=d["stats"]["num_steps"] + 1), "disagree"),
])
def test_hand_edited_run_file_raises_trace_error(tmp_path, parallel_path, edit, message):
    data = _run_json(parallel_path)
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TraceError, match=message):
        load_run(path)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_run_file_raises_trace_error(tmp_path, parallel_path, fraction):
    text = parallel_path.read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: int(len(text) * fraction)])
    with pytest.raises(TraceError, match="cut.json"):
        load_run(path)


@pytest.mark.parametrize("content, message", [
    ("[1, 2, 3]", "neither a tim run file"),
    ('{"hello": 1}', "neither a tim run file"),
    ('{"reasoning": [{"thought": 1, "conclusion": "c"}]}', "reasoning\\[0\\].thought"),
    ('{"reasoning": [], "answer": NaN}', "answer: expected string"),
])
def test_other_json_raises_trace_error(tmp_path, content, message):
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(TraceError, match=message):
        load_run(path)


def test_unreadable_files_raise_trace_error(tmp_path):
    with pytest.raises(TraceError, match="cannot read"):
        load_run(tmp_path / "missing.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceError):
        load_run(binary)


def test_as_view_refuses_other_objects():
    with pytest.raises(TypeError, match="cannot visualise a int"):
        as_view(5)
    assert isinstance(as_view(TaskTree([], "a")), RunView)
