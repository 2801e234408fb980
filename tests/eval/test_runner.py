"""tim/eval/runner.py end to end on a random-weight model: counters, window, budget."""

from __future__ import annotations

import pytest

from tim.eval.configs import parse_configs
from tim.eval.report import from_json, summarize, to_json
from tim.eval.runner import run_eval
from tim.eval.tasks import make_questions
from tim.models import tiny_model

BUDGET = 16


@pytest.fixture(scope="module")
def loaded():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def questions():
    return make_questions("arithmetic", sizes=(1,), num_per_size=2, seed=0)


def test_two_configs_two_questions_unwindowed(loaded, questions):
    outs = run_eval(loaded, parse_configs("cot,thread2/buffer:1"), questions,
                    max_new_tokens=BUDGET)
    # question by question: a stopped run has every configuration on what it finished
    assert [(o.config, o.seed) for o in outs] == [("cot", 0), ("thread2/buffer:1", 0),
                                                  ("cot", 1), ("thread2/buffer:1", 1)]
    for o in outs:
        assert 0 < o.sampled_tokens <= BUDGET
        assert o.prompt_tokens < o.peak_live_kv <= o.prompt_tokens + 2 * BUDGET + 64
        assert o.max_position >= o.prompt_tokens - 1 and o.wall_time_s > 0
        assert o.correct == (o.failure is None and o.correct)  # a failed run never scores
    cot = [o for o in outs if o.config == "cot"]
    # random weights: generation runs to the budget, and the KV is prompt + sampled
    assert all(o.peak_live_kv == o.prompt_tokens + o.sampled_tokens for o in cot)
    back, meta = from_json(to_json(outs, {"budget": BUDGET}))
    assert back == outs and meta == {"budget": BUDGET}
    assert [c.num_questions for c in summarize(back)] == [2, 2]


def test_window_stops_cot_and_caps_tim(loaded, questions):
    cot_prompt = run_eval(loaded, parse_configs("cot"), questions[:1],
                          max_new_tokens=1)[0].prompt_tokens
    tim_prompt = run_eval(loaded, parse_configs("thread2/none"), questions[:1],
                          max_new_tokens=1)[0].prompt_tokens
    window = tim_prompt + 6  # tim has 6 positions left; cot has plenty but the budget
    outs = run_eval(loaded, parse_configs("cot,thread2/none"), questions[:1],
                    max_new_tokens=BUDGET, window=window)
    cot, tree = outs
    assert cot.failure == "max_new_tokens" and cot.max_position < window
    assert tree.failure == "window" and not tree.correct
    assert tree.sampled_tokens < BUDGET
    assert tree.max_position == window - 1  # one sampled token a step: stopped right there
    # cot stops exactly at the window
    small = cot_prompt + 5
    cut = run_eval(loaded, parse_configs("cot"), questions[:1], max_new_tokens=BUDGET,
                   window=small)[0]
    assert cut.failure == "window" and cut.sampled_tokens == 5
    assert cut.max_position == small - 1
    # a prompt longer than the window is not run at all
    none = run_eval(loaded, parse_configs("thread2/none"), questions[:1],
                    max_new_tokens=BUDGET, window=cot_prompt)[0]
    assert none.failure == "window" and none.sampled_tokens == 0


def test_bad_arguments(loaded, questions):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        run_eval(loaded, parse_configs("cot"), questions, max_new_tokens=0)
    with pytest.raises(ValueError, match="window must be >= 2, got 1"):
        run_eval(loaded, parse_configs("cot"), questions, max_new_tokens=4, window=1)
