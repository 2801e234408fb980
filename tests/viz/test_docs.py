"""tim.viz's docstring examples run; docs/visualization.md's code runs and its images exist."""

from __future__ import annotations

import doctest
import importlib
import re
import shutil
from pathlib import Path as FilePath

import pytest

import tim.viz
from tests.viz.conftest import DOT_MISSING, needs_dot

MODULES = ["load", "partial", "nodes", "timeline", "terminal", "dot", "plot", "viewer", "cli"]
ROOT = FilePath(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "visualization.md"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "dot" and shutil.which("dot") is None:
        pytest.skip(DOT_MISSING)
    module = importlib.import_module(f"tim.viz.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_public_names_have_docstrings():
    assert doctest.testmod(tim.viz).failed == 0
    missing = [n for n in tim.viz.__all__ if not getattr(tim.viz, n).__doc__]
    assert missing == []


def test_doc_images_exist_and_are_pngs():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", DOC.read_text())
    assert {"img/viewer.png", "img/kv_timeline.png"} <= set(images)
    for image in images:
        data = (DOC.parent / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, image


@needs_dot
def test_doc_python_blocks_run(tmp_path, monkeypatch, parallel_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    shutil.copy(parallel_path, tmp_path / "run.json")
    shutil.copy(parallel_path, tmp_path / "baseline.json")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
    assert (tmp_path / "run.html").exists() and (tmp_path / "kv.png").exists()
