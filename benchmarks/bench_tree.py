"""Tree benchmarks on this machine (issue 7): long pruned runs, prune cost, concurrency on a
replayed tree, and tim against Hugging Face ``generate`` on the same tree.

Every tree is recorded once by a sampling stress run (:func:`tim.stress.stress`) on the tiny
stress model, then *replayed* (its sampled tokens teacher-forced) under every configuration
and on every model, so compared runs write the same tokens; each section checks that before
it reports a time.

1. **Steady speed and memory.** A ``thread2`` tree with tool calls, pruned by ``buffer:0``
   under ``shift`` positions in a window the run passes many times over, beside the same
   tokens unpruned (rule ``none``, a window that holds everything) and pruned under
   ``reencode``. Figures: tokens/s in the last tenth ÷ the first tenth, peak live KV ÷
   tokens. On the tiny stress model the run is ≥ 50k tokens and ≥ 20× its window.
2. **Prune cost.** On each real shape: evict a span from a view and move a suffix of S
   tokens with ``shift`` (re-rotate K in every layer) against ``reencode`` (a forward over
   the S tokens). Check: layer-0 keys agree (they depend only on token and position).
3. **Concurrency.** A ``parallel`` tree replayed with ``max_workers`` 1, 2, 4, 8, cascade
   on and off. Checks: same tokens in every run; cascade on and off give the same
   log-probabilities (within 1e-3). Across worker counts they differ by design: a child
   started after a sibling joined sees that sibling's retained part.
4. **tim vs Hugging Face.** The long tree flattened (the ``thread2`` stream as one
   sequence) and decoded by HF ``generate`` with each step forced to the recorded token,
   and HF ``generate`` on the plain question with the same number of new tokens, beside
   tim pruned and unpruned: wall time, peak resident memory (``VmHWM`` after a reset) and
   KV bytes. Check: HF's log-probabilities match tim's unpruned run token for token.

Models: random-weight fp32 models of SmolLM2-135M's and Qwen3-0.6B's shapes (tied
embeddings), with the stress tokenizer (bytes plus the format's JSON keys as added tokens).

Usage::

    python benchmarks/bench_tree.py [--quick] [--json PATH] [--png PATH]
                                    [--model qwen3-0.6b|smollm2-135m|both|none] [--threads N]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch
from bench_engine import MODELS, Stamps  # the script's folder
from machine import loadavg, machine, machine_line
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList, StoppingCriteriaList

from tim.engine.batch import WorkerInput, build_batch
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.models import tiny_model
from tim.models.loading import LoadedModel
from tim.stress import StressShape, stress
from tim.stress.model import FORMAT_TOKENS, stress_model

LOGPROB_TOL = 1e-3  # fp32, up to 30 layers, different attention kernels
WIDE = 65536  # max_position_embeddings of the models that hold an unpruned run


@dataclass(frozen=True)
class Sizes:
    tiny_shape: StressShape  # the long run on the tiny stress model (window 512)
    long_shapes: dict  # model -> the long thread2 tree replayed on that shape
    long_window: int  # window (and KV budget) of the pruned long runs on real shapes
    tree_shape: StressShape  # the parallel tree of the concurrency runs
    prune_prefix: int  # tokens kept before the evicted span
    prune_evicted: int  # tokens evicted
    prune_suffixes: tuple  # lengths of the suffix moved by the prune
    prune_reps: int


FULL = Sizes(
    tiny_shape=StressShape(num_tasks=3, depth=6, fanout=3),  # ~51k tokens
    long_shapes={"smollm2-135m": StressShape(num_tasks=2, depth=4, fanout=3,
                                             tool_calls="none"),  # ~1.3k tokens
                 "qwen3-0.6b": StressShape(num_tasks=2, depth=3, fanout=3, tool_calls="none",
                                           thought_tokens=8)},
    long_window=256,
    tree_shape=StressShape(num_tasks=8, depth=2, fanout=2, tool_calls="none", thought_tokens=4,
                           conclusion_tokens=2, answer_tokens=4),
    prune_prefix=128, prune_evicted=256, prune_suffixes=(64, 256), prune_reps=3,
)
QUICK = Sizes(
    tiny_shape=StressShape(num_tasks=2, depth=4, fanout=3),
    long_shapes={name: StressShape(num_tasks=2, depth=2, fanout=2, tool_calls="none")
                 for name in MODELS},
    long_window=128,
    tree_shape=StressShape(num_tasks=2, depth=2, fanout=2, tool_calls="none", thought_tokens=1,
                           conclusion_tokens=1, answer_tokens=1),
    prune_prefix=32, prune_evicted=64, prune_suffixes=(32,), prune_reps=1,
)


# ---------------------------------------------------------------------- helpers
def shape_model(name: str) -> LoadedModel:
    """A random model of a real shape, wide enough for an unpruned run, stress tokenizer."""
    lm = tiny_model(**MODELS[name], max_position_embeddings=WIDE)
    lm.model.tie_weights()
    lm.tokenizer.add_tokens(list(FORMAT_TOKENS))
    return lm


def kv_bytes_per_token(model) -> int:
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return 2 * c.num_hidden_layers * c.num_key_value_heads * head_dim * 4  # K and V, fp32


class PeakRSS:
    """Peak resident memory of this process over a block, in MB above its RSS at the start
    (Linux: ``/proc/self/clear_refs`` resets ``VmHWM``). ``mb`` is None elsewhere."""

    def __enter__(self) -> PeakRSS:
        self.mb = None
        try:  # hand freed heap back first, so the start is what is really in use
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._start = self._status("VmRSS")
        except OSError:
            self._start = None
        return self

    def __exit__(self, *exc) -> None:
        if self._start is not None:
            self.mb = (self._status("VmHWM") - self._start) / 1024

    @staticmethod
    def _status(key: str) -> int:
        with open("/proc/self/status") as f:
            return int(re.search(rf"{key}:\s+(\d+) kB", f.read()).group(1))


def same_tokens(a, b) -> bool:
    return (a.streams.keys() == b.streams.keys()
            and all(a.streams[p].token_ids == b.streams[p].token_ids for p in a.streams))


def max_logprob_diff(a, b) -> float:
    """Largest |Δ log-probability| over the sampled tokens of two runs with the same tokens."""
    diffs = [abs(x - y) for p, s in a.streams.items()
             for x, y in zip(s.logprobs, b.streams[p].logprobs, strict=True) if x is not None]
    return max(diffs, default=0.0)


def tokens_written(record) -> int:
    """Prompt plus every token the run wrote once (as ``StressReport.total_tokens``)."""
    return len(record.prompt_ids) + record.num_generated + record.num_forced


def record_tree(shape: StressShape, format: str, window: int) -> object:
    """Sample a tree of ``shape`` once on the tiny stress model; return its record."""
    report = stress(stress_model(max_position_embeddings=WIDE), shape=shape, format=format,
                    window=window, kv_budget_tokens=8 * window, max_workers=8)
    assert report.ok, f"recording a {format} tree failed: {report.failure}"
    return report.record


def run_summary(report, rss_mb: float | None, bytes_per_token: int) -> dict:
    assert report.ok, f"{report.positions}/{report.pruning} failed: {report.failure}"
    rates = report.decile_tokens_per_s
    return {"total_tokens": report.total_tokens, "window": report.window,
            "window_ratio": report.window_ratio, "wall_s": report.wall_time_s,
            "tok_s": report.total_tokens / report.wall_time_s,
            "first_tenth_tok_s": rates[0], "last_tenth_tok_s": rates[-1],
            "steady_ratio": report.steady_ratio, "decile_tok_s": rates,
            "peak_live_tokens": report.peak_live_tokens, "live_ratio": report.live_ratio,
            "max_position_id": report.max_position_id, "tokens_processed": report.tokens_processed,
            "num_evicted": report.num_evicted, "peak_rss_mb": rss_mb,
            "kv_peak_mb": report.peak_live_tokens * bytes_per_token / 2**20,
            "kv_pool_mb": report.kv_budget_tokens * bytes_per_token / 2**20,
            "timeline": thin(report.timeline)}


def thin(rows: list, most: int = 1000) -> list:
    """At most about ``most`` evenly spaced rows, the last one kept (keeps the JSON small)."""
    step = max(1, len(rows) // most)
    return rows[::step] + ([rows[-1]] if rows and (len(rows) - 1) % step else [])


def replay(lm, record, shape: StressShape, format: str, **kwargs) -> tuple:
    with PeakRSS() as rss:
        report = stress(lm, shape=shape, format=format, replay=record, **kwargs)
    return report, rss.mb


# ---------------------------------------------------------------------- 1. long runs
def bench_long_tiny(sizes: Sizes, format: str, progress) -> dict:
    """≥ 50k tokens on the tiny stress model: pruned under shift, and for thread2 also under
    reencode and unpruned (the unpruned replay takes about 7x as long). ``parallel`` runs 8
    workers, whose views together may hold up to 4 windows."""
    window, shape = 512, sizes.tiny_shape
    progress(f"tiny model: recording a {shape.num_task_nodes}-task {format} tree")
    record = record_tree(shape, format, window)
    lm = stress_model(max_position_embeddings=WIDE)
    per_token = kv_bytes_per_token(lm.model)
    total = tokens_written(record)
    budget = window if format == "thread2" else 8 * window
    cases = {"pruned, shift": dict(window=window, kv_budget_tokens=budget),
             "pruned, reencode": dict(window=window, kv_budget_tokens=budget,
                                      positions="reencode"),
             "unpruned": dict(pruning="none", kv_budget_tokens=total + 64)}
    if format == "parallel":
        cases = {"pruned, shift": cases["pruned, shift"]}
    runs, reports = {}, {}
    for name, kwargs in cases.items():
        progress(f"tiny model: {format}, {name} replay of {total} tokens")
        reports[name], rss = replay(lm, record, shape, format, max_workers=8, **kwargs)
        runs[name] = run_summary(reports[name], rss, per_token)
        assert same_tokens(reports[name].record, record), f"tiny model: {name} wrote other tokens"
    out = {"model": lm.name, "format": format, "window": window, "kv_budget_tokens": budget,
           "shape": asdict(shape), "runs": runs}
    if "pruned, reencode" in reports:
        out["logprob_diff_shift_vs_reencode"] = max_logprob_diff(
            reports["pruned, shift"].record, reports["pruned, reencode"].record)
    return out


class ForceTokens(LogitsProcessor):
    """Force HF ``generate`` to write a given token sequence; keep each token's raw
    log-probability (from the logits before forcing) for the check against tim."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens, self.logprobs = tokens, []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = self.tokens[len(self.logprobs)]
        self.logprobs.append(torch.log_softmax(scores[0].float(), -1)[token].item())
        forced = torch.full_like(scores, float("-inf"))
        forced[0, token] = 0.0
        return forced


def hf_run(lm: LoadedModel, prompt: list[int], num_new: int, forced: list[int] | None) -> dict:
    model = lm.model
    model.set_attn_implementation("sdpa")  # an engine switched it to "tim"
    stamps, force = Stamps(), ForceTokens(forced) if forced is not None else None
    cache = DynamicCache(config=model.config)
    with PeakRSS() as rss:
        start = time.perf_counter()
        out = model.generate(  # forced: no min_new_tokens, whose EOS mask would touch the scores
            torch.tensor([prompt]), max_new_tokens=num_new,
            min_new_tokens=None if force else num_new, do_sample=False, cache=cache,
            pad_token_id=lm.tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList([stamps]),
            logits_processor=LogitsProcessorList([force] if force else []),
            return_dict_in_generate=True)
        wall = time.perf_counter() - start
    new = out.sequences[0, len(prompt):].tolist()
    kv = sum(t.numel() * t.element_size() for layer in cache.layers
             for t in (layer.keys, layer.values))
    times = [t[0] for t in stamps.times]
    tenth = max(1, len(times) // 10)
    first = tenth / (times[tenth] - times[0]) if len(times) > tenth else None
    last = tenth / (times[-1] - times[-1 - tenth]) if len(times) > tenth else None
    total = len(prompt) + num_new
    return {"new_tokens": new, "total_tokens": total, "wall_s": wall, "tok_s": total / wall,
            "first_tenth_tok_s": first, "last_tenth_tok_s": last,
            "steady_ratio": last / first if first and last else None,
            "peak_rss_mb": rss.mb, "kv_peak_mb": kv / 2**20,
            "logprobs": force.logprobs if force else None}


def bench_long_shape(lm: LoadedModel, name: str, record, shape: StressShape, window: int,
                     progress) -> dict:
    """The long tree on a real shape: tim pruned and unpruned, HF flattened and plain."""
    per_token = kv_bytes_per_token(lm.model)
    total = tokens_written(record)
    runs, reports = {}, {}
    for run, kwargs in (("tim, pruned (buffer:0, shift)",
                         dict(window=window, kv_budget_tokens=window)),
                        ("tim, unpruned", dict(pruning="none", kv_budget_tokens=total + 64))):
        progress(f"{name}: {run}, {total} tokens")
        reports[run], rss = replay(lm, record, shape, "thread2", **kwargs)
        runs[run] = run_summary(reports[run], rss, per_token)
        assert same_tokens(reports[run].record, record), f"{name}: {run} wrote other tokens"
    root = record.streams[()]
    progress(f"{name}: HF generate, the flattened tree ({len(root.token_ids)} forced tokens)")
    flat = hf_run(lm, record.prompt_ids, len(root.token_ids), root.token_ids)
    assert flat["new_tokens"] == root.token_ids, f"{name}: HF did not write the forced tokens"
    unpruned = reports["tim, unpruned"].record.streams[()]
    diff = max(abs(a - b) for a, b in zip(flat["logprobs"], unpruned.logprobs, strict=True)
               if b is not None)
    assert diff <= LOGPROB_TOL, f"{name}: HF and tim unpruned log-probs differ by {diff:.2e}"
    progress(f"{name}: HF generate on the plain question, {len(root.token_ids)} new tokens")
    plain = hf_run(lm, record.prompt_ids, len(root.token_ids), None)
    for r in (flat, plain):
        del r["new_tokens"], r["logprobs"]
    runs["HF generate, flattened tree"] = flat
    runs["HF generate, plain question"] = plain
    return {"shape": asdict(shape), "runs": runs, "hf_vs_tim_unpruned_logprob_diff": diff}


# ---------------------------------------------------------------------- 2. prune cost
def prefilled_view(engine: Engine, tokens: list[int]):
    runner = engine.new_runner()
    store = runner.store
    view = store.new_view()
    store.append(view, range(len(tokens)), token_ids=tokens, label="stream")
    runner.run(build_batch([WorkerInput(view, tuple(tokens), tuple(range(len(tokens))),
                                        wants_logits=False)]))
    return runner, view


def bench_prune_cost(lm: LoadedModel, name: str, sizes: Sizes, progress) -> list:
    """Evict ``prune_evicted`` tokens after ``prune_prefix``; move a suffix of S tokens."""
    rows = []
    gen = torch.Generator().manual_seed(0)
    vocab = len(lm.tokenizer)
    for suffix in sizes.prune_suffixes:
        progress(f"{name}: prune cost, suffix {suffix}")
        n = sizes.prune_prefix + sizes.prune_evicted + suffix
        tokens = torch.randint(0, vocab, (n,), generator=gen).tolist()
        start, end = sizes.prune_prefix, sizes.prune_prefix + sizes.prune_evicted
        engine = Engine(lm.model, lm.tokenizer, EngineConfig(kv_budget_tokens=n + 16))
        times, keys = {"shift": [], "reencode": []}, {}
        for _ in range(sizes.prune_reps):
            for policy in ("shift", "reencode"):
                runner, view = prefilled_view(engine, tokens)
                store = runner.store
                t0 = time.perf_counter()
                result = store.evict(view, start, end, policy=policy)
                if policy == "reencode":
                    runner.run(build_batch([WorkerInput(
                        view, tuple(view.token_ids()[-suffix:].tolist()),
                        tuple(view.position_ids()[-suffix:].tolist()), wants_logits=False)]))
                times[policy].append(time.perf_counter() - t0)
                assert result.num_moved == suffix and result.num_evicted == end - start
                keys[policy] = [store.gather(view, layer)[0][-suffix:].clone()
                                for layer in (0, store.config.num_layers - 1)]
                store.drop(view)
        first = (keys["shift"][0] - keys["reencode"][0]).abs().max().item()
        last = (keys["shift"][1] - keys["reencode"][1]).abs().max().item()
        assert first <= 1e-3, f"{name}: layer-0 keys after shift and reencode differ by {first}"
        shift, reencode = statistics.median(times["shift"]), statistics.median(times["reencode"])
        rows.append({"model": name, "prefix": start, "evicted": end - start, "suffix": suffix,
                     "shift_ms": shift * 1e3, "reencode_ms": reencode * 1e3,
                     "ratio": shift / reencode, "layer0_key_diff": first,
                     "last_layer_key_diff": last})
    return rows


# ---------------------------------------------------------------------- 3. concurrency
CONCURRENCY = ((1, True), (2, True), (2, False), (4, True), (4, False), (8, True), (8, False))


def bench_concurrency(lm: LoadedModel, name: str, record, shape: StressShape, progress) -> dict:
    total = tokens_written(record)
    runs, reports = {}, {}
    for workers, cascade in CONCURRENCY:
        run = f"{workers} worker{'s' if workers > 1 else ''}" + (
            "" if workers == 1 else (", cascade" if cascade else ", no cascade"))
        progress(f"{name}: concurrency, {run}")
        with PeakRSS() as rss:
            report = stress(lm, shape=shape, format="parallel", replay=record,
                            kv_budget_tokens=total + 64, max_workers=workers, cascade=cascade)
        assert report.ok, f"{name}: {run} failed: {report.failure}"
        reports[run] = report
        runs[run] = {"workers": workers, "cascade": cascade, "total_tokens": report.total_tokens,
                     "wall_s": report.wall_time_s, "tok_s": report.total_tokens / report.wall_time_s,
                     "steps": report.num_steps, "max_concurrency": report.record.max_concurrency,
                     "peak_live_tokens": report.peak_live_tokens, "peak_rss_mb": rss.mb}
    base = reports["1 worker"].record
    for run, report in reports.items():
        assert same_tokens(report.record, base), f"{name}: {run} wrote other tokens"
    # cascade is exact: on and off agree; across worker counts contexts differ by design (a
    # child started after a sibling joined sees that sibling's retained part)
    diff = max(max_logprob_diff(reports[f"{w} workers, cascade"].record,
                                reports[f"{w} workers, no cascade"].record)
               for w, cascade in CONCURRENCY if w > 1 and not cascade)
    assert diff <= LOGPROB_TOL, f"{name}: cascade on and off log-probs differ by {diff:.2e}"
    one = runs["1 worker"]["tok_s"]
    for r in runs.values():
        r["speedup"] = r["tok_s"] / one
    return {"shape": asdict(shape), "runs": runs, "logprob_diff": diff}


# ---------------------------------------------------------------------- report
def _f(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def tables(info: dict, results: dict) -> str:
    out = [machine_line(info) + f"; {info.get('total_s', 0) / 60:.1f} min"
           + (f" (resumed: {info['resumed']})" if "resumed" in info else "")]
    for tiny in results.get("tiny", {}).values():
        shape = tiny["shape"]
        out += ["", f"Long {tiny['format']} run on the tiny stress model ({tiny['model']}; "
                f"window {tiny['window']}, KV budget {tiny['kv_budget_tokens']} tokens; "
                f"{shape['num_tasks']} top-level tasks, depth {shape['depth']}, fan-out "
                f"{shape['fanout']}, tool calls: {shape['tool_calls']}; one recorded tree, "
                f"replayed by each run):", "",
                "| run | tokens | x window | tok/s first tenth | last tenth | last / first "
                "| peak live KV | peak live / tokens | max position | tokens processed | wall s |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for run, r in tiny["runs"].items():
            out.append(f"| {run} | {r['total_tokens']} | "
                       f"{r['total_tokens'] / tiny['window']:.1f} | {r['first_tenth_tok_s']:.0f} | {r['last_tenth_tok_s']:.0f} | "
                       f"{r['steady_ratio']:.2f} | {r['peak_live_tokens']} | "
                       f"{r['live_ratio']:.1%} | {r['max_position_id']} | "
                       f"{r['tokens_processed']} | {r['wall_s']:.1f} |")
        check = "Checks: every run wrote the recorded tokens"
        if "logprob_diff_shift_vs_reencode" in tiny:
            check += (f"; shift vs reencode max |dlogprob| "
                      f"{tiny['logprob_diff_shift_vs_reencode']:.2e} (they may differ: reencode "
                      f"recomputes the moved suffix without the evicted tokens)")
        out += ["", check + "."]
    models = {k: v for k, v in results.items() if k != "tiny"}
    if models:
        out += ["", "Long tree on real shapes: tim pruned and unpruned, HF `generate` on the "
                "flattened tree (forced to the same tokens) and on the plain question with the "
                "same number of new tokens:", "",
                "| model | run | tokens | tok/s | x HF flattened | last / first tenth "
                "| peak live KV | KV MB | peak RSS MB | wall s |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, m in models.items():
            long = m["long"]["runs"]
            hf = long["HF generate, flattened tree"]["tok_s"]
            for run, r in long.items():
                live = r.get("peak_live_tokens", r["total_tokens"])
                out.append(f"| {name} | {run} | {r['total_tokens']} | {r['tok_s']:.2f} | "
                           f"{r['tok_s'] / hf:.2f}x | {_f(r['steady_ratio'], '.2f')} | {live} | "
                           f"{r['kv_peak_mb']:.1f} | {_f(r['peak_rss_mb'], '.0f')} | "
                           f"{r['wall_s']:.1f} |")
        out += ["", "Checks: " + "; ".join(
            f"{name}: tim pruned and unpruned wrote the recorded tokens, HF wrote them too, "
            f"HF vs tim unpruned max |dlogprob| {m['long']['hf_vs_tim_unpruned_logprob_diff']:.1e}"
            for name, m in models.items())]
        out += ["", "Prune cost: evict a span, then move the suffix after it (`shift`: re-rotate "
                "its keys in every layer; `reencode`: a forward over it); medians:", "",
                "| model | kept prefix | evicted | suffix | shift ms | reencode ms "
                "| shift / reencode | layer-0 key diff | last-layer key diff |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, m in models.items():
            for r in m["prune"]:
                out.append(f"| {name} | {r['prefix']} | {r['evicted']} | {r['suffix']} | "
                           f"{r['shift_ms']:.1f} | {r['reencode_ms']:.1f} | "
                           f"**{r['ratio']:.1%}** | {r['layer0_key_diff']:.1e} | "
                           f"{r['last_layer_key_diff']:.1e} |")
        out += ["", "Concurrency: the same parallel tree replayed with 1 to 8 workers:", "",
                "| model | run | tokens | steps | most streams at once | tok/s | x 1 worker "
                "| peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for name, m in models.items():
            for run, r in m["concurrency"]["runs"].items():
                out.append(f"| {name} | {run} | {r['total_tokens']} | {r['steps']} | "
                           f"{r['max_concurrency']} | {r['tok_s']:.2f} | {r['speedup']:.2f}x | "
                           f"{_f(r['peak_rss_mb'], '.0f')} |")
        out += ["", "Checks: " + "; ".join(
            f"{name}: every run wrote the same tokens, cascade on vs off max |dlogprob| "
            f"{m['concurrency']['logprob_diff']:.1e}" for name, m in models.items())]
    out += ["", "Targets: " + "; ".join(targets(results))]
    return "\n".join(out)


def targets(results: dict) -> list[str]:
    lines = []
    for tiny in results.get("tiny", {}).values():
        r = tiny["runs"]["pruned, shift"]
        lines.append(f"{tiny['format']}: steady speed >= 0.9 on the {r['total_tokens']}-token "
                     f"run: {r['steady_ratio']:.2f} "
                     f"({'met' if r['steady_ratio'] >= 0.9 else 'missed'}); peak live KV <= 10% "
                     f"of the tokens: {r['live_ratio']:.1%} "
                     f"({'met' if r['live_ratio'] <= 0.1 else 'missed'})")
    prune = [r for k, m in results.items() if k != "tiny" for r in m["prune"]]
    if prune:
        worst = max(r["ratio"] for r in prune)
        lines.append(f"shift prune <= 10% of reencode: at most {worst:.1%} "
                     f"({'met' if worst <= 0.1 else 'missed'})")
    return lines


def write_png(results: dict, path: str) -> None:
    """Tokens/s per tenth of each long run, pruned beside unpruned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f"tiny stress model, {fmt}", tiny["runs"])
              for fmt, tiny in results.get("tiny", {}).items()]
    panels += [(name, m["long"]["runs"]) for name, m in results.items() if name != "tiny"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels, strict=True):
        for run, r in runs.items():
            if r.get("decile_tok_s"):
                ax.plot(range(1, 11), r["decile_tok_s"], marker="o", label=run)
        ax.set_title(f"{title} ({next(iter(runs.values()))['total_tokens']} tokens)")
        ax.set_xlabel("tenth of the run")
        ax.set_ylabel("tokens/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small trees, one repetition")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers as JSON")
    parser.add_argument("--png", metavar="PATH", help="plot tokens/s per tenth of the long runs")
    parser.add_argument("--model", choices=[*MODELS, "both", "none"], default="both",
                        help="real shapes to run (default both; the tiny long run always runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--resume", action="store_true",
                        help="with --json: keep the sections PATH holds from an earlier run "
                             "of the same sizes that stopped, and run only the rest")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    info = machine(args.threads)
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", file=sys.stderr, flush=True)

    results = {}
    if args.resume and args.json and os.path.exists(args.json):
        with open(args.json) as f:
            earlier = json.load(f)
        if earlier.get("sizes") == repr(sizes):
            results = earlier["results"]
            info["resumed"] = f"sections {sorted(results)} kept from the run started " \
                              f"{earlier['machine']['date']}, load average " \
                              f"{earlier['machine']['loadavg_at_start']}"
            progress(f"resuming: {info['resumed']}")

    def save() -> None:  # after every section: a failure later keeps what was measured
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": info, "sizes": repr(sizes), "results": results}, f,
                          indent=1)

    with torch.inference_mode():
        results.setdefault("tiny", {})
        for fmt in ("thread2", "parallel"):
            if fmt not in results["tiny"]:
                results["tiny"][fmt] = bench_long_tiny(sizes, fmt, progress)
                save()
        names = {"both": list(MODELS), "none": []}.get(args.model, [args.model])
        if names:
            progress("recording the concurrency tree on the tiny model")
            tree = record_tree(sizes.tree_shape, "parallel", WIDE)
        for name in names:
            if "long" in results.get(name, {}):
                continue
            shape = sizes.long_shapes[name]
            progress(f"recording the long tree for {name} on the tiny model")
            long_record = record_tree(shape, "thread2", sizes.long_window)
            lm = shape_model(name)
            if "concurrency" not in results.get(name, {}):
                results[name] = {"prune": bench_prune_cost(lm, name, sizes, progress)}
                results[name]["concurrency"] = bench_concurrency(lm, name, tree,
                                                                 sizes.tree_shape, progress)
                save()
            results[name]["long"] = bench_long_shape(lm, name, long_record, shape,
                                                     sizes.long_window, progress)
            save()
            del lm
    info["loadavg_at_end"] = loadavg()
    info["total_s"] = time.perf_counter() - start
    save()
    print(tables(info, results))
    if args.png:
        write_png(results, args.png)


if __name__ == "__main__":
    main()
