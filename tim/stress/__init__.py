"""Context-limit stress runs: a forced tree shape, far past the window, checked against O6.

- :func:`stress` runs one shape and returns a :class:`StressReport`; :func:`compare`
  runs it under several position policies and pruning rules (``tim.stress.run``). The
  report, its ratios and the errors a failure names live in ``tim.stress.outcome``.
- :class:`StressShape` is the forced structure; ``tim.stress.chooser.ShapeChooser`` writes
  it while the model samples the content.
- ``tim stress`` (:func:`main_stress`) runs and compares position policies and pruning rules.

Importing this package imports no torch.
"""

from tim.stress.outcome import (
    PositionWindowError,
    StressCheckError,
    StressReport,
    expected_to_hold,
)
from tim.stress.run import compare, stress
from tim.stress.shape import StressShape

__all__ = [
    "PositionWindowError",
    "StressCheckError",
    "StressReport",
    "StressShape",
    "compare",
    "expected_to_hold",
    "main_stress",
    "stress",
]


def main_stress(argv=None) -> int:
    """``tim stress``: see :mod:`tim.stress.cli`."""
    from tim.stress.cli import main_stress as main

    return main(argv)
