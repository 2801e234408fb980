"""tim.stress.chooser: content is sampled within its budget, structure is the forced shape."""

from __future__ import annotations

import doctest

import pytest

from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.models import tiny_tokenizer
from tim.stress import chooser as chooser_module
from tim.stress.chooser import ShapeChooser, StructureError, allowed_token_mask
from tim.stress.model import FORMAT_TOKENS, stress_model
from tim.stress.shape import Content, Forced, StressShape, make_lookup, stream_segments
from tim.tree import get_format

SHAPE = StressShape(num_tasks=2, depth=3, fanout=2, thought_tokens=3, conclusion_tokens=2,
                    answer_tokens=4, tool_calls="leaves", tool_result_chars=10)


@pytest.fixture(scope="module")
def lm():
    return stress_model(num_layers=1)


def test_mask_allows_printable_ascii_without_quote_or_backslash():
    mask = allowed_token_mask(tiny_tokenizer(), 259)
    allowed = {i for i in range(259) if mask[i]}
    assert allowed == {b for b in range(32, 127)} - {ord('"'), ord("\\")}


def test_mask_excludes_added_format_tokens_and_padding(lm):
    mask = allowed_token_mask(lm.tokenizer, 400)  # wider than the tokenizer: padding ids
    assert not mask[259:].any()
    assert len(lm.tokenizer) == 259 + len(FORMAT_TOKENS)


def run(lm, shape, fmt, *, temperature=0.0, seed=0, segments=None):
    segments = segments or stream_segments(shape, fmt)
    chooser = ShapeChooser(segments, lm.tokenizer,
                           allowed_token_mask(lm.tokenizer, lm.model.config.vocab_size),
                           temperature=temperature, seed=seed)
    tools = (make_lookup(shape.tool_result_chars),) if shape.tool_calls != "none" else ()
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format=fmt, structure="free", pruning="buffer:0", max_new_tokens=5000,
        kv_budget_tokens=4096), tools=tools)
    record = engine.run(lm.tokenizer.encode("go\n", add_special_tokens=False), chooser=chooser)
    return record, chooser


@pytest.mark.parametrize("fmt", ["thread2", "parallel"])
def test_run_writes_the_shape_with_sampled_content(lm, fmt):
    record, chooser = run(lm, SHAPE, fmt)
    assert record.error is None, record.error
    texts = {p: s.text for p, s in record.streams.items()}
    tree = get_format(fmt).parse_streams(texts)
    assert sum(1 for _ in tree.walk()) == SHAPE.num_task_nodes
    # every sampled field got exactly its budget, and its text is what the tree holds
    fields = {f"{kind} {'.'.join(str(i + 1) for i in path)}": getattr(task, kind)
              for path, task in tree.walk() for kind in ("thought", "conclusion")}
    fields["answer"] = tree.answer
    segs = [s for ss in stream_segments(SHAPE, fmt).values() for s in ss]
    for seg in segs:
        if isinstance(seg, Content):
            ids = chooser.content[seg.key]
            assert len(ids) == seg.num_tokens
            assert lm.tokenizer.decode(ids) == fields[seg.key]
    # tool results were forced by the runtime, and nothing else the chooser wrote was
    num_forced = sum(len(lm.tokenizer.encode(s.text, add_special_tokens=False))
                     for s in segs if isinstance(s, Forced))
    assert record.num_forced == num_forced


def test_sampling_is_seeded(lm):
    shape = StressShape(num_tasks=2, depth=2, fanout=2, tool_calls="none")
    a, _ = run(lm, shape, "thread2", temperature=1.0, seed=1)
    b, _ = run(lm, shape, "thread2", temperature=1.0, seed=1)
    c, _ = run(lm, shape, "thread2", temperature=1.0, seed=2)
    g, _ = run(lm, shape, "thread2")
    assert a.streams[()].text == b.streams[()].text
    assert len({a.streams[()].text, c.streams[()].text, g.streams[()].text}) == 3


def test_a_forced_text_other_than_expected_is_a_named_error(lm):
    shape = StressShape(num_tasks=2, depth=2, fanout=2, tool_calls="leaves")
    segments = stream_segments(shape, "thread2")
    segs = segments[()]
    i = next(i for i, s in enumerate(segs) if isinstance(s, Forced))
    segs[i] = Forced(segs[i].text.replace("note", "nope"))
    with pytest.raises(StructureError, match="left its shape"):
        run(lm, shape, "thread2", segments=segments)


def test_doctests():
    result = doctest.testmod(chooser_module)
    assert result.attempted >= 2 and result.failed == 0


def test_model_doctests():
    from tim.stress import model as model_module

    result = doctest.testmod(model_module)
    assert result.attempted >= 1 and result.failed == 0
