"""Print the table of docs/architecture.md: max |engine - composed reference| log-prob per
configuration and architecture, measured now on tiny random models (fp32, CPU).

    python -m tests.engine.reference_table
"""

from __future__ import annotations

import platform

import torch

from tests.engine.reference import max_reference_error
from tests.engine.test_oracles import CONFIGS, DEFAULT_PATH, TREE, load, run_tree

ARCHS = [("qwen3", {}, CONFIGS), ("llama", {}, DEFAULT_PATH),
         ("phi3 (partial rotary 0.5)", {"partial_rotary_factor": 0.5}, DEFAULT_PATH),
         ("mistral (window 16)", {"sliding_window": 16}, DEFAULT_PATH),
         ("cohere (interleaved RoPE)", {}, DEFAULT_PATH)]


def main() -> None:
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, fp32\n")
    print("| architecture | format | pruning | positions | workers | tokens | evicted | "
          "max abs. diff. log-prob |")
    print("|---|---|---|---|---|---|---|---|")
    for name, overrides, configs in ARCHS:
        lm = load(name.split()[0], **overrides)
        for fmt, pruning, positions, workers in configs:
            record = run_tree(lm, TREE, fmt=fmt, pruning=pruning, positions=positions,
                              max_workers=workers)
            error, count = max_reference_error(lm[1], record)
            print(f"| {name} | {fmt} | {pruning} | {positions} | {workers} | {count} | "
                  f"{record.num_evicted} | {error:.1e} |", flush=True)


if __name__ == "__main__":
    main()
