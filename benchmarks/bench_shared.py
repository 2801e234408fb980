"""Step cost of shared sibling visibility (issue 15), on this machine.

``n`` workers forked from one ``P``-token prefix have each written ``L`` tokens; then every
worker decodes one token per step. Three ways, side by side in one run, on the same model,
pool and tokens:

- **isolated**: each worker sees the prefix and itself (tim's default);
- **shared**: each also sees every other worker's ``L`` tokens, placed after the prefix
  (``siblings="shared"``): segment attention, each segment's K/V read once per layer, each
  worker's queries rotated per segment;
- **naive**: the same layout built the obvious way: every step, every worker gets a fresh
  view (the prefix shared by fork) holding copies of its siblings' and its own keys,
  re-rotated to the layout's positions in every layer, then a plain step.

Correctness first: the shared step's logits must equal the naive step's (1e-3 absolute on
fp32 logits, the same bound for every row) before anything is timed. Times are medians over
rounds that alternate the three ways. The model is a random-weight fp32 model of
SmolLM2-135M's shape (``tim.models.tiny_model``); one torch thread.

Usage::

    python benchmarks/bench_shared.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from bench_engine import MODELS  # the script's folder
from machine import machine, machine_line

from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.executor import Feed, Visible
from tim.kernels import rope_shift
from tim.models import tiny_model

PREFIX = 256


def setup(n: int, span: int, seed: int = 0):
    """An executor holding a prefix and ``n`` children of ``span`` tokens each."""
    torch.manual_seed(seed)
    loaded = tiny_model(**MODELS["smollm2-135m"])
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(
        # the children, and the naive step's copies: n views of n spans each
        kv_budget_tokens=PREFIX + (n + n * n) * (span + 64), cascade_min_saved=64))
    ex = engine.new_executor()
    vocab = loaded.model.config.vocab_size
    root = ex.open(torch.randint(vocab, (PREFIX,)).tolist(), writer="prompt")
    ex.step([Feed(root, "prompt", 0, (), num_recompute=PREFIX, wants_logits=False)])
    kids = [ex.fork(root) for _ in range(n)]
    ex.step([Feed(v, (i,), 0, tuple(torch.randint(vocab, (span,)).tolist()), prefix=PREFIX,
                  wants_logits=False) for i, v in enumerate(kids)])
    return ex, root, kids, vocab


def shared_feeds(ex, kids, tokens, fed):
    return [Feed(v, (i,), fed, (tokens[i],), prefix=PREFIX,
                 visible=tuple(Visible(o, PREFIX, ex.num_tokens(o)) for o in kids if o is not v))
            for i, v in enumerate(kids)]


def naive_step(ex, root, kids, tokens):
    """Materialize each worker's layout as its own view (keys copied and re-rotated in every
    layer), then one plain step; the views are dropped after."""
    store = ex.store
    views, feeds = [], []
    for i, v in enumerate(kids):
        view = ex.fork(root)  # the prefix is shared, not copied
        layout = PREFIX  # the siblings in plan order, then its own tokens, contiguous
        for k, src in enumerate([o for o in kids if o is not v] + [v]):
            slots, written = src.slot_mapping()[PREFIX:], src.position_ids()[PREFIX:]
            placed = range(layout, layout + len(slots))
            store.append(view, placed, token_ids=[0] * len(slots), source=(("copy", i), k))
            dst = view.slot_mapping()[-len(slots):]
            for layer in range(store.config.num_layers):
                k_pages, v_pages = store.pool.layer(layer)
                kf, vf = k_pages.flatten(0, 1), v_pages.flatten(0, 1)
                kf[dst] = rope_shift(kf[slots], layout - int(written[0]), store.rope_inv_freq,
                                     interleaved=store.rope_interleaved)
                vf[dst] = vf[slots]
            layout += len(slots)
        views.append(view)
        feeds.append(Feed(view, ("naive", i), 0, (tokens[i],)))
    out = ex.step(feeds)
    for view in views:
        ex.drop(view)
    return out.logits


def measure(n: int, span: int, rounds: int) -> dict:
    ex, root, kids, vocab = setup(n, span)
    tokens = torch.randint(vocab, (n,)).tolist()
    # correctness: the same step, shared vs naive, before any timing (the shared step writes
    # its tokens; the naive one then sees them as the workers' newest own tokens, so compare
    # the naive step taken first)
    naive = naive_step(ex, root, kids, tokens)
    shared = ex.step(shared_feeds(ex, kids, tokens, span)).logits
    error = float((naive - shared).abs().max())
    if error > 1e-3:
        raise SystemExit(f"n={n} L={span}: shared and naive logits differ by {error:.2e}")
    times = {"isolated": [], "shared": [], "naive": []}
    fed = span + 1
    for _ in range(rounds):
        for way in times:
            start = time.perf_counter()
            if way == "naive":
                naive_step(ex, root, kids, tokens)
            else:
                feeds = (shared_feeds(ex, kids, tokens, fed) if way == "shared" else
                         [Feed(v, (i,), fed, (tokens[i],), prefix=PREFIX)
                          for i, v in enumerate(kids)])
                ex.step(feeds)
                fed += 1
            times[way].append(time.perf_counter() - start)
    for v in kids:
        ex.drop(v)
    ex.drop(root)
    ex.close()
    med = {way: statistics.median(t) * 1e3 for way, t in times.items()}
    return {"workers": n, "span": span, "max_abs_logit_diff": error,
            **{f"{w}_ms": round(m, 2) for w, m in med.items()},
            "shared_over_isolated": round(med["shared"] / med["isolated"], 2),
            "naive_over_shared": round(med["naive"] / med["shared"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and rounds")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine(threads=1)
    print(machine_line(info))
    spans = (32, 128) if args.quick else (32, 128, 512)
    rounds = 3 if args.quick else 7
    rows = []
    print(f"prefix {PREFIX} tokens; per-step ms, median of {rounds} alternating rounds")
    print(f"{'n':>2} {'L':>4} {'isolated':>9} {'shared':>8} {'naive':>8} {'sh/iso':>7} "
          f"{'naive/sh':>8} {'max|dlogit|':>11}")
    for n in (2, 4, 8):
        for span in spans:
            r = measure(n, span, rounds)
            rows.append(r)
            print(f"{n:>2} {span:>4} {r['isolated_ms']:>9.1f} {r['shared_ms']:>8.1f} "
                  f"{r['naive_ms']:>8.1f} {r['shared_over_isolated']:>7.2f} "
                  f"{r['naive_over_shared']:>8.2f} {r['max_abs_logit_diff']:>11.1e}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "prefix": PREFIX, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
