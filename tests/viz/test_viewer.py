"""The HTML viewer page: self-contained, its data escaped, hostile text inert, big trees fast.

What the page does in a browser is tested in test_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from html.parser import HTMLParser

from tests.viz.conftest import HOSTILE, big_tree
from tim.viz import load_run, render_html, worker_timeline, write_html
from tim.viz.viewer import MAX_TIMELINE_POINTS, _downsample, script_json, viewer_data


class _Tags(HTMLParser):
    """Start tags, and each <script>/<style> with its text, as a browser tokenizes them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.code: list[tuple[str, dict, str]] = []  # (tag, attrs, text) of script/style
        self._inside: list | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._inside = [tag, dict(attrs), ""]

    def handle_data(self, data):
        if self._inside is not None:
            self._inside[2] += data

    def handle_endtag(self, tag):
        if self._inside is not None and tag == self._inside[0]:
            self.code.append(tuple(self._inside))
            self._inside = None

    def names(self) -> list[str]:
        return [t for t, _ in self.tags]


def _data_of(page: str) -> dict:
    return json.loads(next(text for _, attrs, text in _Tags(page).code
                           if attrs.get("id") == "tim-data"))


def test_page_has_exactly_our_elements(parallel_path):
    page = render_html(parallel_path)
    names = _Tags(page).names()
    assert names.count("script") == 2 and names.count("style") == 1
    assert set(names) == {"html", "head", "meta", "title", "style", "body", "div", "noscript",
                          "script"}


def test_embedded_data_round_trips(parallel_path):
    view = load_run(parallel_path)
    data = _data_of(render_html(view))
    assert data == json.loads(json.dumps(viewer_data(view)))
    compute_b = next(t for t in data["tasks"] if t["ti"] == "compute B")
    assert compute_b["tool"]["name"] == "calc" and json.loads(compute_b["tool"]["result"]) == 12
    assert compute_b["pr"] and compute_b["ev"] and compute_b["pos"][0] < compute_b["pos"][1]
    tl = worker_timeline(view.record)
    assert len(data["timeline"]["segments"]) == len(tl.segments)


def test_no_network_and_a_strict_policy(parallel_path):
    page = render_html(parallel_path)
    assert set(re.findall(r"https?://[^\s\"')]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe|object|embed)\b|\bsrc=|@import|url\(", page, re.I)
    parsed = _Tags(page)
    policy = next(a["content"] for t, a in parsed.tags
                  if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in policy
    own = [text for _, attrs, text in parsed.code if "id" not in attrs]
    assert len(own) == 2
    for text in own:  # the page's own style and script, allowed by hash and nothing else
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_hostile_text_is_escaped_and_round_trips(hostile_tree):
    page = render_html(hostile_tree)
    parsed = _Tags(page)
    assert parsed.names().count("script") == 2 and "img" not in parsed.names()
    assert "svg" not in parsed.names() and parsed.names().count("style") == 1
    data_start = page.index('id="tim-data">')
    data_text = page[data_start: page.index("</script>", data_start)]
    assert not re.search("[<>&\u2028\u2029]", data_text.split(">", 1)[1])
    data = _data_of(page)
    fields = [t[k] for t in data["tasks"] for k in ("ti", "th", "co", "er") if t[k]]
    leaf = next(t for t in data["tasks"] if t["tool"])
    fields += [leaf["tool"]["name"], json.loads(leaf["tool"]["params"]),
               json.loads(leaf["tool"]["result"]), data["meta"]["answer"]]
    flat = json.dumps(fields, ensure_ascii=False)
    assert all(h in flat or json.dumps(h, ensure_ascii=False)[1:-1] in flat for h in HOSTILE)


def test_script_json_escapes_every_dangerous_character():
    text = script_json({"a": "</script>\u2028\u2029&<>"})
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == {"a": "</script>\u2028\u2029&<>"}


def test_title_is_escaped():
    page = render_html(big_tree(1, 1, 1), title="</title><script>x</script>")
    assert _Tags(page).names().count("script") == 2


def test_five_thousand_tasks_render_fast_and_small(tmp_path):
    tree = big_tree()  # 5,050 tasks
    start = time.perf_counter()
    out = write_html(tree, tmp_path / "big.html")
    seconds = time.perf_counter() - start
    size = out.stat().st_size
    # About 0.25 s on an idle 2-core box; the wide bound holds on a loaded one and still
    # catches a blow-up (work per task growing with the tree).
    assert seconds < 60, f"{seconds:.1f} s"
    assert size < 4_000_000, size  # about 1.5 MB
    assert len(_data_of(out.read_text(encoding="utf-8"))["tasks"]) == 5050


def test_long_timelines_are_downsampled_keeping_peaks():
    rows = [[s, s * 3, (s * 7919) % 1000, 1] for s in range(1, 20_001)]
    rows[12_345][2] = 5_000
    small = _downsample(rows, MAX_TIMELINE_POINTS)
    assert len(small) <= MAX_TIMELINE_POINTS + 1
    assert max(r[2] for r in small) == 5_000 and small[-1] == rows[-1]
    assert [r[0] for r in small] == sorted(r[0] for r in small)


def test_plain_tree_has_no_timeline(hostile_tree):
    assert viewer_data(hostile_tree)["timeline"] is None
