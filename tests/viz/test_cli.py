"""`tim viz` (main_viz): outputs, the text view, and one-line errors."""

from __future__ import annotations

import json

from tests.viz.conftest import needs_dot
from tim.viz import main_viz


@needs_dot
def test_all_outputs(tmp_path, parallel_path, thread2_path, capsys):
    html, svg, png = tmp_path / "v.html", tmp_path / "t.svg", tmp_path / "kv.png"
    code = main_viz([str(parallel_path), "--html", str(html), "--svg", str(svg), "--png", str(png),
                     "--window", "512", "--baseline", str(thread2_path), "--text"])
    out = capsys.readouterr().out
    assert code == 0
    assert "tim-data" in html.read_text(encoding="utf-8")
    assert "compute B" in svg.read_text(encoding="utf-8")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {html}" in out and "✓ compute B" in out and "answer: 403" in out


def test_an_output_that_fails_does_not_stop_the_others(tmp_path, parallel_path, monkeypatch,
                                                      capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))  # no Graphviz `dot`
    html, svg, tree_png, png = (tmp_path / name for name in ("v.html", "t.svg", "t.png",
                                                             "kv.png"))
    code = main_viz([str(parallel_path), "--html", str(html), "--svg", str(svg),
                     "--tree-png", str(tree_png), "--png", str(png), "--text"])
    out, err = capsys.readouterr()
    assert code == 2
    # everything that needs no `dot` was written, after the drawings failed ...
    assert "tim-data" in html.read_text(encoding="utf-8")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {html}" in out and f"wrote {png}" in out and "✓ compute B" in out
    assert not svg.exists() and not tree_png.exists()
    # ... and each failure is one line naming its option and the fix
    lines = err.splitlines()
    assert [line.split(":")[2].strip() for line in lines] == ["--svg", "--tree-png"]
    assert all(line.startswith("tim viz: error:") and "apt-get install graphviz" in line
               for line in lines)


def test_text_is_the_default(parallel_path, capsys):
    assert main_viz([str(parallel_path)]) == 0
    assert "✓ plan" in capsys.readouterr().out


def test_plain_tree_file(tmp_path, capsys):
    path = tmp_path / "tree.json"
    path.write_text(json.dumps({"reasoning": [{"thought": "t", "conclusion": "c"}], "answer": "a"}))
    assert main_viz([str(path), "--html", str(tmp_path / "t.html")]) == 0
    assert main_viz([str(path), "--png", str(tmp_path / "kv.png")]) == 2  # no timeline
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tim viz: error: --png:") and "run file" in err


def test_bad_arguments_exit_2_with_one_line(capsys):
    for argv in (["--html"], ["run.json", "--bogus"], ["run.json", "--window", "x"],
                 ["run.json", "--window", "0"], []):
        assert main_viz(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tim viz: error:"), argv


def test_damaged_file_exits_1(tmp_path, parallel_path, capsys):
    path = tmp_path / "cut.json"
    path.write_text(parallel_path.read_text()[:1000])
    assert main_viz([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid JSON" in err


def test_help_exits_0(capsys):
    assert main_viz(["--help"]) == 0
    assert "--html OUT.html" in capsys.readouterr().out
