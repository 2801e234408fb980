"""Real engine runs for the viz tests and docs: a tiny random model replays hand-made trees.

The weights are random, so the text is teacher-forced (``TextReplay``); the forks, joins,
tool calls, evictions and the live-KV timeline are the engine's own.

    python tests/viz/realruns.py fixtures   # rewrite tests/viz/data/*.json
    python tests/viz/realruns.py docs [CACHE_DIR]  # rewrite docs/img/{viewer,kv_timeline}.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path as FilePath

from tim.tree import Task, TaskTree, ToolUse

HERE = FilePath(__file__).resolve().parent
DATA = HERE / "data"
ROOT = HERE.parent.parent
WINDOW = 4096  # the tiny model's context window in the docs runs


def calc(op: str, a: int, b: int) -> int:
    """Apply op (add, sub, mul, div or mod) to a and b.

    The one tool of these runs; the trees carry its true results, so the replay matches.
    """
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b, "mod": a % b}[op]


def tool(op: str, a: int, b: int) -> ToolUse:
    return ToolUse("calc", {"op": op, "a": a, "b": b}, calc(op, a, b))


def small_tree() -> TaskTree:
    """Two forks, one tool call, and a subtask list that buffer:0 evicts."""
    return TaskTree([
        Task("Split the sum into parts.", "Parts are 391 and 12.", title="plan", subtasks=[
            Task("17*23 by hand: 17*20 + 17*3.", "391", title="compute A"),
            Task("3*4 with the tool.", "12", title="compute B", tooluse=tool("mul", 3, 4)),
        ]),
        Task("Add them.", "403", title="add"),
    ], answer="403")


PRIMES_BELOW_32 = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31)
DOCS_NUMBERS = (221, 323, 391, 437, 493, 527)


def docs_tree() -> TaskTree:
    """Is each of six numbers prime? One task per number, three trial-division subtasks each,
    with a tool call per subtask: a long, mostly sequential tree whose finished subtask lists
    buffer:1 evicts as the run goes on."""
    tasks = []
    for n in DOCS_NUMBERS:
        p = min(q for q in PRIMES_BELOW_32 if n % q == 0)
        groups = [(2, 3, 5), (7, 11, 13), (17, 19, 23)]
        subtasks = []
        for group in groups:
            hit = next((q for q in group if n % q == 0), None)
            tested = ", ".join(map(str, group))
            if hit is None:
                q = group[-1]
                thought = (f"Try {tested}. {n} is odd, its digit sum is {sum(map(int, str(n)))}, "
                           f"and it does not end in 0 or 5. Check the largest: {n} div {q}.")
                subtasks.append(Task(thought, f"none of {tested} divides {n}",
                                     title=f"{n}: try {tested}", tooluse=tool("div", n, q)))
            else:
                thought = (f"Try {tested}. Test {hit}: {n} div {hit} = {n // hit}, "
                           f"then check {hit} * {n // hit} with the tool.")
                subtasks.append(Task(thought, f"{n} = {hit} * {n // hit}",
                                     title=f"{n}: try {tested}", tooluse=tool("mul", hit, n // hit)))
        tasks.append(Task(
            f"{n} is below 24 * 24 = 576, so trial division by the primes up to 23 settles "
            "it. Split them into three groups.",
            f"{n} = {p} * {n // p}, so {n} is composite.",
            title=f"is {n} prime?", subtasks=subtasks))
    factors = ", ".join(f"{n} = {min(q for q in PRIMES_BELOW_32 if n % q == 0)} * "
                        f"{n // min(q for q in PRIMES_BELOW_32 if n % q == 0)}"
                        for n in DOCS_NUMBERS)
    return TaskTree(tasks, answer=f"None of them is prime: {factors}.")


QUESTION_SMALL = "What is 17*23 + 3*4?"
QUESTION_DOCS = f"Which of {', '.join(map(str, DOCS_NUMBERS))} are prime?"


def run(tree: TaskTree, question: str, *, fmt: str = "parallel", pruning: str = "buffer:0",
        max_new_tokens: int = 20_000, window: int = 1024, **engine_kw):
    """Replay ``tree`` through a tiny random Qwen3 with the real engine; a Result."""
    from tim.engine.choosers import TextReplay
    from tim.engine.config import EngineConfig
    from tim.engine.engine import Engine
    from tim.models import tiny_model
    from tim.result import Result
    from tim.tree import get_format

    lm = tiny_model("qwen3", max_position_embeddings=window)
    rendered = get_format(fmt).render(tree)
    texts = {(): rendered} if isinstance(rendered, str) else rendered
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format=fmt, pruning=pruning, max_new_tokens=max_new_tokens, kv_budget_tokens=16384,
        structure="free", cascade_min_saved=8, **engine_kw), tools=[calc])
    prompt = lm.tokenizer.encode(question, add_special_tokens=False)
    record = engine.run(prompt, chooser=TextReplay(texts, lm.tokenizer))
    return Result.of(record, question=question, model="tiny random qwen3 (replay)")


def write_fixtures() -> None:
    DATA.mkdir(exist_ok=True)
    tree = small_tree()
    run(tree, QUESTION_SMALL).save(DATA / "run_parallel.json")
    run(tree, QUESTION_SMALL, fmt="thread2").save(DATA / "run_thread2.json")
    run(tree, QUESTION_SMALL, max_new_tokens=250).save(DATA / "run_unfinished.json")


def write_docs_images(cache: str | None = None) -> None:
    """The viewer screenshot (parallel, 3 workers) and the KV plot (thread2, buffer:1 vs none).

    With ``cache`` (a folder), runs already saved there are loaded instead of re-run.
    """
    from tim.result import Result
    from tim.viz import plot_kv_timeline, write_html

    tree = docs_tree()

    def cached(name: str, **kw) -> Result:
        path = FilePath(cache or tempfile.mkdtemp()) / f"{name}.json"
        if path.exists():
            return Result.load(path)
        result = run(tree, QUESTION_DOCS, window=WINDOW, **kw)
        assert result.answer == tree.answer, result.error
        result.save(path)
        return result

    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    workers = cached("docs_3_workers", pruning="buffer:1", max_workers=3)
    with tempfile.TemporaryDirectory() as tmp:
        page = write_html(workers, FilePath(tmp) / "viewer.html")
        screenshot(page, img / "viewer.png", expand=("is 221 prime?",),
                   select_title="221: try 7, 11, 13")
    pruned = cached("docs_thread2_buffer1", pruning="buffer:1", fmt="thread2")
    baseline = cached("docs_thread2_none", pruning="none", fmt="thread2")
    plot_kv_timeline(pruned, img / "kv_timeline.png", window=WINDOW, baseline=baseline,
                     title="24-task tree, thread2 format: buffer:1 against none "
                           "(tiny random Qwen3, replay)")
    for result in (workers, pruned, baseline):
        print(result.record.pruning, result.stats)


def screenshot(page: FilePath, out: FilePath, *, expand: tuple[str, ...], select_title: str
               ) -> None:
    """Open the viewer in headless Chromium, expand some tasks, click one, save a PNG."""
    from selenium.webdriver.common.by import By

    from tests.viz.browser import chromium

    with chromium(width=1400, height=860) as driver:
        driver.get(page.as_uri())
        for title in expand:
            row = _row(driver, title)
            row.find_element(By.CSS_SELECTOR, ".tog").click()
        _row(driver, select_title).click()
        driver.save_screenshot(str(out))


def _row(driver, title: str):
    from selenium.webdriver.common.by import By

    for row in driver.find_elements(By.CSS_SELECTOR, "#tree .row"):
        if row.find_element(By.CSS_SELECTOR, ".lbl").text == title:
            return row
    raise LookupError(f"no row titled {title!r}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    {"fixtures": write_fixtures, "docs": write_docs_images}[sys.argv[1]](*sys.argv[2:])
