"""`tim replay` on a saved run: the same streams again, and an edited file refused cleanly."""

from __future__ import annotations

import json
import re

import pytest

from tim.cli import main


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "run.json"
    code = main(["run", "What is 2 + 3?", "--model", "tiny-qwen3", "--max-new-tokens", "60",
                 "--json", str(path)])
    assert code in (0, 1) and path.exists()  # a random model may not finish its tree
    return path


def test_replay_writes_the_same_streams(saved_run, capsys):
    assert main(["replay", str(saved_run), "--model", "tiny-qwen3"]) == 0
    assert "streams identical to the saved run: True" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["streams"][0]["token_ids"].__setitem__(0, 1_000_000_000),
     "token id 1000000000 is outside the model's vocabulary"),
    (lambda r: r["prompt_ids"].append(259), "prompt_ids: token id 259"),
    (lambda r: r["streams"][0]["token_ids"].__setitem__(0, -1), r"streams\[0\]\.token_ids"),
    (lambda r: r["timeline"].reverse(), "steps go backwards"),
])
def test_an_edited_run_file_is_refused_with_the_field_named(saved_run, tmp_path, capsys,
                                                            edit, message):
    data = json.loads(saved_run.read_text())
    edit(data["record"])
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    assert main(["replay", str(edited), "--model", "tiny-qwen3"]) == 1
    err = capsys.readouterr().err
    assert "tim: error:" in err and "Traceback" not in err
    assert re.search(message, err), err
