"""The flat baseline (tim/train/flat.py): its trace, its windows, its decoder."""

from __future__ import annotations

import pytest
import torch

from tim.models import tiny_model, tiny_tokenizer
from tim.train.families import FAMILIES, make_example
from tim.train.flat import (
    decode_flat,
    flat_answer,
    flat_prompt,
    flat_segments,
    flat_windows,
)
from tim.train.views import IGNORE


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_trace_holds_every_step_of_the_gold_tree(family):
    example = make_example(family, 3, 9)
    segments = flat_segments(example.tree)
    text = "".join(t for t, _ in segments)
    assert flat_answer(text) == example.expected
    tasks = [t for _, t in example.tree.walk()]
    for task in tasks:
        assert f"{task.title}: {task.thought}" in text
    forced = [t for t, f in segments if f]
    assert len(forced) == sum(t.tooluse is not None for t in tasks)  # one result per call


def _windows(mode, window=40):
    ids, forced = list(range(100, 160)), [i % 7 == 3 for i in range(60)]
    return ids, forced, flat_windows([1, 2, 3], ids, forced, window=window, mode=mode)


def test_sliding_windows_label_every_written_token_once_from_its_decoding_context():
    ids, forced, views = _windows("sliding")
    room = 40 - 3
    seen = []
    for view in views:
        assert len(view) <= 40 and view.input_ids[:3] == (1, 2, 3)
        for k, label in enumerate(view.labels):
            if label != IGNORE:
                seen.append(label)
                body = view.input_ids[3:k + 1]  # the trace tokens before the label
                t = ids.index(label)
                assert tuple(ids[t - len(body):t]) == body  # the newest tokens, contiguous
                assert len(body) >= min(t, room // 2)  # a slide keeps half the room
    assert seen == [t for t, f in zip(ids, forced, strict=True) if not f]


def test_truncate_trains_only_what_fits():
    ids, forced, views = _windows("truncate")
    assert len(views) == 1 and len(views[0]) == 40
    assert views[0].num_labels == sum(not f for f in forced[:38])


def test_decode_runs_tools_and_stops_at_the_window():
    tok = tiny_tokenizer()
    model = tiny_model("llama", vocab_size=len(tok), max_position_embeddings=4096).model
    example = make_example("chain", 1, 2)
    calls = []

    def lookup(key: str) -> str:
        calls.append(key)
        return example.tools[0](key)

    prompt = flat_prompt(tok, example.question, [])
    with torch.no_grad():
        out = decode_flat(model, tok, prompt, [lookup], mode="truncate", window=len(prompt) * 3,
                          max_new_tokens=10_000)
    assert out.answer is None and "window full" in out.failure
    assert out.max_position < len(prompt) * 3 and not calls  # random weights never call
    with torch.no_grad():
        slid = decode_flat(model, tok, prompt, [lookup], mode="sliding",
                           window=len(prompt) * 3, max_new_tokens=300)
    assert slid.num_generated == 300 and slid.max_position < len(prompt) * 3
    assert slid.num_processed > 300  # re-encoded after each slide


def test_a_written_call_runs_the_tool_and_forces_its_result(monkeypatch):
    """A model scripted to write a call: the decoder runs the tool, forces the result, and
    the model goes on after it."""
    tok = tiny_tokenizer()  # one token per byte
    model = tiny_model("llama", vocab_size=len(tok), max_position_embeddings=4096).model
    written = tok.encode('hop 1: from 5 | lookup {"key": "5"} => 7\nanswer: 7\n',
                         add_special_tokens=False)
    prompt = flat_prompt(tok, "follow 5", [])
    forward, fed, forced = model.forward, [], []

    def scripted(*args, **kwargs):
        out = forward(*args, **kwargs)
        fed.extend(kwargs["input_ids"][0].tolist())
        generated = len(fed) - len(prompt) - len(forced)
        out.logits[0, -1] = -1e9
        out.logits[0, -1, written[min(generated, len(written) - 1)]] = 0
        return out

    def lookup(key: str) -> str:
        forced.extend(tok.encode(' = "7"', add_special_tokens=False))
        return "7"

    monkeypatch.setattr(model, "forward", scripted)
    with torch.no_grad():
        out = decode_flat(model, tok, prompt, [lookup], mode="truncate", window=400,
                          max_new_tokens=200)
    assert '| lookup {"key": "5"} = "7" => 7' in out.text and out.answer == "7"
    assert out.num_forced == len(forced) > 0 and out.failure is None
