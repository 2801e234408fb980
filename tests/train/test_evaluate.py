"""The held-out evaluation's bookkeeping (tim/train/evaluate.py, eval_cli.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tim.train.evaluate import TreeOutcome, evaluate, markdown_table, summary_rows
from tim.train.families import HELD_OUT_SEEDS

BASE = TreeOutcome(config="tree", family="chain", size=2, seed=HELD_OUT_SEEDS.start,
                   template=0, expected="5", answer="5", correct=True, error=None,
                   num_processed=1280, num_generated=900, peak_live_tokens=300,
                   max_position=299, wall_time_s=2.0)


def test_a_stopped_evaluation_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "eval.json"
    ran = []

    def run_one(family, size, index):
        ran.append((family, size, index))
        if len(ran) == 3:
            raise KeyboardInterrupt  # stopped part-way
        return replace(BASE, family=family, size=size, seed=HELD_OUT_SEEDS.start + index)

    with pytest.raises(KeyboardInterrupt):
        evaluate(run_one, "tree", ["chain", "records"], {1: 2, 3: 1}, window=640, out=out)
    assert len(json.loads(out.read_text())["outcomes"]) == 2
    ran.clear()
    saved = evaluate(lambda f, s, i: replace(BASE, family=f, size=s,
                                             seed=HELD_OUT_SEEDS.start + i),
                     "tree", ["chain", "records"], {1: 2, 3: 1}, window=640, out=out)
    assert len(saved) == 6  # 2 questions at size 1 and 1 at size 3, two families
    assert len({(o["family"], o["size"], o["seed"]) for o in saved}) == 6


def test_the_table_counts_and_bounds_each_cell():
    outcomes = [vars(replace(BASE, seed=HELD_OUT_SEEDS.start + i, correct=i < 8))
                for i in range(10)]
    (row,) = summary_rows(outcomes, window=640)
    assert (row["correct"], row["n"], row["over_window"]) == (8, 10, 2.0)
    assert [round(x, 4) for x in row["ci"]] == [0.4902, 0.9433]  # Wilson, 8 of 10
    assert "| chain | 2 | tree | 8/10 | 80% (49%-94%) | 1,280 | 2.0 |" in \
        markdown_table(outcomes, 640)


def test_family_eval_needs_a_window_and_a_json(tmp_path, capsys):
    from tim.cli import main

    assert main(["eval", "--families", "chain", "--trained", str(tmp_path)]) == 1
    assert "--families needs --window W" in capsys.readouterr().err
    assert main(["eval", "--families", "chain", "--window", "640",
                 "--family-configs", "tree,flat-wide", "--json", str(tmp_path / "e.json")]) == 1
    assert "unknown family config 'flat-wide'" in capsys.readouterr().err
