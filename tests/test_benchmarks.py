"""benchmarks/: the suite runner fills blocks that exist, and the prune-cost comparison
checks a real property (shift and reencode agree on layer-0 keys, not on deeper ones)."""

from __future__ import annotations

import dataclasses
import doctest
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_suite():
    return _load("run_suite")


def test_run_suite_doctests(run_suite):
    result = doctest.testmod(run_suite)
    assert result.failed == 0 and result.attempted >= 1


def test_every_suite_block_is_in_the_doc(run_suite):
    doc = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for name in run_suite.SCRIPTS:
        filled = run_suite.replace_block(doc, name, "TABLE")
        assert f"<!-- suite:{name} -->\nTABLE\n<!-- /suite:{name} -->" in filled
        assert filled.count("<!-- suite:") == doc.count("<!-- suite:")


def test_a_missing_block_stops_the_runner_with_its_name(run_suite):
    with pytest.raises(SystemExit, match=r"no '<!-- suite:tree -->'"):
        run_suite.replace_block("# no blocks here\n", "tree", "TABLE")


def test_prune_cost_compares_like_with_like(monkeypatch):
    from tim.stress.model import stress_model

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as when run as a script
    bench_tree = _load("bench_tree")
    sizes = dataclasses.replace(bench_tree.QUICK, prune_prefix=16, prune_evicted=24,
                                prune_suffixes=(8, 20), prune_reps=1)
    rows = bench_tree.bench_prune_cost(stress_model(num_layers=2), "tiny", sizes,
                                       progress=lambda message: None)
    assert [r["suffix"] for r in rows] == [8, 20]
    for r in rows:
        assert r["layer0_key_diff"] <= 1e-4  # layer 0 keys depend on token and position only
        # deeper keys saw the evicted tokens before the prune; a re-encode no longer does
        assert r["last_layer_key_diff"] > 100 * max(r["layer0_key_diff"], 1e-7)
        assert r["shift_ms"] > 0 and r["reencode_ms"] > 0
