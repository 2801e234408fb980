"""A remote executor's view: the token ids a stream's next request sends, each named.

The server keeps no state tim relies on (its prefix cache is a speed-up, not a store), so a
view is only a list. A token is named ``(writer, index)`` as everywhere in the engine; its
position is its index in the list, because every request sends the view from position 0::

    names      (prompt,0) (prompt,1) ... ((),7) ((),8) ((0,),0) ((0,),1)
    token_ids        12        881 ...    91     93     123      34
    position          0          1 ...    40     41      42      43   <- always contiguous
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["RemoteView"]

Name = tuple[Hashable, int]  # (writer, index of the token among the writer's tokens)


@dataclass(eq=False)
class RemoteView:
    """One stream's tokens, in attention order (see the module docstring)."""

    view_id: int
    names: list[Name] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    is_alive: bool = True

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    def append(self, writer: Hashable, first_index: int, token_ids: tuple[int, ...]) -> list[int]:
        """Append a writer's tokens ``first_index, ...``; the positions they got."""
        start = len(self.token_ids)
        self.names.extend((writer, first_index + i) for i in range(len(token_ids)))
        self.token_ids.extend(token_ids)
        return list(range(start, len(self.token_ids)))

    def index_of(self, writer: Hashable, index: int) -> int | None:
        try:
            return self.names.index((writer, index))
        except ValueError:
            return None

    def sources(self, start: int, end: int) -> list[tuple[Hashable, int, int]]:
        """``(writer, first, end)`` runs of consecutive tokens of one writer in ``[start, end)``."""
        runs: list[tuple[Hashable, int, int]] = []
        for writer, index in self.names[start:end]:
            if runs and runs[-1][0] == writer and runs[-1][2] == index:
                runs[-1] = (writer, runs[-1][1], index + 1)
            else:
                runs.append((writer, index, index + 1))
        return runs

    def remove(self, start: int, end: int) -> None:
        del self.names[start:end]
        del self.token_ids[start:end]

    def copy(self, view_id: int) -> RemoteView:
        return RemoteView(view_id, list(self.names), list(self.token_ids))
