"""tim.stress.run: oracle O6 on a run far past the window; keep and none fail by name."""

from __future__ import annotations

import doctest

import pytest

from tim.stress import StressShape, compare, stress
from tim.stress import run as run_module
from tim.stress.model import stress_model
from tim.stress.run import decile_rates, expected_to_hold

WINDOW = 512
SMALL = StressShape(num_tasks=2, depth=3, fanout=3)  # ~1,300 tokens: 2.5x the window


@pytest.fixture(scope="module")
def lm():
    return stress_model(num_layers=1)


@pytest.mark.slow  # about 15 s of CPU alone; a loaded shared box may take minutes
def test_ci_stress_run_twenty_windows_with_bounded_work():
    lm = stress_model(num_layers=1)
    report = stress(lm, shape=StressShape(), format="thread2", positions="shift",
                    pruning="buffer:0")
    assert report.ok, report.failure
    assert report.window == WINDOW and report.kv_budget_tokens == WINDOW
    assert report.total_tokens >= 20 * WINDOW  # ≥ 20x the window
    assert report.max_position_id < WINDOW  # positions stay in the rotary range
    assert report.peak_live_tokens <= report.kv_budget_tokens
    assert report.live_ratio < 0.05  # bounded memory: peak live under 5% of the tokens
    assert report.num_evicted > report.total_tokens * 0.9
    assert len(report.decile_tokens_per_s) == 10 and min(report.decile_tokens_per_s) > 0
    # The cost, counted in work rather than seconds: one forward per sampled token (forced
    # tokens ride along), and no token fed twice (shift re-encodes nothing).
    assert report.num_steps == report.record.num_generated
    assert report.tokens_processed < report.total_tokens and report.record.num_reencoded == 0


def test_comparison_fails_keep_and_none_by_name(lm):
    reports = compare(lm, positions=["shift", "reencode", "keep"], pruning=["none", "buffer:0"],
                      shape=SMALL)
    by = {(r.positions, r.pruning): r for r in reports}
    for positions in ("shift", "reencode"):
        ok = by[(positions, "buffer:0")]
        assert ok.ok, ok.failure
        assert ok.total_tokens > 2 * WINDOW and ok.max_position_id < WINDOW
    for positions in ("shift", "reencode", "keep"):
        # nothing is freed: KV and positions reach the 512 budget and window on the same
        # feed, and the engine checks the window first, before that forward writes its KV
        full = by[(positions, "none")]
        assert full.failure_name == "PositionWindowError"
        assert full.peak_live_tokens == full.max_position_id + 1 < WINDOW
        assert full.total_tokens > 0.9 * WINDOW
    keep = by[("keep", "buffer:0")]
    assert keep.failure_name == "PositionWindowError"
    assert "would be fed at position" in keep.failure
    assert f"at or past max_position={WINDOW}" in keep.failure
    # pruned, yet stopped: the engine refused the feed that would reach the window
    assert keep.peak_live_tokens < keep.max_position_id < WINDOW
    assert keep.record.error == keep.failure
    # reencode pays for its exact positions by processing retained tokens again
    assert by[("reencode", "buffer:0")].tokens_processed > by[("shift", "buffer:0")].tokens_processed


def test_a_budget_below_the_window_fails_by_name(lm):
    report = stress(lm, shape=SMALL, pruning="none", kv_budget_tokens=256)
    assert report.failure_name == "KVBudgetError"
    assert report.peak_live_tokens <= 256 and report.max_position_id < WINDOW


def test_parallel_format_holds_with_room_for_its_workers(lm):
    report = stress(lm, shape=SMALL, format="parallel", max_workers=4, kv_budget_tokens=2048)
    assert report.ok, report.failure
    assert report.max_position_id < WINDOW < report.total_tokens


def test_needle_is_reported_not_raised_on_a_random_model(lm):
    report = stress(lm, shape=StressShape(num_tasks=2, depth=2, fanout=2, needle="4817"))
    assert report.ok, report.failure
    assert report.needle_answered is False and isinstance(report.answer, str)


def test_a_prompt_longer_than_the_window_is_a_named_failure(lm):
    report = stress(lm, shape=SMALL, window=16)
    assert report.failure_name == "PositionWindowError" and report.total_tokens == 0
    assert f"the prompt has {report.prompt_tokens} tokens, more than max_position=16" \
        in report.failure


@pytest.mark.parametrize("kwargs, message", [
    ({"window": 1024}, "window must be at most the model's max_position_embeddings"),
    ({"window": 0}, "window must be an int >= 1, got 0"),
    ({"positions": "sideways"}, "position policy must be one of"),
    ({"pruning": "buffer:-1"}, "buffer"),
])
def test_bad_values_raise_value_error(lm, kwargs, message):
    with pytest.raises(ValueError, match=message):
        stress(lm, shape=SMALL, **kwargs)


def test_decile_rates():
    assert decile_rates([(i * 10, i * 0.5) for i in range(21)]) == [20.0] * 10
    slow_end = [(i, i * 0.01) for i in range(90)] + [(90 + i, 0.9 + i * 0.02) for i in range(11)]
    rates = decile_rates(slow_end)
    assert rates[0] == pytest.approx(100) and rates[-1] == pytest.approx(50)
    assert decile_rates([(1, 1.0)] * 5) == []


def test_expected_to_hold():
    assert expected_to_hold("shift", "buffer:1") and expected_to_hold("reencode", "buffer:0")
    assert not expected_to_hold("keep", "buffer:0") and not expected_to_hold("shift", "none")


def test_doctests():
    result = doctest.testmod(run_module)
    assert result.attempted >= 3 and result.failed == 0


def test_replay_writes_the_same_tokens_under_another_rule_and_window():
    pruned = stress(stress_model(num_layers=1), shape=SMALL, pruning="buffer:0")
    assert pruned.ok, pruned.failure
    wide = stress_model(num_layers=1, max_position_embeddings=4096)
    full = stress(wide, shape=SMALL, pruning="none", kv_budget_tokens=4096, replay=pruned.record)
    assert full.ok, full.failure
    assert full.total_tokens == pruned.total_tokens
    assert full.record.streams.keys() == pruned.record.streams.keys()
    for path, stream in pruned.record.streams.items():
        assert full.record.streams[path].token_ids == stream.token_ids
    assert full.num_evicted == 0  # every token stays live (the last one is never fed)
    assert full.peak_live_tokens == full.total_tokens - 1
    assert pruned.peak_live_tokens < full.peak_live_tokens / 2
    assert full.max_position_id >= WINDOW > pruned.max_position_id
    data = full.to_json()
    assert "record" not in data and data["shape"]["depth"] == SMALL.depth
    assert data["live_ratio"] > 0.99


def test_replay_refuses_a_record_with_another_prompt(lm):
    pruned = stress(lm, shape=SMALL)
    with pytest.raises(ValueError, match="prompt differs"):
        stress(lm, shape=SMALL, question="Something else.", replay=pruned.record)
