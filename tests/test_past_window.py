"""benchmarks/past_window: the task's traces round-trip through tim's parser and each other,
the training views are exactly what tim's pruning leaves, and the quick recipe trains, saves
and runs its checkpoints through tim."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent


def _load_package():
    """benchmarks/ is a folder of scripts, not an installed package: load past_window."""
    name = "past_window"
    if name in sys.modules:
        return sys.modules[name]
    folder = ROOT / "benchmarks" / name
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load_package()
from past_window import data, evaluate, pipeline, report, task, traces, views  # noqa: E402, F401
from past_window.tokenizer import train_tokenizer  # noqa: E402

from tim.tree import get_format  # noqa: E402

problems = st.builds(task.Problem, height=st.integers(0, 6), seed=st.integers(0, 9999))


@pytest.fixture(scope="module")
def tokenizer():
    return _shared_tokenizer()


@settings(max_examples=40, deadline=None)
@given(problems)
def test_solver_tree_has_every_node_and_the_direct_answer(problem):
    tree = task.solve(problem)
    assert tree.answer == task.answer_of(problem)
    nodes = list(tree.walk())
    assert len(nodes) == problem.num_steps + problem.num_leaves - 1  # + one add per inner node
    leaves = [t for _, t in nodes if t.thought == "leaf"]
    assert len(leaves) == problem.num_leaves
    assert all(t.subtasks is None and len(t.title) == problem.height + 1 for t in leaves)
    for _, t in nodes:  # every inner node adds its two halves' values with the add tool
        if t.subtasks:
            left, right, add = t.subtasks
            assert add.tooluse.parameters == {"a": int(left.conclusion),
                                              "b": int(right.conclusion)}
            assert t.conclusion == add.conclusion == str(add.tooluse.tool_result)
            assert add.tooluse.tool_result == (int(left.conclusion) + int(right.conclusion)) % 10


@settings(max_examples=40, deadline=None)
@given(problems)
def test_tree_trace_parses_back_to_the_solver_tree(problem):
    tree = task.solve(problem)
    segments = traces.tree_trace(tree)
    assert get_format("thread2").parse(traces.trace_text(segments)).to_json() == tree.to_json()
    # the forced parts are exactly what tim forces after each tool call, in order
    fmt = get_format("thread2")
    expected = [fmt.tool_result_text(str(t.tooluse.tool_result))
                for _, t in tree.walk() if t.tooluse is not None]
    assert [s.text for s in segments if s.forced] == expected


@settings(max_examples=40, deadline=None)
@given(problems)
def test_flat_trace_holds_the_same_steps(problem):
    tree = task.solve(problem)
    flat = traces.flat_trace(tree)
    assert traces.parse_flat(traces.trace_text(flat)).to_json() == tree.to_json()
    tree_results = [s.text for s in traces.tree_trace(tree) if s.forced]
    flat_results = [s.text for s in flat if s.forced]
    assert [r.split(": ")[1].rstrip("}") for r in tree_results] == [r.strip() for r in flat_results]
    assert len(flat_results) == 2 * problem.num_leaves - 1  # every leaf and every addition


def test_parse_flat_names_the_bad_line():
    with pytest.raises(ValueError, match="line 2"):
        traces.parse_flat("p: split 1\np0 leaf 3\np1: leaf 4\np+: add 3 4 7\np: 7\nanswer 7\n")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(0, 9999), st.integers(0, 2))
def test_every_written_token_is_a_target_once(height, seed, k):
    tok = _shared_tokenizer()
    enc = data.encode_problem(tok, task.Problem(height=height, seed=seed))
    windows = data.tree_rows(tok, enc, k=k)
    assert sum(w.num_targets for w in windows) == sum(not f for f in enc.tree_forced)
    for w in windows:
        assert len(w.input_ids) == len(w.targets)


_TOKENIZER: list = []  # hypothesis tests cannot take module fixtures


def _shared_tokenizer():
    if not _TOKENIZER:
        _TOKENIZER.append(train_tokenizer(data.corpus_texts(range(1, 5)), vocab_size=384))
    return _TOKENIZER[0]


def _tiny_llama(tokenizer):
    from past_window.train import ModelConfig, build_model

    cfg = ModelConfig(vocab_size=len(tokenizer), hidden_size=32, num_layers=1, num_heads=2,
                      intermediate_size=64, window=256)
    return build_model(cfg, eos_token_id=tokenizer.eos_token_id, seed=0).eval()


def _replay(model, tokenizer, problem, *, k, positions="shift"):
    """tim decodes the solver's tree trace, teacher-forced: the tree model's ideal run."""
    import tim
    from tim.engine.choosers import TokenReplay

    enc = data.encode_problem(tokenizer, problem)
    engine = tim.Engine(model, tokenizer, tim.EngineConfig(
        format="thread2", pruning=f"buffer:{k}", positions=positions, max_workers=1,
        kv_budget_tokens=4096, max_depth=evaluate.MAX_DEPTH, max_fanout=evaluate.MAX_FANOUT),
        tools=list(task.make_tools(problem)))
    sampled = [t for t, f in zip(enc.tree_ids, enc.tree_forced, strict=True) if not f]
    with torch.inference_mode():
        record = engine.run(list(enc.prompt), chooser=TokenReplay({(): sampled}),
                            max_new_tokens=len(sampled) + 1)
    return enc, record


def _cumulative(pairs):
    """{fed count: every stream token evicted once that many tokens were fed}."""
    by_time: dict[int, set[int]] = {}
    for fed, tokens in pairs:
        by_time.setdefault(fed, set()).update(tokens)
    out, acc = {}, set()
    for fed in sorted(by_time):
        acc |= by_time[fed]
        out[fed] = frozenset(acc)
    return out


@pytest.mark.parametrize("k", [0, 1, 2])
def test_planned_evictions_are_exactly_tims(tokenizer, k):
    problem = task.Problem(height=4, seed=11)
    enc, record = _replay(_tiny_llama(tokenizer), tokenizer, problem, k=k)
    assert record.error is None and record.streams[()].token_ids == list(enc.tree_ids)
    planned = views.plan_evictions(views.list_spans(tokenizer, enc.tree_ids), k)
    mine = _cumulative((e.after + 1, range(e.start, e.end)) for e in planned)
    tims = _cumulative((e.fed, [i for _, s, t in e.ranges for i in range(s, t)])
                       for e in record.evictions if not e.deferred)
    assert mine == tims
    assert mine and record.num_evicted == len(next(reversed(mine.values())))
    windows = data.tree_rows(tokenizer, enc, k=k)
    assert record.max_position == record.peak_live_tokens - 1
    assert record.peak_live_tokens == max(len(w.input_ids) for w in windows) - 1


def test_flat_window_targets_follow_the_trace(tokenizer):
    enc = data.encode_problem(tokenizer, task.Problem(height=5, seed=3))
    w = views.flat_window(enc.prompt, enc.flat_ids, enc.flat_forced, start=40, end=140)
    assert w.input_ids[: len(enc.prompt)] == enc.prompt
    assert w.input_ids[len(enc.prompt):] == enc.flat_ids[40:140]
    tail = w.targets[len(enc.prompt) - 1:]
    assert tail[0] == views.IGNORE  # the cut: the prompt is not followed by token 40 in the trace
    for q, target in enumerate(tail[1:], start=1):
        i = 40 + q
        assert target == (views.IGNORE if enc.flat_forced[i] else enc.flat_ids[i])
    assert sum(t != views.IGNORE for t in tail) > 50


def test_report_only_without_a_run_says_so(tmp_path, capsys):
    from past_window.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", "--report-only", "--cache", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no finished run of the 'quick' recipe" in capsys.readouterr().err


def test_configs_quote_bad_values():
    from past_window.train import ModelConfig, TrainConfig

    with pytest.raises(ValueError, match="-2"):
        ModelConfig(num_layers=-2)
    with pytest.raises(ValueError, match="0"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="tree-sideways"):
        pipeline.RecipeConfig(**{**pipeline.QUICK.__dict__, "configs": ("tree-sideways",)})
    with pytest.raises(ValueError, match="13"):
        task.Problem(height=13, seed=0)


def test_quick_recipe_trains_saves_and_runs_through_tim(tmp_path, capsys):
    from past_window.__main__ import main

    from tim.models import load_model

    cfg = pipeline.QUICK
    assert main(["--quick", "--cache", str(tmp_path)]) == 0  # the command CI runs
    folder = tmp_path / "quick"
    report_md = (folder / "report.md").read_text()
    assert "| height | leaves | flat trace ÷ window |" in report_md
    assert report_md in capsys.readouterr().out + "\n"
    assert (folder / "accuracy.png").stat().st_size > 1000
    result = pipeline.load_recipe(cfg, cache=tmp_path)
    for kind in ("tree", "flat"):
        trained = result.training[kind]
        assert len(trained.losses) == cfg.train.steps
        assert all(loss == loss and loss > 0 for loss in trained.losses)  # finite, not NaN
        assert trained.num_targets > 0
    assert trained.num_params == result.training["tree"].num_params  # same shape
    assert len(result.outcomes) == len(cfg.configs) * len(cfg.eval_heights) * cfg.num_questions
    for out in result.outcomes:
        assert out.num_tokens == out.prompt_tokens + out.num_generated + out.num_forced
        assert out.num_generated >= 1 and out.peak_live_tokens <= out.num_tokens
        if out.config.startswith("tree"):  # the engine stops a run before the window
            assert out.max_position < cfg.model.window
    assert {c.config for c in result.cells} == set(cfg.configs)

    # The saved tree checkpoint, loaded the way `tim run --model FOLDER` loads it, runs the
    # solver's trace through tim to the right answer, with the record's counters consistent.
    loaded = load_model(tmp_path / "quick" / "tree")
    problem = task.Problem(height=3, seed=data.EVAL_SEEDS[0])
    enc, record = _replay(loaded.model, loaded.tokenizer, problem, k=cfg.k)
    stream = record.streams[()]
    assert record.error is None
    assert stream.token_ids == list(enc.tree_ids) and stream.forced == list(enc.tree_forced)
    assert record.num_generated == sum(not f for f in stream.forced)
    assert record.num_forced == sum(stream.forced)
    assert record.num_evicted > 0 and record.max_position < cfg.model.window
    from tim.result import tree_of_record

    assert tree_of_record(record).answer == task.answer_of(problem)


@pytest.mark.parametrize("name", ["task", "traces", "tokenizer", "views", "train", "report"])
def test_doctests(name):
    import doctest

    result = doctest.testmod(sys.modules[f"past_window.{name}"])
    assert result.failed == 0 and result.attempted >= 1
