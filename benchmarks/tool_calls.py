"""Tool-call rate and worked-example leakage under prompt variants (issue 13, part 2).

Small instruct models offered a calculator almost never call it. This script runs ``tim
eval``'s arithmetic questions with the calculator offered (``parallel/buffer:1/tools``,
greedy) through one :class:`tim.PromptStyle` per variant, one change at a time:

- ``base``: the instructions as they are (one arithmetic worked example in the system text);
- ``tool-example``: a generic worked example with a tool call (a made-up ``weather`` tool)
  added, and a call's shape shown in the task schema;
- ``turns``: the worked example given as an earlier user question and assistant reply;
- ``template-tools``: the tool specs passed to the chat template too;
- ``tool-example+turns``: the two examples, both as earlier turns.

Per model and variant it reports tool calls per question, the share of questions with at
least one call, accuracy, and **leaks**: answers that copy a worked example (tim.eval.leaks: they contain an
example's conclusion or answer, with a digit or 8+ characters, that is neither in the
question nor the expected answer, e.g. ``391 + 60 = 451``), each share with its 95% Wilson
interval.

The fourth change the issue lists, the order of the alternatives in the grammar
(``tooluse: "null" | call`` against ``call | "null"``), is checked without decoding:
``--grammar-order`` compares the two grammars' token masks at every position of a stream
holding one task with a call and one without, over each model's tokenizer. Identical masks
mean greedy decoding writes the same tokens, so the order cannot change the call rate.

Before timing anything the script checks its inputs: every variant's prompt differs from
``base``'s (a template that ignores ``tools`` is reported and its variant skipped), the
``turns`` prompt carries the example as an assistant turn, and the questions are the ones
``tim eval`` generates.

Usage::

    python benchmarks/tool_calls.py --models smollm2-135m,qwen2.5-coder-0.5b \\
        --variants base,tool-example,turns,template-tools --sizes 2,3 --questions 4 \\
        --max-new-tokens 256 --json tool_calls.json
    python benchmarks/tool_calls.py --grammar-order --models smollm2-135m,qwen2.5-coder-0.5b
    python benchmarks/tool_calls.py --quick          # a random tiny model: checks the pipeline
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from machine import machine, machine_line  # the script's folder

from tim.api import PromptStyle, Runtime
from tim.engine.tool_bias import token_pieces
from tim.eval.configs import parse_config
from tim.eval.leaks import copies_example
from tim.eval.report import wilson_interval
from tim.eval.runner import Outcome, run_tim
from tim.eval.tasks import make_questions
from tim.tree import get_format

VARIANTS = {
    "base": PromptStyle(),
    "tool-example": PromptStyle(tool_example=True),
    "turns": PromptStyle(examples="turns"),
    "template-tools": PromptStyle(template_tools=True),
    "tool-example+turns": PromptStyle(examples="turns", tool_example=True),
}
CONFIG = parse_config("parallel/buffer:1/tools")


def check_prompts(runtime: Runtime, name: str, base_ids: list[int], specs, tokenizer) -> str | None:
    """Why the variant ``name`` cannot be measured (its prompt equals base's), or None.
    Raises when a prompt is not what its variant says."""
    ids = runtime.prompt("What is 2 + 2?", specs)
    style = runtime.prompt_style
    text = tokenizer.decode(ids)
    if style.examples == "turns":
        example_reply = runtime.format.example_turns(specs, tool_example=style.tool_example)[0][1]
        # the example must follow the instructions, not sit inside them
        if example_reply[:40] not in text or text.index(example_reply[:40]) < text.index(
                "The earlier turns of this conversation"):
            raise AssertionError(f"{name}: the example is not an earlier turn")
    if style.tool_example and '"tool_name": "weather"' not in text:
        raise AssertionError(f"{name}: no tool-call example in the prompt")
    if ids == base_ids:
        return "prompt identical to base (the chat template ignores tools)"
    return None


def run(args: argparse.Namespace) -> dict:
    from tim.models import load_model, tiny_model

    questions = make_questions("arithmetic", sizes=args.sizes, num_per_size=args.questions,
                               seed=args.seed)
    assert all(q.task == "arithmetic" and q.text for q in questions)
    info = machine()
    report: dict = {"machine": info, "settings": vars(args) | {"sizes": list(args.sizes)},
                    "models": {}}
    for model_name in args.models:
        pair = tiny_model("qwen2")[:2] if model_name == "tiny" else None
        loaded = load_model(pair if pair else model_name, device="cpu", quiet=True)
        specs = None
        per_model: dict = {"skipped": {}, "outcomes": {}}
        base_ids = None
        for variant in args.variants:
            runtime = Runtime(model=(loaded.model, loaded.tokenizer), format="parallel",
                              pruning="buffer:1", prompt_style=VARIANTS[variant], seed=args.seed)
            if specs is None:
                specs = runtime.engine(tools=questions[0].tools()).tools.specs
                base_ids = Runtime(model=(loaded.model, loaded.tokenizer), format="parallel"
                                   ).prompt("What is 2 + 2?", specs)
            why = None if variant == "base" else check_prompts(runtime, variant, base_ids,
                                                               specs, loaded.tokenizer)
            if why:
                print(f"{model_name} {variant}: skipped, {why}", file=sys.stderr)
                per_model["skipped"][variant] = why
                continue
            rows = []
            for q in questions:
                if args.first_decision:
                    row = first_decision(runtime, loaded, q, max_new_tokens=args.max_new_tokens)
                    rows.append(row)
                    print(f"{model_name} {variant} size {q.size} seed {q.seed}: first task "
                          f"{row['decision']}, {row['sampled_tokens']} tokens, "
                          f"{row['wall_time_s']:.0f} s", file=sys.stderr, flush=True)
                    continue
                outcome = run_tim(runtime, CONFIG, q, max_new_tokens=args.max_new_tokens,
                                  temperature=0.0)
                leaked = copies_example(outcome.answer, q)
                rows.append(outcome.to_json() | {"leak": leaked})
                print(f"{model_name} {variant} size {q.size} seed {q.seed}: calls "
                      f"{outcome.tool_calls}, correct {outcome.correct}, leak {leaked}, "
                      f"{outcome.sampled_tokens} tokens, {outcome.wall_time_s:.0f} s, answer "
                      f"{(outcome.answer or '')[:60]!r} (expected {q.expected})",
                      file=sys.stderr, flush=True)
            per_model["outcomes"][variant] = rows
        report["models"][model_name] = per_model
    info["loadavg_at_end"] = __import__("machine").loadavg()
    return report


def first_decision(runtime: Runtime, loaded, question, *, max_new_tokens: int) -> dict:
    """Decode greedily until the first planned task (stream ``(0,)``) has chosen its
    ``tooluse``, then stop: ``"call"`` (its text goes on with ``{``), ``"null"``, or
    ``"none"`` when the run ended first. The same tokens as a full greedy run up to there."""
    text: dict = {}
    decided: list[str] = []

    def on_event(event) -> None:
        if event.kind != "token" or event.stream != (0,) or decided:
            return
        text[event.stream] = text.get(event.stream, "") + event.detail
        _, found, rest = text[event.stream].partition('"tooluse": ')
        if found and rest:
            decided.append("call" if rest.startswith("{") else "null")
            runtime.cancel()

    start = time.perf_counter()
    result = runtime.reason(question.text, tools=question.tools(), max_new_tokens=max_new_tokens,
                            temperature=0.0, on_event=on_event)
    row = {"size": question.size, "seed": question.seed,
           "decision": decided[0] if decided else "none",
           "sampled_tokens": result.stats.tokens_generated,
           "prompt_tokens": len(result.record.prompt_ids),
           "wall_time_s": time.perf_counter() - start}
    if decided:
        row |= call_probability(loaded, result.record)
    return row


def call_probability(loaded, record) -> dict:
    """How close the first task came to calling the tool: the model's probability, at the
    token that decided, of the tokens that would start a call (``{``) against those that
    would write ``null``, from an independent Hugging Face forward over the task's view.

    The view is rebuilt from the record (the prompt, the root's tokens the task started on,
    the task's tokens up to the deciding one) and checked: nothing was evicted from it, its
    positions are contiguous, and HF's log-probability of the token the engine sampled there
    matches the engine's own within 1e-3.
    """
    import torch

    tok = loaded.tokenizer
    root, task = record.streams[()], record.streams[(0,)]
    assert not any(e.stream in ((), (0,)) for e in record.evictions), "the view was pruned"
    seen = task.parent_tokens - len(record.prompt_ids)
    view = list(record.prompt_ids) + root.token_ids[:seen]
    for k in range(len(task.token_ids)):  # the token that writes past '"tooluse":'
        _, found, rest = tok.decode(task.token_ids[: k + 1]).partition('"tooluse":')
        if found and rest.strip():
            break
    before = tok.decode(task.token_ids[:k])
    assert task.position_ids[:k] == list(range(len(view), len(view) + k))  # contiguous
    assert not task.forced[k], "the deciding token was forced"
    ids = torch.tensor([view + task.token_ids[:k]])
    with torch.no_grad():
        logprobs = torch.log_softmax(loaded.model(ids).logits[0, -1].double(), dim=-1)
    engine_lp = task.logprobs[k]
    assert abs(float(logprobs[task.token_ids[k]]) - engine_lp) < 1e-3, (
        f"the rebuilt view does not reproduce the engine: HF {float(logprobs[task.token_ids[k]])}"
        f" vs {engine_lp}")
    probs = logprobs.exp().tolist()
    call = null = 0.0
    for token_id, piece in enumerate(token_pieces(tok, len(probs))):
        # what the token makes the text say there (read here, not with tim.engine.tool_bias)
        after = (before + piece).partition('"tooluse":')[2].lstrip()
        if after.startswith("{"):
            call += probs[token_id]
        elif after.startswith("n"):
            null += probs[token_id]
    return {"p_call": call, "p_null": null}


def decision_rows(report: dict) -> list[str]:
    """The markdown table of ``--first-decision``: one row per model and variant."""
    lines = ["| model | variant | questions | first task calls the tool [95% CI] | run ended "
             "before deciding | P(call) at the decision: mean, max | P(call or null) | "
             "prompt tokens |", "|---|---|---:|---|---:|---|---:|---:|"]
    for model, data in report["models"].items():
        for variant, rows in data["outcomes"].items():
            n = len(rows)
            k = sum(r["decision"] == "call" for r in rows)
            lo, hi = wilson_interval(k, n)
            calls = [r["p_call"] for r in rows if "p_call" in r]
            both = [r["p_call"] + r["p_null"] for r in rows if "p_call" in r]
            p_call = (f"{sum(calls) / len(calls):.2g}, {max(calls):.2g}" if calls else "–")
            p_both = f"{min(both):.3f}–{max(both):.3f}" if both else "–"
            lines.append(f"| {model} | {variant} | {n} | {k}/{n} [{lo:.0%}, {hi:.0%}] | "
                         f"{sum(r['decision'] == 'none' for r in rows)} | {p_call} | {p_both} | "
                         f"{sum(r['prompt_tokens'] for r in rows) / n:.0f} |")
        for variant, why in data["skipped"].items():
            lines.append(f"| {model} | {variant} | – | {why} | | |")
    return lines


def summary_rows(report: dict) -> list[str]:
    """The markdown table: one row per model and variant."""
    lines = ["| model | variant | questions | tool calls / question | questions with a call "
             "[95% CI] | correct [95% CI] | answers copying an example [95% CI] | mean sampled "
             "| prompt tokens | s / question |",
             "|---|---|---:|---:|---|---|---|---:|---:|---:|"]

    def share(k: int, n: int) -> str:
        lo, hi = wilson_interval(k, n)
        return f"{k}/{n} [{lo:.0%}, {hi:.0%}]"

    for model, data in report["models"].items():
        for variant, rows in data["outcomes"].items():
            outs = [Outcome.from_json({k: v for k, v in r.items() if k != "leak"}) for r in rows]
            n = len(outs)
            calls = sum(o.tool_calls for o in outs)
            lines.append(
                f"| {model} | {variant} | {n} | {calls / n:.2f} | "
                f"{share(sum(o.tool_calls > 0 for o in outs), n)} | "
                f"{share(sum(o.correct for o in outs), n)} | "
                f"{share(sum(r['leak'] for r in rows), n)} | "
                f"{sum(o.sampled_tokens for o in outs) / n:.0f} | "
                f"{sum(o.prompt_tokens for o in outs) / n:.0f} | "
                f"{sum(o.wall_time_s for o in outs) / n:.1f} |")
        for variant, why in data["skipped"].items():
            lines.append(f"| {model} | {variant} | – | – | {why} | | | | | |")
    return lines


def grammar_order(args: argparse.Namespace) -> list[str]:
    """Token masks of ``"null" | call`` against ``call | "null"`` along a two-task stream."""
    import llguidance
    import llguidance.hf

    from tim.models import load_model, tiny_model
    from tim.tree.formats.common import tool_example_tree

    fmt = get_format("parallel")
    tree = tool_example_tree()
    specs = Runtime(model=tiny_model("qwen2")[:2]).engine(
        tools=make_questions("arithmetic", sizes=(2,), num_per_size=1, seed=0)[0].tools()
    ).tools.specs
    lines = []
    for model_name in args.models:
        pair = tiny_model("qwen2")[:2] if model_name == "tiny" else None
        tokenizer = load_model(pair if pair else model_name, device="cpu", quiet=True).tokenizer
        lltok = llguidance.hf.from_tokenizer(tokenizer)
        grammar = fmt.grammar(max_depth=2, max_fanout=3, tools=specs, depth=1)
        head = 'tooluse: "null" | '
        assert head in grammar, "the grammar's tooluse rule changed; update this check"
        rule = next(line for line in grammar.splitlines() if line.startswith(head))
        swapped = grammar.replace(rule, "tooluse: " + rule[len(head):] + ' | "null"')
        assert swapped != grammar
        # child streams: one whose task calls the calculator, one whose task writes null
        call = fmt.render(tree)[(0,)].replace('"weather", "parameters": {"city": "Lisbon"}',
                                              '"calculator", "parameters": {"a": 2, "op": "*", '
                                              '"b": 3}')
        call = call[:call.index(', "tool_result"')]
        texts = [call, fmt.render(tree)[(1,)]]
        positions = same = 0
        for text in texts:
            ids = tokenizer.encode(text, add_special_tokens=False)
            matchers = [llguidance.LLMatcher(lltok, g, log_level=1) for g in (grammar, swapped)]
            for token in ids:
                masks = [bytes(m.compute_bitmask()) for m in matchers]
                positions += 1
                same += masks[0] == masks[1]
                for m in matchers:
                    assert m.consume_token(token), (model_name, text, m.get_error())
        lines.append(f"{model_name}: masks identical at {same} of {positions} positions "
                     f"(a task with a call and one without)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    parser.add_argument("--variants", default="base,tool-example,turns,template-tools")
    parser.add_argument("--sizes", default="2,3")
    parser.add_argument("--questions", type=int, default=4, help="questions per size")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the report (machine, settings, outcomes)")
    parser.add_argument("--first-decision", action="store_true",
                        help="stop each run once its first task has chosen tool call or null")
    parser.add_argument("--grammar-order", action="store_true",
                        help="only compare the grammar's two alternative orders' masks")
    parser.add_argument("--quick", action="store_true",
                        help="a random tiny model, 1 question, 16 tokens: checks the pipeline")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    args.sizes = tuple(int(s) for s in args.sizes.split(","))
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    if args.questions < 1 or args.max_new_tokens < 1 or not all(s >= 1 for s in args.sizes):
        parser.error("questions, sizes and max-new-tokens must be >= 1")
    if args.quick:
        args.models, args.sizes, args.questions, args.max_new_tokens = ["tiny"], (2,), 1, 16
    if args.grammar_order:
        for line in grammar_order(args):
            print(line)
        return 0
    started = time.perf_counter()
    report = run(args)
    print(machine_line(report["machine"]))
    print(f"{time.perf_counter() - started:.0f} s in all")
    print("\n".join(decision_rows(report) if args.first_decision else summary_rows(report)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
