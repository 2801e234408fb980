"""Structure enforcement: a random-weight model, whose text is noise, still writes valid trees
under the grammar; without it, malformed output ends that stream with a located error."""

from __future__ import annotations

import pytest

from tim.engine.choosers import TextReplay
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.sampler import SamplingParams
from tim.models import tiny_model
from tim.models.tiny import tiny_tokenizer
from tim.result import Result
from tim.tree import get_format


@pytest.fixture(scope="module")
def lm():
    return tiny_model("qwen3")


def prompt(lm):
    return lm.tokenizer.encode("Q: what is 2 + 2?", add_special_tokens=False)


@pytest.mark.parametrize("fmt", ["thread2", "parallel"])
@pytest.mark.parametrize("seed", range(5))
def test_noise_model_writes_valid_trees_within_limits(lm, fmt, seed):
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format=fmt, max_depth=2, max_fanout=2, max_string_chars=5, max_new_tokens=4000,
        kv_budget_tokens=8192,
    ))
    record = engine.run(prompt(lm), sampling=SamplingParams(temperature=1.0, seed=seed))
    assert record.error is None
    result = Result.of(record)
    assert result.tree is not None and result.answer is not None
    assert 1 <= result.tree.depth <= 2
    assert len(result.tree.reasoning) <= 2
    for _, task in result.tree.walk():
        assert task.subtasks is None or 1 <= len(task.subtasks) <= 2
        assert len(task.thought) <= 5 and len(task.conclusion) <= 5
    # the grammar only shapes the text: the sampled tokens carry the model's own log-probs
    for stream in record.streams.values():
        assert all(lp is not None and lp <= 0 for lp, forced in
                   zip(stream.logprobs, stream.forced, strict=True) if not forced)


def test_free_decoding_of_noise_fails_with_a_located_error(lm):
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format="thread2", structure="free", max_new_tokens=200))
    record = engine.run(prompt(lm), sampling=SamplingParams(temperature=1.0, seed=0))
    assert record.error is not None and "malformed output at offset" in record.error


def test_a_malformed_child_ends_alone_and_the_run_goes_on(lm):
    fmt = get_format("parallel")
    texts = {
        (): '{"reasoning": [{"title": "A"}, {"title": "B"}], "answer": "done"}',
        (0,): fmt.child_header("A") + 'fine", "tooluse": null, "subtasks": null, '
                                      '"conclusion": "ok"}',
        (1,): fmt.child_header("B") + 'oops" ] broken',
    }
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format="parallel", structure="free", max_new_tokens=2000))
    record = engine.run(prompt(lm), chooser=TextReplay(texts, lm.tokenizer))
    assert record.error is None
    assert record.streams[(1,)].error is not None
    assert "stream [1]: malformed output at offset" in record.streams[(1,)].error
    assert record.streams[(0,)].error is None
    assert record.streams[()].text.endswith('"answer": "done"}')


@pytest.mark.parametrize("budget", range(70, 76))
def test_the_budget_of_sampled_tokens_holds_exactly_with_concurrent_workers(lm, budget):
    # three siblings sample in every step; whatever step reaches the budget, the run
    # samples no token past it (it used to overshoot by up to workers - 1)
    fmt = get_format("parallel")
    thought = "one two three four five six seven eight nine ten " * 4
    texts = {(): '{"reasoning": [{"title": "A"}, {"title": "B"}, {"title": "C"}], '
                 '"answer": "done"}'}
    for i, title in enumerate("ABC"):
        texts[(i,)] = (fmt.child_header(title) + thought + '", "tooluse": null, '
                       '"subtasks": null, "conclusion": "ok"}')
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format="parallel", structure="free", max_new_tokens=budget))
    record = engine.run(prompt(lm), chooser=TextReplay(texts, lm.tokenizer))
    assert record.error == f"max_new_tokens={budget} reached before the answer"
    assert record.max_concurrency == 3
    sampled = sum(not f for s in record.streams.values() for f in s.forced)
    assert record.num_generated == sampled == budget


@pytest.mark.parametrize("structure", ["grammar", "free"])
def test_a_fork_token_that_carries_a_newline_past_the_plan_joins(structure):
    # Qwen2's tokenizer writes "],\n" as one token; the join text (', "answer": "') then
    # goes on after it, whitespace aside, instead of failing the run
    tok = tiny_tokenizer(merged=("],\n",))
    lm = tiny_model("qwen3", vocab_size=len(tok))
    fmt = get_format("parallel")
    texts = {(): '{"reasoning": [{"title": "A"}],\n"answer": "done"}',
             (0,): fmt.child_header("A") + 'x", "tooluse": null, "subtasks": null, '
                                           '"conclusion": "ok"}'}
    assert tok.convert_tokens_to_ids("],Ċ") in tok.encode(texts[()], add_special_tokens=False)
    engine = Engine(lm.model, tok, EngineConfig(format="parallel", structure=structure,
                                                max_new_tokens=400))
    record = engine.run(tok.encode("Q: 2 + 2?", add_special_tokens=False),
                        chooser=TextReplay(texts, tok))
    assert record.error is None, record.error
    assert record.streams[()].text == texts[()]
    assert Result.of(record).answer == "done"
