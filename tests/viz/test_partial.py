"""partial_tree: the tasks an unfinished record's streams hold, with their statuses."""

from __future__ import annotations

from tim.engine.record import EvictionRecord, RunRecord, StreamRecord
from tim.result import pruned_owners
from tim.tree import TaskStatus, get_format
from tim.viz import load_run, partial_tree


def _thread2(text: str, error: str | None = None) -> RunRecord:
    rec = RunRecord("thread2", "none", "shift", [1])
    rec.streams[()] = StreamRecord((), text=text, error=error)
    return rec


def test_field_being_written_shows_its_decoded_start():
    tree = partial_tree(_thread2('{"reasoning": [{"thought": "a\\"quoted\\" \\u00e9t\\u00'))
    task = tree.reasoning[0]
    assert task.thought == 'a"quoted" ét' and task.status is TaskStatus.RUNNING
    assert tree.answer is None


def test_closed_tasks_are_done_and_open_ones_running():
    text = ('{"reasoning": [{"thought": "t0", "tooluse": null, "subtasks": null, '
            '"conclusion": "c0"}, {"thought": "t1", "tooluse": {"tool_name": "calc", '
            '"parameters": {"a": 1}')
    tree = partial_tree(_thread2(text))
    first, second = tree.reasoning
    assert (first.status, first.conclusion) == (TaskStatus.DONE, "c0")
    assert second.status is TaskStatus.RUNNING
    assert second.tooluse.tool_name == "calc" and second.tooluse.tool_result is None


def test_stream_error_marks_the_innermost_open_task():
    text = '{"reasoning": [{"thought": "t", "tooluse": null, "subtasks": [{"thought": "x'
    tree = partial_tree(_thread2(text, error="stream []: malformed output at offset 9"))
    assert tree.reasoning[0].status is TaskStatus.RUNNING
    inner = tree.reasoning[0].subtasks[0]
    assert inner.status is TaskStatus.ERROR and "malformed" in inner.error


def test_malformed_text_is_an_error_on_its_task():
    tree = partial_tree(_thread2('{"reasoning": [{"thought": "t", "tooluse": 5, '))
    assert tree.reasoning[0].status is TaskStatus.ERROR
    assert "expected" in tree.reasoning[0].error


def test_parallel_planned_children_without_streams_are_pending():
    fmt = get_format("parallel")
    rec = RunRecord("parallel", "buffer:0", "shift", [1])
    root = '{"reasoning": [{"title": "A"}, {"title": "B"}]'
    rec.streams[()] = StreamRecord((), text=root)
    rec.streams[(0,)] = StreamRecord((0,), token_ids=[1, 2, 3],
                                     text=fmt.child_header("A") + "half")
    tree = partial_tree(rec)
    a, b = tree.reasoning
    assert (a.title, a.status, a.thought, a.num_tokens) == ("A", TaskStatus.RUNNING, "half", 3)
    assert (b.title, b.status) == ("B", TaskStatus.PENDING)


def test_nothing_written_gives_none():
    assert partial_tree(_thread2('{"reason')) is None


def test_pruned_follows_non_deferred_evictions():
    rec = _thread2("")
    rec.evictions = [EvictionRecord(3, (), (0,), 10, 10, 0),
                     EvictionRecord(4, (), (1,), 10, 10, 0, deferred=True),
                     EvictionRecord(5, (), (2,), 0, 0, 0)]
    assert pruned_owners(rec) == {(0,)}


def test_partial_tree_of_a_finished_run_equals_its_tree(parallel_path, thread2_path):
    for path in (parallel_path, thread2_path):
        view = load_run(path)
        assert partial_tree(view.record) == view.tree
