"""Batch building: the packed inputs of one forward, as pure data.

Every worker in a step contributes the last ``n`` tokens of its view: tokens whose K/V this
forward writes (new decode/forced tokens, or retained tokens being re-encoded). Workers that
share leading spans sit next to each other so their queries form one cascade group::

    tokens:   | w0 w0 w0 | w1 | w2 |  w3 w3 |        (w1, w2 share a prefix: one group)
    groups:   [  lone    ][ cascade ][ lone ]
    logits:          ^      ^    ^        ^         (last token of each worker that samples)

Workers that see their siblings (``visible``, shared mode) form one more group, laid out last,
attended by segment attention (:mod:`tim.engine.sharing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from tim.cache import View, group_by_prefix
from tim.engine.cascade_cost import CascadeCost
from tim.engine.sharing import SegmentGroup, Visible, segment_group
from tim.kernels.params import cu_seqlens

__all__ = ["WorkerInput", "AttentionGroup", "Batch", "build_batch"]


@dataclass(frozen=True)
class WorkerInput:
    """What one worker feeds this step.

    ``token_ids`` and ``position_ids`` are the last ``len(token_ids)`` tokens of ``view``,
    already appended (their slots reserved). ``wants_logits`` is False when the step only
    writes K/V (a fork flush or a re-encode with nothing to sample after it). A worker that
    sees its siblings names their ranges in ``visible`` (layout order), and ``prefix`` is
    how many of its view's first tokens it shares with its parent.
    """

    view: View
    token_ids: tuple[int, ...]
    position_ids: tuple[int, ...]
    wants_logits: bool = True
    prefix: int = 0
    visible: tuple[Visible, ...] = ()

    def __post_init__(self) -> None:
        if not self.token_ids or len(self.token_ids) != len(self.position_ids):
            raise ValueError(
                f"a worker input needs >= 1 token and one position per token, got "
                f"{len(self.token_ids)} tokens and {len(self.position_ids)} positions"
            )
        if len(self.token_ids) > self.view.num_tokens:
            raise ValueError(f"{len(self.token_ids)} tokens but the view holds {self.view.num_tokens}")


@dataclass(frozen=True)
class AttentionGroup:
    """A run of consecutive batch tokens attended together.

    ``prefix_slots`` is empty for plain varlen attention; otherwise it is the prefix every
    member shares and ``kv_slots`` holds each member's suffix only. A lone group whose views
    are all page-aligned names its keys by ``block_table`` ``(M, max_pages)`` int32 and
    ``seqlens_k`` ``(M,)`` int32 instead (``kv_slots`` is then empty), so a backend that
    reads pages in place never gathers.
    """

    token_start: int
    token_end: int
    cu_seqlens_q: torch.Tensor  # (M + 1,) int32, relative to token_start
    prefix_slots: torch.Tensor  # (L_prefix,) int64
    kv_slots: torch.Tensor  # (sum of member KV lengths,) int64
    cu_seqlens_k: torch.Tensor  # (M + 1,) int32
    max_seqlen_q: int
    max_seqlen_k: int
    block_table: torch.Tensor | None = None  # (M, max_pages) int32
    seqlens_k: torch.Tensor | None = None  # (M,) int32


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (T,) int64
    position_ids: torch.Tensor  # (T,) int64
    write_slots: torch.Tensor  # (T,) int64: where each token's K/V goes
    groups: tuple[AttentionGroup | SegmentGroup, ...]
    logits_indices: torch.Tensor  # (B_logits,) int64: batch token index of each sampling worker
    order: tuple[int, ...]  # order[i] = index into the inputs of the i-th worker laid out
    sampling: tuple[int, ...]  # indices into the inputs of workers with logits, in logits order

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.numel())

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on ``device`` (built on CPU, run where the
        KV pages live: the kernels take index and offset tensors on q's device)."""
        def move(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.to(device)

        groups = tuple(
            g.to(device) if isinstance(g, SegmentGroup) else
            replace(g, cu_seqlens_q=g.cu_seqlens_q.to(device), prefix_slots=g.prefix_slots.to(device),
                    kv_slots=g.kv_slots.to(device), cu_seqlens_k=g.cu_seqlens_k.to(device),
                    block_table=move(g.block_table), seqlens_k=move(g.seqlens_k))
            for g in self.groups
        )
        return replace(self, input_ids=self.input_ids.to(device),
                       position_ids=self.position_ids.to(device),
                       write_slots=self.write_slots.to(device), groups=groups,
                       logits_indices=self.logits_indices.to(device))


def build_batch(
    inputs: Sequence[WorkerInput], *, cascade: CascadeCost | None = None,
    block_tables: bool = False,
) -> Batch:
    """Pack ``inputs`` into one batch; group workers that share a prefix where ``cascade``
    (the machine's :class:`~tim.engine.cascade_cost.CascadeCost`) says it pays.

    With ``block_tables``, the lone group names its keys by block table when every one of its
    views is page-aligned (:meth:`~tim.cache.View.page_table`), else by slots.

    Members of a cascade group may feed several tokens (a forced header right after a fork)
    as long as all of them lie after the shared prefix.

    Examples
    --------
    Two children forked from a 4-token parent each feed one token; a lone view feeds two.
    The lone worker is laid out first, the siblings after it as one cascade group whose
    shared prefix (slots 0..3) is attended once:

    >>> from tim.cache import CacheConfig, KVStore
    >>> from tim.engine.cascade_cost import CascadeCost
    >>> store = KVStore(CacheConfig(num_layers=1, num_kv_heads=1, head_dim=4, num_pages=8,
    ...                             page_size=4, position_policy="keep"))
    >>> parent = store.new_view()
    >>> _ = store.append(parent, range(4), token_ids=[10, 11, 12, 13])
    >>> a, b = store.fork(parent), store.fork(parent)
    >>> _ = store.append(a, [4], token_ids=[20]), store.append(b, [4], token_ids=[30])
    >>> lone = store.new_view()
    >>> _ = store.append(lone, [0, 1], token_ids=[40, 41])
    >>> batch = build_batch([WorkerInput(a, (20,), (4,)), WorkerInput(lone, (40, 41), (0, 1)),
    ...                      WorkerInput(b, (30,), (4,))], cascade=CascadeCost(min_saved=4))
    >>> batch.order, batch.input_ids.tolist(), batch.position_ids.tolist()
    ((1, 0, 2), [40, 41, 20, 30], [0, 1, 4, 4])
    >>> batch.write_slots.tolist(), batch.logits_indices.tolist()
    ([12, 13, 4, 8], [1, 2, 3])
    >>> [(g.token_start, g.token_end, g.prefix_slots.tolist(), g.kv_slots.tolist())
    ...  for g in batch.groups]
    [(0, 2, [], [12, 13]), (2, 4, [0, 1, 2, 3], [4, 8])]
    """
    if not inputs:
        raise ValueError("build_batch needs at least one worker input")
    views = [inp.view for inp in inputs]
    sharing = [i for i, inp in enumerate(inputs) if inp.visible]
    plain = [i for i, inp in enumerate(inputs) if not inp.visible]
    cascades, cascade_prefixes = [], []
    if cascade is not None:
        for group in group_by_prefix([views[i] for i in plain]):
            members = [plain[m] for m in group.members]
            # a member's queries must all follow the shared prefix (its newest tokens lie in
            # its own suffix); the prefix is then visible to every query, non-causally
            if cascade.pays(len(members), group.prefix_len) and all(
                len(inputs[m].token_ids) <= s.numel()
                for m, s in zip(members, group.suffix_slots, strict=True)
            ):
                cascades.append(members)
                cascade_prefixes.append(group)
    in_cascade = {i for members in cascades for i in members}
    lone = [i for i in plain if i not in in_cascade]

    order: list[int] = []
    groups: list[AttentionGroup] = []
    token_start = 0
    plans = [(lone, None)] if lone else []
    plans += list(zip(cascades, cascade_prefixes, strict=True))
    for members, prefix in plans:
        q_lens = [len(inputs[i].token_ids) for i in members]
        table = None
        prefix_slots = torch.empty(0, dtype=torch.int64)
        if prefix is None:
            tables = [views[i].page_table() for i in members] if block_tables else [None]
            if all(t is not None for t in tables):
                table = _block_table(tables)
                kv = []
            else:
                kv = [views[i].slot_mapping() for i in members]
            k_lens = [views[i].num_tokens for i in members]
        else:
            kv = list(prefix.suffix_slots)
            prefix_slots = prefix.prefix_slots
            k_lens = [int(s.numel()) for s in kv]
        token_end = token_start + sum(q_lens)
        groups.append(
            AttentionGroup(
                token_start=token_start,
                token_end=token_end,
                cu_seqlens_q=cu_seqlens(q_lens),
                prefix_slots=prefix_slots,
                kv_slots=torch.cat(kv) if kv else torch.empty(0, dtype=torch.int64),
                cu_seqlens_k=cu_seqlens(k_lens),
                max_seqlen_q=max(q_lens),
                max_seqlen_k=max(k_lens),
                block_table=table,
                seqlens_k=None if table is None else torch.tensor(k_lens, dtype=torch.int32),
            )
        )
        order.extend(members)
        token_start = token_end
    if sharing:
        groups.append(segment_group([(views[i], inputs[i].prefix, len(inputs[i].token_ids),
                                      inputs[i].visible) for i in sharing], token_start))
        order.extend(sharing)

    laid_out = [inputs[i] for i in order]
    input_ids = torch.tensor([t for inp in laid_out for t in inp.token_ids], dtype=torch.int64)
    position_ids = torch.tensor(
        [p for inp in laid_out for p in inp.position_ids], dtype=torch.int64
    )
    write_slots = torch.cat(
        [inp.view.slot_mapping()[-len(inp.token_ids) :] for inp in laid_out]
    )
    ends = torch.cumsum(torch.tensor([len(inp.token_ids) for inp in laid_out]), 0) - 1
    sampling = [order[i] for i, inp in enumerate(laid_out) if inp.wants_logits]
    logits_rows = [i for i, inp in enumerate(laid_out) if inp.wants_logits]
    return Batch(
        input_ids=input_ids,
        position_ids=position_ids,
        write_slots=write_slots,
        groups=tuple(groups),
        logits_indices=ends[logits_rows].to(torch.int64),
        order=tuple(order),
        sampling=tuple(sampling),
    )


def _block_table(tables: list[list[int]]) -> torch.Tensor:
    """Page lists -> ``(M, max_pages)`` int32, padded with page 0 (never read: ``seqlens_k``
    stops each row before its padding)."""
    table = torch.zeros(len(tables), max(map(len, tables)), dtype=torch.int32)
    for row, pages in enumerate(tables):
        table[row, : len(pages)] = torch.tensor(pages, dtype=torch.int32)
    return table

