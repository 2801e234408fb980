"""tim/eval/leaks.py: what counts as copying a worked example."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tim.eval.leaks import copied_example, copies_example, example_markers
from tim.eval.tasks import TASKS, make_question
from tim.tree import get_format
from tim.tree.toolspec import ToolSpec

TOOL = ToolSpec("calculator", "Computes.", {"type": "object"})


def test_every_marker_is_text_of_the_examples_the_model_reads():
    # the instructions with the tool example on, as a model is shown them
    text = get_format("parallel").instructions([TOOL], tool_example=True)
    assert example_markers() and all(m in text for m in example_markers())
    assert "391 + 60 = 451" in example_markers()


questions = st.builds(lambda task, size, seed: make_question(task, size=size, seed=seed),
                      st.sampled_from(TASKS), st.integers(2, 4), st.integers(0, 50))


@given(questions)
def test_the_expected_answer_never_counts_as_a_copy(question):
    assert not copies_example(question.expected, question)
    assert not copies_example(f"The answer is {question.expected}.", question)


@given(questions, st.sampled_from(example_markers()))
def test_an_example_conclusion_the_question_lacks_counts(question, marker):
    answer = f"{question.expected} so {marker}"
    if marker not in " ".join((question.text, question.text_no_tools, question.expected)):
        assert copies_example(answer, question)
        # a saved outcome: the question is made again from its seed, with the same verdict
        assert copied_example(question.task, question.size, question.seed, answer)
