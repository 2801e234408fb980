"""tim.remote.views: a remote view names every token and finds it again after removals."""

from __future__ import annotations

from tim.remote.views import RemoteView


def test_positions_are_indices_and_names_survive_removals():
    view = RemoteView(0)
    assert view.append("prompt", 0, (5, 6, 7)) == [0, 1, 2]
    assert view.append((), 0, (8, 9)) == [3, 4]
    assert view.sources(1, 5) == [("prompt", 1, 3), ((), 0, 2)]
    view.remove(1, 3)  # (prompt, 1) and (prompt, 2) leave
    assert view.token_ids == [5, 8, 9]
    assert view.index_of((), 1) == 2 and view.index_of("prompt", 2) is None
    assert view.sources(0, 3) == [("prompt", 0, 1), ((), 0, 2)]


def test_a_copy_is_independent():
    view = RemoteView(0)
    view.append("prompt", 0, (1, 2))
    child = view.copy(1)
    child.append((0,), 0, (3,))
    assert view.token_ids == [1, 2] and child.token_ids == [1, 2, 3] and child.view_id == 1

