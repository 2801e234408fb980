"""Gold runs: a task family's solution tree written through tim's own engine.

The views a model trains on must be the views tim shows it at decode time. So the gold
tree is not laid out by hand: :class:`GoldWriter` teacher-forces its text through the
engine (:class:`tim.engine.choosers.TextReplay`), with the format, pruning rule and position
policy of the run it trains for, the question's real tools and the runtime's forced text.
The engine's record then says which tokens the model wrote, which the runtime forced, and
when each list left which view; :func:`tim.train.record_views` turns it into windows.

Which tokens the engine keeps depends on the tokens and the rule, not on the weights, so
the forward passes go through a tiny random model with the tokenizer's vocabulary (the
*proxy*): a height-5 tree takes seconds instead of the minutes a real model would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tim.engine.choosers import TextReplay
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.record import RunRecord
from tim.errors import TimError
from tim.prompt import PromptStyle, format_prompt
from tim.tools import ToolRegistry
from tim.tools.validate import schema_errors
from tim.tree import get_format

from .families import Example

__all__ = ["GoldConfig", "GoldWriter", "check_gold"]


@dataclass(frozen=True)
class GoldConfig:
    """How the trained model will be run: what its training views must match.

    ``pruning`` and ``positions`` as in :class:`tim.engine.config.EngineConfig`;
    ``max_workers`` 1 runs a ``parallel`` tree's siblings one after another.
    """

    pruning: str = "buffer:0@conclusion"
    positions: str = "shift"
    max_workers: int = 8
    max_depth: int = 12
    max_fanout: int = 4
    instructions: bool = False

    def engine_config(self, fmt: str) -> EngineConfig:
        return EngineConfig(format=fmt, pruning=self.pruning, positions=self.positions,
                            max_workers=self.max_workers, max_depth=self.max_depth,
                            max_fanout=self.max_fanout, structure="free",
                            max_new_tokens=1_000_000, kv_budget_tokens=1 << 20)

    @property
    def prompt_style(self) -> PromptStyle:
        return PromptStyle(instructions=self.instructions)


class GoldWriter:
    """Writes examples' gold trees through the engine over a proxy model.

    Parameters
    ----------
    tokenizer
        The tokenizer of the model to train.
    config : GoldConfig
        The run the views are for.

    Examples
    --------
    >>> from tim.models import tiny_tokenizer
    >>> from tim.train.families import make_example
    >>> writer = GoldWriter(tiny_tokenizer(), GoldConfig(pruning="buffer:0"))
    >>> record = writer.record(make_example("chain", 2, 1))
    >>> record.error is None and record.num_evicted > 0
    True
    """

    def __init__(self, tokenizer: Any, config: GoldConfig | None = None) -> None:
        from tim.models import tiny_model

        self.tokenizer, self.config = tokenizer, config or GoldConfig()
        vocab = max(len(tokenizer), getattr(tokenizer, "vocab_size", 0) or 0)
        self.proxy = tiny_model("llama", vocab_size=vocab, num_layers=1, hidden_size=32,
                                num_heads=2, num_kv_heads=1, max_position_embeddings=1 << 20)
        self._engines: dict[tuple, Engine] = {}

    def prompt(self, example: Example) -> list[int]:
        """The prompt's token ids, as a :class:`tim.Runtime` with this config builds them."""
        specs = ToolRegistry(example.tools).specs
        return format_prompt(self.tokenizer, get_format(example.format), example.question,
                             tools=specs, style=self.config.prompt_style)

    def record(self, example: Example) -> RunRecord:
        """Teacher-force ``example``'s gold tree through the engine; return the record.

        Raises ``ValueError`` naming the example when its tree breaks the grammar the run
        would decode under, and :class:`tim.TimError` when the engine fails on it.
        """
        check_gold(example, self.config)
        rendered = get_format(example.format).render(example.tree)
        texts = {(): rendered} if isinstance(rendered, str) else rendered
        specs = ToolRegistry(example.tools).specs
        key = (example.format, specs)
        if key not in self._engines:  # one engine per format and tool specs
            self._engines[key] = Engine(self.proxy.model, self.tokenizer,
                                        self.config.engine_config(example.format),
                                        tools=example.tools)
        with _one_thread():  # the proxy's ops are tiny: more threads only contend
            record = self._engines[key].run(self.prompt(example),
                                            chooser=TextReplay(texts, self.tokenizer),
                                            tools=example.tools)
        if record.error is not None:
            raise TimError(f"{_name(example)}: the engine failed on its gold tree: "
                           f"{record.error}")
        return record


@contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _name(example: Example) -> str:
    return f"example {example.family}/size {example.size}/seed {example.seed}"


def check_gold(example: Example, config: GoldConfig) -> None:
    """``ValueError`` naming the example and the task when its tree breaks what the grammar
    allows: depth, fan-out, a tool it does not offer, parameters its schema refuses."""
    specs = {spec.name: spec for spec in ToolRegistry(example.tools).specs}
    if example.tree.answer is None:
        raise ValueError(f"{_name(example)}: the gold tree has no answer")
    for path, task in example.tree.walk():
        where = f"{_name(example)}, task {list(path)} ({task.title!r})"
        if len(path) > config.max_depth:
            raise ValueError(f"{where}: depth {len(path)} is past max_depth="
                             f"{config.max_depth}")
        if task.subtasks is not None and not 1 <= len(task.subtasks) <= config.max_fanout:
            raise ValueError(f"{where}: {len(task.subtasks)} subtasks; the grammar allows "
                             f"1..{config.max_fanout}")
        if example.format == "parallel" and not task.title:
            raise ValueError(f"{where}: the parallel format needs a title on every task")
        use = task.tooluse
        if use is None:
            continue
        if use.tool_name not in specs:
            raise ValueError(f"{where}: calls {use.tool_name!r}, which the example does not "
                             f"offer (it offers {sorted(specs)})")
        errors = schema_errors(use.parameters, specs[use.tool_name].parameters)
        if errors:
            raise ValueError(f"{where}: parameters {use.parameters} break "
                             f"{use.tool_name}'s schema: {'; '.join(errors)}")
    if len(example.tree.reasoning) > config.max_fanout:
        raise ValueError(f"{_name(example)}: {len(example.tree.reasoning)} top-level tasks; "
                         f"the grammar allows 1..{config.max_fanout}")
