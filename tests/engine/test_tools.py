"""Tools inside the runtime: schema-valid calls, results forced into the stream, error results."""

from __future__ import annotations

import json
import time

import pytest

from tim.engine.choosers import TextReplay
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.sampler import SamplingParams
from tim.models import tiny_model
from tim.result import Result

CALLS: list[dict] = []


def add(a: int, b: int) -> int:
    """Add two integers."""
    CALLS.append({"a": a, "b": b})
    return a + b


def explode(x: int) -> int:
    """Always fails."""
    raise RuntimeError("kaboom")


def hang(x: int) -> int:
    """Never returns in time."""
    time.sleep(5)
    return x


def opaque(x: int) -> object:
    """Returns something JSON cannot hold."""
    return object()


@pytest.fixture(scope="module")
def lm():
    return tiny_model("qwen3")


def test_noise_model_calls_a_tool_with_schema_valid_arguments(lm):
    CALLS.clear()
    found = False
    for seed in range(12):
        engine = Engine(lm.model, lm.tokenizer, EngineConfig(
            format="thread2", max_depth=1, max_fanout=2, max_string_chars=4,
            max_new_tokens=3000), tools=[add])
        record = engine.run(lm.tokenizer.encode("Q", add_special_tokens=False),
                            sampling=SamplingParams(temperature=1.0, seed=seed))
        tree = Result.of(record).tree
        assert record.error is None and tree is not None
        for _, task in tree.walk():
            if task.tooluse is not None:
                found = True
                params = task.tooluse.parameters
                assert task.tooluse.tool_name == "add" and set(params) == {"a", "b"}
                assert task.tooluse.tool_result == params["a"] + params["b"]
                text = record.streams[()].text
                assert f'"tool_result": {params["a"] + params["b"]}' in text
        if found and seed >= 2:
            break
    assert found, "no seed made a tool call"
    assert CALLS and all(isinstance(c["a"], int) and isinstance(c["b"], int) for c in CALLS)


def tool_run(lm, tool, params):
    call = json.dumps({"tool_name": tool.__name__, "parameters": params})
    # the replayed text stops at the parameters' '}'; the runtime forces the result, then
    # the replay resumes after it with the rest of the task
    head = '{"reasoning": [{"thought": "t", "tooluse": ' + call[:-1]
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(format="thread2", structure="free",
                                                         max_new_tokens=2000),
                    tools=[tool], tool_timeout_s=0.3)
    chooser = _UntilTool(head, lm.tokenizer)
    return engine.run(lm.tokenizer.encode("Q", add_special_tokens=False), chooser=chooser)


class _UntilTool(TextReplay):
    """Replays the text up to the tool call, then whatever the runtime forced, then the tail."""

    TAIL = ', "subtasks": null, "conclusion": "c"}], "answer": "a"}'

    def __init__(self, head, tokenizer):
        super().__init__({(): head}, tokenizer)
        self.head = head

    def _next_token(self, stream):
        text = stream.detok.text
        if len(text) > len(self.head) and self.texts[()] == self.head:
            self.texts[()] = text + self.TAIL  # the forced result is in: finish after it
        return super()._next_token(stream)


@pytest.mark.parametrize(("tool", "message"), [
    (explode, "RuntimeError: kaboom"),
    (hang, "timed out"),
    (opaque, "not JSON serializable"),
])
def test_tool_faults_become_error_results_and_the_run_goes_on(lm, tool, message):
    record = tool_run(lm, tool, {"x": 1})
    assert record.error is None
    tree = Result.of(record).tree
    result = tree.reasoning[0].tooluse.tool_result
    assert isinstance(result, dict) and message in result["error"]
    assert tree.answer == "a"
    forced = [t for t, f in zip(record.streams[()].token_ids, record.streams[()].forced,
                                strict=True) if f]
    assert message in lm.tokenizer.decode(forced)
