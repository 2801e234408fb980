"""A chat request checked into a RunPlan, and its prompt: the messages as tim reads them and
each refusal naming what to change."""

from __future__ import annotations

import math

import pytest

from tim.api import build_prompt
from tim.models import tiny_tokenizer
from tim.serve.config import ServeConfig
from tim.serve.prompt import chat_prompt_ids
from tim.serve.protocol import ChatRequest, RequestError, Turn, plan_request

CONFIG = ServeConfig(served_model="m", max_tokens=100, default_max_tokens=50, max_depth=3,
                     max_fanout=4, temperature=0.7, top_p=0.9, seed=5)


def plan(**fields):
    body = {"model": "m", "messages": [{"role": "user", "content": "2 + 2?"}], **fields}
    return plan_request(ChatRequest(**body), CONFIG)


def refusal(**fields) -> RequestError:
    with pytest.raises(RequestError) as caught:
        plan(**fields)
    return caught.value


def test_defaults_come_from_the_server():
    p = plan()
    assert (p.max_new_tokens, p.temperature, p.top_p, p.seed) == (50, 0.7, 0.9, None)
    assert (p.max_depth, p.max_fanout, p.stream, p.include_usage) == (3, 4, False, False)
    assert p.question == "2 + 2?" and p.system == ""


def test_the_request_overrides_within_the_limits():
    p = plan(max_tokens=10, max_completion_tokens=20, temperature=0, top_p=1, seed=3,
             stream=True, stream_options={"include_usage": True},
             tim={"max_depth": 1, "max_fanout": 2})
    assert (p.max_new_tokens, p.temperature, p.top_p, p.seed) == (20, 0, 1, 3)
    assert (p.max_depth, p.max_fanout, p.stream, p.include_usage) == (1, 2, True, True)


def test_messages_become_the_system_text_and_turns():
    p = plan(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use numbers."}]},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "text", "text": "2 +"}, {"type": "text",
                                                                       "text": "2?"}]},
    ])
    assert p.system == "Be brief.\n\nUse numbers."
    assert p.turns == (Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "2 +\n2?"))


@pytest.mark.parametrize("fields, status, param, message", [
    ({"model": "other"}, 404, "model", "this server serves 'm'"),
    ({"max_tokens": 101}, 400, "max_tokens", "at most 100"),
    ({"max_completion_tokens": 0}, 400, "max_completion_tokens", "must be at least 1"),
    ({"tim": {"max_depth": 4}}, 400, "tim.max_depth", "tim serve --max-depth"),
    ({"tim": {"max_fanout": 0}}, 400, "tim.max_fanout", "must be at least 1"),
    ({"temperature": math.nan}, 400, "temperature", "outside [0, 2]"),
    ({"top_p": 0}, 400, "top_p", "outside (0, 1]"),
    ({"n": 3}, 400, "n", "send n=1"),
    ({"tools": [{"type": "function"}]}, 400, "tools", "tim serve --tools"),
    ({"messages": [{"role": "tool", "content": "42"}]}, 400, "messages[0].role", "'tool'"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "messages[0].content[0]", "text only"),
    ({"messages": [{"role": "system", "content": "x"}]}, 400, "messages", "user's question"),
    ({"messages": [{"role": "user", "content": "  "}]}, 400, "messages[0].content", "empty"),
])
def test_each_refusal_names_the_field_and_what_to_send(fields, status, param, message):
    error = refusal(**fields)
    assert (error.status, error.param) == (status, param)
    assert message in error.message


def test_the_tim_extension_refuses_unknown_options():
    with pytest.raises(ValueError, match="max_width"):
        ChatRequest(model="m", messages=[{"role": "user", "content": "x"}],
                    tim={"max_width": 2})


def test_one_user_turn_gives_the_prompt_runtime_reason_gives():
    tok = tiny_tokenizer()
    turns = (Turn("user", "2 + 2?"),)
    assert chat_prompt_ids(tok, "Rules.", "", turns) == build_prompt(tok, "Rules.", "2 + 2?")
    tok.chat_template = None  # the plain-text prompt of a model without a template
    assert chat_prompt_ids(tok, "Rules.", "", turns) == build_prompt(tok, "Rules.", "2 + 2?")


def test_the_client_system_text_and_earlier_turns_are_in_the_prompt():
    tok = tiny_tokenizer()
    turns = (Turn("user", "hi"), Turn("assistant", "hello"), Turn("user", "2 + 2?"))
    text = tok.decode(chat_prompt_ids(tok, "Rules.", "Be brief.", turns))
    assert text.index("Rules.\n\nBe brief.") < text.index("hi") < text.index("hello") \
        < text.index("2 + 2?")
    assert text.endswith("<|im_start|>assistant\n")
