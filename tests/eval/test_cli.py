"""``tim eval`` from the command line: bad input, and a tiny run with JSON and plot."""

from __future__ import annotations

import json

import pytest

from tim.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["--tasks", "chess"], "tasks are arithmetic, countdown, lookup"),
    (["--configs", "cot/tools"], "cot takes no options"),
    (["--window", "1"], "must be >= 2, got 1"),
    (["--sizes", "2,x"], "expected integers"),
    (["--questions", "0"], "must be >= 1"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and err.count("\n") == 1


def test_countdown_needs_two_numbers(capsys):
    assert main(["eval", "--tasks", "countdown", "--sizes", "1", "--model", "tiny-llama"]) == 1
    assert "countdown needs sizes >= 2" in capsys.readouterr().err


def test_tiny_run_writes_json_and_plot(tmp_path, capsys):
    out, plot = tmp_path / "eval.json", tmp_path / "eval.png"
    rc = main(["eval", "--model", "tiny-llama", "--device", "cpu", "--tasks", "lookup,countdown",
               "--sizes", "2", "--questions", "1", "--configs", "cot,thread2/none/tools",
               "--max-new-tokens", "8", "--json", str(out), "--plot", str(plot)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["meta"]["configs"] == ["cot", "thread2/none/tools"]
    assert len(data["outcomes"]) == 4 and len(data["summary"]) == 4
    assert all(o["sampled_tokens"] <= 8 for o in data["outcomes"])
    table = capsys.readouterr().out
    assert "thread2/none/tools" in table and "accuracy" in table
    pytest.importorskip("matplotlib")
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_report_redraws_a_saved_run_and_a_stopped_one(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", "tiny-llama", "--device", "cpu", "--tasks",
                 "lookup,arithmetic", "--sizes", "1", "--questions", "2", "--configs",
                 "cot,thread2/none", "--max-new-tokens", "4", "--threads", "1",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    # seed by seed, task by task, every configuration on a question before the next
    assert [(o["seed"], o["task"], o["config"]) for o in data["outcomes"]] == [
        (seed, task, config) for seed in (0, 1) for task in ("lookup", "arithmetic")
        for config in ("cot", "thread2/none")]
    assert data["meta"]["complete"] is True and data["meta"]["threads"] == 1
    first = capsys.readouterr().out
    assert main(["eval", "--report", str(out)]) == 0
    assert capsys.readouterr().out == first  # the same table, from the file alone
    # a run stopped after three outcomes: its file still reads, and says it stopped
    data["outcomes"], data["meta"]["complete"] = data["outcomes"][:3], False
    out.write_text(json.dumps(data))
    assert main(["eval", "--report", str(out)]) == 0
    assert "(stopped: 3 runs)" in capsys.readouterr().out


def test_report_merges_runs_of_other_seeds_and_refuses_overlaps(tmp_path, capsys):
    paths = [tmp_path / f"s{seed}.json" for seed in (0, 1)]
    for seed, path in zip((0, 1), paths, strict=True):
        assert main(["eval", "--model", "tiny-llama", "--device", "cpu", "--tasks", "lookup",
                     "--sizes", "1", "--questions", "1", "--seed", str(seed), "--configs",
                     "cot", "--max-new-tokens", "4", "--json", str(path)]) == 0
    capsys.readouterr()
    assert main(["eval", "--report", f"{paths[0]},{paths[1]}"]) == 0
    out = capsys.readouterr().out
    assert "2 questions" in out and "0/2" in out
    assert main(["eval", "--report", f"{paths[0]},{paths[1]}", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| task | config | accuracy [95% CI] |")
    assert lines[4].startswith("| lookup | cot | 0/2 = 0% [0%, 66%] |")
    assert main(["eval", "--report", f"{paths[0]},{paths[0]}"]) == 1
    assert "run some question twice" in capsys.readouterr().err
