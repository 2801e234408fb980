"""benchmarks/gpu_check.py: its CPU dry run exercises every section's code and holds the
oracles to 1e-4; its tables reach docs/benchmarks.md only from a GPU run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_benchmarks import _load

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    return _load("gpu_check")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run, as the device wrapper runs it: a subprocess with the repo on PYTHONPATH."""
    out = tmp_path_factory.mktemp("gpu")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run",
                           "--out", str(out), "--budget-s", "240"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    return out, done


@pytest.mark.slow
def test_dry_run_skips_every_section_and_runs_its_code_on_cpu(dry_run):
    out, done = dry_run
    assert done.returncode in (0, 1), done.stderr[-2000:]
    reason = "no CUDA device" if not torch.cuda.is_available() else "--dry-run"
    assert "no CUDA device: dry run on CPU" in done.stderr or reason == "--dry-run"
    data = json.loads((out / "gpu.json").read_text())
    assert data["device"]["dry_run"] is True and data["device"]["hbm_tb_s_used"] == 4.8
    assert set(data["sections"]) == {"pytest", "oracles", "speed"}
    for section in data["sections"].values():
        assert section["status"] == f"skipped: {reason}"
    assert sorted(p.name for p in out.iterdir()) == ["gpu.json", "gpu.md", "pytest.log",
                                                     "pytest.xml"]
    # pytest only collected the CUDA tests (they skip here, but must collect)
    collected = data["sections"]["pytest"]["cpu_dry_run"]
    assert collected["status"] == "ok" and collected["collected"] >= 100
    assert str(out) not in collected["command"]  # the report names $OUT, not a local path


@pytest.mark.slow
def test_dry_run_oracles_hold_on_cpu(dry_run):
    out, _ = dry_run
    oracles = json.loads((out / "gpu.json").read_text())["sections"]["oracles"]["cpu_dry_run"]
    rows = {(r["oracle"], r["dtype"]): r for r in oracles["cases"]}
    assert {o for o, _ in rows} == {"O1", "O2", "O3"}
    for oracle in ("O1", "O2", "O3"):
        fp32, bf16 = rows[oracle, "float32"], rows[oracle, "bfloat16"]
        assert fp32["status"] == "ok" and fp32["resolved_backend"] == "torch"
        assert fp32["tokens"] > 50 and 0 < fp32["tim_vs_hf_fp32"] <= 1e-4
        assert fp32["tim_vs_fp64"] <= 1e-4
        # bf16: a real low-precision error, bounded by twice HF's own
        assert bf16["status"] == "ok" and 1e-3 < bf16["tim_vs_fp64"] <= bf16["bound"]
        assert bf16["bound"] == pytest.approx(2 * bf16["hf_low_vs_fp64"])
    assert oracles["composed_reference"]["status"]  # run, or "not available"


@pytest.mark.slow
def test_dry_run_speed_checks_before_it_times(dry_run):
    out, _ = dry_run
    speed = json.loads((out / "gpu.json").read_text())["sections"]["speed"]["cpu_dry_run"]
    assert speed["status"] == "ok", [c["status"] for c in speed["cases"]]
    kinds = [c.get("kind") for c in speed["cases"]]
    assert kinds == ["bandwidth", "cascade", "paged", "model", "flat", "siblings", "siblings"]
    flat = next(c for c in speed["cases"] if c["kind"] == "flat")
    assert flat["max_logprob_diff"] <= 0.3 and flat["tim_tok_s"] > 0 and flat["hf_tok_s"] > 0
    for c in speed["cases"]:
        if c["kind"] in ("cascade", "paged"):
            assert c["max_err"] <= 2e-2 and c["tim_ms"] > 0 and c["baseline_ms"] > 0
        if c["kind"] == "siblings":
            assert len(c["rates"]) == 3 and c["cascade_logprob_diff"] <= 0.3
    md = (out / "gpu.md").read_text()
    assert md.startswith("<!-- gpu_check: dry_run=true -->\n")
    assert "| O3 |" in md and "paged_cascade_attention" in md and "HF generate, batch 4" in md


@pytest.mark.slow
def test_a_dry_run_is_never_merged_into_the_docs(dry_run, tmp_path):
    out, _ = dry_run
    run_suite = _load("run_suite")
    doc = tmp_path / "benchmarks.md"
    doc.write_text((ROOT / "docs" / "benchmarks.md").read_text())
    with pytest.raises(SystemExit, match="not from a GPU run"):
        run_suite.merge_gpu(out / "gpu.md", doc)
    assert doc.read_text() == (ROOT / "docs" / "benchmarks.md").read_text()


@pytest.mark.slow
def test_a_gpu_report_names_the_device_and_merges(dry_run, gpu_check, tmp_path):
    out, _ = dry_run
    data = json.loads((out / "gpu.json").read_text())  # reshaped as a GPU run would write it
    data["device"].update(dry_run=False, cuda=True, name="NVIDIA H200", capability="9.0",
                          memory_gib=139.8, cuda_runtime="13.0")
    data["sections"] = {name: s["cpu_dry_run"] for name, s in data["sections"].items()}
    md = gpu_check.markdown(data)
    assert md.startswith("<!-- gpu_check: dry_run=false -->\nDevice: NVIDIA H200 (compute "
                         "capability 9.0, 139.8 GiB, CUDA 13.0); torch ")
    assert "Dry run" not in md and "4.8 TB/s" in md and "| O1 | qwen3 | float32 |" in md
    (tmp_path / "gpu.md").write_text(md)
    doc = tmp_path / "benchmarks.md"
    doc.write_text((ROOT / "docs" / "benchmarks.md").read_text())
    _load("run_suite").merge_gpu(tmp_path / "gpu.md", doc)
    assert md.strip("\n") in doc.read_text()


def test_a_gpu_run_replaces_only_the_gpu_block(tmp_path):
    run_suite = _load("run_suite")
    original = (ROOT / "docs" / "benchmarks.md").read_text()
    doc, md = tmp_path / "benchmarks.md", tmp_path / "gpu.md"
    doc.write_text(original)
    md.write_text("<!-- gpu_check: dry_run=false -->\nDevice: NVIDIA H200\n\n| a |\n")
    run_suite.merge_gpu(md, doc)
    merged = doc.read_text()
    assert "<!-- suite:gpu -->\n<!-- gpu_check: dry_run=false -->\nDevice: NVIDIA H200\n\n| a |\n" \
           "<!-- /suite:gpu -->" in merged
    before, after = original.split("<!-- suite:gpu -->")[0], original.split("<!-- /suite:gpu -->")[1]
    assert merged.startswith(before) and merged.endswith(after)


def test_junit_counts_name_what_did_not_pass(gpu_check, tmp_path):
    xml = tmp_path / "pytest.xml"
    xml.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1" time="2.5">'
        '<testcase classname="tests.kernels.test_cuda" name="test_a"/>'
        '<testcase classname="tests.kernels.test_cuda" name="test_b">'
        '<failure message="assert 0.3 &lt;= 0.1">trace</failure></testcase>'
        '<testcase classname="tests.kernels.test_cuda" name="test_c"><skipped/></testcase>'
        '</testsuite></testsuites>')
    counts = gpu_check.junit_counts(xml)
    assert (counts["tests"], counts["failures"], counts["skipped"]) == (3, 1, 1)
    assert counts["not_passed"] == ["tests.kernels.test_cuda::test_b: assert 0.3 <= 0.1"]
    assert gpu_check.junit_counts(tmp_path / "missing.xml") == {"junit": "not written"}


def test_a_case_that_fails_or_raises_is_recorded_and_the_next_still_runs(gpu_check):
    budget, rows = gpu_check.Budget(60), []

    def broken():
        raise RuntimeError("CUDA error: an illegal memory access")

    def wrong():
        raise AssertionError("tokens differ")

    gpu_check.run_case(rows, "a", broken, budget, need_s=1)
    gpu_check.run_case(rows, "b", wrong, budget, need_s=1)
    gpu_check.run_case(rows, "c", lambda: {"x": 1}, budget, need_s=1)
    gpu_check.run_case(rows, "d", lambda: {"x": 2}, budget, need_s=120)
    assert [r["status"].split(":")[0] for r in rows] == ["error", "failed", "ok", "skipped"]
    assert "illegal memory access" in rows[0]["status"] and rows[2]["x"] == 1
    assert gpu_check.summarize(rows) == "failed: 3 of 4 cases not ok"
    assert gpu_check.Budget(100).share(5).left() <= 5 < gpu_check.Budget(100).left()


def test_a_composed_reference_is_called_by_parameter_names(gpu_check):
    def max_error(model, record, *, scale=1.0):
        return (model + record) * scale, 7

    assert gpu_check.call_by_names(max_error, record=2, model=1, tokenizer=None) == (3, 7)
    with pytest.raises(TypeError, match="'grid'"):
        gpu_check.call_by_names(lambda grid: grid, record=1)
