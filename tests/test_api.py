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
