"""Task sets for ``tim eval``, generated on the spot from a seed, none downloaded.

Three families, each a pure function ``(size, seed) -> Question``:

- ``arithmetic``: two independent chains of ``size`` steps each (``A = 7``, ``A = A * 3``,
  ...), combined at the end (``A + B``). Intermediate values must be carried; the chains
  can be solved in parallel. Tool: ``calculator(a, op, b)``.
- ``countdown``: reach a target from ``size`` numbers (four in the classic game) with
  + - * /, each number used at most once. Only solvable instances are generated: the
  target is the value of a random expression over all the numbers. Tool: ``calculator``.
- ``lookup``: follow a chain of ``size`` hops through a key-value table to a number. With
  tools the table sits behind ``lookup(key)``; without, it is printed in the question.

Scoring is strict: :func:`score` reads the *last* number (or, for countdown, the last
expression) of an answer text and compares it exactly.
"""

from __future__ import annotations

import ast
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

__all__ = ["TASKS", "Question", "make_question", "make_questions", "score", "last_number",
           "last_expression", "eval_expression", "calculator"]

TASKS = ("arithmetic", "countdown", "lookup")
OPS = ("+", "-", "*", "/")


@dataclass(frozen=True)
class Question:
    """One generated question.

    ``text`` is the question with tools offered, ``text_no_tools`` without (they differ
    only for ``lookup``, whose table is then printed). ``expected`` is the answer as text
    (for countdown: one solution; any correct expression scores). ``table`` holds the
    lookup table (empty for other tasks).
    """

    task: str
    size: int
    seed: int
    text: str
    text_no_tools: str
    expected: str
    numbers: tuple[int, ...] = ()
    target: int = 0
    table: dict[str, str] = field(default_factory=dict, compare=False)

    def prompt(self, *, tools: bool) -> str:
        return self.text if tools else self.text_no_tools

    def tools(self) -> list[Callable]:
        """The tools this question offers when tools are on."""
        if self.task == "lookup":
            table = dict(self.table)

            def lookup(key: str) -> str:
                """Look up a key in the table; returns its value (a key or a number)."""
                return table.get(key.strip(), f"unknown key {key!r}")

            return [lookup]
        return [calculator]


def calculator(a: float, op: Literal["+", "-", "*", "/"], b: float) -> float | int:
    """Apply one arithmetic operation: a op b.

    >>> calculator(6, "*", 7), calculator(7, "/", 2)
    (42, 3.5)
    """
    value = eval_expression(f"({a}) {op} ({b})")
    if value is None:
        raise ValueError(f"cannot compute {a} {op} {b}")
    return int(value) if value.denominator == 1 else float(value)


def _arithmetic(size: int, rng: random.Random) -> tuple[str, str]:
    lines, values = [], {}
    for name in ("A", "B"):
        value = rng.randint(2, 20)
        lines.append(f"{name} = {value}.")
        for _ in range(size):
            op = rng.choice(("+", "-", "*"))
            operand = rng.randint(2, 9) if op == "*" else rng.randint(1, 30)
            value = {"+": value + operand, "-": value - operand, "*": value * operand}[op]
            lines.append(f"{name} = {name} {op} {operand}.")
        values[name] = value
    text = ("Compute step by step. " + " ".join(lines)
            + " What is A + B? Give the final answer as a single integer.")
    return text, str(values["A"] + values["B"])


def _random_expression(numbers: list[int], rng: random.Random) -> tuple[str, Fraction] | None:
    """Combine all ``numbers`` in a random order and tree shape; exact division only."""
    items = [(str(n), Fraction(n)) for n in numbers]
    rng.shuffle(items)
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        (ta, va), (tb, vb) = items[i], items[j]
        op = rng.choice(OPS)
        if op == "/" and (vb == 0 or (va / vb).denominator != 1):
            op = rng.choice(("+", "*"))
        if op == "-" and va < vb:
            (ta, va), (tb, vb) = (tb, vb), (ta, va)
        value = {"+": va + vb, "-": va - vb, "*": va * vb, "/": va / vb if vb else None}[op]
        if value is None:
            return None
        items = [x for k, x in enumerate(items) if k not in (i, j)] + [(f"({ta} {op} {tb})",
                                                                         value)]
    text, value = items[0]
    return text[1:-1] if text.startswith("(") else text, value


def _countdown(size: int, rng: random.Random) -> tuple[str, str, tuple[int, ...], int]:
    while True:
        numbers = [rng.choice((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 25, 50, 75, 100))
                   for _ in range(size)]
        made = _random_expression(numbers, rng)
        if made is not None and made[1].denominator == 1 and 1 <= made[1] <= 1000:
            break
    solution, target = made[0], int(made[1])
    text = (f"Use the numbers {', '.join(map(str, numbers))} to reach {target} with "
            "+, -, * and /, each number at most once. Give the final answer as one "
            "arithmetic expression.")
    return text, solution, tuple(numbers), target


def _lookup(size: int, rng: random.Random) -> tuple[str, str, str, dict[str, str]]:
    keys = rng.sample(range(100, 1000), 2 * size + 2)
    chain = [f"k{k}" for k in keys[: size + 1]]
    value = str(rng.randint(10, 99))
    table = {chain[i]: chain[i + 1] for i in range(size)}
    table[chain[size]] = value
    for k in keys[size + 1:]:  # distractors, so the printed table is not the chain in order
        table[f"k{k}"] = str(rng.randint(10, 99))
    hops = f"Start at key {chain[0]}. Its value is another key; follow the chain"
    tail = (f" {size} times, to a key whose value is a number. What is that number? "
            "Give the final answer as a single integer.")
    shown = sorted(table.items())
    rng.shuffle(shown)
    text_tools = hops + " with the lookup tool" + tail
    text_table = ("Table: " + "; ".join(f"{k} -> {v}" for k, v in shown) + ". " + hops + tail)
    return text_tools, text_table, value, table


def make_question(task: str, *, size: int, seed: int) -> Question:
    """The question of ``task`` at ``size`` for ``seed``: the same inputs, the same question.

    >>> q = make_question("arithmetic", size=1, seed=0)
    >>> q == make_question("arithmetic", size=1, seed=0), score(q, q.expected)
    (True, True)
    >>> make_question("chess", size=1, seed=0)
    Traceback (most recent call last):
    ValueError: task must be one of ('arithmetic', 'countdown', 'lookup'), got 'chess'
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    low = 2 if task == "countdown" else 1
    if not isinstance(size, int) or not low <= size <= 64:
        raise ValueError(f"{task} size must be an integer in [{low}, 64], got {size!r}")
    rng = random.Random(f"{task}/{size}/{seed}")  # str seeds hash stably across runs
    if task == "arithmetic":
        text, expected = _arithmetic(size, rng)
        return Question(task, size, seed, text, text, expected)
    if task == "countdown":
        text, solution, numbers, target = _countdown(size, rng)
        return Question(task, size, seed, text, text, solution, numbers=numbers,
                        target=target)
    text, text_table, value, table = _lookup(size, rng)
    return Question(task, size, seed, text, text_table, value, table=table)


def make_questions(task: str, *, sizes: tuple[int, ...], num_per_size: int,
                   seed: int) -> list[Question]:
    """``num_per_size`` questions per size, seeds ``seed, seed + 1, ...``."""
    return [make_question(task, size=s, seed=seed + i) for s in sizes
            for i in range(num_per_size)]


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")


def last_number(text: str | None) -> Fraction | None:
    """The last number written in ``text`` (exact), or None.

    >>> last_number("A = 12, B = -3, so A + B = 9."), last_number("x2 y"), last_number(None)
    (Fraction(9, 1), None, None)
    """
    found = _NUMBER.findall(text or "")
    return Fraction(found[-1]) if found else None


_EXPR = re.compile(r"[\d(][\d\s+\-*/()×÷x.]*[\d)]")


def last_expression(text: str | None) -> str | None:
    """The last run of arithmetic in ``text`` that has an operator, normalised to + - * /.

    >>> last_expression("Try (25 - 5) × 4 = 80. So: (25 - 5) × 4")
    '(25 - 5) * 4'
    """
    for match in reversed(_EXPR.findall(text or "")):
        expr = match.replace("×", "*").replace("÷", "/").replace("x", "*").strip()
        if any(op in expr for op in OPS):
            return expr
    return None


def eval_expression(expr: str) -> Fraction | None:
    """Evaluate + - * / over integers exactly; None for anything else or a division by 0.

    >>> eval_expression("(25 - 5) * 4 / 3"), eval_expression("2 ** 8"), eval_expression("1/0")
    (Fraction(80, 3), None, None)
    """
    try:
        tree = ast.parse(expr, mode="eval").body
    except (SyntaxError, ValueError):
        return None

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError("not arithmetic")

    try:
        return ev(tree)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}


def _uses_numbers(expr: str, numbers: tuple[int, ...]) -> bool:
    pool = list(numbers)
    for token in re.findall(r"\d+(?:\.\d+)?", expr):
        if "." in token or int(token) not in pool:
            return False
        pool.remove(int(token))
    return True


def score(question: Question, answer: str | None) -> bool:
    """Whether ``answer`` (a tim answer or a CoT's whole text) solves ``question``.

    Arithmetic and lookup: the last number equals the expected integer. Countdown: the last
    expression uses each given number at most once and evaluates exactly to the target.

    >>> q = make_question("countdown", size=4, seed=3)
    >>> score(q, q.expected), score(q, "I give up"), score(q, str(q.target))
    (True, False, False)
    """
    if question.task == "countdown":
        expr = last_expression(answer)
        return (expr is not None and _uses_numbers(expr, question.numbers)
                and eval_expression(expr) == question.target)
    return last_number(answer) == Fraction(question.expected)
