"""GPU check (issue 17): run every CUDA path once on a lent GPU and record what happened.

One command, at most about 8 minutes on an H200 under a time budget it enforces itself
(``--budget-s``), writes everything under ``--out`` (default ``$OUT``). Its sections:

1. **pytest** -- ``pytest -m cuda -q`` over ``tests/`` in a subprocess with a deadline (every
   failure collected, no ``-x``); the log and a JUnit XML are kept and counted. It runs in
   the background while section 2 runs (neither is timed).
2. **oracles** -- DESIGN.md's O1 (``thread2``, no pruning), O2 (``parallel``, isolated
   siblings before joins) and O3 (``reencode`` after evictions) of the engine against Hugging
   Face on the same device, on tiny random Llama and Qwen3 models, teacher-forced along the
   CPU oracles' tree; each sampled token's view is snapshotted and run through HF. fp32 must be within 1e-4 of HF fp32 eager. bf16 follows
   FlashAttention's rule: tim's error against HF fp64 eager is at most twice HF's own bf16
   (``sdpa``) error against the same fp64 reference. bf16 runs once with ``auto`` (which
   picks ``torch-cuda``) and once forced to ``sdpa``. If ``tests/engine/reference.py``
   (issue 11's composed reference) exists, its error function is also run on the fp32
   records (with a CPU fp32 eager model); otherwise it is reported "not available".
3. **speed** -- bf16, Qwen3-0.6B shape, random weights, side by side in one run: tim flat
   decode vs HF ``generate`` at batch 1; tim 8 and 32 siblings (cascade on and off) vs HF
   ``generate`` at batch 8 and 32 from the same shared prefix; cascade vs per-worker gather
   at B = 32 and 128 over an 8k prefix; paged attention with block tables vs gather + varlen.
   Every case checks its result (same tokens, log-probs within a bf16 sanity bound, or
   ``allclose`` against an fp32 reference) and asserts before it times anything; CUDA timings
   are bracketed by ``torch.cuda.synchronize``. Figures: tokens/s and the fraction of HBM
   bandwidth, against the H200 datasheet's 4.8 TB/s (a device-to-device copy is measured too).

Each section and each case catches its own exceptions and records them; ``gpu.json`` is
rewritten after every case and at the end. Outputs (5 files, no folders): ``gpu.json``,
``gpu.md`` (tables naming the device, for ``python benchmarks/run_suite.py --merge-gpu
gpu.md``), ``pytest.log``, ``pytest.xml`` and, from the wrapper, ``gpu_check.log``. Exit
status: 0 when every section held, 1 otherwise.

Without a CUDA device every section is marked ``skipped: no CUDA device`` (with
``--dry-run``, ``skipped: --dry-run``) and the same code runs on CPU at tiny sizes instead
(``cpu_dry_run`` in each section): pytest only collects the CUDA tests, the oracles run in fp32 (must hold to 1e-4)
and bf16, and every speed case runs on a 2-layer model. That takes seconds and checks the
plumbing, not the figures; ``tests/test_gpu_check.py`` runs it.

Running it on the device machine
--------------------------------
tim is not pip-installed there: the wrapper puts the repository root on ``PYTHONPATH``. The
machine has torch 2.11 + CUDA 13, transformers 5.17, triton, pytest, pytest-timeout,
hypothesis, rich and networkx. transformers 5.17's forward and ``generate`` take
``past_key_values``, not ``cache``: ``bench_engine.cache_kwarg`` (and the composed reference
in ``tests/engine/reference.py``) pass whichever the model takes. Of tim's imports only ``llguidance`` is missing there; the engine here runs with
``structure="free"`` and never imports it, but carry its wheel for the tests. Once, on this
machine, from the repository root::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_31_x86_64 \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl llguidance==1.9.1
    echo /.whl/ >> .git/info/exclude

(1.9.1 is the version installed here; its only wheel is tagged ``manylinux_2_31``, so that
platform must be listed. ``graphviz`` and ``selenium``, also missing there, are imported
only by tests that skip without them.) Then call the device tool's ``run`` with
``command="bash benchmarks/gpu_check.sh"``, ``carry=[".whl"]`` and ``timeout_s=600``. The
wrapper installs ``.whl/*.whl`` into ``/tmp/site`` (``pip install --no-index --no-deps
--target``), exports ``PYTHONPATH=/tmp/site:$PWD`` and ``PYTHONUNBUFFERED=1``, and tees the
output to ``$OUT/gpu_check.log``; extra arguments reach this script, e.g.
``bash benchmarks/gpu_check.sh --sections oracles,speed --budget-s 300`` to rerun a part.

Usage::

    python benchmarks/gpu_check.py [--out DIR] [--dry-run] [--budget-s S] [--sections LIST]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import functools
import importlib
import importlib.util
import inspect
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
HBM_BYTES_S = 4.8e12  # H200 datasheet; the measured copy bandwidth is reported beside it
FP32_TOL = 1e-4  # DESIGN.md section 4
BF16_RATIO = 2.0  # FlashAttention's rule: at most 2x the low-precision baseline's error
# sanity bound for the timed bf16 runs: HF bf16 vs fp32 differs by up to 0.08 nats on the
# 0.6B shape (measured on CPU); a wrong mask or position moves log-probs by whole nats
BF16_SANITY_TOL = 0.3
SECTIONS = ("pytest", "oracles", "speed")
ORACLES = {  # name -> (format, pruning, positions)
    "O1": ("thread2", "none", "shift"),
    "O2": ("parallel", "none", "shift"),
    "O3": ("thread2", "buffer:0", "reencode"),
}
H, HKV, D = 16, 8, 128  # Qwen3-0.6B's attention


@dataclass(frozen=True)
class Sizes:
    archs: tuple[str, ...]  # tiny models of the oracles
    oracle_variants: tuple[tuple[str, str], ...]  # (dtype, backend) of the oracle runs
    small_tree: bool  # oracles on a 3-task tree instead of the tests' 9-task one
    model: str  # bench_engine.MODELS name, or "tiny"
    dtype: str
    flat_prompt: int
    flat_tokens: int
    rounds: int
    siblings: tuple[int, ...]
    shared_prompt: int
    child_thought: int
    cascade_workers: tuple[int, ...]
    cascade_prefix: int
    cascade_suffix: int
    paged_seqs: int
    paged_max_len: int
    page_size: int
    kernel_backends: tuple[str, ...]
    reps: int
    copy_mb: int


GPU = Sizes(
    archs=("llama", "qwen3"),
    oracle_variants=(("float32", "auto"), ("bfloat16", "auto"), ("bfloat16", "sdpa")),
    small_tree=False, model="qwen3-0.6b", dtype="bfloat16", flat_prompt=64, flat_tokens=32,
    rounds=2, siblings=(8, 32), shared_prompt=1000, child_thought=24, cascade_workers=(32, 128),
    cascade_prefix=8192, cascade_suffix=128, paged_seqs=32, paged_max_len=8192, page_size=256,
    kernel_backends=("auto", "sdpa"), reps=20, copy_mb=2048)
DRY = Sizes(  # seconds on a 2-core CPU: every code path, none of the sizes
    archs=("qwen3",), oracle_variants=(("float32", "auto"), ("bfloat16", "auto")),
    small_tree=True, model="tiny", dtype="bfloat16", flat_prompt=16, flat_tokens=4, rounds=1,
    siblings=(2, 4), shared_prompt=64, child_thought=2, cascade_workers=(4,), cascade_prefix=256,
    cascade_suffix=16, paged_seqs=4, paged_max_len=512, page_size=16, kernel_backends=("auto",),
    reps=2, copy_mb=16)
TINY_MODEL = dict(arch="qwen3", num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2,
                  head_dim=16, vocab_size=512, intermediate_size=128)


# ---------------------------------------------------------------------- budget and report
class BudgetExceeded(Exception):
    """Raised by SIGALRM when the global budget runs out inside a case."""


class Budget:
    """A time budget: cases ask ``left()`` before starting. ``share`` gives a section its own
    cap inside the global one; an alarm stops a stuck case when the global one runs out."""

    def __init__(self, total_s: float, parent: Budget | None = None) -> None:
        self.start, self.total_s, self.parent = time.monotonic(), total_s, parent

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        own = self.total_s - self.elapsed()
        return own if self.parent is None else min(own, self.parent.left())

    def share(self, total_s: float) -> Budget:
        return Budget(total_s, parent=self)

    def log(self, message: str) -> None:
        if self.parent is not None:
            return self.parent.log(message)
        print(f"[gpu_check {self.elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


class Report:
    """Owns gpu.json: sections fill ``data`` as they go and ``write`` replaces the file."""

    def __init__(self, out: Path, info: dict) -> None:
        self.path = out / "gpu.json"
        self.data = {"version": 1, "device": info, "sections": {}}

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def run_case(rows: list[dict], case: str, fn: Callable[[], dict], budget: Budget, *,
             need_s: float, on_done: Callable[[], None] = lambda: None) -> None:
    """Append ``{"case", "status", **fn()}``; a failed assert or an exception becomes the status."""
    if budget.left() < need_s:
        rows.append({"case": case, "status": f"skipped: out of time budget "
                     f"({budget.left():.0f} s left, needs about {need_s:.0f})"})
        on_done()
        return
    budget.log(f"{case} ...")
    start = time.monotonic()
    try:
        row = {"case": case, "status": "ok", **fn()}
    except AssertionError as exc:
        row = {"case": case, "status": f"failed: {exc}"}
    except Exception as exc:  # recorded; the next case still runs
        row = {"case": case, "status": f"error: {type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc(limit=-8)}
    row["seconds"] = round(time.monotonic() - start, 2)
    rows.append(row)
    budget.log(f"{case}: {row['status'][:300]}")
    on_done()


def summarize(rows: list[dict]) -> str:
    bad = [r for r in rows if r["status"] != "ok"]
    return "ok" if rows and not bad else (
        "failed: no case ran" if not rows else f"failed: {len(bad)} of {len(rows)} cases not ok")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


# ---------------------------------------------------------------------- 1. pytest
def start_pytest(out: Path, *, collect_only: bool) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rfE", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", f"--junitxml={out / 'pytest.xml'}"]
    if importlib.util.find_spec("pytest_timeout") is not None:
        cmd.append("--timeout=120")
    cmd += ["--collect-only", "tests/kernels/test_cuda.py"] if collect_only else ["tests"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    with (out / "pytest.log").open("w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own group: a timeout kills it all


def finish_pytest(proc: subprocess.Popen, out: Path, deadline: float, budget: Budget) -> dict:
    start = budget.elapsed()
    try:
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        status = None
    except subprocess.TimeoutExpired:
        budget.log("pytest: past its deadline, stopping it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        status = "failed: timed out (counts from the progress dots)"
    lines = (out / "pytest.log").read_text(errors="replace").splitlines()
    command = " ".join(map(str, proc.args[1:])).replace(str(out), "$OUT")  # no local path
    result = {"command": command, "returncode": rc,
              "waited_s": round(budget.elapsed() - start, 1), **junit_counts(out / "pytest.xml"),
              "progress": progress_counts(lines), "log_tail": lines[-30:]}
    if "--collect-only" in proc.args:
        result["collected"] = sum(1 for line in lines if "::" in line)
    if status is None:
        bad = result.get("failures", 0) + result.get("errors", 0)
        status = "ok" if rc in (0, 5) and not bad else f"failed: exit {rc}, {bad} failed or errors"
    result["status"] = status
    return result


def progress_counts(lines: list[str]) -> dict:
    """Outcomes from ``pytest -q``'s progress lines (``..F.s  [ 40%]``): what a run that was
    stopped before writing its JUnit XML had done."""
    names = {".": "passed", "F": "failed", "E": "errors", "s": "skipped", "x": "xfailed",
             "X": "xpassed"}
    counts = dict.fromkeys(names.values(), 0)
    for line in lines:
        dots = line.split("[")[0].strip()
        if dots and set(dots) <= set(names) and (line.rstrip().endswith("%]") or dots == line):
            for char in dots:
                counts[names[char]] += 1
    return counts


def junit_counts(path: Path) -> dict:
    """tests / failures / errors / skipped / time from a JUnit XML, and the failed test ids."""
    if not path.exists():
        return {"junit": "not written"}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites)
              for k in ("tests", "failures", "errors", "skipped")}
    counts["time_s"] = round(sum(float(s.get("time", 0)) for s in suites), 1)
    bad = []
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                bad.append(f"{case.get('classname')}::{case.get('name')}: "
                           f"{(child.get('message') or '')[:200]}")
    return {**counts, "not_passed": bad[:40]}


# ---------------------------------------------------------------------- 2. oracles
@contextlib.contextmanager
def auto_backend(device: torch.device, backend: str) -> Iterator[None]:
    """Within the block, ``backend="auto"`` (all the engine can pass) means only ``backend``
    on ``device``; ``"auto"`` leaves the order as it is."""
    from tim.kernels import backends

    saved = backends.AUTO_ORDER.get(device.type)
    if backend != "auto":
        backends.AUTO_ORDER[device.type] = (backend,)
    try:
        yield
    finally:
        if saved is None:
            backends.AUTO_ORDER.pop(device.type, None)
        else:
            backends.AUTO_ORDER[device.type] = saved


def resolved_backend(device: torch.device, dtype: torch.dtype) -> str:
    """The backend ``"auto"`` picks for a causal call of this dtype on ``device``."""
    from tim.kernels import AttentionParams
    from tim.kernels.backends import resolve_backend

    q = torch.zeros(1, 4, 16, dtype=dtype, device=device)
    params = AttentionParams.build(16, causal=True, softmax_scale=None, window_size=(-1, -1),
                                   softcap=0.0)
    return resolve_backend("auto", q, params).name


def hf_copy(model, device: torch.device, dtype: torch.dtype, attn: str | None):
    """An independent copy of ``model`` on ``device`` in ``dtype`` with attention ``attn``."""
    ref = copy.deepcopy(model).to(device=device, dtype=dtype)
    if attn is not None:
        ref.set_attn_implementation(attn)
    return ref


@torch.inference_mode()
def chosen_logprobs(model, snapshots: list, *, contiguous: bool) -> torch.Tensor:
    """(N,) fp64: each snapshot's chosen-token log-prob under a plain HF forward over its view
    (at the view's positions, or 0..n-1 when ``contiguous``). Like the tests' oracle, a view
    that extends the previous one reuses its forward; unlike it, runs on the model's device."""
    device = next(model.parameters()).device
    out = torch.empty(len(snapshots), dtype=torch.float64)
    cached = None
    order = sorted(range(len(snapshots)),
                   key=lambda i: (snapshots[i].path, len(snapshots[i].view_ids)), reverse=True)
    for i in order:
        snap = snapshots[i]
        n = len(snap.view_ids)
        positions = list(range(n)) if contiguous else list(snap.view_positions)
        if cached is None or cached[0][:n] != snap.view_ids or cached[1][:n] != positions:
            logits = model(input_ids=torch.tensor([snap.view_ids], device=device),
                           position_ids=torch.tensor([positions], device=device),
                           use_cache=False).logits[0]  # (n, V)
            cached = (snap.view_ids, positions, torch.log_softmax(logits.double(), dim=-1))
        out[i] = cached[2][n - 1, snap.token].item()
    return out


@dataclass(frozen=True)
class Snapshot:
    """What a sampling stream's view held when it chose ``token`` (as the CPU oracles took it)."""

    path: tuple
    view_ids: list[int]
    view_positions: list[int]
    token: int
    logprob: float


def oracle_tree(small: bool):
    """The CPU oracles' tree (nested lists, so ``buffer:0`` evicts), or a 3-task one."""
    from tim.tree import Task, TaskTree

    if small:
        return TaskTree([Task("split", "2", title="A", subtasks=[Task("x", "1", title="a1")]),
                         Task("then", "3", title="B")], answer="5")
    return TaskTree([
        Task("split A", "A is 3", title="A", subtasks=[
            Task("first half", "1", title="a1"),
            Task("second half", "2", title="a2", subtasks=[Task("deep", "d", title="a2x")])]),
        Task("then B", "B is 4", title="B", subtasks=[Task("only", "4", title="b1")]),
        Task("sum", "7", title="C")], answer="7")


def capture_views(chooser) -> list[Snapshot]:
    """Wrap ``chooser.choose`` to snapshot each sampling stream's view; returns the list."""
    snapshots: list[Snapshot] = []
    choose = chooser.choose

    def capturing(streams, logits, bitmask=None):
        picked = choose(streams, logits, bitmask)
        for stream, (token, logprob) in zip(streams, picked, strict=True):
            snapshots.append(Snapshot(stream.path, stream.view.token_ids().tolist(),
                                      stream.view.position_ids().tolist(), token, logprob))
        return picked

    chooser.choose = capturing
    return snapshots


def before_joins(record, snapshots: list[Snapshot]) -> list[Snapshot]:
    """Snapshots taken before their stream's first join (a join lays concurrently decoded
    siblings end to end, which no single HF forward reproduces)."""
    fork_len: dict[tuple, int] = {}
    for path, stream in record.streams.items():
        if path:
            fork_len[path[:-1]] = min(fork_len.get(path[:-1], 10**9), stream.parent_tokens)
    return [s for s in snapshots if len(s.view_ids) <= fork_len.get(s.path, 10**9)]


def run_replayed(model, tokenizer, tree, *, fmt: str, pruning: str, positions: str):
    """One engine run teacher-forced along ``tree``; returns (record, snapshots)."""
    from tim.engine.choosers import TextReplay
    from tim.engine.config import EngineConfig
    from tim.engine.engine import Engine
    from tim.tree import get_format

    rendered = get_format(fmt).render(tree)
    texts = {(): rendered} if isinstance(rendered, str) else rendered
    chooser = TextReplay(texts, tokenizer)
    snapshots = capture_views(chooser)
    engine = Engine(model, tokenizer, EngineConfig(
        format=fmt, pruning=pruning, positions=positions, max_workers=8, max_new_tokens=10_000,
        kv_budget_tokens=8192, cascade_min_saved=8, structure="free"))
    prompt = tokenizer.encode("Solve: 3 + 4.", add_special_tokens=False)
    record = engine.run(prompt, chooser=chooser)
    assert record.error is None, f"the engine run ended with an error: {record.error}"
    return record, snapshots


def check_oracle(oracle: str, model, tokenizer, refs: dict, *, tree, low=None) -> tuple[dict, object]:
    """One oracle on one model copy; returns (row, record). ``refs``: HF eager fp64 and fp32;
    ``low``: HF's own run in the model's low precision (bf16), or None in fp32."""
    fmt, pruning, positions = ORACLES[oracle]
    record, snaps = run_replayed(model, tokenizer, tree, fmt=fmt, pruning=pruning,
                                 positions=positions)
    if oracle == "O1":
        assert record.num_evicted == 0 and len(snaps) == record.num_generated, "O1 evicted"
    elif oracle == "O2":
        assert record.max_concurrency >= 2, "O2: siblings did not decode concurrently"
        snaps = before_joins(record, snaps)
        assert any(s.path for s in snaps), "O2: no child snapshot before a join"
    else:
        assert record.num_evicted > 0 and record.num_reencoded > 0, "O3: nothing re-encoded"
        assert all(s.view_positions == list(range(len(s.view_ids))) for s in snaps)
    contiguous = fmt == "thread2"
    tim = torch.tensor([s.logprob for s in snaps], dtype=torch.float64)
    ref64 = chosen_logprobs(refs["float64"], snaps, contiguous=contiguous)
    row = {"oracle": oracle, "tokens": len(snaps), "tim_vs_fp64": max_abs(tim, ref64)}
    if low is None:
        row["tim_vs_hf_fp32"] = max_abs(tim, chosen_logprobs(refs["float32"], snaps,
                                                             contiguous=contiguous))
        row["bound"], error = FP32_TOL, row["tim_vs_hf_fp32"]
    else:
        row["hf_low_vs_fp64"] = max_abs(chosen_logprobs(low, snaps, contiguous=contiguous), ref64)
        row["bound"], error = BF16_RATIO * row["hf_low_vs_fp64"], row["tim_vs_fp64"]
    row["holds"] = error <= row["bound"]
    if not row["holds"]:
        row["status"] = f"failed: error {error:.3g} > bound {row['bound']:.3g}"
    return row, record


def oracle_section(device: torch.device, sizes: Sizes, budget: Budget, rows: list,
                   on_done: Callable[[], None]) -> dict:
    from tim.models import tiny_model

    tree = oracle_tree(sizes.small_tree)
    kept = []  # (case, record, CPU fp32 model, tokenizer, device model): composed ref
    bases = {arch: tiny_model(arch, max_position_embeddings=1024) for arch in sizes.archs}
    eager = {arch: {name: hf_copy(base.model, device, getattr(torch, name), "eager")
                    for name in ("float64", "float32")} for arch, base in bases.items()}
    # variant by variant: a slow device still gets fp32 on every model first
    for dtype_name, backend in sizes.oracle_variants:
        for arch, base in bases.items():
            refs, dtype = eager[arch], getattr(torch, dtype_name)
            model = hf_copy(base.model, device, dtype, None)  # the engine routes it through tim
            low = None if dtype == torch.float32 else hf_copy(base.model, device, dtype, "sdpa")
            for oracle in ORACLES:
                case = f"{oracle} {arch} {dtype_name} backend={backend}"

                def one(oracle=oracle, model=model, low=low, backend=backend, dtype=dtype,
                        dtype_name=dtype_name, case=case, arch=arch, base=base, refs=refs):
                    with auto_backend(device, backend):
                        resolved = resolved_backend(device, dtype)
                        row, record = check_oracle(oracle, model, base.tokenizer, refs,
                                                   tree=tree, low=low)
                    if dtype == torch.float32:
                        kept.append((case, record, base.model, base.tokenizer, model))
                    return {"arch": arch, "dtype": dtype_name, "backend": backend,
                            "resolved_backend": resolved, **row}

                run_case(rows, case, one, budget, need_s=15, on_done=on_done)
    composed = composed_reference(kept, tree, budget) if budget.left() > 20 else {
        "status": "skipped: out of time budget"}
    status = summarize(rows)
    if status == "ok" and composed["status"].startswith(("failed", "error")):
        status = f"failed: composed reference {composed['status']}"
    return {"status": status, "cases": rows, "composed_reference": composed}


def composed_reference(kept: list, tree, budget: Budget) -> dict:
    """Issue 11's composed HF reference, if ``tests/engine/reference.py`` exists: its
    ``max_*`` error function is called on each fp32 record, and on one more run on the
    default path (``parallel``, ``buffer:1``, ``shift``), with a CPU fp32 eager model. Its
    name and signature are not known here, so parameters are bound by name (record, model,
    tokenizer, prompt)."""
    try:
        module = importlib.import_module("tests.engine.reference")
    except ImportError as exc:
        return {"status": f"not available ({exc})"}
    functions = {name: fn for name, fn in inspect.getmembers(module, inspect.isfunction)
                 if fn.__module__ == module.__name__ and not name.startswith("_")}
    preferred = [n for n in ("max_reference_error", "max_composed_error", "max_logprob_error",
                             "max_logprob_diff", "composed_error") if n in functions]
    preferred += sorted(n for n in functions if n.startswith("max_") and n not in preferred)
    if not preferred:
        return {"status": f"not available (no max_* function; it has {sorted(functions)})"}
    fn = functions[preferred[0]]

    def check(record, cpu_model, tokenizer) -> dict:
        value = call_by_names(fn, record=record, tokenizer=tokenizer, prompt=record.prompt_ids,
                              model=hf_copy(cpu_model, torch.device("cpu"), torch.float32,
                                            "eager"))
        row = {"result": repr(value)[:300]}
        if isinstance(value, (tuple, list)) and len(value) == 2:  # (error, tokens compared)
            value, row["tokens"] = value
        if isinstance(value, (int, float)):
            assert value <= FP32_TOL, f"composed reference error {value:.3g} > {FP32_TOL}"
            row["max_logprob_diff"] = float(value)
        return row

    rows: list[dict] = []
    for case, record, cpu_model, tokenizer, _ in kept:
        run_case(rows, f"composed {case}", functools.partial(check, record, cpu_model, tokenizer),
                 budget, need_s=10)
    if kept:  # and the default path, on the last fp32 model
        case, _, cpu_model, tokenizer, device_model = kept[-1]

        def default_path() -> dict:
            record, _ = run_replayed(device_model, tokenizer, tree, fmt="parallel",
                                     pruning="buffer:1", positions="shift")
            return check(record, cpu_model, tokenizer)

        run_case(rows, f"composed default path (parallel, buffer:1, shift) {case.split()[1]} "
                 f"float32", default_path, budget, need_s=10)
    return {"status": summarize(rows), "function": f"{fn.__name__}{inspect.signature(fn)}",
            "cases": rows}


def call_by_names(fn: Callable, **values):
    """Call ``fn`` binding each parameter whose name contains a key of ``values``."""
    kwargs = {}
    for param in inspect.signature(fn).parameters.values():
        match = next((v for k, v in values.items() if k in param.name.lower()), None)
        if match is not None:
            kwargs[param.name] = match
        elif param.default is inspect.Parameter.empty and param.kind not in (
                param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"cannot bind parameter {param.name!r} of {fn.__name__}")
    return fn(**kwargs)


# ---------------------------------------------------------------------- 3. speed
def hf_generate(lm, input_ids: torch.Tensor, num_new: int, cache=None) -> tuple:
    """``bench_engine.hf_generate`` with wall seconds per step: (new ids, logits, walls)."""
    import bench_engine as be

    new_ids, logits, steps = be.hf_generate(lm, input_ids, num_new, cache)
    return new_ids, logits, [wall for wall, _ in steps]


def build_speed_model(sizes: Sizes, device: torch.device):
    import bench_engine as be

    from tim.models import tiny_model

    if sizes.model == "tiny":
        lm = tiny_model(**TINY_MODEL, max_position_embeddings=4096, tie_word_embeddings=True)
        lm.tokenizer.add_tokens(be.FORMAT_TOKENS)
    else:
        lm = be.build_model(sizes.model)
    lm.model.to(device=device, dtype=getattr(torch, sizes.dtype))
    return lm


def copy_bandwidth(device: torch.device, megabytes: int) -> dict:
    """Device-to-device copy, bytes read + written per second (median of 10)."""
    src = torch.ones(megabytes * 2**20 // 2, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(10):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        times.append(time.perf_counter() - start)
    assert torch.equal(dst, src)
    rate = 2 * src.numel() * 2 / statistics.median(times)
    return {"kind": "bandwidth", "copy_gb": src.numel() * 2 / 1e9, "copy_tb_s": rate / 1e12,
            "copy_hbm_pct": 100 * rate / HBM_BYTES_S}


def stopped_by_budget(record) -> bool:
    """A flat replay of n tokens ends on ``max_new_tokens`` (the tree is never finished)."""
    return record.error is None or "max_new_tokens" in record.error


def flat_case(lm, sizes: Sizes, device: torch.device) -> dict:
    """tim flat decode (thread2, HF's greedy tokens replayed) vs HF ``generate``, batch 1."""
    import bench_engine as be

    from tim.engine.choosers import TokenReplay
    from tim.engine.config import EngineConfig

    n = sizes.flat_tokens
    prompt = lm.tokenizer.encode(be.PROSE * 4, add_special_tokens=False)[: sizes.flat_prompt]
    ids = torch.tensor([prompt], device=device)
    hf_ids, hf_logits, _ = hf_generate(lm, ids, n)  # a warm-up, and the tokens tim replays
    tokens = hf_ids[0].tolist()
    config = EngineConfig(format="thread2", structure="free", pruning="none",
                          max_new_tokens=n, kv_budget_tokens=len(prompt) + n + 64)
    seen: list[torch.Tensor] = []
    chooser = TokenReplay({(): tokens})
    inner = chooser.choose
    chooser.choose = lambda streams, logits, bitmask=None: (
        seen.append(logits[0].float().cpu()), inner(streams, logits, bitmask))[1]
    record, _ = be.run_engine(lm, prompt, config, chooser)  # a warm-up, and the check
    assert stopped_by_budget(record), f"tim: {record.error}"
    assert len(seen) == n, f"tim chose {len(seen)} tokens, not {n}"
    worst, near_ties = 0.0, 0
    for tim_logits, ref, token in zip(seen, hf_logits, tokens, strict=True):
        mine, theirs = torch.log_softmax(tim_logits, -1), torch.log_softmax(ref[0].float().cpu(), -1)
        worst = max(worst, abs(mine[token] - theirs[token]).item())
        if int(mine.argmax()) != token:  # allowed only at a near tie
            gap = (mine.max() - mine[token]).item()
            assert gap <= BF16_SANITY_TOL, f"tim's greedy token differs from HF's by {gap:.3f} nats"
            near_ties += 1
    assert worst <= BF16_SANITY_TOL, f"tim's log-probs differ from HF's by {worst:.3f}"
    walls: dict[str, list[float]] = {"hf": [], "tim": []}
    hf_changed = 0  # rounds in which HF's greedy tokens differ from its first run's
    for r in range(sizes.rounds):  # alternate the order
        for who in ("hf", "tim") if r % 2 == 0 else ("tim", "hf"):
            if who == "hf":
                new_ids, _, steps = hf_generate(lm, ids, n)
                hf_changed += new_ids[0].tolist() != tokens
                walls["hf"] += steps
            else:
                record, steps = be.run_engine(lm, prompt, config, TokenReplay({(): tokens}))
                assert stopped_by_budget(record), f"tim: {record.error}"
                walls["tim"] += [s.wall_s for s in steps[1:]]  # steps[0]: the prompt
    weight_bytes = be.decode_weight_bytes(lm.model)
    secs = {k: statistics.median(v) for k, v in walls.items()}
    return {"kind": "flat", "batch": 1, "prompt": len(prompt), "new_tokens": n,
            "weight_gb": weight_bytes / 1e9, "roofline_tok_s": HBM_BYTES_S / weight_bytes,
            **{f"{k}_tok_s": 1 / v for k, v in secs.items()},
            **{f"{k}_hbm_pct": 100 * weight_bytes / v / HBM_BYTES_S for k, v in secs.items()},
            "tim_over_hf": secs["hf"] / secs["tim"], "max_logprob_diff": worst,
            "near_ties": near_ties, "rounds": sizes.rounds,
            "hf_rounds_with_other_tokens": hf_changed}


def sibling_texts(num: int, thought_len: int) -> dict:
    import bench_engine as be

    from tim.tree import Task, TaskTree, get_format

    thought = (be.PROSE * 4)[:thought_len]  # equal titles and thoughts: HF rows of one length
    tree = TaskTree([Task(thought, "c", title=f"t{i:02d}") for i in range(num)], answer="z")
    return get_format("parallel").render(tree)


def siblings_case(lm, sizes: Sizes, device: torch.device, num: int, flat_tok_s: float | None):
    """``num`` siblings over a shared prefix: tim with cascade on and off vs HF ``generate`` at
    batch ``num`` from the same prefix (prefilled once, its cache repeated)."""
    import bench_engine as be

    from tim.engine.choosers import TextReplay
    from tim.engine.config import EngineConfig

    texts = sibling_texts(num, sizes.child_thought)
    prompt = lm.tokenizer.encode(be.PROSE * 20, add_special_tokens=False)[: sizes.shared_prompt]
    runs = {}
    for name, cascade in (("tim, cascade", True), ("tim, no cascade", False)):
        config = EngineConfig(format="parallel", structure="free", pruning="none",
                              max_workers=num, cascade=cascade, max_new_tokens=100_000,
                              kv_budget_tokens=len(prompt) + 4096 + 64 * num)
        runs[name] = be.run_engine(lm, prompt, config, TextReplay(texts, lm.tokenizer))
    children = [p for p in texts if p]
    (casc, _), (plain, _) = runs.values()
    for name, (record, _) in runs.items():
        assert record.error is None, f"{name}: {record.error}"
        assert {p: s.text for p, s in record.streams.items()} == texts, f"{name}: text differs"
        assert record.max_concurrency == num, f"{name}: {record.max_concurrency} concurrent"
    cascade_diff = max(abs(a - b) for p in children for a, b in
                       zip(casc.streams[p].logprobs, plain.streams[p].logprobs, strict=True)
                       if a is not None)
    assert cascade_diff <= BF16_SANITY_TOL, f"cascade on/off log-probs differ by {cascade_diff}"
    hf = hf_siblings(lm, prompt, casc, children, device)
    rates = {name: be.phase_rates(steps) for name, (_, steps) in runs.items()}
    rates[f"HF generate, batch {num}"] = hf.pop("rates")
    weight_bytes = be.decode_weight_bytes(lm.model)
    for r in rates.values():  # one step reads the weights once, whatever the batch
        r["weights_hbm_pct"] = 100 * weight_bytes * r["median_step_tok_s"] / num / HBM_BYTES_S
        if flat_tok_s:
            r["x_flat_tim"] = r["median_step_tok_s"] / flat_tok_s
    return {"kind": "siblings", "siblings": num,
            "shared_prefix": casc.streams[children[0]].parent_tokens,
            "cascade_logprob_diff": cascade_diff, **hf, "rates": rates}


def hf_siblings(lm, prompt: list[int], record, children: list, device: torch.device) -> dict:
    """HF ``generate`` on the same work: each row is the shared prefix (prefilled once), a
    child's forced header, then as many greedy tokens as each child sampled in tim."""
    import bench_engine as be
    from transformers import DynamicCache

    first = record.streams[children[0]]
    prefix = (prompt + record.streams[()].token_ids)[: first.parent_tokens]
    num_header = first.forced.index(False)
    num_new = sum(1 for f in first.forced if not f)
    rows = [prefix + record.streams[p].token_ids[:num_header] for p in children]
    assert len({len(r) for r in rows}) == 1, "children's headers differ in length"
    cache = DynamicCache(config=lm.model.config)
    lm.model.set_attn_implementation("sdpa")
    with torch.inference_mode():
        lm.model(input_ids=torch.tensor([prefix], device=device), use_cache=True,
                 **{be.cache_kwarg(lm.model): cache})
    cache.batch_repeat_interleave(len(children))
    _, logits, walls = hf_generate(lm, torch.tensor(rows, device=device), num_new, cache)
    diff = be.first_child_logprob_diff(record, children, logits[0], num_header)
    assert diff <= BF16_SANITY_TOL, f"tim's first child log-probs differ from HF's by {diff:.3f}"
    tokens = len(children) * len(walls)
    return {"hf_first_logprob_diff": diff, "rates": {
        "child_tokens": tokens, "phase_steps": len(walls), "phase_s": sum(walls),
        "tok_s": tokens / sum(walls), "decode_steps": len(walls),
        "median_step_tok_s": len(children) / statistics.median(walls)}}


def time_pair(tim_fn: Callable, base_fn: Callable, reps: int, device: torch.device) -> dict:
    """Median ms of each, alternating, every call bracketed by a device synchronize."""
    tim_fn(), base_fn()  # warm-up
    times: dict[str, list[float]] = {"tim_ms": [], "baseline_ms": []}
    for _ in range(reps):
        for fn, name in ((tim_fn, "tim_ms"), (base_fn, "baseline_ms")):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def cu(lengths: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32,
                        device=device)


def kv_rate(num_keys: int, dtype: torch.dtype, ms: float) -> float:
    """% of HBM bandwidth if the K/V of ``num_keys`` keys are read once in ``ms``."""
    num_bytes = 2 * num_keys * HKV * D * torch.finfo(dtype).bits // 8
    return 100 * num_bytes / (ms / 1e3) / HBM_BYTES_S


@torch.inference_mode()
def cascade_case(sizes: Sizes, device: torch.device, workers: int, backend: str) -> dict:
    """B workers decode one token each over a shared prefix plus their own suffix, keys in a
    page pool at scattered slots: paged_cascade_attention vs per-worker gather + varlen."""
    from tim.kernels import (
        AttentionParams,
        paged_attention,
        paged_cascade_attention,
        reference_attention,
    )
    from tim.kernels.slots import gather_kv, store_kv

    dtype, prefix, suffix = getattr(torch, sizes.dtype), sizes.cascade_prefix, sizes.cascade_suffix
    gen = torch.Generator(device=device).manual_seed(workers)
    num_slots = prefix + workers * suffix
    k_pages = torch.empty(num_slots + 64, 1, HKV, D, dtype=dtype, device=device)
    v_pages = torch.empty_like(k_pages)
    slots = torch.randperm(num_slots + 64, generator=gen, device=device)[:num_slots]
    store_kv(k_pages, v_pages, torch.randn(num_slots, HKV, D, generator=gen, device=device),
             torch.randn(num_slots, HKV, D, generator=gen, device=device), slots)
    prefix_slots, suffix_slots = slots[:prefix], slots[prefix:]
    q = torch.randn(workers, H, D, generator=gen, device=device).to(dtype)
    cu_q, cu_s = cu([1] * workers, device), cu([suffix] * workers, device)
    view_slots = torch.cat([torch.cat([prefix_slots, suffix_slots[b * suffix:(b + 1) * suffix]])
                            for b in range(workers)])
    cu_k = cu([prefix + suffix] * workers, device)

    def cascade():
        return paged_cascade_attention(q, k_pages, v_pages, cu_q, prefix_slots, suffix_slots,
                                       cu_s, backend=backend)

    def gather():
        return paged_attention(q, k_pages, v_pages, cu_q, slots=view_slots, cu_seqlens_k=cu_k,
                               max_seqlen_q=1, max_seqlen_k=prefix + suffix, backend=backend)

    k, v = gather_kv(k_pages, v_pages, view_slots)
    ref, _ = reference_attention(q.float(), k.float(), v.float(), cu_q, cu_k,
                                 AttentionParams(True, D**-0.5, (-1, -1), 0.0))
    err = max(max_abs(cascade(), ref), max_abs(gather(), ref))
    del k, v
    assert err <= 2e-2, f"cascade/gather differ from the fp32 reference by {err:.3g}"
    timing = time_pair(cascade, gather, sizes.reps, device)
    return {"kind": "cascade", "workers": workers, "prefix": prefix, "suffix": suffix,
            "backend": backend, "resolved_backend": resolved_backend(device, dtype) if
            backend == "auto" else backend, **timing, "max_err": err,
            "baseline_over_tim": timing["baseline_ms"] / timing["tim_ms"],
            "tim_hbm_pct": kv_rate(num_slots, dtype, timing["tim_ms"]),
            "baseline_hbm_pct": kv_rate(num_slots, dtype, timing["baseline_ms"])}


@torch.inference_mode()
def paged_case(sizes: Sizes, device: torch.device, backend: str) -> dict:
    """Decode over block tables (pages of ``page_size``): paged_attention vs gathering the
    keys by slot and calling varlen_attention."""
    from tim.kernels import (
        AttentionParams,
        block_table_to_slots,
        gather_kv,
        paged_attention,
        plan_paged,
        reference_attention,
        varlen_attention,
    )
    from tim.kernels.backends import resolve_backend

    dtype, page, seqs = getattr(torch, sizes.dtype), sizes.page_size, sizes.paged_seqs
    gen = torch.Generator().manual_seed(11)
    lens = torch.randint(sizes.paged_max_len // 8, sizes.paged_max_len + 1, (seqs,), generator=gen)
    pages_per = (lens + page - 1) // page
    num_pages = int(pages_per.sum()) + 8
    order = torch.randperm(num_pages, generator=gen)  # pages scattered through the pool
    table = torch.zeros(seqs, int(pages_per.max()), dtype=torch.int32)
    start = 0
    for b, n in enumerate(pages_per.tolist()):
        table[b, :n] = order[start:start + n].to(torch.int32)
        start += n
    table, seqlens = table.to(device), lens.to(torch.int32).to(device)
    k_pages = torch.randn(num_pages, page, HKV, D, generator=gen).to(device=device, dtype=dtype)
    v_pages = torch.randn(num_pages, page, HKV, D, generator=gen).to(device=device, dtype=dtype)
    q = torch.randn(seqs, H, D, generator=gen).to(device=device, dtype=dtype)
    cu_q, max_k = cu([1] * seqs, device), int(lens.max())
    slots, cu_k = block_table_to_slots(table, seqlens, page)
    params = AttentionParams(True, D**-0.5, (-1, -1), 0.0)
    native = plan_paged(q, k_pages, cu_q, table, seqlens, max_seqlen_q=1, max_seqlen_k=max_k,
                        backend=backend).native

    def paged():
        return paged_attention(q, k_pages, v_pages, cu_q, table, seqlens, max_seqlen_q=1,
                               max_seqlen_k=max_k, backend=backend)

    def gather():
        k, v = gather_kv(k_pages, v_pages, slots)
        return varlen_attention(q, k, v, cu_q, cu_k, 1, max_k, backend=backend)

    k, v = gather_kv(k_pages, v_pages, slots)
    ref, _ = reference_attention(q.float(), k.float(), v.float(), cu_q, cu_k, params)
    err = max(max_abs(paged(), ref), max_abs(gather(), ref))
    del k, v
    assert err <= 2e-2, f"paged/gather differ from the fp32 reference by {err:.3g}"
    timing = time_pair(paged, gather, sizes.reps, device)
    num_keys = int(lens.sum())
    return {"kind": "paged", "seqs": seqs, "keys": num_keys, "page_size": page,
            "backend": backend, "resolved_backend": resolve_backend(backend, q, params).name,
            "native_paged": native, **timing, "max_err": err,
            "baseline_over_tim": timing["baseline_ms"] / timing["tim_ms"],
            "tim_hbm_pct": kv_rate(num_keys, dtype, timing["tim_ms"]),
            "baseline_hbm_pct": kv_rate(num_keys, dtype, timing["baseline_ms"])}


def speed_section(device: torch.device, sizes: Sizes, budget: Budget, rows: list,
                  on_done: Callable[[], None]) -> dict:
    def step(case: str, fn: Callable[[], dict], need_s: float) -> dict | None:
        run_case(rows, case, fn, budget, need_s=need_s, on_done=on_done)
        return rows[-1] if rows[-1]["status"] == "ok" else None

    step("copy bandwidth", functools.partial(copy_bandwidth, device, sizes.copy_mb), 5)
    # kernels first: seconds each, and independent of the model
    for workers in sizes.cascade_workers:
        for backend in sizes.kernel_backends:
            step(f"cascade B={workers} prefix {sizes.cascade_prefix} backend={backend}",
                 functools.partial(cascade_case, sizes, device, workers, backend), 15)
    for backend in sizes.kernel_backends:
        step(f"paged block tables, {sizes.paged_seqs} seqs, backend={backend}",
             functools.partial(paged_case, sizes, device, backend), 15)
    holder: dict = {}

    def build() -> dict:
        start = time.monotonic()
        holder["lm"] = build_speed_model(sizes, device)
        return {"kind": "model", "model": sizes.model, "dtype": sizes.dtype,
                "params_m": sum(p.numel() for p in holder["lm"].model.parameters()) / 1e6,
                "build_s": time.monotonic() - start}

    if step(f"build {sizes.model} {sizes.dtype}", build, 60) is None:
        return {"status": summarize(rows), "cases": rows}
    lm = holder["lm"]
    flat = step("flat decode, batch 1", functools.partial(flat_case, lm, sizes, device), 40)
    for num in sizes.siblings:
        step(f"{num} siblings", functools.partial(
            siblings_case, lm, sizes, device, num, flat and flat["tim_tok_s"]), 60)
    return {"status": summarize(rows), "cases": rows}


# ---------------------------------------------------------------------- report
def device_info(device: torch.device, budget_s: float, dry: bool) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "date": datetime.date.today().isoformat(), "cuda": torch.cuda.is_available(),
            "dry_run": dry, "budget_s": budget_s, "hbm_tb_s_used": HBM_BYTES_S / 1e12,
            "hbm_figure": "H200 datasheet, 4.8 TB/s"}
    for package in ("transformers", "triton"):
        try:
            info[package] = importlib.import_module(package).__version__
        except Exception as exc:  # triton is absent on CPU machines
            info[package] = f"not importable ({type(exc).__name__})"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=torch.cuda.get_device_name(device), cuda_runtime=torch.version.cuda,
                    capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count)
    else:
        info["name"] = f"no CUDA device ({platform.processor() or platform.machine()} CPU)"
    try:
        from tim.kernels import describe

        info["backends"] = describe(device).splitlines()
    except Exception as exc:
        info["backends"] = f"tim.kernels.describe failed: {type(exc).__name__}: {exc}"
    return info


def fmt(value, spec: str = ".2f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"


def markdown(data: dict) -> str:
    info, sections = data["device"], data["sections"]
    dry = info["dry_run"]
    out = [f"<!-- gpu_check: dry_run={str(dry).lower()} -->"]
    head = (f"Device: {info['name']}" + (f" (compute capability {info.get('capability')}, "
            f"{info.get('memory_gib')} GiB, CUDA {info.get('cuda_runtime')})" if info["cuda"]
                                         else "")
            + f"; torch {info['torch']}, transformers {info['transformers']}, Python "
            f"{info['python']}, {info['date']}; {data.get('elapsed_s', 0):.0f} s of a "
            f"{info['budget_s']:.0f} s budget. Bandwidth figure used: {info['hbm_figure']}.")
    out.append(head)
    if dry:
        out += ["", "**Dry run: no figure here is a GPU's.** Every section was skipped; the "
                "tables show the same code run on CPU at tiny sizes (plumbing only)."]
    for name in SECTIONS:
        section = sections.get(name)
        if section is None:
            continue
        body = section.get("cpu_dry_run", section)
        out += ["", f"**{name}**: {section['status']}" + (
            f"; CPU dry run: {body['status']}" if body is not section else "")]
        out += SECTION_TABLES[name](body)
    return "\n".join(out) + "\n"


def pytest_table(r: dict) -> list[str]:
    lines = ["", "| command | collected | tests | failures | errors | skipped | s |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| `{r.get('command', '?')}` | {r.get('collected', '-')} | {r.get('tests', '-')} "
             f"| {r.get('failures', '-')} | {r.get('errors', '-')} | {r.get('skipped', '-')} "
             f"| {r.get('waited_s', '-')} |"]
    lines += [f"- {t}" for t in r.get("not_passed", [])[:15]]
    return lines


def oracle_table(r: dict) -> list[str]:
    lines = ["", "Engine vs HF on the same device. fp32: tim vs HF fp32 eager <= 1e-4. bf16: "
             "tim vs HF fp64 eager <= 2x HF's own bf16 (sdpa) error vs fp64.", "",
             "| oracle | model | dtype | backend (auto ->) | tokens | tim vs HF fp32 "
             "| tim vs fp64 | HF bf16 vs fp64 | bound | status |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for c in r.get("cases", []):
        lines.append(f"| {c.get('oracle', c['case'])} | {c.get('arch', '')} | "
                     f"{c.get('dtype', '')} | {c.get('backend', '')} "
                     f"({c.get('resolved_backend', '?')}) | {c.get('tokens', '')} | "
                     f"{fmt(c.get('tim_vs_hf_fp32'), '.1e')} | {fmt(c.get('tim_vs_fp64'), '.1e')} "
                     f"| {fmt(c.get('hf_low_vs_fp64'), '.1e')} | {fmt(c.get('bound'), '.1e')} "
                     f"| {c['status'][:80]} |")
    composed = r.get("composed_reference", {})
    lines += ["", f"Composed reference (issue 11): {composed.get('status', 'not run')}"]
    lines += [f"- {c['case']}: {fmt(c.get('max_logprob_diff'), '.1e')} ({c['status'][:80]})"
              for c in composed.get("cases", [])]
    return lines


def speed_table(r: dict) -> list[str]:
    cases = r.get("cases", [])
    by_kind = {}
    for c in cases:
        by_kind.setdefault(c.get("kind"), []).append(c)
    lines = []
    for c in by_kind.get("bandwidth", []):
        lines += ["", f"Device-to-device copy: {c['copy_tb_s']:.2f} TB/s read + written "
                  f"({c['copy_hbm_pct']:.0f}% of the figure used)."]
    for c in by_kind.get("model", []):
        lines += ["", f"Model: {c['model']} shape, random weights, {c['dtype']}, "
                  f"{c['params_m']:.1f}M parameters."]
    for c in by_kind.get("flat", []):
        lines += ["", "Flat decode, batch 1 (median step; % of HBM = weight bytes per step "
                  "/ step time / bandwidth):", "",
                  "| run | tok/s | % of HBM | tim / HF |", "|---|---:|---:|---:|",
                  f"| roofline (weights {c['weight_gb']:.2f} GB) | {c['roofline_tok_s']:.0f} "
                  f"| 100 | |",
                  f"| HF generate | {c['hf_tok_s']:.1f} | {c['hf_hbm_pct']:.1f} | |",
                  f"| tim | {c['tim_tok_s']:.1f} | {c['tim_hbm_pct']:.1f} | "
                  f"{c['tim_over_hf']:.2f}x |",
                  "", f"Checks: max |dlogprob| vs HF at HF's tokens {c['max_logprob_diff']:.1e}, "
                  f"{c['near_ties']} near ties; HF's own tokens changed in "
                  f"{c['hf_rounds_with_other_tokens']} of {c.get('rounds', '?')} timed rounds."]
    sib = by_kind.get("siblings", [])
    if sib:
        lines += ["", "Siblings over a shared prefix (children's decode phase):", "",
                  "| siblings | prefix | run | child tokens | tok/s | median-step tok/s "
                  "| weights % of HBM | x tim batch 1 |", "|---:|---:|---|---:|---:|---:|---:|---:|"]
        for c in sib:
            for run, x in c["rates"].items():
                lines.append(f"| {c['siblings']} | {c['shared_prefix']} | {run} | "
                             f"{x['child_tokens']} | {x['tok_s']:.1f} | "
                             f"{x['median_step_tok_s']:.1f} | {x['weights_hbm_pct']:.1f} | "
                             f"{fmt(x.get('x_flat_tim'))} |")
        lines += ["", "Checks: " + "; ".join(
            f"{c['siblings']} siblings: same text, cascade on/off max |dlogprob| "
            f"{c['cascade_logprob_diff']:.1e}, first child token vs HF "
            f"{c['hf_first_logprob_diff']:.1e}" for c in sib)]
    kernels = by_kind.get("cascade", []) + by_kind.get("paged", [])
    if kernels:
        lines += ["", "Kernels (median of alternating reps; % of HBM = K/V bytes read once / "
                  "time / bandwidth):", "",
                  "| case | backend (->) | tim | ms | baseline | ms | baseline / tim "
                  "| tim % HBM | max err |", "|---|---|---|---:|---|---:|---:|---:|---:|"]
        for c in kernels:
            if c["kind"] == "cascade":
                what = (f"cascade, B={c['workers']}, prefix {c['prefix']} + {c['suffix']}",
                        "paged_cascade_attention", "per-worker gather")
            else:
                what = (f"paged, {c['seqs']} seqs, {c['keys']} keys, page {c['page_size']}",
                        "block table" + (" (native)" if c["native_paged"] else " (gathers)"),
                        "gather + varlen")
            lines.append(f"| {what[0]} | {c['backend']} ({c['resolved_backend']}) | {what[1]} "
                         f"| {c['tim_ms']:.3f} | "
                         f"{what[2]} | {c['baseline_ms']:.3f} | {c['baseline_over_tim']:.2f}x | "
                         f"{c['tim_hbm_pct']:.1f} | {c['max_err']:.1e} |")
    bad = [c for c in cases if c["status"] != "ok"]
    lines += [""] + [f"- {c['case']}: {c['status'][:200]}" for c in bad] if bad else []
    return lines


SECTION_TABLES = {"pytest": pytest_table, "oracles": oracle_table, "speed": speed_table}


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT"),
                        help="output folder (default $OUT)")
    parser.add_argument("--dry-run", action="store_true",
                        help="skip the GPU; run the same code on CPU at tiny sizes")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="global time budget in seconds (default 450)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("give --out or set $OUT")
    names = [n.strip() for n in args.sections.split(",") if n.strip()]
    if not names or set(names) - set(SECTIONS):
        parser.error(f"--sections takes names from {', '.join(SECTIONS)}, got {args.sections!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    if str(ROOT) not in sys.path:  # for tests/engine/reference.py, as pytest would
        sys.path.insert(0, str(ROOT))
    budget = Budget(args.budget_s)
    has_cuda = torch.cuda.is_available()
    dry = args.dry_run or not has_cuda
    device = torch.device("cpu") if dry else torch.device("cuda")
    skipped = "skipped: no CUDA device" if not has_cuda else "skipped: --dry-run"
    budget.log("no CUDA device: dry run on CPU at tiny sizes" if not has_cuda else
               f"CUDA device: {torch.cuda.get_device_name(0)}" + (" (--dry-run)" if dry else ""))
    if dry:
        torch.set_num_threads(1)  # tiny models; a shared 2-core machine
    report = Report(args.out, device_info(device, args.budget_s, dry))
    sizes = DRY if dry else GPU

    def alarm(signum, frame):
        raise BudgetExceeded(f"the {args.budget_s:.0f} s budget ran out")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(max(1, int(args.budget_s - 10)))  # leave time to write the report
    try:
        run_sections(names, report, device, sizes, budget, dry=dry, skipped=skipped)
    finally:
        signal.alarm(0)
        report.data["elapsed_s"] = round(budget.elapsed(), 1)
        report.write()
        (args.out / "gpu.md").write_text(markdown(report.data))
    statuses = {name: s.get("cpu_dry_run", s)["status"] for name, s in
                report.data["sections"].items()}
    budget.log(f"done: {statuses}; wrote {args.out / 'gpu.json'} and gpu.md")
    return 0 if all(s == "ok" for s in statuses.values()) else 1


def run_sections(names: list[str], report: Report, device: torch.device, sizes: Sizes,
                 budget: Budget, *, dry: bool, skipped: str) -> None:
    sections = report.data["sections"]

    def holder(name: str) -> dict:
        """The live dict of a section's results (under ``cpu_dry_run`` in a dry run)."""
        sections[name] = {"status": "running"}
        if dry:
            sections[name] = {"status": skipped, "cpu_dry_run": {"status": "running"}}
            return sections[name]["cpu_dry_run"]
        return sections[name]

    def guarded(name: str, fn: Callable[[list, Callable[[], None]], dict]) -> None:
        live = holder(name)
        rows: list[dict] = []
        live["cases"] = rows
        report.write()
        try:
            live.update(fn(rows, report.write))
        except Exception as exc:
            live.update(status=f"error: {type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc(limit=-8))
        budget.log(f"{name}: {live['status']}")
        report.write()

    proc = None
    if "pytest" in names:
        live = holder("pytest")
        try:
            proc = start_pytest(report.path.parent, collect_only=dry)
            budget.log(f"pytest started in the background: {' '.join(proc.args[3:])}")
        except Exception as exc:
            live.update(status=f"error: {type(exc).__name__}: {exc}")
    if "oracles" in names:  # at most 40% of the budget, beside pytest
        share = budget.share(0.4 * budget.total_s)
        guarded("oracles", lambda rows, done: oracle_section(device, sizes, share, rows, done))
    if proc is not None:
        live = sections["pytest"].get("cpu_dry_run", sections["pytest"])
        try:  # no speed case runs beside it; leave the speed section at least 150 s
            deadline = time.monotonic() + max(30.0, budget.left() - 150.0)
            live.update(finish_pytest(proc, report.path.parent, deadline, budget))
        except Exception as exc:
            live.update(status=f"error: {type(exc).__name__}: {exc}")
        finally:
            if proc.poll() is None:  # the alarm cut the wait short
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        budget.log(f"pytest: {live['status']}")
        report.write()
    if "speed" in names:
        guarded("speed", lambda rows, done: speed_section(device, sizes, budget, rows, done))


if __name__ == "__main__":
    sys.exit(main())
