"""tim/tree/toolspec.py."""

from __future__ import annotations

import pytest

from tim.tree import ToolSpec


@pytest.mark.parametrize("name", ["", "1x", "a b", "x" * 65, "a\"b", None, "-x"])
def test_bad_names_are_quoted(name):
    with pytest.raises(ValueError, match="name") as info:
        ToolSpec(name, "d", {"type": "object"})
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("params, bad", [
    ({"type": "string"}, "'string'"),
    ([], r"\[\]"),
    ({"type": "object", "default": float("nan")}, "nan"),
    ({"type": "object", "x": object()}, "object"),
])
def test_bad_parameter_schemas(params, bad):
    with pytest.raises(ValueError, match=bad):
        ToolSpec("ok", "d", params)


def test_good_spec_is_hashable_and_equal_by_value():
    a = ToolSpec("web.search_2", "d", {"type": "object", "properties": {"q": {}}})
    b = ToolSpec("web.search_2", "d", {"properties": {"q": {}}, "type": "object"})
    assert a == b and hash(a) == hash(b)
    assert ToolSpec("x", "d").parameters == {"type": "object"}
