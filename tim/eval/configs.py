"""Configurations ``tim eval`` compares, named by short specs.

A spec is ``METHOD[/PRUNING][/POSITIONS][/SIBLINGS][/tools[/bias:B]]``:

- ``cot``: plain chain of thought through HF ``generate`` (no tools);
- ``thread2`` or ``parallel``: tim's two formats, with a pruning rule (``none``,
  ``buffer:K`` or ``buffer:K@conclusion``, default ``buffer:1``), a position policy (``shift``, default, ``reencode``
  or ``keep``) and ``tools`` to offer the task's tools;
- ``parallel`` also takes ``shared`` (siblings see each other, with the collaboration prompt)
  or ``shared-noprompt`` (the same, with the isolated instructions);
- ``bias:B``, with ``tools``: ``B`` nats towards a call at every ``tooluse`` choice
  (:mod:`tim.engine.tool_bias`).

Every configuration gets the same sampled-token budget and the same questions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tim.pruning import get_rule

__all__ = ["EvalConfig", "parse_config", "parse_configs", "DEFAULT_CONFIGS", "METHODS"]

METHODS = ("cot", "thread2", "parallel")
POSITIONS = ("shift", "reencode", "keep")
SIBLINGS = ("shared", "shared-noprompt")  # spec parts; isolated is the default
DEFAULT_CONFIGS = ("cot", "thread2/none", "thread2/buffer:1", "parallel/buffer:1",
                   "parallel/buffer:1/tools")
_BIAS = re.compile(r"bias:(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class EvalConfig:
    """One configuration of the comparison.

    Examples
    --------
    >>> EvalConfig("parallel", pruning="buffer:2", tools=True).name
    'parallel/buffer:2/tools'
    >>> EvalConfig("cot", tools=True)
    Traceback (most recent call last):
    ValueError: the cot baseline runs without tools (HF generate has no tool loop), got tools=True
    """

    method: str
    pruning: str = "buffer:1"
    positions: str = "shift"
    tools: bool = False
    siblings: str = "isolated"  # or one of SIBLINGS
    tool_bias: float = 0.0

    def __post_init__(self) -> None:
        if self.tool_bias and not self.tools:
            raise ValueError(f"a tool bias needs tools offered, got bias {self.tool_bias!r} "
                             "without tools")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not _is_rule(self.pruning):
            raise ValueError(f"pruning must be 'none', 'buffer:K' or 'buffer:K@conclusion', "
                             f"got {self.pruning!r}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.siblings not in ("isolated", *SIBLINGS):
            raise ValueError(f"siblings must be 'isolated' or one of {SIBLINGS}, got "
                             f"{self.siblings!r}")
        if self.siblings != "isolated" and self.method != "parallel":
            raise ValueError(f"only parallel siblings run concurrently; {self.method} cannot "
                             f"take {self.siblings!r}")
        if self.method == "cot" and self.tools:
            raise ValueError("the cot baseline runs without tools (HF generate has no tool "
                             f"loop), got tools={self.tools!r}")

    @property
    def is_tim(self) -> bool:
        return self.method != "cot"

    @property
    def name(self) -> str:
        """The canonical spec: :func:`parse_config` of it gives this config back."""
        if not self.is_tim:
            return "cot"
        parts = [self.method, self.pruning]
        if self.positions != "shift":
            parts.append(self.positions)
        if self.siblings != "isolated":
            parts.append(self.siblings)
        if self.tools:
            parts.append("tools")
        if self.tool_bias:
            parts.append(f"bias:{self.tool_bias:g}")
        return "/".join(parts)


def _is_rule(part: str) -> bool:
    """Whether ``part`` is a spec :func:`tim.pruning.get_rule` takes (``buffer:inf`` too)."""
    try:
        get_rule(part)
    except ValueError:
        return False
    return True


def parse_config(spec: str) -> EvalConfig:
    """A config from its spec.

    >>> parse_config("thread2/none/reencode/tools")
    EvalConfig(method='thread2', pruning='none', positions='reencode', tools=True, siblings='isolated', tool_bias=0.0)
    >>> parse_config("parallel/tools/bias:4").name
    'parallel/buffer:1/tools/bias:4'
    >>> parse_config("thread2/buffer:0@conclusion/reencode").name
    'thread2/buffer:0@conclusion/reencode'
    >>> parse_config("thread2/buffer:x")
    Traceback (most recent call last):
    ValueError: config 'thread2/buffer:x': 'buffer:x' is not a pruning rule (none, buffer:K, buffer:K@conclusion), a position policy (shift, reencode, keep), shared, shared-noprompt, 'tools' or bias:B
    """
    method, *rest = spec.strip().split("/")
    fields: dict[str, object] = {}
    for part in rest:
        key = ("pruning" if _is_rule(part) else "positions" if part in POSITIONS
               else "siblings" if part in SIBLINGS else "tools" if part == "tools"
               else "tool_bias" if _BIAS.fullmatch(part) else None)
        if key is None:
            raise ValueError(f"config {spec!r}: {part!r} is not a pruning rule (none, buffer:K, "
                             "buffer:K@conclusion), a position policy (shift, reencode, keep), shared, "
                             "shared-noprompt, 'tools' or bias:B")
        if key in fields:
            raise ValueError(f"config {spec!r} names its {key} twice")
        fields[key] = (True if key == "tools" else float(part.split(":")[1])
                       if key == "tool_bias" else part)
    if method == "cot" and rest:
        raise ValueError(f"config {spec!r}: cot takes no options")
    try:
        return EvalConfig(method, **fields)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"config {spec!r}: {exc}") from None


def parse_configs(text: str) -> tuple[EvalConfig, ...]:
    """Comma-separated specs, each once.

    >>> [c.name for c in parse_configs("cot, parallel/buffer:0")]
    ['cot', 'parallel/buffer:0']
    """
    configs = tuple(parse_config(s) for s in text.split(",") if s.strip())
    if not configs:
        raise ValueError(f"no configuration in {text!r}")
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"a configuration is named twice in {text!r}")
    return configs
