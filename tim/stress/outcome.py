"""What a stress run found: :class:`StressReport`, the failures its checks name, the rates.

This module owns the report as data: its fields, the ratios derived from them, its JSON
form, and the two errors a failure string can name (``PositionWindowError`` is the engine's,
:mod:`tim.errors`, re-exported here). Running a shape is
:mod:`tim.stress.run`'s job; drawing a report is :mod:`tim.stress.report`'s.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tim.errors import PositionWindowError, TimError
from tim.stress.shape import StressShape

__all__ = [
    "PositionWindowError",
    "StressCheckError",
    "StressReport",
    "decile_rates",
    "expected_to_hold",
]


class StressCheckError(TimError):
    """A stress run broke one of its checks: live KV over the budget, a run that ended
    without its answer, or a tree that does not have the forced shape."""


def expected_to_hold(positions: str, pruning: str) -> bool:
    """Whether O6 should hold: ``keep`` grows positions without bound and ``none`` never frees."""
    return positions != "keep" and pruning != "none"


@dataclass
class StressReport:
    """What one stress run did, and whether its checks held.

    ``failure`` is None when every check held, else ``"<ErrorName>: <message>"``. The
    timeline has one row per step: ``(tokens processed, live KV tokens, max position id
    so far, seconds since the start)``.
    ``decile_tokens_per_s[i]`` is the speed (tokens written per second) over the i-th tenth
    of the run's tokens; the prompt's prefill step is left out.
    """

    model: str
    format: str
    positions: str
    pruning: str
    shape: StressShape
    window: int
    kv_budget_tokens: int
    prompt_tokens: int = 0
    total_tokens: int = 0  # prompt + every token written once (sampled and forced)
    tokens_processed: int = 0  # fed through the model; re-encoded tokens count again
    peak_live_tokens: int = 0
    max_position_id: int = 0
    num_evicted: int = 0
    num_steps: int = 0
    wall_time_s: float = 0.0
    decile_tokens_per_s: list[float] = field(default_factory=list)
    timeline: list[tuple[int, int, int, float]] = field(default_factory=list)
    answer: str | None = None
    needle_answered: bool | None = None  # None: no needle planted
    failure: str | None = None
    record: Any = field(default=None, repr=False, compare=False)  # the engine's RunRecord

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, Any]:
        """The report as plain data, with the derived ratios and without the record."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "record"}
        return {**data, "shape": asdict(self.shape), "ok": self.ok,
                "window_ratio": self.window_ratio, "live_ratio": self.live_ratio,
                "steady_ratio": self.steady_ratio}

    @property
    def failure_name(self) -> str | None:
        return None if self.failure is None else self.failure.split(":", 1)[0]

    @property
    def expected_to_hold(self) -> bool:
        return expected_to_hold(self.positions, self.pruning)

    @property
    def window_ratio(self) -> float:
        """Total tokens ÷ context window."""
        return self.total_tokens / self.window

    @property
    def live_ratio(self) -> float:
        """Peak live KV tokens ÷ total tokens."""
        return self.peak_live_tokens / self.total_tokens if self.total_tokens else 0.0

    @property
    def steady_ratio(self) -> float | None:
        """Tokens/s over the last tenth ÷ the first tenth (1.0 is flat)."""
        rates = self.decile_tokens_per_s
        return rates[-1] / rates[0] if len(rates) == 10 and rates[0] > 0 else None


def decile_rates(points: Sequence[tuple[int, float]]) -> list[float]:
    """Tokens/s over each tenth of the tokens, from ``(tokens so far, seconds)`` points.

    A tenth's rate is its tokens over the time between the first points at or past its
    two edges (the first point is the origin). Fewer than 11 points give ``[]``.

    Examples
    --------
    >>> decile_rates([(i * 10, i * 0.5) for i in range(21)])[:3]
    [20.0, 20.0, 20.0]
    """
    if len(points) < 11:
        return []
    tokens = [p[0] for p in points]
    first, last = tokens[0], tokens[-1]
    edges = [points[bisect.bisect_left(tokens, first + (last - first) * k / 10)]
             for k in range(11)]
    return [(b[0] - a[0]) / (b[1] - a[1]) if b[1] > a[1] else 0.0
            for a, b in zip(edges, edges[1:], strict=False)]
