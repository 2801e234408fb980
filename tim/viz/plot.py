"""The live-KV timeline: live KV tokens against total tokens processed.

This is the picture that shows the point of pruning: the tokens a run processes grow
without bound, the KV it holds does not. Evictions are marked where they happened; the
model's context window is a horizontal line; a ``pruning=none`` run of the same tree can
be overlaid as the baseline.
"""

from __future__ import annotations

import os
from pathlib import Path as FilePath

from tim.errors import TimError
from tim.viz.load import RunLike, as_view

__all__ = ["plot_kv_timeline", "kv_timeline_figure"]


def plot_kv_timeline(run: RunLike, path: str | os.PathLike, *, window: int | None = None,
                     baseline: RunLike | None = None, title: str | None = None) -> FilePath:
    """Plot live KV tokens against tokens processed and save it (PNG, SVG or PDF by suffix).

    Parameters
    ----------
    run : RunView, Result, RunRecord or path
        A run with a record (a bare tree has no timeline).
    path : str or path-like
        Output file; the format follows its suffix (``.png`` by default).
    window : int, optional
        The model's context window, drawn as a horizontal line.
    baseline : RunView, Result, RunRecord or path, optional
        Another run to overlay, typically the same tree with ``pruning="none"``.
    title : str, optional

    Returns
    -------
    pathlib.Path

    Raises
    ------
    tim.errors.TimError
        When ``run`` or ``baseline`` has no run record, or matplotlib is missing.

    Examples
    --------
    >>> import tempfile
    >>> from tim.engine.record import RunRecord, StepRow
    >>> rec = RunRecord("parallel", "buffer:1", "shift", [1], timeline=[
    ...     StepRow(1, (((), 10),), 10, 10, 9), StepRow(2, (((0,), 1), ((1,), 1)), 12, 12, 10),
    ...     StepRow(3, (((), 1),), 13, 8, 7)])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     plot_kv_timeline(rec, f"{d}/kv.png", window=16).stat().st_size > 1000
    True
    """
    fig = kv_timeline_figure(run, window=window, baseline=baseline, title=title)
    out = FilePath(path)
    fig.savefig(out)
    return out


def kv_timeline_figure(run: RunLike, *, window: int | None = None,
                       baseline: RunLike | None = None, title: str | None = None):
    """The :func:`plot_kv_timeline` figure, unsaved (a ``matplotlib.figure.Figure``).

    The axes hold the live-KV line (and the baseline's, when given), one scatter point per
    eviction and, with ``window``, a horizontal line at the window.

    Examples
    --------
    >>> from tim.engine.record import RunRecord
    >>> from tim.engine.record import StepRow
    >>> rec = RunRecord("parallel", "none", "shift", [1],
    ...                 timeline=[StepRow(1, (((), 10),), 10, 10, 9)])
    >>> [line.get_label() for line in kv_timeline_figure(rec).axes[0].lines]
    ['live KV, pruning=none, positions=shift']
    """
    view = as_view(run)
    if view.record is None:
        raise TimError("the live-KV timeline needs a run file (Result.save); a plain "
                       "Thread-2 tree has no timeline")
    base = as_view(baseline) if baseline is not None else None
    if base is not None and base.record is None:
        raise TimError("the baseline has no run record: give a run file of a pruning=none run")
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise TimError("plotting needs matplotlib: pip install 'tim-runtime[viz]'") from exc

    fig = Figure(figsize=(8, 4.2), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    record = view.record
    steps, processed, live = _columns(record.timeline)
    b_live: list[int] = []
    if base is not None:
        _, b_processed, b_live = _columns(base.record.timeline)
        ax.plot(b_processed, b_live, color="#9e9e9e", lw=1.4, ls="--",
                label=f"baseline: pruning={base.record.pruning}")
    ax.plot(processed, live, color="#1f5f99", lw=1.8,
            label=f"live KV, pruning={record.pruning}, positions={record.positions}")
    ax.fill_between(processed, live, color="#1f5f99", alpha=0.08)
    at_step = dict(zip(steps, range(len(steps)), strict=True))
    marks = [(processed[at_step[e.step + 1]], live[at_step[e.step + 1]])
             for e in record.evictions
             if not e.deferred and e.num_tokens and e.step + 1 in at_step]
    if marks:
        xs, ys = zip(*marks, strict=True)
        ax.scatter(xs, ys, marker="v", s=28, color="#c62828", zorder=3,
                   label=f"eviction ({len(marks)}, {record.num_evicted} tokens)")
    if window is not None:
        ax.axhline(window, color="#c62828", lw=1.2, ls=":")
        ax.annotate(f"context window ({window})", (0.99, window), xytext=(0, 3),
                    xycoords=ax.get_yaxis_transform(), textcoords="offset points",
                    ha="right", color="#c62828", fontsize=8)
    if processed:
        peak = max(live)
        ax.annotate(f"peak live {peak} = {peak / max(processed[-1], 1):.0%} of "
                    f"{processed[-1]} processed", xy=(0.99, 0.02), xycoords="axes fraction",
                    ha="right", fontsize=8, color="#333333")
    ax.set_xlabel("tokens processed (prompt + generated + forced + re-encoded)")
    ax.set_ylabel("live KV tokens")
    ax.set_xlim(left=0)
    tops = [*live, *b_live, window or 0]
    ax.set_ylim(0, max(tops, default=1) * 1.25 or 1)  # room for the legend above the curves
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    default = f"live KV over a run ({record.format}, {len(record.streams)} streams)"
    ax.set_title(title or (view.question and f"{view.question[:60]} — live KV") or default,
                 fontsize=10)
    return fig


def _columns(timeline) -> tuple[list[int], list[int], list[int]]:
    return ([r.step for r in timeline], [r.num_processed for r in timeline],
            [r.live_tokens for r in timeline])
