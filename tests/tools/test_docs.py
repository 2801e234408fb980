"""tim.tools' docstring examples and docs/tools.md run and say what the code does."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tim.tools
from tim.tools import ToolRegistry

DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"
MODULES = sorted(m.name for m in pkgutil.walk_packages(tim.tools.__path__, "tim.tools."))


@pytest.mark.parametrize("name", ["tim.tools", *MODULES])
def test_docstring_examples_run(name):
    failures, attempted = doctest.testmod(importlib.import_module(name),
                                          optionflags=doctest.ELLIPSIS)
    assert failures == 0 and attempted > 0


def test_public_names_exist():
    assert set(tim.tools.__all__) <= set(dir(tim.tools))
    for name in MODULES:
        module = importlib.import_module(name)
        assert set(module.__all__) <= set(dir(module)), name


def test_importing_tim_tools_imports_no_torch_and_no_pydantic():
    code = "import sys, tim.tools; print('torch' in sys.modules, 'pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]


BLOCKS = re.findall(r"```python\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_code_blocks_run_and_print_what_they_say(block):
    expected = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(DOC), "exec"), {"__name__": "docs_tools"})
    assert out.getvalue().splitlines() == expected


def test_error_table_rows_are_real_messages():
    def add(a: int, b: int = 0) -> int:
        return a + b

    def divide(a: float, b: float) -> float:
        return a / b

    def f() -> set:
        return {1}

    def search(text: str) -> str:
        return text

    registry = ToolRegistry([add, search, divide, f])
    doc = DOC.read_text(encoding="utf-8")
    messages = [
        ToolRegistry([add, search]).call("mul", {}).error,
        registry.call("add", {"a": "2"}).error,
        registry.call("add", [1]).error,
        registry.call("divide", {"a": 1, "b": 0}).error,
        registry.call("f", {}).error,
    ]
    for message in messages:
        assert f"`{message}`" in doc
