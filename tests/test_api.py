"""The public surface: Runtime.reason / stream / cancel, Result save and load."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import tim
from tim.api import build_prompt
from tim.errors import TraceError
from tim.models import tiny_model


@pytest.fixture(scope="module")
def rt():
    return tim.Runtime(model=tiny_model("qwen3")[:2], format="parallel", max_depth=2,
                       max_fanout=2)


def test_reason_returns_a_valid_tree_and_stats(rt):
    rt.config = type(rt.config)(**{**rt.config.__dict__, "max_string_chars": 4})
    result = rt.reason("2 + 2?", max_new_tokens=2000, temperature=1.0)
    assert result.error is None and result.tree is not None
    assert result.stats.tokens_generated == result.record.num_generated > 0
    assert result.stats.num_forks >= 1 and result.answer == result.tree.answer


def test_result_round_trips_through_a_file_and_rejects_damage(rt, tmp_path):
    result = rt.reason("2 + 2?", max_new_tokens=80)
    path = tmp_path / "run.json"
    result.save(path)
    loaded = tim.Result.load(path)
    assert loaded.stats == result.stats and loaded.record.to_json() == result.record.to_json()
    text = path.read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(TraceError, match="cannot read run file"):
        tim.Result.load(tmp_path / "cut.json")
    data = json.loads(text)
    del data["record"]["streams"]
    (tmp_path / "edited.json").write_text(json.dumps(data))
    with pytest.raises(TraceError, match="damaged"):
        tim.Result.load(tmp_path / "edited.json")


def test_stream_yields_live_events_then_the_result(rt):
    items = list(rt.stream("2 + 2?", max_new_tokens=2000, temperature=1.0))
    events, result = items[:-1], items[-1]
    assert isinstance(result, tim.Result)
    kinds = {e.kind for e in events}
    assert {"token", "task_opened", "fork"} <= kinds
    root_text = "".join(e.detail for e in events if e.kind == "token" and e.stream == ())
    assert root_text == result.record.streams[()].text


def test_cancel_stops_the_run_and_frees_every_page(rt):
    def cancel_at_step_5(record):
        if record.num_steps == 5:
            rt.cancel()

    result = rt.reason("2 + 2?", max_new_tokens=100_000, temperature=1.0,
                       on_step=cancel_at_step_5)
    assert result.error == "cancelled"
    assert result.stats.num_steps == 5  # (the run's close() checked the pool)
    # the cancel went with that run
    assert rt.reason("2 + 2?", max_new_tokens=20).error != "cancelled"


def test_cancel_before_reason_cancels_it_before_its_first_step(rt):
    rt.cancel()
    result = rt.reason("2 + 2?", max_new_tokens=100_000, temperature=1.0)
    assert result.error == "cancelled" and result.stats.num_steps == 0
    assert rt.reason("2 + 2?", max_new_tokens=20).stats.num_steps > 0


def test_cancel_while_reason_builds_its_engine_is_not_lost(rt, monkeypatch):
    # The moment the old Runtime lost: reason() had begun, its engine was not running yet.
    real_engine = tim.Runtime.engine

    def cancel_then_build(self, **kwargs):
        self.cancel()
        return real_engine(self, **kwargs)

    monkeypatch.setattr(tim.Runtime, "engine", cancel_then_build)
    result = rt.reason("2 + 2?", max_new_tokens=100_000, temperature=1.0)
    assert result.error == "cancelled" and result.stats.num_steps == 0


def test_leaving_a_stream_early_cancels_that_run_only(rt):
    items = rt.stream("2 + 2?", max_new_tokens=100_000, temperature=1.0)
    first = next(items)
    assert first.kind == "token"
    items.close()  # leaving early: the run is cancelled, the worker joined
    assert rt.reason("2 + 2?", max_new_tokens=20).stats.num_steps > 0


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="'sideways'"):
        tim.Runtime(model=tiny_model("qwen3")[:2], positions="sideways")
    with pytest.raises(ValueError, match="bufer:1"):
        tim.Runtime(model=tiny_model("qwen3")[:2], pruning="bufer:1")


def test_reason_many_decodes_requests_together_and_matches_solo_runs(rt, monkeypatch):
    from tim.engine.runner import ModelRunner

    forwards = []
    real_run = ModelRunner.run
    monkeypatch.setattr(ModelRunner, "run", lambda self, batch: forwards.append(1)
                        or real_run(self, batch))
    rt.config = type(rt.config)(**{**rt.config.__dict__, "max_string_chars": 4})
    questions = ["2 + 2?", "what is 3 * 3?", "name a colour"]
    together = rt.reason_many(questions, max_new_tokens=2000, temperature=0)
    assert [r.question for r in together] == questions
    # one forward per step serves every request that has something to feed
    assert len(forwards) == max(r.stats.num_steps for r in together)
    assert len(forwards) < sum(r.stats.num_steps for r in together)
    monkeypatch.undo()
    for question, shared in zip(questions, together, strict=True):
        alone = rt.reason(question, max_new_tokens=2000, temperature=0)
        # greedy decoding: the same tree whether or not other requests share the batch
        assert {p: s.text for p, s in shared.streams.items()} == \
               {p: s.text for p, s in alone.streams.items()}
        assert shared.tree == alone.tree


def greedy_generate(model, prompt_ids):
    """HF ``generate``: greedy tokens ``(1, T)`` and the logits of each step ``(steps, V)``."""
    ids = torch.tensor([prompt_ids])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                             do_sample=False, output_logits=True, return_dict_in_generate=True,
                             pad_token_id=0)
    return out.sequences, torch.cat(out.logits)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_a_model_handed_to_tim_stays_a_plain_hf_model(attn_implementation, monkeypatch):
    from tim.engine.runner import ModelRunner

    loaded = tiny_model("llama", attn_implementation=attn_implementation)
    untouched = copy.deepcopy(loaded.model)
    prompt = build_prompt(loaded.tokenizer, "Answer.", "2 + 2?")
    want_ids, want_logits = greedy_generate(untouched, prompt)
    rt = tim.Runtime(model=loaded[:2], format="parallel", max_depth=1)

    def check_model_is_as_before():
        assert loaded.model.config._attn_implementation == attn_implementation
        got_ids, got_logits = greedy_generate(loaded.model, prompt)
        assert torch.equal(got_ids, want_ids)
        torch.testing.assert_close(got_logits, want_logits, atol=0, rtol=0)

    result = rt.reason("2 + 2?", max_new_tokens=30, temperature=0)
    assert result.stats.num_steps > 1
    check_model_is_as_before()

    calls = []

    def fail_in_the_third_forward(self, layer_idx, *args, **kwargs):
        calls.append(layer_idx)
        if len(calls) > 2 * loaded.model.config.num_hidden_layers:
            raise RuntimeError("attention failed")
        return real_attend(self, layer_idx, *args, **kwargs)

    real_attend = ModelRunner.attend
    monkeypatch.setattr(ModelRunner, "attend", fail_in_the_third_forward)
    with pytest.raises(RuntimeError, match="attention failed"):
        rt.reason("2 + 2?", max_new_tokens=30, temperature=0)
    monkeypatch.undo()
    check_model_is_as_before()


def test_one_engine_serves_every_call_until_the_tools_change():
    rt = tim.Runtime(model=tiny_model("qwen3")[:2], format="thread2", max_depth=1, backend="torch",
                 max_string_chars=7)
    first = rt.reason("2 + 2?", max_new_tokens=20, temperature=0)
    engine = rt.engine()
    second = rt.reason("3 + 3?", max_new_tokens=10, temperature=0)
    assert rt.engine() is engine  # the grammar and its tokenizer tables were built once
    assert first.stats.tokens_generated <= 20 and second.stats.tokens_generated <= 10
    assert engine.config.max_string_chars == 7
    assert engine.new_runner().backend == "torch"  # Runtime(backend=...) reaches the kernels

    def calc(expression: str) -> str:
        return expression

    rt.reason("4 + 4?", tools=[calc], max_new_tokens=10, temperature=0)
    assert rt.engine(tools=[calc]) is not engine and "calc" in rt.engine(tools=[calc]).tools


def test_an_unknown_backend_fails_at_the_first_call_naming_it():
    rt = tim.Runtime(model=tiny_model("qwen3")[:2], format="thread2", max_depth=1,
                     backend="no-such-backend")
    with pytest.raises(ValueError, match="unknown attention backend 'no-such-backend'"):
        rt.engine()


def test_shared_siblings_get_the_collaboration_prompt():
    pair = tiny_model("qwen3")[:2]
    shared = tim.Runtime(model=pair, siblings="shared")
    assert "You are one of them" in shared.instructions()
    assert "You are one of them" not in tim.Runtime(model=pair, siblings="shared",
                                                collaboration_prompt=False).instructions()
    assert "You are one of them" not in tim.Runtime(model=pair).instructions()
    assert shared.config.siblings == "shared"


# -- prompt layout: worked examples as chat turns, tools through the template (issue 13) ---


class _RecordingTemplate:
    """A tokenizer stand-in with a chat template: records what it was asked to render."""

    chat_template = "{{ messages }}"

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, **kwargs):
        self.calls.append((messages, kwargs))
        return [len(messages)]


def test_build_prompt_puts_example_turns_between_instructions_and_question():
    tok = _RecordingTemplate()
    build_prompt(tok, "Rules.", "2 + 2?", turns=[("1 + 1?", "2"), ("3 + 3?", "6")])
    messages, kwargs = tok.calls[-1]
    assert messages == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "2"},
        {"role": "user", "content": "3 + 3?"}, {"role": "assistant", "content": "6"},
        {"role": "user", "content": "2 + 2?"},
    ]
    assert "tools" not in kwargs and kwargs["add_generation_prompt"] is True


def test_build_prompt_hands_tool_specs_to_the_template_only_when_asked():
    from tim.tree import ToolSpec

    tok = _RecordingTemplate()
    spec = ToolSpec("calc", "Compute.", {"type": "object", "properties": {}})
    build_prompt(tok, "Rules.", "2 + 2?", tools=[spec])
    assert tok.calls[-1][1]["tools"] == [{"type": "function", "function": {
        "name": "calc", "description": "Compute.",
        "parameters": {"type": "object", "properties": {}}}}]
    build_prompt(tok, "Rules.", "2 + 2?")
    assert "tools" not in tok.calls[-1][1]


def test_build_prompt_without_a_template_writes_turns_as_text():
    class ByteTokenizer:  # no chat_template
        def encode(self, text, add_special_tokens=False):
            return list(text.encode())

    tok = ByteTokenizer()
    ids = build_prompt(tok, "Rules.", "2 + 2?", turns=[("1 + 1?", "2")])
    assert bytes(ids).decode() == ("Rules.\n\nQuestion: 1 + 1?\n\nAnswer (JSON):\n2\n\n"
                                   "Question: 2 + 2?\n\nAnswer (JSON):\n")
    assert bytes(build_prompt(tok, "Rules.", "2 + 2?")).decode() == (
        "Rules.\n\nQuestion: 2 + 2?\n\nAnswer (JSON):\n")


def test_prompt_style_moves_the_examples_and_adds_the_tool_example():
    pair = tiny_model("qwen3")[:2]

    def calculator(a: int, b: int) -> int:
        """Add a and b."""
        return a + b

    default = tim.Runtime(model=pair, format="thread2", max_depth=1)
    specs = default.engine(tools=[calculator]).tools.specs
    turns_rt = tim.Runtime(model=pair, format="thread2", max_depth=1,
                           prompt_style=tim.api.PromptStyle(examples="turns", tool_example=True))
    turns = turns_rt.format.example_turns(specs, tool_example=True)
    assert len(turns) == 2 and '"tool_name": "weather"' in turns[1][1]
    assert all(reply not in turns_rt.instructions(specs) for _, reply in turns)
    assert turns[0][1] in default.instructions(specs)
    assert turns_rt.prompt("2 + 2?", specs) == build_prompt(
        pair[1], turns_rt.instructions(specs), "2 + 2?", turns=turns)
    assert default.prompt("2 + 2?", specs) == build_prompt(
        pair[1], default.instructions(specs), "2 + 2?")
    # reason() feeds exactly that prompt
    result = turns_rt.reason("2 + 2?", tools=[calculator], max_new_tokens=4, temperature=0)
    assert result.record.prompt_ids == turns_rt.prompt("2 + 2?", specs)
    # without tools there is no tool example, whatever the style
    assert "weather" not in turns_rt.format.example_turns((), tool_example=True)[0][1]


def test_prompt_style_is_validated():
    with pytest.raises(ValueError, match="examples must be 'system' or 'turns', got 'user'"):
        tim.api.PromptStyle(examples="user")
    with pytest.raises(ValueError, match="tool_example must be a bool"):
        tim.api.PromptStyle(tool_example=1)
    with pytest.raises(ValueError, match="prompt_style must be a PromptStyle"):
        tim.Runtime(model=tiny_model("qwen3")[:2], prompt_style="turns")
