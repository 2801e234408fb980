"""When cascade attention pays, measured on this machine.

A cascade group of ``M`` workers sharing ``Lp`` prefix keys reads the prefix once instead of
``M`` times, but costs two kernel passes and an LSE merge instead of one pass::

    plain:    M x (Lp + Ls) keys read, 1 pass       cascade: Lp + M x Ls keys read,
                                                             2 passes + merge

So it pays once the keys it saves, ``(M - 1) x Lp``, outweigh its fixed extra cost. That
fixed cost, in keys, depends on the machine, the backend and the head shape: on the 2-core
development CPU a SmolLM2-shaped layer breaks even near ``(M - 1) x Lp`` of a few hundred
keys. :func:`measure_cascade_cost` finds it once per process and shape by timing both
plans side by side on a synthetic pool and fitting a line to each; :class:`CascadeCost`
then decides per group.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from functools import cache

import torch

from tim import kernels

__all__ = ["CascadeCost", "measure_cascade_cost"]

_MEMBERS = 4  # group size of the calibration; the rule is linear in (M - 1) x Lp
_PREFIXES = (32, 64, 128, 256, 512, 1024)
_SUFFIX = 8  # keys each member holds after the prefix
_REPEATS = 7  # the fastest of these counts: a busy machine only adds time


@dataclass(frozen=True)
class CascadeCost:
    """Cascade a group of ``members`` views sharing ``prefix_len`` keys iff
    ``(members - 1) * prefix_len >= min_saved``.

    Examples
    --------
    >>> cost = CascadeCost(min_saved=300)
    >>> cost.pays(members=8, prefix_len=64), cost.pays(members=2, prefix_len=64)
    (True, False)
    """

    min_saved: int

    def __post_init__(self) -> None:
        if isinstance(self.min_saved, bool) or not isinstance(self.min_saved, int) or self.min_saved < 1:
            raise ValueError(f"min_saved must be an int >= 1, got {self.min_saved!r}")

    def pays(self, members: int, prefix_len: int) -> bool:
        return members > 1 and (members - 1) * prefix_len >= self.min_saved


@cache
def measure_cascade_cost(
    num_heads: int, num_kv_heads: int, head_dim: int, *, dtype: torch.dtype,
    device: str = "cpu", backend: str = "auto",
) -> CascadeCost:
    """Time one decode step of :data:`_MEMBERS` workers, cascade vs plain, over growing
    prefixes; fit each as ``a + b x Lp``; ``min_saved`` is ``(M - 1) x`` the prefix where
    the lines cross (cascade never pays when its line is no flatter).

    Cached per shape, dtype, device and backend: an engine pays for it once per process
    (tens to hundreds of milliseconds on CPU). Both paths give the same attention; only
    speed differs.
    """
    gen = torch.Generator().manual_seed(0)
    members, dev = _MEMBERS, torch.device(device)
    num_keys = max(_PREFIXES) + members * _SUFFIX
    pages = torch.randn(num_keys, 1, num_kv_heads, head_dim, generator=gen).to(dev, dtype)
    q = torch.randn(members, num_heads, head_dim, generator=gen).to(dev, dtype)
    cu_q = torch.arange(members + 1, dtype=torch.int32, device=dev)
    cu_suffix = torch.arange(0, members * _SUFFIX + 1, _SUFFIX, dtype=torch.int32, device=dev)
    times: dict[str, list[float]] = {"cascade": [], "plain": []}
    for prefix_len in _PREFIXES:
        prefix = torch.arange(prefix_len, device=dev)
        suffixes = torch.arange(prefix_len, prefix_len + members * _SUFFIX, device=dev)
        views = torch.cat([torch.cat([prefix, suffixes[m * _SUFFIX:(m + 1) * _SUFFIX]])
                           for m in range(members)])
        cu_k = torch.arange(0, members * (prefix_len + _SUFFIX) + 1, prefix_len + _SUFFIX,
                            dtype=torch.int32, device=dev)
        cascade = kernels.plan_paged_cascade(q, pages, cu_q, prefix, suffixes, cu_suffix,
                                             backend=backend)
        plain = kernels.plan_paged(q, pages, cu_q, slots=views, cu_seqlens_k=cu_k,
                                   backend=backend)
        times["cascade"].append(_seconds(cascade, q, pages))
        times["plain"].append(_seconds(plain, q, pages))
    (a_c, b_c), (a_p, b_p) = _line(times["cascade"]), _line(times["plain"])
    if b_p <= b_c:
        return CascadeCost(min_saved=1 << 40)  # never
    cross = max(1.0, (a_c - a_p) / (b_p - b_c))
    return CascadeCost(min_saved=max(1, round((members - 1) * cross)))


def _line(seconds: list[float]) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of ``seconds ~ a + b x Lp`` over :data:`_PREFIXES`."""
    xs = _PREFIXES
    mx, my = statistics.fmean(xs), statistics.fmean(seconds)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, seconds, strict=True)) / sum(
        (x - mx) ** 2 for x in xs)
    return my - b * mx, b


def _seconds(plan, q: torch.Tensor, pages: torch.Tensor) -> float:
    """Fastest wall time of one run (after a warm-up), synchronising CUDA."""
    sync = torch.cuda.synchronize if q.is_cuda else (lambda: None)
    times = []
    for i in range(_REPEATS + 1):
        sync()
        start = time.perf_counter()
        plan.run(q, pages, pages)
        sync()
        if i:
            times.append(time.perf_counter() - start)
    return min(times)
