"""tim.stress.cli: every knob documented, bad arguments in one line, tables and files."""

from __future__ import annotations

import json

import pytest

from tim.stress.cli import build_parser, main_stress

SMALL = ["--depth", "3", "--layers", "1"]


@pytest.mark.parametrize("argv, fragment", [
    (["--depth", "0"], "argument --depth: must be >= 1, got 0"),
    (["--fanout", "two"], "argument --fanout: expected an integer, got 'two'"),
    (["--positions", "shift,sideways"], "argument --positions: expected a comma-separated"),
    (["--pruning", "buffer:x"], "argument --pruning:"),
    (["--tool-calls", "some"], "argument --tool-calls: invalid choice"),
    (["--format", "json"], "argument --format: invalid choice"),
    (["--temperature", "-1"], "argument --temperature: must be >= 0"),
    (["--needle", 'say "hi"'], "needle must be printable ASCII"),
    (["--num-tasks", "1", "--needle"], "a needle needs num_tasks >= 2"),
    (["--window", "4096", *SMALL], "window must be at most the model's max_position_embeddings"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, fragment):
    assert main_stress(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tim stress: error: ")
    assert fragment in err


def test_help_documents_every_knob(capsys):
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    assert main_stress(["--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--depth", "--fanout", "--thought-tokens", "--conclusion-tokens",
                   "--num-tasks", "--tool-calls", "--model", "--compare", "--positions",
                   "--pruning", "--window", "--kv-budget", "--needle", "--png"):
        assert option in out


def test_single_run_prints_checks_and_writes_json(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main_stress([*SMALL, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "O6 checks" in out and "tokens/s per tenth of the run" in out and "FAILED" not in out
    (data,) = json.loads(path.read_text())
    assert data["ok"] and data["max_position_id"] < data["window"] == 512


def test_a_failing_single_run_exits_1_with_its_named_error(capsys):
    assert main_stress([*SMALL, "--positions", "keep"]) == 1
    out = capsys.readouterr().out
    assert "PositionWindowError: stream [] would be fed at position" in out
    assert "Traceback" not in out


def test_comparison_table_names_each_failure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "timeline.png"
    # a pool below the window: none runs out of KV, keep of positions
    code = main_stress([*SMALL, "--positions", "shift,keep", "--pruning", "none,buffer:0",
                        "--kv-budget", "400", "--png", str(png)])
    assert code == 0  # a comparison reports its failures; it does not fail
    out = capsys.readouterr().out
    assert out.count("KVBudgetError") >= 2 and "PositionWindowError" in out
    assert "Traceback" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
