"""``SamplingParams(tool_bias=b)``: a preference for calls at the ``tooluse`` choice only,
checked on a tokenizer whose tokens split the key in several ways and a model made to
prefer ``null`` there."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.sampler import SamplingParams, sample
from tim.engine.tool_bias import ToolBias, choice_tail, starts_call
from tim.models import tiny_model
from tim.models.tiny import tiny_tokenizer


def calc(a: int) -> int:
    """Returns a + 1."""
    return a + 1


@given(st.sampled_from(['"tooluse', '"tooluse"', '"tooluse":', '"tooluse": ', '"tooluse" :\n']),
       st.sampled_from([" {", "{", ' {"tool', " null", "null", "n", '"x"']))
def test_the_call_is_told_from_null_wherever_the_key_was_cut(written, next_text):
    # the reference: the text the token would complete, read as JSON's value after the key
    whole = written + next_text
    value = whole.partition(":")[2].lstrip() if whole.startswith('"tooluse"') else ""
    tail = choice_tail("{... " + written)
    assert tail is not None
    assert starts_call(tail, next_text) == value.startswith("{")


def test_no_choice_is_open_once_it_is_written_or_elsewhere():
    assert choice_tail('"tooluse": null, "subtasks"') is None
    assert choice_tail('"tooluse": {"tool_name"') is None
    assert choice_tail('{"title": "a", "thought": "') is None


class _Stream:
    def __init__(self, text: str) -> None:
        self.detok = type("Detok", (), {"text": text})()


def test_rows_bias_exactly_the_call_tokens_of_streams_at_the_choice():
    tok = tiny_tokenizer()
    bias = ToolBias(tok, 3.0)
    logits = torch.zeros(2, len(tok))
    rows = bias.rows([_Stream('"a": 1, "tooluse": '), _Stream('"thought": "x')], logits)
    assert rows is not None and rows.shape == (2, len(tok))
    assert rows[1].abs().sum() == 0  # the other stream is not at a choice
    assert rows[0].nonzero().flatten().tolist() == [ord("{")]  # bytes: only '{' starts a call
    assert rows[0, ord("{")] == 3.0
    assert bias.rows([_Stream('"thought": "x')], logits[:1]) is None


def test_sample_adds_the_bias_but_records_the_model_log_prob():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    bias = torch.tensor([[0.0, 5.0, 0.0]])
    out = sample(logits, SamplingParams(), [torch.Generator()], bias=bias)
    assert out.token_ids.tolist() == [1]  # 0 + 5 beats 2
    assert out.logprobs.item() == pytest.approx(torch.log_softmax(logits, -1)[0, 1].item())


def test_tool_bias_must_be_finite():
    with pytest.raises(ValueError, match="tool_bias must be a finite number"):
        SamplingParams(tool_bias=float("inf"))


def _first_task(tool_bias: float):
    """A greedy parallel run of a random model with a calculator offered: its first task's
    stream (the model alone would write null there)."""
    tok = tiny_tokenizer()
    lm = tiny_model("llama")
    engine = Engine(lm.model, tok, EngineConfig(format="parallel", max_depth=1, max_fanout=1,
                                                max_string_chars=4, max_new_tokens=700),
                    tools=[calc])
    record = engine.run(tok.encode("Q: 1 + 1?", add_special_tokens=False),
                        sampling=SamplingParams(tool_bias=tool_bias))
    return record.streams[(0,)]


def _squashed_value(text: str) -> str:
    """What the first task wrote for its tooluse, whitespace removed."""
    return "".join(text.partition('"tooluse"')[2].split()).removeprefix(":")


def test_a_bias_turns_the_choice_and_leaves_log_probs_alone():
    against, towards = _first_task(-50.0), _first_task(50.0)
    assert _squashed_value(against.text).startswith("null")
    assert _squashed_value(towards.text).startswith('{"tool_name":"calc"')
    # before the choice both runs wrote the same tokens, with the model's own log-probs
    # (the bias moves the choice, never what is recorded)
    choice = next(k for k in range(len(towards.token_ids))
                  if towards.token_ids[k] != against.token_ids[k])
    assert choice > 30
    assert towards.logprobs[:choice] == against.logprobs[:choice]
    assert towards.logprobs[choice] < 0 and towards.token_ids[choice] == ord("{")


def test_a_remote_server_refuses_tool_bias():
    from tim.engine.engine import default_chooser

    class Server:
        def chooser(self, sampling):  # an executor whose model samples for itself
            return object()

    with pytest.raises(ValueError, match="tool_bias needs tim's own sampler"):
        default_chooser(Server(), SamplingParams(tool_bias=1.0))
