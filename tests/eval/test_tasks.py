"""tim/eval/tasks.py: generators are deterministic, solvable, and scored strictly."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.eval.tasks import (
    TASKS,
    calculator,
    eval_expression,
    last_expression,
    last_number,
    make_question,
    make_questions,
    score,
)
from tim.tools import ToolRegistry

sizes = st.integers(min_value=2, max_value=6)
seeds = st.integers(min_value=0, max_value=10**6)


def countdown_values(numbers: tuple[int, ...]) -> set[Fraction]:
    """Every value reachable with + - * / using each number at most once (brute force)."""
    reach: set[Fraction] = set()

    def combine(pool: list[Fraction]) -> None:
        reach.update(pool)
        for i, j in itertools.permutations(range(len(pool)), 2):
            a, b = pool[i], pool[j]
            rest = [x for k, x in enumerate(pool) if k not in (i, j)]
            outs = [a + b, a - b, a * b] + ([a / b] if b else [])
            for v in outs:
                combine(rest + [v])

    for r in range(1, len(numbers) + 1):
        for subset in itertools.combinations(numbers, r):
            combine([Fraction(n) for n in subset])
    return reach


@settings(max_examples=40, deadline=None)
@given(task=st.sampled_from(TASKS), size=sizes, seed=seeds)
def test_same_seed_same_question_and_expected_answer_scores(task, size, seed):
    q = make_question(task, size=size, seed=seed)
    assert q == make_question(task, size=size, seed=seed)
    assert score(q, q.expected)
    assert score(q, f"So the result is: {q.expected}")
    assert not score(q, None) and not score(q, "")


@settings(max_examples=40, deadline=None)
@given(task=st.sampled_from(("arithmetic", "lookup")), size=sizes, seed=seeds,
       delta=st.integers(min_value=1, max_value=50))
def test_number_tasks_reject_a_wrong_number(task, size, seed, delta):
    q = make_question(task, size=size, seed=seed)
    wrong = int(q.expected) + delta
    assert not score(q, str(wrong))
    # strict: the *last* number counts, not any number in the text
    assert not score(q, f"{q.expected}? no: {wrong}")


def test_seeds_give_different_questions():
    texts = {q.text for q in make_questions("arithmetic", sizes=(3,), num_per_size=20, seed=0)}
    assert len(texts) == 20


def test_arithmetic_expected_is_the_chain_carried_out():
    q = make_question("arithmetic", size=4, seed=7)
    values = {}
    for line in q.text.split(". "):
        line = line.removeprefix("Compute step by step. ")
        if line[:1] in "AB" and " = " in line:
            name, expr = line.rstrip(".").split(" = ")
            values[name] = eval_expression(expr.replace("A", str(values.get("A", 0)))
                                           .replace("B", str(values.get("B", 0))))
    assert str(values["A"] + values["B"]) == q.expected


@settings(max_examples=25, deadline=None)
@given(seed=seeds, size=st.integers(min_value=2, max_value=4))
def test_countdown_is_solvable_and_checked(seed, size):
    q = make_question("countdown", size=size, seed=seed)
    assert len(q.numbers) == size
    assert Fraction(q.target) in countdown_values(q.numbers)
    assert score(q, q.expected)
    assert 0 not in q.numbers and not score(q, f"{q.target} + 0")  # 0 is not given
    assert not score(q, " + ".join(map(str, q.numbers + (q.numbers[0],))))  # reuse


def test_countdown_scoring_rules():
    q = make_question("countdown", size=4, seed=11)
    n = q.numbers
    assert not score(q, f"{n[0]} ** {n[1]}")
    assert score(q, f"Answer: {q.expected.replace('*', '×')}")
    assert not score(q, f"({q.expected}) + {n[0]} - {n[0]}")  # the solution uses every number
    assert not score(q, "I cannot")


@settings(max_examples=30, deadline=None)
@given(size=st.integers(min_value=1, max_value=8), seed=seeds)
def test_lookup_tool_answers_hop_by_hop(size, seed):
    q = make_question("lookup", size=size, seed=seed)
    registry = ToolRegistry(q.tools())
    key = q.text.split("Start at key ")[1].split(".")[0]
    for _ in range(size):
        key = json.loads(registry.call("lookup", {"key": key}).result_json)
        assert key.startswith("k") and key in q.text_no_tools  # the table is printed too
    final = json.loads(registry.call("lookup", {"key": key}).result_json)
    assert final == q.expected
    assert "unknown key" in json.loads(registry.call("lookup", {"key": "nope"}).result_json)


def test_calculator_is_a_tool():
    registry = ToolRegistry([calculator])
    assert json.loads(registry.call("calculator", {"a": 6, "op": "*", "b": 7}).result_json) == 42
    assert registry.call("calculator", {"a": 1, "op": "/", "b": 0}).error is not None


@pytest.mark.parametrize(("text", "value"), [("12", 12), ("-3 then 4.5", Fraction(9, 2)),
                                             ("v2 x3", None), ("A=1, B=2.", 2)])
def test_last_number(text, value):
    assert last_number(text) == (None if value is None else Fraction(value))


def test_last_expression_and_bad_input():
    assert last_expression("no maths here") is None
    assert last_expression("(1 + 2) * 3 = 9") == "(1 + 2) * 3"  # a bare number is no expression
    assert eval_expression("__import__('os')") is None
    with pytest.raises(ValueError, match="size must be"):
        make_question("countdown", size=1, seed=0)
