"""Tools run inside the runtime: the model's call is grammar-checked against the signature,
the function runs in a thread pool, and its JSON result is written into the model's stream.

    python examples/tools.py
"""

import os

import tim

MODEL = os.environ.get("TIM_EXAMPLE_MODEL", "smollm2-135m")


def multiply(a: int, b: int) -> int:
    """Multiply two integers exactly.

    Parameters
    ----------
    a : int
        The first factor.
    b : int
        The second factor.
    """
    return a * b


rt = tim.Runtime(model=MODEL, format="thread2", max_depth=2, max_fanout=3)
result = rt.reason("What is 1234 * 5678? Use the multiply tool.", tools=[multiply],
                   max_new_tokens=300, temperature=0.3)
print("answer:", result.answer, "| error:", result.error)
if result.tree is not None:
    for _, task in result.tree.walk():
        if task.tooluse is not None:
            print("called", task.tooluse.tool_name, task.tooluse.parameters,
                  "->", task.tooluse.tool_result)
