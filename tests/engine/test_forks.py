"""``join_rest``: the text forced at a join when the fork token carried some of it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tim.engine.forks import join_rest
from tim.tree import get_format

JOIN_TEXTS = [get_format("parallel").join_text(depth) for depth in (0, 1)]


def _squash(text: str) -> str:
    return "".join(text.split())


@given(st.sampled_from(JOIN_TEXTS), st.data())
def test_a_start_with_other_whitespace_is_completed_to_the_join_text(join_text, data):
    cut = data.draw(st.integers(0, len(join_text)))
    blanks = st.text(alphabet=" \n\t", max_size=2)
    # the start of the join text, each space of it replaced by any run of whitespace
    extra = "".join(data.draw(blanks) if ch == " " else ch for ch in join_text[:cut])
    rest = join_rest(join_text, extra)
    assert rest is not None
    assert _squash(extra + rest) == _squash(join_text)
    assert rest == join_text[cut:] or _squash(rest) == _squash(join_text[cut:])


@given(st.sampled_from(JOIN_TEXTS), st.text(alphabet='}],:"ab', min_size=1, max_size=3))
def test_text_that_does_not_start_the_join_text_is_refused(join_text, extra):
    if not _squash(join_text).startswith(_squash(extra)):
        assert join_rest(join_text, extra) is None
