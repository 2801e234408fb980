"""The composed reference for ``siblings="shared"``: every sampled log-probability rebuilt
from the record alone, step by step (issue 15's oracle).

With shared siblings a worker's tokens depend on what its siblings had written by then, so
streams cannot be replayed one after another as in ``reference.py``: this replay follows the
record's timeline. Before each step it applies every structural change made before that
step's forward (``seq`` below the step row's), then lays out, for each fed worker and from
its own copies of the views only, the cache the rule says it sees::

    the worker's parent's prefix | siblings joined since it started (in the parent's view)
                                 | every other started sibling's own tokens, plan order
                                 | its own tokens

each entry's K/V as computed when it was written, the keys re-rotated in float64 to the
layout's positions (shifted so that the worker's own tokens stay where it wrote them; only
relative positions matter). Each range keeps its internal gaps and starts where the one
before it ended; the first starts at the worker's first own position. All of a step's
layouts are taken before any of its tokens are written: a token written in step t is seen
from step t + 1. The reference also checks the record's claims: what each worker saw
(``sights``), positions, join deltas, and that each change happened after the tokens it says.
"""

from __future__ import annotations

from tests.engine.reference import PROMPT, ComposedReference, Entry, ReferenceMismatch


class SharedReference(ComposedReference):
    """Rebuild a shared-siblings run's log-probabilities with a plain HF model."""

    def run(self) -> dict[tuple, dict[int, float]]:
        rec = self.record
        if rec.positions not in ("shift", "keep"):
            raise ReferenceMismatch(f"shared siblings with positions={rec.positions!r}")
        n = len(rec.prompt_ids)
        prompt, logits = self._forward([], [(PROMPT, i, t) for i, t in enumerate(rec.prompt_ids)],
                                       list(range(n)))
        self.logprobs = {}
        self.views: dict[tuple, list[Entry]] = {(): prompt}
        self.fed: dict[tuple, int] = {(): 0}
        self.next_logits = {(): logits[-1]}
        self.sights = {(s.step, s.stream): s.seen for s in rec.sights}
        changes = sorted(self._all_changes(), key=lambda c: c[0])
        done = 0
        for row in rec.timeline:
            while done < len(changes) and changes[done][0] < row.seq:
                self._change(*changes[done][1:])
                done += 1
            feeds = [(p, k) for p, k in row.fed if not (row.step == 1 and p == ())]
            caches = [self._layout(path, row.step) for path, _ in feeds]  # before any write
            for (path, k), cache in zip(feeds, caches, strict=True):
                self._feed(path, k, cache)
            unclaimed = {key for key in self.sights if key[0] == row.step} - {
                (row.step, p) for p, _ in feeds}
            if unclaimed:
                raise ReferenceMismatch(f"step {row.step}: sights recorded for streams that "
                                        f"were not fed: {sorted(unclaimed)}")
        for change in changes[done:]:
            self._change(*change[1:])
        for path, stream in rec.streams.items():  # a token sampled last, never fed
            if path in self.next_logits:
                self._note(path, len(stream.position_ids), self.next_logits[path])
        return self.logprobs

    # ------------------------------------------------------------------ changes
    def _all_changes(self) -> list[tuple]:
        rec = self.record
        out = [(s.start_seq, "start", p, s.parent_fed, p[:-1])
               for p, s in rec.streams.items() if p and s.token_ids]
        out += [(j.seq, "join", j.parent, j.fed, j) for j in rec.joins]
        out += [(e.seq, "evict", e.stream, e.fed, e) for e in rec.evictions if not e.deferred]
        return out

    def _change(self, kind: str, owner: tuple, fed: int, what) -> None:
        """Apply one change to ``owner``'s view (the started child's parent for a start)."""
        holder = what if kind == "start" else owner
        if self.fed.get(holder) != fed:
            raise ReferenceMismatch(f"{kind} on {list(holder)} says it came after {fed} fed "
                                    f"tokens; the replay had fed {self.fed.get(holder)}")
        if kind == "start":
            stream = self.record.streams[owner]
            if stream.parent_tokens != len(self.views[what]):
                raise ReferenceMismatch(f"stream {list(owner)} started on {stream.parent_tokens}"
                                        f" parent tokens; the parent's view held "
                                        f"{len(self.views[what])}")
            self.views[owner], self.fed[owner] = list(self.views[what]), 0
            self.next_logits[owner] = None
        elif kind == "join":
            self._join(what)
        else:
            self.views[owner] = self._evict(self.views[owner], what)

    def _join(self, join) -> None:
        child, parent = self.views.pop(join.child), self.views[join.parent]
        self._note(join.child, self.fed[join.child], self.next_logits.pop(join.child))
        start = parent[:self.record.streams[join.child].parent_tokens]
        self.views[join.parent] = self._joined(parent, start, child, join)

    # ------------------------------------------------------------------ one worker's step
    def _layout(self, path: tuple, step: int) -> list[Entry]:
        """The cache ``path`` attends to in ``step``, in its own frame; checks the sight."""
        view = self.views[path]
        ranges, seen = (self._siblings(path) if path else ([], {}))
        if tuple(seen.items()) != self.sights.get((step, path), ()):
            raise ReferenceMismatch(f"step {step}, stream {list(path)}: the record says it saw "
                                    f"{self.sights.get((step, path), ())}, the rule gives "
                                    f"{tuple(seen.items())}")
        if not ranges:
            return view
        start = self.record.streams[path].parent_tokens
        extents = [r[-1].position - r[0].position + 1 for r in ranges]
        moved = sum(extents)
        layout = view[start].position if len(view) > start else 1 + max(e.position for e in view)
        cache = [self._moved(e, -moved) for e in view[:start]]
        for entries, extent in zip(ranges, extents, strict=True):
            cache += [self._moved(e, layout - entries[0].position - moved) for e in entries]
            layout += extent
        return cache + view[start:]

    def _siblings(self, path: tuple) -> tuple[list[list[Entry]], dict]:
        """The rule: siblings joined since ``path`` started, then the others, plan order."""
        parent, rec = path[:-1], self.record
        ranges, seen = [], {}
        joined = self.views[parent][rec.streams[path].parent_tokens:]
        if joined:
            ranges.append(joined)
            for e in joined:
                seen[e.source[: len(path)]] = seen.get(e.source[: len(path)], 0) + 1
        siblings = sorted(p for p in self.views if p[:-1] == parent and len(p) == len(path))
        for other in siblings:
            own = self.views[other][rec.streams[other].parent_tokens:]
            if other != path and own:
                ranges.append(own)
                seen[other] = len(own)
        return ranges, seen

    def _feed(self, path: tuple, count: int, cache: list[Entry]) -> None:
        stream, f = self.record.streams[path], self.fed[path]
        view = self.views[path]
        top = max(e.position for e in view)
        positions = list(range(top + 1, top + 1 + count))
        if positions != stream.position_ids[f:f + count]:
            raise ReferenceMismatch(f"stream {list(path)} tokens {f}..{f + count - 1}: recorded "
                                    f"positions {stream.position_ids[f:f + count][:8]} but the "
                                    f"view continues at {top + 1}")
        items = [(path, i, stream.token_ids[i]) for i in range(f, f + count)]
        self._note(path, f, self.next_logits[path])
        full, logits = self._forward(cache, items, positions)
        for k in range(1, count):
            self._note(path, f + k, logits[k - 1])
        self.views[path] = view + full[len(cache):]
        self.next_logits[path], self.fed[path] = logits[-1], f + count

