"""Training views against what the engine really showed (tim/train/views.py, gold.py).

Two oracles, neither built from the code under test:

- **The engine's own views.** A spy chooser reads, at every sampled token, the composition
  of the stream's live view from the executor (its writer runs), which the record never
  sees. Each label's window, cut after the labelled position, must hold exactly those
  tokens, in that order, and the label must be the token the engine then wrote.
- **Log-probabilities.** Under ``reencode`` with siblings run one at a time, every kept
  token's K/V is computed in its view's present context, so one plain HF forward over a
  window must give the engine's recorded log-probability of every label (to 1e-4).
"""

from __future__ import annotations

import pytest
import torch

from tim.engine.choosers import TextReplay
from tim.engine.engine import Engine
from tim.models import tiny_tokenizer
from tim.train.families import make_example
from tim.train.gold import GoldConfig, GoldWriter
from tim.train.views import IGNORE, record_views
from tim.tree import get_format

TOKENIZER = tiny_tokenizer()


def _writer(**config) -> GoldWriter:
    return GoldWriter(TOKENIZER, GoldConfig(**config))


def spied_record(writer: GoldWriter, example, monkeypatch):
    """The gold run, with the engine's view of every sampled token as token ids."""
    executors = []
    new_executor = Engine.new_executor

    def keep(engine):
        executors.append(new_executor(engine))
        return executors[-1]

    monkeypatch.setattr(Engine, "new_executor", keep)
    seen: dict[tuple, list[tuple[list, int]]] = {}

    class Spy(TextReplay):
        def choose(self, streams, logits, bitmask=None):
            out = super().choose(streams, logits, bitmask)
            (executor,) = executors
            for stream, (token, _) in zip(streams, out, strict=True):
                n = executor.num_tokens(stream.view)
                seen.setdefault(stream.path, []).append(
                    (executor.sources(stream.view, 0, n), token))
            return out

    monkeypatch.setattr("tim.train.gold.TextReplay", Spy)
    record = writer.record(example)
    return record, seen


def expand(record, runs) -> list[int]:
    out = []
    for writer, a, b in runs:
        ids = record.prompt_ids if writer == "prompt" else record.streams[writer].token_ids
        out += ids[a:b]
    return out


CASES = [(family, pruning) for family in ("chain", "records")
         for pruning in ("none", "buffer:0", "buffer:1", "buffer:2", "buffer:0@conclusion",
                         "buffer:1@conclusion")]


@pytest.mark.parametrize("family,pruning", CASES)
def test_every_label_sees_exactly_the_engines_view(family, pruning, monkeypatch):
    example = make_example(family, 3 if family == "records" else 2, 3)
    record, seen = spied_record(_writer(pruning=pruning), example, monkeypatch)
    if pruning != "none":
        assert record.num_evicted > 0
    views = record_views(record)
    got: dict[tuple, list[tuple[list, int]]] = {}
    for view in views:
        for k, label in enumerate(view.labels):
            if label != IGNORE:
                got.setdefault(view.stream, []).append((list(view.input_ids[:k + 1]), label))
    assert sorted(got) == sorted(seen)
    for path, labels in seen.items():
        expected = [(expand(record, runs), token) for runs, token in labels]
        assert got[path] == expected, f"stream {path}"
    assert sum(v.num_labels for v in views) == record.num_generated


@pytest.mark.parametrize("family,max_workers", [("chain", 1), ("records", 1)])
def test_windows_reproduce_the_engines_logprobs_under_reencode(family, max_workers):
    writer = _writer(pruning="buffer:0", positions="reencode", max_workers=max_workers)
    record = writer.record(make_example(family, 2, 5))
    assert record.num_evicted > 0
    engine_lp = {}
    for path, stream in record.streams.items():
        for token, forced, lp in zip(stream.token_ids, stream.forced, stream.logprobs,
                                     strict=True):
            if not forced:
                engine_lp.setdefault(path, []).append((token, lp))
    model = writer.proxy.model
    window_lp: dict[tuple, list] = {}
    with torch.no_grad():
        for view in record_views(record):
            logits = model(input_ids=torch.tensor([view.input_ids]),
                           position_ids=torch.tensor([view.position_ids])).logits[0]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for k, label in enumerate(view.labels):
                if label != IGNORE:
                    window_lp.setdefault(view.stream, []).append(
                        (label, logprobs[k, label].item()))
    assert sorted(window_lp) == sorted(engine_lp)
    worst = 0.0
    for path, pairs in engine_lp.items():
        assert [t for t, _ in window_lp[path]] == [t for t, _ in pairs]
        worst = max(worst, *(abs(a - b) for (_, a), (_, b) in zip(window_lp[path], pairs,
                                                                   strict=True)))
    assert worst <= 1e-4, worst


def test_views_refuse_shared_siblings():
    from tim.engine.record import RunRecord
    from tim.errors import TimError

    record = RunRecord(format="parallel", pruning="none", positions="shift", prompt_ids=[1],
                       siblings="shared")
    with pytest.raises(TimError, match="isolated siblings"):
        record_views(record)



def test_one_engine_runs_each_question_with_its_own_tools():
    """A question's tools are closures over its data: one engine, built with the first
    question's, runs the second with the second's (the replayed gold text holds the second
    question's tool results, so the first's tools would make the replay diverge)."""
    from tim.api import Runtime
    from tim.errors import TimError

    writer = _writer(pruning="buffer:0")
    first, second = make_example("chain", 1, 1), make_example("chain", 1, 2)
    engine = Engine(writer.proxy.model, TOKENIZER, writer.config.engine_config("thread2"),
                    tools=first.tools)
    texts = {(): get_format("thread2").render(second.tree)}
    record = engine.run(writer.prompt(second), chooser=TextReplay(texts, TOKENIZER),
                        tools=second.tools)
    assert record.error is None and record.tool_calls
    with pytest.raises(TimError, match="diverged"):
        engine.run(writer.prompt(second), chooser=TextReplay(texts, TOKENIZER))
    with pytest.raises(ValueError, match="the engine's specs"):
        engine.run(writer.prompt(second), chooser=TextReplay(texts, TOKENIZER),
                   tools=make_example("records", 1, 1).tools)
    runtime = Runtime(model=(writer.proxy.model, TOKENIZER), format="thread2")
    assert runtime.engine(tools=first.tools) is runtime.engine(tools=second.tools)
    assert runtime.engine(tools=first.tools) is not runtime.engine(tools=())


def test_a_gold_tree_that_breaks_the_grammar_is_named():
    from dataclasses import replace

    from tim.tree import Task, TaskTree, ToolUse

    example = make_example("chain", 1, 4)
    writer = _writer(pruning="buffer:0", max_depth=1)
    with pytest.raises(ValueError, match=r"example chain/size 1/seed 4, task \[0, 0\] "
                                         r"\('hop 1'\): depth 2 is past max_depth=1"):
        writer.record(example)
    bad = replace(example, tree=TaskTree([Task("x", "1", title="t", tooluse=ToolUse(
        "lookup", {"key": 5}))], answer="1"))
    with pytest.raises(ValueError, match=r"parameters \{'key': 5\} break lookup's schema"):
        _writer().record(bad)
    bad = replace(example, tree=TaskTree([Task("x", "1", title="t", tooluse=ToolUse(
        "search", {}))], answer="1"))
    with pytest.raises(ValueError, match=r"calls 'search', which the example does not offer"):
        _writer().record(bad)
