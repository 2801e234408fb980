"""Kernel benchmarks on this machine: each case checks correctness, then times tim against a
baseline side by side (interleaved reps, median), and reports the ratio.

1. cascade vs per-worker gather: B workers decode one token each over a shared 2048-token
   prefix plus their own 128-token suffix, keys in a page pool (page size 1, scattered slots).
2. varlen over packed sequences vs one ``scaled_dot_product_attention`` call per sequence.
3. ``rope_shift`` of a 4k-token suffix in 28 layers vs recomputing those keys
   (``hidden @ W_k`` with hidden 1024, then RoPE).
4. Shared sibling visibility, one layer of a decode step: ``B`` siblings each see the prefix,
   every other sibling's tokens and their own, every segment stored once. tim's
   ``SegmentPlan`` rotates each worker's query by ``-delta`` per segment; the baseline
   re-rotates the segments' keys for every worker (``rope_shift``), gathering each worker's
   view, and runs varlen attention. Both plans are made once per step, outside the timing
   (their cost is printed beside it). SmolLM2-135M and Qwen3-0.6B head shapes.

Shapes of 1-3: fp32, H 16 / Hkv 4 / D 128.

Usage::

    python benchmarks/bench_kernels.py [--json PATH] [--quick] [--threads N] [--cases LIST]
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
    SharedSegment,
    paged_attention,
    paged_cascade_attention,
    plan_segments,
    plan_varlen,
    reference_attention,
    rope_shift,
    varlen_attention,
)
from tim.kernels.slots import GatherBuffers, gather_kv, store_kv

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


SEGMENT_SHAPES = {  # name -> (H, Hkv, D, rope_theta)
    "SmolLM2-135M": (9, 3, 64, 100_000.0),
    "Qwen3-0.6B": (16, 8, 128, 1_000_000.0),
}


def sibling_layout(children: int, span: int, prefix: int) -> list[dict[int, int]]:
    """Deltas of the prefix and of each child's segment, per worker that sees it.

    The prefix is written at ``0..prefix-1`` and every child writes from ``prefix`` on. Worker
    ``b``'s view is the prefix, the other children in plan order, its own tokens last, in
    ``b``'s own frame (its tokens at their written positions), so a segment placed ``x``
    positions after where it was written, minus the ``own`` shift, moves by ``x - own``::

        worker 1 of 3, span 2:   prefix | child 0 | child 2 | own
        layout - written:          0    |    0    |    2    |  4    -> deltas -4, -4, -2
    """
    own_shift = (children - 1) * span  # every other child sits before the worker's own tokens
    prefix_deltas = {b: -own_shift for b in range(children)}
    child_deltas: list[dict[int, int]] = []
    for c in range(children):
        # in worker b's view, child c follows the prefix and the children before it (but b)
        child_deltas.append({b: (c - (c > b)) * span - own_shift
                             for b in range(children) if b != c})
    return [prefix_deltas, *child_deltas]


def bench_segments(shape: str, children: int, span: int, reps: int, prefix: int = 512) -> dict:
    heads, kv_heads, dim, theta = SEGMENT_SHAPES[shape]
    gen = torch.Generator().manual_seed(children * 10_000 + span)
    inv_freq = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    num_slots = prefix + children * span
    k_pages = torch.empty(num_slots + 64, 1, kv_heads, dim)  # page size 1, like the CPU engine
    v_pages = torch.empty_like(k_pages)
    slots = torch.randperm(num_slots + 64, generator=gen)[:num_slots]  # scattered, as in use
    # stored keys carry RoPE at their written positions; for timing any keys will do
    store_kv(k_pages, v_pages, torch.randn(num_slots, kv_heads, dim, generator=gen),
             torch.randn(num_slots, kv_heads, dim, generator=gen), slots)
    prefix_slots = slots[:prefix]
    child_slots = [slots[prefix + c * span:prefix + (c + 1) * span] for c in range(children)]
    deltas = sibling_layout(children, span, prefix)
    q = torch.randn(children, heads, dim, generator=gen)  # one new token per child, stored
    cu_q = cu([1] * children)

    def plan_tim():
        segments = [SharedSegment(prefix_slots, deltas[0]),
                    *[SharedSegment(child_slots[c], deltas[1 + c]) for c in range(children)]]
        return plan_segments(q, k_pages, cu_q, torch.cat(child_slots), cu([span] * children),
                             segments, inv_freq=inv_freq)

    def plan_naive():
        """Each worker's view slots (prefix, others in plan order, own) and per-key deltas."""
        view_slots, view_deltas = [], []
        for b in range(children):
            view_slots.append(prefix_slots)
            view_deltas.append(torch.full((prefix,), deltas[0][b]))
            for c in range(children):
                if c != b:
                    view_slots.append(child_slots[c])
                    view_deltas.append(torch.full((span,), deltas[1 + c][b]))
            view_slots.append(child_slots[b])
            view_deltas.append(torch.zeros(span, dtype=torch.int64))
        view_len = prefix + children * span
        cu_k = cu([view_len] * children)
        varlen = plan_varlen(q, kv_heads, cu_q, cu_k, 1, view_len)
        return torch.cat(view_slots), torch.cat(view_deltas), varlen, cu_k

    seg_plan = plan_tim()
    view_slots, view_deltas, varlen, cu_k = plan_naive()

    def rotate_query():
        return seg_plan.run(q, k_pages, v_pages)

    views = GatherBuffers(view_slots)  # every worker's view, into buffers kept across layers

    def rotate_keys():
        k, v = views.gather(k_pages, v_pages)
        return varlen.run(q, rope_shift(k, view_deltas, inv_freq), v)

    k, v = gather_kv(k_pages, v_pages, view_slots)
    k = rope_shift(k.double(), view_deltas, inv_freq)
    ref, _ = reference_attention(q.double(), k, v.double(), cu_q, cu_k,
                                 AttentionParams(True, dim**-0.5))
    err = max(max_err(rotate_query()[0], ref), max_err(rotate_keys()[0], ref))
    assert err < 1e-4, f"segment check failed: {err}"
    plan_ms = {name: statistics.median(_timed(fn) for _ in range(5))
               for name, fn in (("tim_plan_ms", plan_tim), ("baseline_plan_ms", plan_naive))}
    return {"case": f"{shape} ({heads}/{kv_heads}/{dim}), {children} siblings x {span}, "
                    f"prefix {prefix}",
            "tim": "SegmentPlan.run (rotate queries)",
            "baseline": "re-rotate keys per worker + gather + varlen",
            **timed_pair(rotate_query, rotate_keys, reps), **plan_ms, "max_err": err}


def _timed(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def segment_table(rows: list[dict], threads: int) -> str:
    lines = ["| shape (H/Hkv/D) | siblings | span | rotate queries ms | re-rotate keys ms | "
             "keys / queries | same, CPU time | plan ms (queries / keys), once per step |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cpu = (f"{r['baseline_cpu_ms'] / r['tim_cpu_ms']:.2f}x" if threads == 1
               else "n/a (threads > 1)")
        lines.append(f"| {r['shape']} | {r['children']} | {r['span']} | {r['tim_ms']:.2f} | "
                     f"{r['baseline_ms']:.2f} | {r['baseline_ms'] / r['tim_ms']:.2f}x | {cpu} | "
                     f"{r['tim_plan_ms']:.2f} / {r['baseline_plan_ms']:.2f} |")
    return "\n".join(lines)


def table(info: dict, rows: list[dict]) -> str:
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
             f"({info['threads']} threads); load average at start {info['loadavg_at_start']}, "
             f"at end {info.get('loadavg_at_end', '?')}",
             "", "| case | tim | ms | baseline | ms | baseline / tim | same, CPU time |",
             "|---|---|---:|---|---:|---:|---:|"]
    if not rows:
        return lines[0]
    for r in rows:
        cpu = (f"{r['baseline_cpu_ms'] / r['tim_cpu_ms']:.2f}x" if info["threads"] == 1
               else "n/a (threads > 1)")
        lines.append(f"| {r['case']} | {r['tim']} | {r['tim_ms']:.2f} | {r['baseline']} | "
                     f"{r['baseline_ms']:.2f} | {r['baseline_ms'] / r['tim_ms']:.2f}x | {cpu} |")
    return "\n".join(lines)


CASES = ("cascade", "varlen", "rope", "segments")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated subset of {', '.join(CASES)} (default all)")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or any(c not in CASES for c in cases):
        parser.error(f"--cases takes a comma-separated subset of {', '.join(CASES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 9
    info = machine()
    rows = []
    if "cascade" in cases:
        rows += [bench_cascade(8, reps), bench_cascade(32, reps)]
    if "varlen" in cases:
        rows += [bench_varlen("prefill", reps), bench_varlen("decode", reps)]
    if "rope" in cases:
        rows += bench_rope(reps)
    segment_rows = []
    if "segments" in cases:
        spans = (64, 256) if args.quick else (64, 256, 1024)
        for shape in SEGMENT_SHAPES:
            for children in (2, 4, 8):
                for span in spans:
                    row = bench_segments(shape, children, span, reps)
                    segment_rows.append({"shape": shape, "children": children, "span": span,
                                         **row})
    info["loadavg_at_end"] = loadavg()
    print(table(info, rows))
    if segment_rows:
        print("\nShared sibling visibility, one layer of a decode step (each sibling decodes "
              "one token; prefix 512):\n")
        print(segment_table(segment_rows, info["threads"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": rows + segment_rows}, f, indent=2)


if __name__ == "__main__":
    main()
