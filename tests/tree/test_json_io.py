"""tim/tree/json_io.py: TIM Thread-2 JSON round trips and located errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.errors import FormatError
from tim.tree import Task, TaskStatus, TaskTree, ToolUse


def _oracle_json(task: Task) -> dict:  # the TIM schema, written out by hand
    out = {"title": task.title} if task.title is not None else {}
    tooluse = task.tooluse and {"tool_name": task.tooluse.tool_name,
                                "parameters": task.tooluse.parameters,
                                "tool_result": task.tooluse.tool_result}
    subtasks = None if task.subtasks is None else [_oracle_json(t) for t in task.subtasks]
    return {**out, "thought": task.thought, "tooluse": tooluse, "subtasks": subtasks,
            "conclusion": task.conclusion}


@settings(deadline=None)
@given(data=st.data())
def test_plain_json_is_the_tim_schema_and_round_trips(strategies, data):
    tree = data.draw(strategies.trees())
    plain = tree.to_json()
    assert plain == {"reasoning": [_oracle_json(t) for t in tree.reasoning],
                     "answer": tree.answer}
    text = json.dumps(plain)  # through real JSON text, not just the dict
    assert TaskTree.from_json(text) == tree
    assert TaskTree.from_json(json.loads(text)) == tree


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_meta_round_trips_and_stays_out_of_plain_json(strategies, data):
    tree = data.draw(strategies.trees(meta=True))
    with_meta = tree.to_json(meta=True)
    assert TaskTree.from_json(json.dumps(with_meta)) == tree
    assert "_meta" not in set(_all_keys(tree.to_json()))
    for (_, task), obj in zip(tree.walk(), _task_dicts(with_meta["reasoning"]), strict=True):
        assert obj["_meta"] == {"node_id": task.node_id, "status": task.status.value,
                                "num_tokens": task.num_tokens, "pruned": task.pruned,
                                "error": task.error}


def _task_dicts(tasks):
    for t in tasks:
        yield t
        yield from _task_dicts(t["subtasks"] or [])


def _all_keys(plain):
    for t in _task_dicts(plain["reasoning"]):
        yield from t


def test_missing_optional_keys_take_defaults():
    tree = TaskTree.from_json({"reasoning": [{"thought": "t", "conclusion": "c",
                                              "tooluse": {"tool_name": "x", "parameters": {}},
                                              "_meta": {"status": "error"}}]})
    task = tree.reasoning[0]
    assert tree.answer is None and task.subtasks is None and task.title is None
    assert task.tooluse == ToolUse("x", {}, None) and task.status is TaskStatus.ERROR


def _doc(**task_changes):
    task = {"thought": "t", "tooluse": None, "subtasks": None, "conclusion": "c"}
    inner = {**task, "subtasks": [{**task, **task_changes}]}
    return {"reasoning": [task, task, inner], "answer": "a"}


@pytest.mark.parametrize("data, message", [
    (_doc(conclusion=3), "reasoning[2].subtasks[0].conclusion: expected string, got integer"),
    (_doc(thought=None), "reasoning[2].subtasks[0].thought: expected string, got null"),
    (_doc(title=["x"]), "reasoning[2].subtasks[0].title: expected string, got array"),
    (_doc(subtasks={}), "reasoning[2].subtasks[0].subtasks: expected array, got object"),
    (_doc(subtasks=[1]), "reasoning[2].subtasks[0].subtasks[0]: expected object, got integer"),
    (_doc(tooluse="x"), "reasoning[2].subtasks[0].tooluse: expected object, got string"),
    (_doc(tooluse={"tool_name": "x", "parameters": []}),
     "reasoning[2].subtasks[0].tooluse.parameters: expected object, got array"),
    (_doc(tooluse={"tool_name": True, "parameters": {}}),
     "reasoning[2].subtasks[0].tooluse.tool_name: expected string, got boolean"),
    (_doc(tooluse={"parameters": {}}), "reasoning[2].subtasks[0].tooluse: missing key 'tool_name'"),
    (_doc(extra=1), "reasoning[2].subtasks[0]: unexpected key 'extra'"),
    (_doc(_meta={"status": "odd"}), "reasoning[2].subtasks[0]._meta.status: expected one of"),
    (_doc(_meta={"num_tokens": -2}), "reasoning[2].subtasks[0]._meta.num_tokens: expected >= 0"),
    (_doc(_meta={"num_tokens": 1.5}),
     "reasoning[2].subtasks[0]._meta.num_tokens: expected integer, got number"),
    (_doc(_meta={"pruned": 1}), "reasoning[2].subtasks[0]._meta.pruned: expected boolean"),
    (_doc(_meta={"nodeid": "x"}), "reasoning[2].subtasks[0]._meta: unexpected key 'nodeid'"),
    ({"reasoning": {}}, "reasoning: expected array, got object"),
    ({"answer": "a"}, "<root>: missing key 'reasoning'"),
    ({"reasoning": [], "answer": 1.5}, "answer: expected string, got number"),
    ([], "<root>: expected object, got array"),
    ('{"reasoning": [', "invalid JSON"),
    ('{"reasoning": [], "answer": NaN}', "invalid JSON"),
    ("[" * 100_000, "invalid JSON"),
])
def test_bad_json_names_the_path(data, message):
    with pytest.raises(FormatError) as info:
        TaskTree.from_json(data)
    assert str(info.value).startswith(message)
