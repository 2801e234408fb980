"""tim/eval/report.py: the Wilson interval, the summary and the JSON round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tim.eval.report import from_json, summarize, to_json, wilson_interval
from tim.eval.runner import Outcome


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # values from the closed form, e.g. statsmodels proportion_confint(method="wilson")
    (8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
    (50, 100, 0.4038, 0.5962), (1, 2, 0.0945, 0.9055),
])
def test_wilson_known_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_proportion(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0 <= lo <= k / n <= hi <= 1


def test_wilson_refuses_nonsense():
    with pytest.raises(ValueError, match="3/2"):
        wilson_interval(3, 2)


def outcome(config: str, size: int, correct: bool, failure: str | None = None) -> Outcome:
    return Outcome(task="lookup", size=size, seed=size, config=config, correct=correct,
                   answer="5", failure=failure, prompt_tokens=10, sampled_tokens=size * 10,
                   peak_live_kv=100 + size, max_position=200 + size, wall_time_s=0.5)


def test_summary_and_json_round_trip():
    outs = [outcome("cot", 1, True), outcome("cot", 2, False, "window"),
            outcome("parallel/buffer:1", 2, True), outcome("parallel/buffer:1", 1, True)]
    cot, par = summarize(outs)
    assert (cot.config, cot.num_correct, cot.num_questions) == ("cot", 1, 2)
    assert cot.mean_sampled_tokens == 15 and cot.peak_live_kv == 102
    assert cot.max_position == 202 and cot.failures == {"window": 1}
    assert par.accuracy == 1.0 and par.failures == {}
    by_size = summarize(outs, by_size=True)
    assert [(c.config, c.size) for c in by_size] == [("cot", 1), ("cot", 2),
                                                     ("parallel/buffer:1", 1),
                                                     ("parallel/buffer:1", 2)]
    data = to_json(outs, {"seed": 0})
    back, meta = from_json(data)
    assert back == outs and meta == {"seed": 0}
    with pytest.raises(ValueError, match="version"):
        from_json({**data, "version": 99})
