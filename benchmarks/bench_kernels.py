"""Kernel benchmarks on this machine: each case checks correctness, then times tim against a
baseline side by side (interleaved reps, median), and reports the ratio.

1. cascade vs per-worker gather: B workers decode one token each over a shared 2048-token
   prefix plus their own 128-token suffix, keys in a page pool (page size 1, scattered slots).
2. varlen over packed sequences vs one ``scaled_dot_product_attention`` call per sequence.
3. ``rope_shift`` of a 4k-token suffix in 28 layers vs recomputing those keys
   (``hidden @ W_k`` with hidden 1024, then RoPE).

Shapes: fp32, H 16 / Hkv 4 / D 128.

Usage::

    python benchmarks/bench_kernels.py [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from machine import loadavg, machine  # the script's folder

from tim.kernels import (
    AttentionParams,
    paged_attention,
    paged_cascade_attention,
    reference_attention,
    rope_shift,
    varlen_attention,
)
from tim.kernels.slots import gather_kv, store_kv

H, HKV, D = 16, 4, 128


def timed_pair(tim_fn: Callable, base_fn: Callable, reps: int) -> dict:
    """Median wall-clock and this-thread CPU milliseconds of each, measured alternately so
    both see the same machine state. With one torch thread, CPU time leaves out the time the
    thread waited for a core, which other processes on a shared machine inflate."""
    tim_fn(), base_fn()  # warm-up
    times: dict[str, list[float]] = {"tim_ms": [], "baseline_ms": [], "tim_cpu_ms": [],
                                     "baseline_cpu_ms": []}
    for _ in range(reps):
        for fn, name in ((tim_fn, "tim"), (base_fn, "baseline")):
            wall, cpu = time.perf_counter(), time.thread_time()
            fn()
            times[f"{name}_cpu_ms"].append((time.thread_time() - cpu) * 1e3)
            times[f"{name}_ms"].append((time.perf_counter() - wall) * 1e3)
    return {key: statistics.median(values) for key, values in times.items()}


def cu(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def bench_cascade(workers: int, reps: int, prefix: int = 2048, suffix: int = 128) -> dict:
    gen = torch.Generator().manual_seed(workers)
    num_slots = prefix + workers * suffix
    k_pages = torch.empty(num_slots + 64, 1, HKV, D)  # page size 1, like the CPU engine
    v_pages = torch.empty_like(k_pages)
    slots = torch.randperm(num_slots + 64, generator=gen)[:num_slots]  # scattered, as in use
    store_kv(k_pages, v_pages, torch.randn(num_slots, HKV, D, generator=gen),
             torch.randn(num_slots, HKV, D, generator=gen), slots)
    prefix_slots, suffix_slots = slots[:prefix], slots[prefix:]
    q = torch.randn(workers, H, D, generator=gen)
    cu_q, cu_s = cu([1] * workers), cu([suffix] * workers)
    # per-worker views: prefix + own suffix, gathered for every worker
    view_slots = torch.cat([torch.cat([prefix_slots, suffix_slots[b * suffix:(b + 1) * suffix]])
                            for b in range(workers)])
    cu_k = cu([prefix + suffix] * workers)

    def cascade():
        return paged_cascade_attention(q, k_pages, v_pages, cu_q, prefix_slots, suffix_slots,
                                       cu_s)

    def gather():
        return paged_attention(q, k_pages, v_pages, cu_q, slots=view_slots, cu_seqlens_k=cu_k,
                               max_seqlen_q=1, max_seqlen_k=prefix + suffix)

    k, v = gather_kv(k_pages, v_pages, view_slots)
    ref, _ = reference_attention(q, k, v, cu_q, cu_k, AttentionParams(True, D**-0.5))
    err = max(max_err(cascade(), ref), max_err(gather(), ref))
    assert err < 1e-4, f"cascade check failed: {err}"
    return {"case": f"cascade decode, B={workers}, prefix {prefix} + suffix {suffix}",
            "tim": "paged_cascade_attention", "baseline": "per-worker gather + varlen",
            **timed_pair(cascade, gather, reps), "max_err": err}


def bench_varlen(kind: str, reps: int) -> dict:
    gen = torch.Generator().manual_seed(7)
    if kind == "prefill":
        k_lens = torch.randint(64, 513, (8,), generator=gen).tolist()
        q_lens = k_lens
    else:
        k_lens = torch.randint(256, 2049, (32,), generator=gen).tolist()
        q_lens = [1] * len(k_lens)
    q = torch.randn(sum(q_lens), H, D, generator=gen)
    k = torch.randn(sum(k_lens), HKV, D, generator=gen)
    v = torch.randn(sum(k_lens), HKV, D, generator=gen)
    cu_q, cu_k = cu(q_lens), cu(k_lens)
    bounds = list(zip(cu_q.tolist(), cu_q.tolist()[1:], cu_k.tolist(), cu_k.tolist()[1:],
                      strict=False))

    def packed():
        return varlen_attention(q, k, v, cu_q, cu_k, max(q_lens), max(k_lens))

    def per_sequence():
        outs = []
        for q0, q1, k0, k1 in bounds:  # (1, H, L, D) views; decode rows see every key
            o = F.scaled_dot_product_attention(
                q[q0:q1].transpose(0, 1)[None], k[k0:k1].transpose(0, 1)[None],
                v[k0:k1].transpose(0, 1)[None], is_causal=kind == "prefill", enable_gqa=True)
            outs.append(o[0].transpose(0, 1))
        return torch.cat(outs)

    err = max_err(packed(), per_sequence())
    assert err < 1e-4, f"varlen check failed: {err}"
    what = (f"{len(q_lens)} seqs of 64..512 tokens, causal" if kind == "prefill"
            else f"{len(q_lens)} seqs x 1 query over 256..2048 keys")
    return {"case": f"varlen {kind}: {what}", "tim": "varlen_attention (packed)",
            "baseline": "SDPA per sequence", **timed_pair(packed, per_sequence, reps),
            "max_err": err}


def hf_rope(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """RoPE as HF computes it: fp32 angles, cos/sin of cat(freqs, freqs), rotate_half."""
    freqs = positions[:, None].float() * inv_freq[None, :]  # (T, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None, :]  # (T, 1, D)
    rotated = torch.cat([-x[..., D // 2:], x[..., : D // 2]], dim=-1)
    return x * emb.cos() + rotated * emb.sin()


def bench_rope(reps: int, layers: int = 28, tokens: int = 4096, hidden: int = 1024) -> list:
    gen = torch.Generator().manual_seed(3)
    inv_freq = 1.0 / 1_000_000 ** (torch.arange(0, D, 2, dtype=torch.float32) / D)
    evicted, start = 1024, 512  # a 1024-token span before the suffix was pruned
    old_pos = torch.arange(start + evicted, start + evicted + tokens)
    new_pos = old_pos - evicted
    h = torch.randn(tokens, hidden, generator=gen)
    weights = [torch.randn(hidden, HKV * D, generator=gen) / hidden**0.5 for _ in range(layers)]
    stored = [hf_rope((h @ w).view(tokens, HKV, D), old_pos, inv_freq) for w in weights]
    pools = []
    slots = torch.randperm(tokens + 512, generator=gen)[:tokens]
    for keys in stored:  # page-size-1 pools holding the suffix at scattered slots
        pool = torch.zeros(tokens + 512, 1, HKV, D)
        store_kv(pool, pool, keys, keys, slots)
        pools.append(pool)

    def shift():
        return [rope_shift(keys, -evicted, inv_freq) for keys in stored]

    def shift_in_pool():
        for pool in pools:  # what tim.cache does: gather, rotate, write back
            flat = pool.view(-1, HKV, D)
            flat.index_copy_(0, slots, rope_shift(flat.index_select(0, slots), -evicted,
                                                  inv_freq))

    def recompute():
        return [hf_rope((h @ w).view(tokens, HKV, D), new_pos, inv_freq) for w in weights]

    err = max(max_err(a, b) for a, b in zip(shift(), recompute(), strict=True))
    assert err < 5e-3, f"rope check failed: {err}"  # fp32 angles of HF-style RoPE near 5k
    return [
        {"case": f"RoPE shift, {tokens} tokens x {layers} layers", "tim": "rope_shift",
         "baseline": f"recompute K (hidden {hidden} @ W_k + RoPE)",
         **timed_pair(shift, recompute, reps), "max_err": err},
        {"case": f"RoPE shift in the page pool, {tokens} tokens x {layers} layers",
         "tim": "gather + rope_shift + store", "baseline": "recompute K",
         **timed_pair(shift_in_pool, recompute, reps), "max_err": err},
    ]


def table(info: dict, rows: list[dict]) -> str:
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
             f"({info['threads']} threads); load average at start {info['loadavg_at_start']}, "
             f"at end {info.get('loadavg_at_end', '?')}",
             "", "| case | tim | ms | baseline | ms | baseline / tim | same, CPU time |",
             "|---|---|---:|---|---:|---:|---:|"]
    for r in rows:
        cpu = (f"{r['baseline_cpu_ms'] / r['tim_cpu_ms']:.2f}x" if info["threads"] == 1
               else "n/a (threads > 1)")
        lines.append(f"| {r['case']} | {r['tim']} | {r['tim_ms']:.2f} | {r['baseline']} | "
                     f"{r['baseline_ms']:.2f} | {r['baseline_ms'] / r['tim_ms']:.2f}x | {cpu} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 9
    info = machine()
    rows = [bench_cascade(8, reps), bench_cascade(32, reps),
            bench_varlen("prefill", reps), bench_varlen("decode", reps), *bench_rope(reps)]
    info["loadavg_at_end"] = loadavg()
    print(table(info, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
