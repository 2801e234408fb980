"""The composed Hugging Face reference: every sampled log-probability of a run, rebuilt from
its record alone (DESIGN.md O2-O4).

Nothing here reads the engine's views, spans or kernels, nor ``tim.kernels.rope_shift``. The
reference keeps one list of cache entries per stream, each entry a token's K/V (as a plain HF
forward with eager attention wrote them into a ``DynamicCache``), and replays the record::

    root view      = the prompt's K/V at positions 0..n-1
    feed token i   = HF forward of token i over the view's entries, at 1 + the view's
                     largest position; its logits give token i+1's log-probability
    child start    = a copy of the parent's view as it was then (isolated siblings)
    join           = the child's own entries moved to the end of the parent's view; keys
                     re-rotated (float64 RoPE, written below) so they continue its positions
    eviction       = the recorded entries leave the view; the entries after them move left:
                       shift     keys re-rotated by -n (no recompute)
                       reencode  K/V recomputed by HF at the new positions
                       keep      nothing moves

Structural changes apply between the tokens the record says (``fed``), in ``seq`` order.
The reference also checks what the record claims about positions: a token's recorded
position and a join's recorded ``delta`` must be what these rules give.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

import torch
from transformers import DynamicCache

# Architectures whose RoPE rotates interleaved pairs (x[2i], x[2i+1]) instead of halves.
INTERLEAVED_ROPE = {"cohere", "cohere2"}

PROMPT = "prompt"


@dataclass(frozen=True)
class Entry:
    source: object  # a stream path, or PROMPT
    index: int  # the token's index in its source
    token: int
    position: int
    keys: torch.Tensor  # (L, Hkv, D) as HF stored them (RoPE applied at ``position``)
    values: torch.Tensor  # (L, Hkv, D)


class ReferenceMismatch(AssertionError):
    """The record claims something the reference rules do not give."""


def rotate_keys(keys: torch.Tensor, delta: int, inv_freq: torch.Tensor, *,
                interleaved: bool) -> torch.Tensor:
    """Keys roped at position p -> roped at p + delta, in float64: R(delta) k.

    keys: (..., D); the leading ``2 * len(inv_freq)`` channels rotate, the rest pass.
    """
    k = keys.double()
    rot = 2 * inv_freq.numel()
    angle = delta * inv_freq.double()  # (rot / 2,)
    cos, sin = angle.cos(), angle.sin()
    out = k.clone()
    if interleaved:
        x1, x2 = k[..., 0:rot:2], k[..., 1:rot:2]
        out[..., 0:rot:2] = x1 * cos - x2 * sin
        out[..., 1:rot:2] = x2 * cos + x1 * sin
    else:
        half = rot // 2
        x1, x2 = k[..., :half], k[..., half:rot]
        out[..., :half] = x1 * cos - x2 * sin
        out[..., half:rot] = x2 * cos + x1 * sin
    return out.to(keys.dtype)


class ComposedReference:
    """Rebuild a run's log-probabilities with a plain HF model (give it eager attention)."""

    def __init__(self, model, record) -> None:
        self.model, self.record = model, record
        rotary = model.model.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().double().cpu()
        self.interleaved = model.config.model_type in INTERLEAVED_ROPE
        self.num_layers = model.config.num_hidden_layers
        # transformers >= 5.20 names the forward's cache argument ``cache``; older 5.x
        # (the GPU machine's 5.17) ``past_key_values``
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.logprobs: dict[tuple, dict[int, float]] = {}
        self.replayed: set[tuple] = set()  # children whose streams were replayed
        self.num_forwards = 0

    # ------------------------------------------------------------------ the replay
    def run(self) -> dict[tuple, dict[int, float]]:
        """``{stream path: {token index: reference log-prob}}`` for every sampled token."""
        rec = self.record
        prompt, logits = self._forward([], [(PROMPT, i, t) for i, t in enumerate(rec.prompt_ids)],
                                       list(range(len(rec.prompt_ids))))
        self.logprobs, self.replayed = {}, set()
        self._stream((), prompt, first_logits=logits[-1])
        return self.logprobs

    def _stream(self, path: tuple, view: list[Entry], first_logits) -> list[Entry]:
        """Replay one stream from ``view`` (its start); return its view at the end."""
        rec = self.record
        stream = rec.streams[path]
        changes = self._changes_of(path)
        starts: dict[tuple, list[Entry]] = {}
        num_fed = len(stream.position_ids)
        logits = first_logits  # predicts token 0 (the root's first token follows the prompt)
        f = 0
        while True:
            for change in [c for c in changes if c[0] == f]:
                view = self._apply(path, view, change[2], starts)
            if f >= num_fed:
                break
            end = min([c[0] for c in changes if c[0] > f] + [num_fed])
            items = [(path, i, stream.token_ids[i]) for i in range(f, end)]
            top = max((e.position for e in view), default=-1)
            positions = list(range(top + 1, top + 1 + len(items)))
            if positions != stream.position_ids[f:end]:
                raise ReferenceMismatch(
                    f"stream {list(path)} tokens {f}..{end - 1}: recorded positions "
                    f"{stream.position_ids[f:end][:8]} but the view continues at {top + 1}")
            self._note(path, f, logits)
            view, row_logits = self._forward(view, items, positions)
            for k in range(1, len(items)):
                self._note(path, f + k, row_logits[k - 1])
            logits = row_logits[-1]
            f = end
        self._note(path, num_fed, logits)  # a token sampled last, never fed
        for child, start in starts.items():  # children that never joined (the run ended)
            if child not in self.replayed:
                self.replayed.add(child)
                self._stream(child, start, None)
        return view

    def _note(self, path: tuple, index: int, logits) -> None:
        stream = self.record.streams[path]
        if index < len(stream.token_ids) and not stream.forced[index]:
            if logits is None:
                raise ReferenceMismatch(f"stream {list(path)} token {index} was sampled with "
                                        f"nothing before it in the stream")
            lp = torch.log_softmax(logits.float(), dim=-1)[stream.token_ids[index]].item()
            self.logprobs.setdefault(path, {})[index] = lp

    def _changes_of(self, path: tuple) -> list[tuple[int, int, object]]:
        """This stream's view changes as (fed, seq, change), in the order they happened."""
        rec = self.record
        changes = [(s.parent_fed, s.start_seq, ("start", p)) for p, s in rec.streams.items()
                   if p[:-1] == path and len(p) == len(path) + 1 and s.token_ids]
        changes += [(j.fed, j.seq, ("join", j)) for j in rec.joins if j.parent == path]
        changes += [(e.fed, e.seq, ("evict", e)) for e in rec.evictions
                    if e.stream == path and not e.deferred]
        return sorted(changes, key=lambda c: (c[0], c[1]))

    def _apply(self, path, view, change, starts) -> list[Entry]:
        kind, what = change
        if kind == "start":
            stream = self.record.streams[what]
            if stream.parent_tokens != len(view):
                raise ReferenceMismatch(f"stream {list(what)} started on {stream.parent_tokens} "
                                        f"parent tokens; the parent's view held {len(view)}")
            starts[what] = list(view)
            return view
        if kind == "join":
            start = starts[what.child]
            self.replayed.add(what.child)
            return self._joined(view, start, self._stream(what.child, start, None), what)
        return self._evict(view, what)

    def _joined(self, view: list[Entry], start: list[Entry], final: list[Entry],
                join) -> list[Entry]:
        """``view`` after ``join``: the child's own entries (its ``final`` view past the
        ``start`` it began on) moved to continue the view's positions."""
        if not all(a is b for a, b in zip(final, start, strict=False)):
            raise ReferenceMismatch(f"stream {list(join.child)} lost part of the view it "
                                    f"started on")
        own = final[len(start):]
        if join.dropped or not own:
            return view
        top = max((e.position for e in view), default=-1)
        delta = top + 1 - own[0].position
        if delta != join.delta:
            raise ReferenceMismatch(f"join of {list(join.child)}: recorded delta "
                                    f"{join.delta}, the reference lays it at {delta}")
        return view + [self._moved(e, delta) for e in own]

    def _evict(self, view: list[Entry], ev) -> list[Entry]:
        gone = {(src, i) for src, a, b in ev.ranges for i in range(a, b)}
        hit = [k for k, e in enumerate(view) if (e.source, e.index) in gone]
        if len(hit) != len(gone) or hit != list(range(hit[0], hit[0] + len(hit))):
            raise ReferenceMismatch(f"eviction {ev.ranges} is not one run of {list(ev.stream)}'s "
                                    f"view ({len(hit)} of {len(gone)} tokens found)")
        first, n = hit[0], len(hit)
        kept, tail = view[:first], view[first + n:]
        policy = self.record.positions
        if policy == "keep" or not tail:
            return kept + tail
        if policy == "shift":
            return kept + [self._moved(e, -n) for e in tail]
        items = [(e.source, e.index, e.token) for e in tail]  # reencode
        redone, _ = self._forward(kept, items, [e.position - n for e in tail])
        return redone

    def _moved(self, entry: Entry, delta: int) -> Entry:
        keys = rotate_keys(entry.keys, delta, self.inv_freq, interleaved=self.interleaved)
        return replace(entry, position=entry.position + delta, keys=keys)

    # ------------------------------------------------------------------ HF
    @torch.no_grad()
    def _forward(self, view: list[Entry], items: list[tuple], positions: list[int]):
        """HF forward of ``items`` (source, index, token) over ``view``; returns the view with
        their entries appended and their logits ``(T, V)``."""
        self.num_forwards += 1
        cache = DynamicCache()
        if view:
            keys = torch.stack([e.keys for e in view], dim=2)  # (L, Hkv, N, D)
            values = torch.stack([e.values for e in view], dim=2)
            for layer in range(self.num_layers):
                cache.update(keys[layer].unsqueeze(0), values[layer].unsqueeze(0), layer)
        n, t = len(view), len(items)
        out = self.model(
            input_ids=torch.tensor([[tok for _, _, tok in items]]),
            position_ids=torch.tensor([positions]),
            attention_mask=torch.ones(1, n + t, dtype=torch.long),  # no packed-sequence guess
            use_cache=True,
            **{self.cache_arg: cache},
        )
        keys = torch.stack([cache.layers[i].keys[0, :, n:] for i in range(self.num_layers)])
        values = torch.stack([cache.layers[i].values[0, :, n:] for i in range(self.num_layers)])
        new = [Entry(src, idx, tok, pos, keys[:, :, k].clone(), values[:, :, k].clone())
               for k, ((src, idx, tok), pos) in enumerate(zip(items, positions, strict=True))]
        return view + new, out.logits[0]


def reference_logprobs(model, record) -> dict[tuple, dict[int, float]]:
    if record.siblings == "shared":  # siblings see each other: replayed step by step
        from tests.engine.reference_shared import SharedReference
        return SharedReference(model, record).run()
    return ComposedReference(model, record).run()


def max_reference_error(model, record) -> tuple[float, int]:
    """(largest |engine - reference| log-prob over every sampled token, tokens compared).

    Raises ``ReferenceMismatch`` when the record contradicts the reference rules, or when a
    sampled token has no reference value.
    """
    ref = reference_logprobs(model, record)
    worst, count = 0.0, 0
    for path, stream in record.streams.items():
        for i, (forced, lp) in enumerate(zip(stream.forced, stream.logprobs, strict=True)):
            if forced:
                continue
            if i not in ref.get(path, {}):
                raise ReferenceMismatch(f"stream {list(path)} token {i}: no reference log-prob")
            worst = max(worst, abs(ref[path][i] - lp))
            count += 1
    return worst, count
