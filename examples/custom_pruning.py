"""A custom pruning rule: evict every completed subtask list as soon as it completes, but
never one whose owner is a top-level task (keep the big picture, drop the details).

A rule is any object with ``select(state, view) -> list ids to evict`` (tim.pruning.Rule).

    python examples/custom_pruning.py
"""

import os

import tim
from tim.pruning import PruneState

MODEL = os.environ.get("TIM_EXAMPLE_MODEL", "smollm2-135m")


class KeepTopLevel:
    """Evict completed lists except those owned by top-level tasks."""

    def select(self, state: PruneState, view: int) -> list[int]:
        top_level = {t.id for t in state.tasks.values() if t.parent_list is None}
        return [info.id for info in state.completed_lists(view) if info.owner not in top_level]


rt = tim.Runtime(model=MODEL, format="thread2", pruning=KeepTopLevel(), max_depth=3,
                 max_fanout=2)
result = rt.reason("Explain how to make tea, step by step.", max_new_tokens=300)
print("answer:", result.answer, "| error:", result.error)
print(f"evicted {result.stats.tokens_evicted} tokens; peak live KV "
      f"{result.stats.peak_live_tokens} of {result.stats.tokens_generated} generated")
