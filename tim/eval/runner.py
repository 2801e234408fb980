"""Run configurations over questions and keep one :class:`Outcome` per question.

tim configurations go through :class:`tim.Runtime`; ``cot`` through HF ``generate`` on the
same model and tokenizer. Every run gets the same budget of sampled tokens. With a window
``W`` a run may use positions ``0 .. W - 1``:

- ``cot`` generates at most ``W - len(prompt)`` tokens, then stops (failure ``"window"``);
- tim runs get ``max_position=W``: the engine ends a run whose next feed would reach ``W``,
  before that forward (``PositionWindowError``, failure ``"window"``); under ``shift`` or
  ``reencode`` a pruned tree's positions fall back, so it goes on where plain generation
  stops. A run whose last token is sampled at position ``W - 1`` has finished inside the
  window, and its answer counts.

Without a window, tim runs stop at the model's ``max_position_embeddings`` (the engine's
default ``max_position``), with the same failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tim.errors import PositionWindowError, recorded_error_is
from tim.eval.configs import EvalConfig
from tim.eval.redundancy import sibling_redundancy
from tim.eval.tasks import Question, score

__all__ = ["Outcome", "run_cot", "run_tim", "run_eval", "COT_INSTRUCTIONS"]

COT_INSTRUCTIONS = ("Solve the problem step by step, then write the final answer on the last "
                    "line as 'Final answer: ...'.")


@dataclass(frozen=True)
class Outcome:
    """One question in one configuration.

    ``sampled_tokens`` counts tokens the model chose (not prompts, forced headers or tool
    results); ``peak_live_kv`` the most tokens held in the KV cache at once;
    ``max_position`` the largest position id written.
    """

    task: str
    size: int
    seed: int
    config: str
    correct: bool
    answer: str | None
    failure: str | None
    prompt_tokens: int
    sampled_tokens: int
    peak_live_kv: int
    max_position: int
    wall_time_s: float
    tool_calls: int = 0
    redundancy: float | None = None
    duplicate_titles: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


def run_cot(loaded: Any, question: Question, *, max_new_tokens: int, window: int | None,
            temperature: float = 0.0, seed: int = 0) -> Outcome:
    """Plain chain of thought: ``model.generate`` on the question, scored on its last answer."""
    import torch

    from tim.prompt import build_prompt

    model, tokenizer = loaded.model, loaded.tokenizer
    prompt = build_prompt(tokenizer, COT_INSTRUCTIONS, question.prompt(tools=False))
    room = max_new_tokens if window is None else min(max_new_tokens, window - len(prompt))
    start = time.perf_counter()
    if room <= 0:
        return _cot_outcome(question, prompt, [], "window", 0.0)
    device = next(model.parameters()).device
    input_ids = torch.tensor([prompt], device=device)
    torch.manual_seed(seed)
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": 0.95}
                if temperature > 0 else {"do_sample": False})
    with torch.inference_mode():
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                             max_new_tokens=room, pad_token_id=_pad_id(tokenizer),
                             **sampling)
    new = out[0, len(prompt):].tolist()
    eos = _eos_ids(model, tokenizer)
    stopped = next((i for i, t in enumerate(new) if t in eos), None)
    if stopped is not None:
        new, failure = new[:stopped + 1], None
    else:
        failure = "window" if room < max_new_tokens else "max_new_tokens"
    text = tokenizer.decode(new, skip_special_tokens=True)
    return _cot_outcome(question, prompt, new, failure, time.perf_counter() - start, text)


def _cot_outcome(question: Question, prompt: list[int], new: list[int], failure: str | None,
                 wall: float, text: str | None = None) -> Outcome:
    # the sequence is the KV cache: prompt + sampled tokens at positions 0, 1, ...
    return Outcome(task=question.task, size=question.size, seed=question.seed, config="cot",
                   correct=failure != "window" and score(question, text), answer=text,
                   failure=failure, prompt_tokens=len(prompt), sampled_tokens=len(new),
                   peak_live_kv=len(prompt) + len(new),
                   max_position=len(prompt) + len(new) - 1, wall_time_s=wall)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in [*ids, tokenizer.eos_token_id] if i is not None}


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return pad if pad is not None else (tokenizer.eos_token_id or 0)


def run_tim(runtime: Any, config: EvalConfig, question: Question, *, max_new_tokens: int,
            temperature: float = 0.0) -> Outcome:
    """One question through a :class:`tim.Runtime` built for ``config``; its window is the
    runtime's (``max_position``, see :func:`make_runtime`)."""
    text = question.prompt(tools=config.tools)
    tools = question.tools() if config.tools else ()
    start = time.perf_counter()
    engine = runtime.engine(tools=tools)  # built once per tool set, then reused
    prompt = runtime.prompt(text, engine.tools.specs)  # exactly what reason() feeds the model
    window = engine.max_position
    if window is not None and len(prompt) > window - 1:  # no room for one sampled token
        return Outcome(task=question.task, size=question.size, seed=question.seed,
                       config=config.name, correct=False, answer=None, failure="window",
                       prompt_tokens=len(prompt), sampled_tokens=0, peak_live_kv=len(prompt),
                       max_position=len(prompt) - 1, wall_time_s=time.perf_counter() - start)
    result = runtime.reason(text, tools=tools, max_new_tokens=max_new_tokens,
                            temperature=temperature)
    wall = time.perf_counter() - start
    failure = "window" if recorded_error_is(result.error, PositionWindowError) else result.error
    if failure is not None and failure.startswith("max_new_tokens"):
        failure = "max_new_tokens"  # one label for the table, as cot's
    if failure is None and result.answer is None:
        failure = "no answer"
    stats, record = result.stats, result.record
    redundancy, duplicates = sibling_redundancy(record)
    return Outcome(task=question.task, size=question.size, seed=question.seed,
                   config=config.name, correct=failure is None and score(question, result.answer),
                   answer=result.answer, failure=failure, prompt_tokens=len(record.prompt_ids),
                   sampled_tokens=stats.tokens_generated, peak_live_kv=stats.peak_live_tokens,
                   max_position=stats.max_position_id, wall_time_s=wall,
                   tool_calls=len(record.tool_calls), redundancy=redundancy,
                   duplicate_titles=duplicates)


def make_runtime(loaded: Any, config: EvalConfig, *, seed: int = 0,
                 window: int | None = None) -> Any:
    """A :class:`tim.Runtime` on an already-loaded model for a tim configuration; its runs
    stay below ``window`` (None: the model's ``max_position_embeddings``)."""
    from tim.api import Runtime

    return Runtime(model=(loaded.model, loaded.tokenizer), format=config.method,
                   pruning=config.pruning, positions=config.positions, seed=seed,
                   max_position=window,
                   siblings="isolated" if config.siblings == "isolated" else "shared",
                   collaboration_prompt=config.siblings == "shared", tool_bias=config.tool_bias)


def run_eval(loaded: Any, configs: Sequence[EvalConfig], questions: Sequence[Question], *,
             max_new_tokens: int, window: int | None = None, temperature: float = 0.0,
             seed: int = 0, on_outcome: Callable[[Outcome], None] | None = None
             ) -> list[Outcome]:
    """Every configuration on every question, question by question: each question goes
    through every configuration before the next one starts, so a run stopped part-way has
    a side-by-side comparison on the questions it finished.

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> from tim.eval.configs import parse_configs
    >>> from tim.eval.tasks import make_questions
    >>> qs = make_questions("lookup", sizes=(1,), num_per_size=1, seed=0)
    >>> out = run_eval(tiny_model("llama"), parse_configs("cot,thread2/none"), qs,
    ...                max_new_tokens=8)
    >>> [(o.config, o.sampled_tokens <= 8) for o in out]
    [('cot', True), ('thread2/none', True)]
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if window is not None and window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    runtimes = {c.name: make_runtime(loaded, c, seed=seed, window=window)
                for c in configs if c.is_tim}
    outcomes = []
    for question in questions:
        for config in configs:
            if not config.is_tim:
                outcome = run_cot(loaded, question, max_new_tokens=max_new_tokens,
                                  window=window, temperature=temperature, seed=seed)
            else:
                outcome = run_tim(runtimes[config.name], config, question,
                                  max_new_tokens=max_new_tokens, temperature=temperature)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes
