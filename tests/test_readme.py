"""The README's commands and Python example stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = blocks("bash")[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    # CI runs exactly the README's test command (quietened with -q on pip)
    assert test_command.replace("pip install ", "pip install -q ") in ci


def test_readme_main_command_runs_tim_demo():
    assert blocks("bash")[0].strip().endswith("&& tim demo")


def test_readme_python_example_runs(tmp_path):
    code = blocks("python")[0].replace('"smollm2-135m"', '"tiny-qwen3"')
    code = code.replace("max_new_tokens=400", "max_new_tokens=60")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Stats(" in done.stdout
    assert (tmp_path / "run.json").exists()


def test_readme_trained_model_example_runs(tmp_path):
    """The trained-model example, on a tiny random base (its text is noise; the code path is
    the README's): the adapter's own settings reach the Runtime."""
    code = blocks("python")[1].replace("model=entry.name", 'model="tiny-qwen3"')
    code = code.replace("max_new_tokens=6000", "max_new_tokens=60")
    assert code != blocks("python")[1]
    check = "\nprint(rt.config.pruning, rt.config.max_position)"
    done = subprocess.run([sys.executable, "-c", code + check],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "expected:" in done.stdout
    assert "buffer:0@conclusion 640" in done.stdout
