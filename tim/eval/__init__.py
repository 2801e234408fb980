"""``tim eval``: what the tree buys, measured side by side on generated questions.

- :mod:`tim.eval.tasks`: seeded task generators (arithmetic chains, Countdown, multi-hop
  lookup), their tools and strict scoring;
- :mod:`tim.eval.configs`: the compared configurations (``cot``, ``thread2``, ``parallel``;
  pruning, positions, tools);
- :mod:`tim.eval.runner`: one :class:`~tim.eval.runner.Outcome` per question and
  configuration;
- :mod:`tim.eval.report`: Wilson intervals, the rich table, JSON and the plot;
- :mod:`tim.eval.cli`: the command.
"""

from tim.eval.configs import EvalConfig, parse_config, parse_configs
from tim.eval.report import load_json, save_json, summarize, wilson_interval
from tim.eval.runner import Outcome, run_eval
from tim.eval.tasks import TASKS, Question, make_question, make_questions, score

__all__ = ["TASKS", "EvalConfig", "Outcome", "Question", "load_json", "main_eval",
           "make_question", "make_questions", "parse_config", "parse_configs", "run_eval",
           "save_json", "score", "summarize", "wilson_interval"]


def main_eval(args) -> int:
    """``tim eval``, from the parsed arguments of :mod:`tim.cli`."""
    from tim.eval.cli import run_command

    return run_command(args)
