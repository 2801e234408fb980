"""tim.pruning is pure Python: importing it pulls in no torch, and its surface is exported."""

from __future__ import annotations

import subprocess
import sys

import tim.pruning


def test_import_does_not_load_torch() -> None:
    code = "import sys, tim.pruning; print(sorted(m for m in sys.modules if m.startswith('torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_all_names_exist() -> None:
    assert tim.pruning.__all__ == sorted(tim.pruning.__all__)
    for name in tim.pruning.__all__:
        assert hasattr(tim.pruning, name), name
    assert {"get_rule", "Rule", "PruneTracker", "plan_evictions"} <= set(tim.pruning.__all__)
