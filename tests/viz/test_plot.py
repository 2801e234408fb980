"""The live-KV timeline plot: the curve, eviction marks, the window line, the baseline."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from tim.errors import TimError
from tim.viz import load_run, plot_kv_timeline
from tim.viz.plot import kv_timeline_figure


def test_figure_holds_curve_evictions_window_and_baseline(parallel_path, thread2_path):
    view = load_run(parallel_path)
    fig = kv_timeline_figure(view, window=512, baseline=thread2_path)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels[0].startswith("baseline: pruning=buffer:0")
    assert labels[1] == "live KV, pruning=buffer:0, positions=shift"
    x, y = ax.lines[1].get_data()
    assert list(x) == [r.num_processed for r in view.record.timeline]
    assert list(y) == [r.live_tokens for r in view.record.timeline]
    window = [line for line in ax.lines if list(line.get_ydata()) == [512, 512]]
    assert len(window) == 1
    marks = ax.collections[-1].get_offsets()
    rows = {r.step: r for r in view.record.timeline}
    expected = [(rows[e.step + 1].num_processed, rows[e.step + 1].live_tokens)
                for e in view.record.evictions]
    assert [tuple(m) for m in np.asarray(marks)] == expected
    assert ax.get_ylim()[1] >= 512


def test_png_is_written_and_not_blank(tmp_path, parallel_path):
    out = plot_kv_timeline(parallel_path, tmp_path / "kv.png", window=512)
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    blue = (pixels[..., 2] > 0.5) & (pixels[..., 0] < 0.3)  # the live-KV line
    assert blue.sum() > 500 and pixels.std() > 0.05


def test_svg_suffix_gives_svg(tmp_path, thread2_path):
    out = plot_kv_timeline(thread2_path, tmp_path / "kv.svg")
    assert "<svg" in out.read_text()[:500]


def test_plain_tree_has_no_timeline(tmp_path, hostile_tree, parallel_path):
    with pytest.raises(TimError, match="needs a run file"):
        plot_kv_timeline(hostile_tree, tmp_path / "kv.png")
    with pytest.raises(TimError, match="baseline has no run record"):
        plot_kv_timeline(parallel_path, tmp_path / "kv.png", baseline=hostile_tree)
