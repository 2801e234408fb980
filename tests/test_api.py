"""The public surface: Runtime.reason / stream / cancel, Result save and load."""

from __future__ import annotations

import json
import threading

import pytest

import tim
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
    timer = threading.Timer(0.5, rt.cancel)
    timer.start()
    result = rt.reason("2 + 2?", max_new_tokens=100_000, temperature=1.0)
    timer.cancel()
    assert result.error == "cancelled"
    assert result.stats.tokens_generated < 100_000  # (the run's close() checked the pool)


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
