"""Run the whole benchmark suite and write its tables into docs/benchmarks.md.

Each benchmark script runs in its own process (so one model's memory never weighs on the
next) with ``--json`` and, where it draws one, ``--png``, into ``docs/benchmarks/``. Its
printed tables replace the block between ``<!-- suite:NAME -->`` and
``<!-- /suite:NAME -->`` in docs/benchmarks.md; the prose around the blocks is kept.

Usage::

    python benchmarks/run_suite.py [--quick] [--only kernels,engine,tree] [--threads N]
                                   [--resume] [--out DIR] [--doc PATH]
    python benchmarks/run_suite.py --merge-gpu PATH/gpu.md [--doc PATH]

With ``--quick`` every script runs its small sizes; use it to check the suite, not for
figures. The full suite takes about 45 minutes on a 2-core CPU with one thread.

The GPU tables come from ``benchmarks/gpu_check.py``, run on a lent device (it cannot run
here); ``--merge-gpu`` copies its ``gpu.md`` into the ``<!-- suite:gpu -->`` block and runs
nothing. A dry run's ``gpu.md`` (no CUDA device) is refused: its figures are not a GPU's.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {  # name -> (script, extra arguments, writes a PNG)
    "kernels": ("bench_kernels.py", [], False),
    "engine": ("bench_engine.py", [], False),
    "tree": ("bench_tree.py", [], True),
}


def replace_block(doc: str, name: str, body: str) -> str:
    """``doc`` with the text between ``<!-- suite:name -->`` and ``<!-- /suite:name -->``
    set to ``body``; a missing block is an error (the doc's layout is not guessed).

    Examples
    --------
    >>> replace_block("a\\n<!-- suite:x -->\\nold\\n<!-- /suite:x -->\\nb", "x", "new")
    'a\\n<!-- suite:x -->\\nnew\\n<!-- /suite:x -->\\nb'
    """
    pattern = re.compile(rf"(<!-- suite:{name} -->\n).*?(\n<!-- /suite:{name} -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"run_suite: the doc has no '<!-- suite:{name} -->' ... "
                         f"'<!-- /suite:{name} -->' block; add one where the tables belong")
    return pattern.sub(lambda m: m.group(1) + body.strip("\n") + m.group(2), doc, count=1)


def merge_gpu(md_path: Path, doc_path: Path) -> None:
    """Replace the ``gpu`` block of ``doc_path`` with the tables of gpu_check.py's ``gpu.md``."""
    tables = md_path.read_text(encoding="utf-8")
    if "<!-- gpu_check: dry_run=false -->" not in tables.split("\n", 1)[0]:
        raise SystemExit(f"run_suite: {md_path} is not from a GPU run of gpu_check.py (a dry "
                         f"run, or another file); the gpu block was not touched")
    doc = replace_block(doc_path.read_text(encoding="utf-8"), "gpu", tables)
    doc_path.write_text(doc, encoding="utf-8")


def run_one(name: str, out: Path, *, quick: bool, threads: int, resume: bool) -> str:
    script, extra, png = SCRIPTS[name]
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--threads", str(threads),
           "--json", str(out / f"{name}.json"), *extra]
    if png:
        cmd += ["--png", str(out / f"{name}.png")]
    if quick:
        cmd.append("--quick")
    if resume and name == "tree":
        cmd.append("--resume")
    start = time.perf_counter()
    print(f"run_suite: {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)  # progress: stderr
    if done.returncode != 0:
        raise SystemExit(f"run_suite: {script} failed (exit {done.returncode}); its tables "
                         f"were not written")
    print(f"run_suite: {name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    tables = done.stdout.strip()
    (out / f"{name}.md").write_text(tables + "\n")
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="every script's small sizes (checks the suite; not for figures)")
    parser.add_argument("--only", default=",".join(SCRIPTS),
                        help=f"comma-separated subset of {', '.join(SCRIPTS)} (default all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--resume", action="store_true",
                        help="tree: keep the sections its JSON holds from a run that stopped")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks",
                        help="folder for the JSON, PNG and raw tables (default docs/benchmarks)")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md",
                        help="markdown file whose suite blocks are replaced "
                             "(default docs/benchmarks.md)")
    parser.add_argument("--merge-gpu", type=Path, metavar="GPU_MD",
                        help="only copy gpu_check.py's gpu.md into the gpu block; run nothing")
    args = parser.parse_args()
    if args.merge_gpu:
        merge_gpu(args.merge_gpu, args.doc)
        print(f"run_suite: wrote the gpu block of {args.doc}", file=sys.stderr)
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown or not names:
        parser.error(f"--only takes names from {', '.join(SCRIPTS)}, got {args.only!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    doc = args.doc.read_text()
    for name in names:  # fail before running anything if a block is missing
        replace_block(doc, name, "")
    for name in names:
        doc = replace_block(doc, name, run_one(name, args.out, quick=args.quick,
                                               threads=args.threads, resume=args.resume))
        args.doc.write_text(doc)  # after each script: a later failure keeps earlier tables
    print(f"run_suite: wrote {args.doc} and {args.out}/", file=sys.stderr)


if __name__ == "__main__":
    main()
