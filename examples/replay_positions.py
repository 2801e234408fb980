"""Replay a saved run under another position policy: the same sampled tokens are
teacher-forced through the model, and the cost of each policy is compared side by side.

    python examples/replay_positions.py
"""

import os

import tim
from tim.engine.choosers import TokenReplay

MODEL = os.environ.get("TIM_EXAMPLE_MODEL", "smollm2-135m")

rt = tim.Runtime(model=MODEL, format="thread2", pruning="buffer:0", positions="shift",
                 max_depth=2, max_fanout=2)
original = rt.reason("List three uses of a paperclip.", max_new_tokens=300)
print("original:", original.stats.tokens_generated, "tokens, error:", original.error)

for positions in ("shift", "reencode"):
    config = tim.EngineConfig(format="thread2", pruning="buffer:0", positions=positions,
                              structure="free",
                              max_new_tokens=max(1, original.stats.tokens_generated))
    engine = tim.Engine(rt.loaded.model, rt.tokenizer, config)
    record = engine.run(original.record.prompt_ids,
                        chooser=TokenReplay.from_record(original.record))
    same = record.streams[()].text == original.record.streams[()].text
    print(f"{positions:9s} same text: {same}, evicted {record.num_evicted}, "
          f"re-encoded {record.num_reencoded}, max position {record.max_position}, "
          f"{record.wall_time_s:.2f} s")
