"""docs/stress.md runs, documents every knob, and shows a real timeline PNG."""

from __future__ import annotations

import re
from pathlib import Path

from tim.stress.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "stress.md"


def test_doc_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name} block {i}", "exec"), {"__name__": "doc_example"})


def test_doc_lists_every_option():
    text = DOC.read_text(encoding="utf-8")
    options = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")]
    missing = [o for o in options if f"`{o}" not in text and o != "--help"]
    assert not missing, f"docs/stress.md does not describe {missing}"


def test_doc_image_is_a_png():
    image = re.search(r"!\[[^\]]*\]\((img/[^)]+\.png)\)", DOC.read_text(encoding="utf-8"))
    assert image, "docs/stress.md shows no PNG"
    assert (DOC.parent / image.group(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
