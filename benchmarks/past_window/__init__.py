"""Past the window, end to end: two small Llama models trained here on the same solver's
traces, one as tim task trees and one as flat chain of thought, then evaluated through tim
far past their context window.

Run ``python -m benchmarks.past_window`` (about half an hour on one CPU core) or
``python -m benchmarks.past_window --quick`` (seconds: it checks the pipeline, not accuracy).

Modules, in pipeline order:

- :mod:`.task`: the task (sum of tool-given leaf values mod 10 over a binary tree of a
  given height) and its solver, which builds a :class:`tim.tree.TaskTree`;
- :mod:`.traces`: the same solution as a tim ``thread2`` trace and as a flat trace, both as
  segments (model-written or forced by the runtime);
- :mod:`.views`: what ``buffer:k`` pruning leaves the model to see, token by token, turned
  into training windows;
- :mod:`.tokenizer`, :mod:`.train`: a BPE trained on the spot; a Llama trained from scratch;
- :mod:`.flat`: the flat model's decoding, truncated at the window or with a sliding window;
- :mod:`.evaluate`, :mod:`.report`: accuracy and memory per size and configuration, the
  table and the plot.
"""
