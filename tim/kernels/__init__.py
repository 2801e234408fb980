"""Stateless tensor functions: varlen, paged, cascade and segment attention, LSE merge, RoPE
shift, KV store.

Each attention function has a ``plan_*`` twin: the host-side work (checks, backend choice,
block cutting, masks) done once, whose ``run`` serves every layer of a step.

Shapes use one glossary (``docs/kernels.md``): ``T`` tokens, ``B`` sequences (workers), ``H``
query heads, ``Hkv`` kv heads, ``D`` head dim, ``P`` pages, ``S`` page size. Importing this
package imports no optional library; CUDA backends load on first use.
"""

from tim.kernels.backends import backend_names, describe
from tim.kernels.cascade import (
    cascade_attention,
    paged_cascade_attention,
    plan_cascade,
    plan_paged_cascade,
)
from tim.kernels.merge import merge_attention_states
from tim.kernels.paged import PagedPlan, paged_attention, plan_paged
from tim.kernels.params import AttentionParams
from tim.kernels.reference import reference_attention
from tim.kernels.rope import check_rope_shiftable, rope_shift
from tim.kernels.segments import SegmentPlan, SharedSegment, plan_segments, segment_attention
from tim.kernels.slots import block_table_to_slots, gather_kv, store_kv
from tim.kernels.varlen import plan_varlen, varlen_attention

__all__ = [
    "PagedPlan",
    "SegmentPlan",
    "SharedSegment",
    "plan_cascade",
    "plan_paged",
    "plan_paged_cascade",
    "plan_segments",
    "plan_varlen",
    "AttentionParams",
    "backend_names",
    "block_table_to_slots",
    "cascade_attention",
    "check_rope_shiftable",
    "describe",
    "gather_kv",
    "merge_attention_states",
    "paged_attention",
    "paged_cascade_attention",
    "reference_attention",
    "rope_shift",
    "segment_attention",
    "store_kv",
    "varlen_attention",
]
