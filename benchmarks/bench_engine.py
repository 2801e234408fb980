"""Engine benchmarks on this machine (issue 4): each case checks correctness, then reports
tim against a baseline measured in the same run, and names the machine.

1. Flat decode at batch 1: tim (``thread2``, one stream, HF's greedy tokens replayed) vs
   Hugging Face ``generate`` (greedy, DynamicCache) on the same prompt and tokens, and both
   vs the roofline (weight bytes / measured read bandwidth). Rounds alternate HF and tim.
   Times are reported by wall clock and, with one torch thread, by this thread's CPU time.
2. 8 siblings over a shared ~1k-token prefix: the ``parallel`` format replays a root plan
   of 8 children (TextReplay) with ``max_workers=8`` (cascade on and off) and
   ``max_workers=1``; same tokens. Baseline: HF ``generate`` at batch 8 from the same prefix.
3. Engine overhead per step: time outside ``ModelRunner.run`` (scheduling, batch building,
   choosing, parsing, bookkeeping) as a share of the step, from the runs above.

Models are random-weight fp32 models of real shapes (``tim.models.tiny_model``, tied
embeddings): Qwen3-0.6B and SmolLM2-135M. The tokenizer is tim's byte-level one plus a few
added tokens for the format's JSON punctuation (``{"title": "`` is one token, as with a real
BPE vocabulary), so that the plan costs about what it would with a real tokenizer.

Usage::

    python benchmarks/bench_engine.py [--quick] [--json PATH] [--model qwen3-0.6b|smollm2-135m|both]
                                      [--threads N]

``--threads`` defaults to 2. On a 2-core machine that other processes keep busy, one thread is
several times faster (a 2-thread OpenMP region waits for its descheduled second thread).
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from machine import loadavg, machine, machine_line  # the script's folder
from torch import nn
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from tim.engine.choosers import TextReplay, TokenReplay
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.runner import ModelRunner
from tim.models import tiny_model
from tim.models.loading import LoadedModel
from tim.tree import Task, TaskTree, get_format

MODELS = {
    "qwen3-0.6b": dict(arch="qwen3", num_layers=28, hidden_size=1024, num_heads=16,
                       num_kv_heads=8, head_dim=128, vocab_size=151936, intermediate_size=3072),
    "smollm2-135m": dict(arch="llama", num_layers=30, hidden_size=576, num_heads=9,
                         num_kv_heads=3, head_dim=64, vocab_size=49152, intermediate_size=1536),
}
# JSON punctuation of the parallel format, one token each (a BPE vocabulary has similar merges)
FORMAT_TOKENS = ['{"reasoning": [', '{"title": "', '"}, ', '"}]', ', "answer": "', '"}',
                 '", "thought": "', '", "tooluse": null, "subtasks": null, "conclusion": "']
PROSE = ("The engine decodes a task tree: a plan forks into workers that share the prefix, "
         "each child writes its thought, and finished lists are pruned from the cache. ")
LOGPROB_TOL = 1e-3  # fp32, 28 layers, two attention kernels
NUM_CHILDREN = 8


@dataclass(frozen=True)
class Sizes:
    flat_prompt: int  # tokens of the flat-decode prompt
    flat_tokens: int  # greedy tokens per flat-decode round
    rounds: int  # alternating HF / tim rounds of flat decode
    shared_prompt: int  # prompt tokens before the plan (the shared prefix is this + the plan)
    child_thought: int  # thought characters per child (each child samples this + 3 tokens)


FULL = Sizes(flat_prompt=64, flat_tokens=20, rounds=3, shared_prompt=1000, child_thought=10)
QUICK = Sizes(flat_prompt=32, flat_tokens=6, rounds=2, shared_prompt=128, child_thought=1)


# ---------------------------------------------------------------------- model
def build_model(name: str) -> LoadedModel:
    lm = tiny_model(**MODELS[name], max_position_embeddings=4096)
    lm.model.tie_weights()  # both real models tie; tiny_model leaves them untied
    lm.tokenizer.add_tokens(FORMAT_TOKENS)
    return lm


def decode_weight_bytes(model: nn.Module) -> int:
    """Bytes of weights one decode step reads: every parameter once, except an untied input
    embedding (a decode step reads one row of it). KV reads are left out (short contexts)."""
    params = {id(p): p for p in model.parameters()}
    total = sum(p.numel() * p.element_size() for p in params.values())
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    return total if emb is head else total - emb.numel() * emb.element_size()


def clocks() -> tuple[float, float]:
    """(wall, this thread's CPU) seconds. With one torch thread all the work runs on this
    thread, so CPU time leaves out the time spent waiting for a core on a shared machine."""
    return time.perf_counter(), time.thread_time()


def timed(fn: Callable) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``."""
    wall, cpu = clocks()
    fn()
    return time.perf_counter() - wall, time.thread_time() - cpu


def read_bandwidth_gbs(buffer: torch.Tensor) -> tuple[float, float]:
    """Read bandwidth over ``buffer``, GB/s by wall clock and by CPU time: the better of
    ``buffer.sum()`` and a matrix-vector product over the same bytes (MKL's GEMV streams
    faster than torch's sum on one core), median of 3 passes each."""
    side = int(buffer.numel() ** 0.5)
    matrix, vector = buffer[: side * side].view(side, side), torch.ones(side)
    best = [0.0, 0.0]
    for fn, num_bytes in ((buffer.sum, buffer.numel() * 4), (lambda: matrix @ vector,
                                                             side * side * 4)):
        walls, cpus = zip(*(timed(fn) for _ in range(3)), strict=True)
        best[0] = max(best[0], num_bytes / statistics.median(walls) / 1e9)
        best[1] = max(best[1], num_bytes / statistics.median(cpus) / 1e9)
    return best[0], best[1]


@torch.inference_mode()
def matmul_floor_s(model: nn.Module, batch: int = 1) -> tuple[float, float]:
    """(wall, CPU) seconds of the weight matmuls of one decode step over ``batch`` tokens."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    x = {m.in_features: torch.randn(batch, m.in_features) for m in linears}
    return timed(lambda: [torch.nn.functional.linear(x[m.in_features], m.weight) for m in linears])


# ---------------------------------------------------------------------- instrumentation
@dataclass
class Step:
    wall_s: float
    cpu_s: float  # this thread's CPU time (meaningful with one torch thread)
    forward_s: float  # inside ModelRunner.run (the model forward, attention included)
    attention_s: float  # inside ModelRunner.attend (KV write + tim.kernels), all layers
    choose_s: float  # inside the chooser (log-softmax over the vocabulary, replay lookup)
    num_tokens: int = 0
    num_streams: int = 0
    num_child_sampled: int = 0  # tokens sampled by streams other than the root this step


class Probe:
    """Patches ``ModelRunner.run`` / ``.attend`` for a ``with`` block and cuts the time spent in
    them (and in the chooser) into engine steps at each ``on_step`` call."""

    def __init__(self) -> None:
        self.forward_s = self.attention_s = self.choose_s = 0.0
        self.steps: list[Step] = []
        self._last = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._child_sampled = 0

    def __enter__(self) -> Probe:
        self._originals = (ModelRunner.run, ModelRunner.attend)
        run, attend = self._originals

        def timed_run(runner, batch):
            start = time.perf_counter()
            try:
                return run(runner, batch)
            finally:
                self.forward_s += time.perf_counter() - start

        def timed_attend(runner, *args, **kwargs):
            start = time.perf_counter()
            try:
                return attend(runner, *args, **kwargs)
            finally:
                self.attention_s += time.perf_counter() - start

        ModelRunner.run, ModelRunner.attend = timed_run, timed_attend
        return self

    def __exit__(self, *exc) -> None:
        ModelRunner.run, ModelRunner.attend = self._originals

    def _now(self) -> tuple[float, ...]:
        return (*clocks(), self.forward_s, self.attention_s, self.choose_s)

    def start(self) -> None:
        self._last = self._now()

    def on_step(self, record) -> None:
        now = self._now()
        sampled = sum(sum(1 for f in s.forced if not f) for p, s in record.streams.items() if p)
        self.steps.append(Step(*(b - a for a, b in zip(self._last, now, strict=True)),
                               num_child_sampled=sampled - self._child_sampled))
        self._child_sampled = sampled
        self._last = self._now()

    def wrap_chooser(self, choose: Callable) -> Callable:
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                return choose(*args, **kwargs)
            finally:
                self.choose_s += time.perf_counter() - start
        return wrapped


def run_engine(lm: LoadedModel, prompt: list[int], config: EngineConfig, chooser) -> tuple:
    """One engine run under a Probe; returns (record, steps), steps annotated from the record."""
    engine = Engine(lm.model, lm.tokenizer, config)
    with Probe() as probe:
        chooser.choose = probe.wrap_chooser(chooser.choose)
        probe.start()
        record = engine.run(prompt, chooser=chooser, on_step=probe.on_step)
    for step, row in zip(probe.steps, record.timeline, strict=True):
        step.num_tokens, step.num_streams = sum(n for _, n in row.fed), row.num_streams
    return record, probe.steps


class Stamps(StoppingCriteria):
    """Records the time of each generate step; never stops generation."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        self.times.append(clocks())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


def cache_kwarg(model) -> str:
    """The name the model's forward and ``generate`` take a cache under: ``cache`` from
    transformers 5.20, ``past_key_values`` before (the GPU machine has 5.17)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def hf_generate(lm: LoadedModel, input_ids: torch.Tensor, num_new: int,
                cache: DynamicCache | None = None, *, include_first: bool = False,
                ) -> tuple[torch.Tensor, list[torch.Tensor], list]:
    """Greedy ``generate``; returns (new ids (B, num_new), raw logits per step, and the
    (wall, CPU) seconds of each decode step, and with ``include_first`` first of the forward
    over ``input_ids`` that samples the first token)."""
    model = lm.model
    model.set_attn_implementation("sdpa")  # the engine switched it to "tim"
    stamps = Stamps()
    if include_first:
        stamps.times.append(clocks())
    out = model.generate(
        input_ids, max_new_tokens=num_new, min_new_tokens=num_new, do_sample=False,
        stopping_criteria=StoppingCriteriaList([stamps]), output_logits=True,
        return_dict_in_generate=True, pad_token_id=lm.tokenizer.pad_token_id,
        **{cache_kwarg(model): cache if cache is not None else DynamicCache(config=model.config)},
    )
    steps = [(b[0] - a[0], b[1] - a[1])
             for a, b in zip(stamps.times, stamps.times[1:], strict=False)]
    return out.sequences[:, input_ids.shape[1]:], list(out.logits), steps


def first_child_logprob_diff(record, children: list, logits: torch.Tensor,
                             num_header: int) -> float:
    """Largest |HF - tim| log-prob of each child's first sampled token (token ``num_header``
    of its stream); ``logits`` ``(len(children), V)``: HF's first step, one row per child."""
    diff = 0.0
    for row, path in enumerate(children):
        stream = record.streams[path]
        hf_logprobs = torch.log_softmax(logits[row].float(), -1)
        diff = max(diff, abs(hf_logprobs[stream.token_ids[num_header]].item()
                             - stream.logprobs[num_header]))
    return diff


# ---------------------------------------------------------------------- 1. flat decode
def bench_flat(lm: LoadedModel, sizes: Sizes) -> dict:
    model, n = lm.model, sizes.flat_tokens
    prompt = lm.tokenizer.encode(PROSE * 4, add_special_tokens=False)[: sizes.flat_prompt]
    buffer = torch.ones(256 * 1024 * 1024)  # 1 GiB, far past the caches
    hf_ids, hf_logits, _ = hf_generate(lm, torch.tensor([prompt]), n)  # also a warm-up
    hf_tokens = hf_ids[0].tolist()
    config = EngineConfig(format="thread2", structure="free", pruning="none",
                          max_new_tokens=n, kv_budget_tokens=len(prompt) + n + 64)
    samples: dict[str, list] = {"bandwidth": [], "floor": [], "hf": [], "tim": []}
    tim_steps: list[Step] = []
    worst, agree, num_checked = 0.0, 0, 0

    def run_hf() -> None:
        new_ids, _, steps = hf_generate(lm, torch.tensor([prompt]), n)
        assert new_ids[0].tolist() == hf_tokens, "HF generate is not deterministic"
        samples["hf"] += steps

    def run_tim() -> None:
        nonlocal worst, agree, num_checked
        chooser, seen = TokenReplay({(): hf_tokens}), []
        inner = chooser.choose
        chooser.choose = lambda streams, logits, bitmask=None: (
            seen.append(logits[0].clone()), inner(streams, logits, bitmask))[1]
        record, steps = run_engine(lm, prompt, config, chooser)
        # correctness: tim's logits are HF's, so its greedy tokens are HF's
        assert len(seen) >= 2, f"the engine stopped after {len(seen)} tokens: {record.error}"
        for tim_logits, ref, token in zip(seen, hf_logits, hf_tokens, strict=False):
            diff = torch.log_softmax(tim_logits, -1) - torch.log_softmax(ref[0].float(), -1)
            worst = max(worst, diff.abs().max().item())
            agree += int(tim_logits.argmax()) == token
        num_checked += len(seen)
        samples["tim"] += [(s.wall_s, s.cpu_s) for s in steps[1:]]  # steps[0]: the prompt
        tim_steps.extend(steps[1:])

    for r in range(sizes.rounds):  # alternate the order; machine probes before each run
        for fn in (run_hf, run_tim) if r % 2 == 0 else (run_tim, run_hf):
            samples["bandwidth"].append(read_bandwidth_gbs(buffer))
            samples["floor"].append(matmul_floor_s(model))
            fn()
    assert worst <= LOGPROB_TOL, f"tim's log-probabilities differ from HF's by {worst:.2e}"
    assert agree == num_checked, f"tim's greedy token differs at {num_checked - agree} steps"
    weight_bytes = decode_weight_bytes(model)
    out = {"weight_mb": weight_bytes / 1e6, "max_logprob_diff": worst,
           "greedy_agreement": f"{agree}/{num_checked}", "samples": samples,
           "tim_steps": [asdict(s) for s in tim_steps]}
    for i, clock in enumerate(("wall", "cpu")):
        bw = statistics.median(x[i] for x in samples["bandwidth"])
        roofline_s = weight_bytes / (bw * 1e9)
        secs = {k: statistics.median(x[i] for x in samples[k]) for k in ("floor", "hf", "tim")}
        out[clock] = {"read_bandwidth_gbs": bw, "roofline_tok_s": 1 / roofline_s,
                      **{f"{k}_tok_s": 1 / v for k, v in secs.items()},
                      **{f"{k}_roofline_pct": 100 * roofline_s / v for k, v in secs.items()},
                      "tim_over_hf": secs["hf"] / secs["tim"]}
    return out


# ---------------------------------------------------------------------- 2. siblings
def sibling_texts(sizes: Sizes) -> dict:
    thought = (PROSE * 4)[: sizes.child_thought]
    tree = TaskTree([Task(thought, "c", title=chr(ord("a") + i)) for i in range(NUM_CHILDREN)],
                    answer="z")
    return get_format("parallel").render(tree)


def child_phase(steps: list[Step]) -> list[Step]:
    """Steps from the first to the last in which a child sampled a token."""
    sampling = [i for i, s in enumerate(steps) if s.num_child_sampled]
    return steps[sampling[0]: sampling[-1] + 1]


def phase_rates(steps: list[Step]) -> dict:
    """Child tokens per second over the children's phase, and from the median decode step."""
    phase = child_phase(steps)
    decode = [s for s in phase if s.num_tokens == s.num_streams == s.num_child_sampled]
    tokens, phase_s = sum(s.num_child_sampled for s in phase), sum(s.wall_s for s in phase)
    return {"child_tokens": tokens, "phase_steps": len(phase), "phase_s": phase_s,
            "tok_s": tokens / phase_s, "decode_steps": len(decode),
            "median_step_tok_s": 1 / statistics.median(s.wall_s / s.num_streams for s in decode),
            "steps_sampling_nothing": sum(1 for s in phase if not s.num_child_sampled)}


def bench_siblings(lm: LoadedModel, sizes: Sizes) -> dict:
    texts = sibling_texts(sizes)
    prompt = lm.tokenizer.encode(PROSE * 20, add_special_tokens=False)[: sizes.shared_prompt]
    runs = {}
    for name, workers, cascade in (("tim, 1 worker", 1, True),
                                   ("tim, 8 workers, cascade", NUM_CHILDREN, True),
                                   ("tim, 8 workers, no cascade", NUM_CHILDREN, False)):
        config = EngineConfig(format="parallel", structure="free", pruning="none",
                              max_workers=workers, cascade=cascade, max_new_tokens=10_000,
                              kv_budget_tokens=len(prompt) + 1024)
        runs[name] = run_engine(lm, prompt, config, TextReplay(texts, lm.tokenizer))
    # correctness: same text and tokens everywhere; cascade on/off give the same log-probs
    children = [p for p in texts if p]
    one, casc, plain = (record for record, _ in runs.values())
    for name, (record, _) in runs.items():
        assert record.error is None, f"{name}: {record.error}"
        assert {p: s.text for p, s in record.streams.items()} == texts, f"{name}: text differs"
        assert all(record.streams[p].token_ids == one.streams[p].token_ids for p in children)
    assert casc.max_concurrency == NUM_CHILDREN and one.max_concurrency == 1
    cascade_diff = max(abs(a - b) for p in children for a, b in
                       zip(casc.streams[p].logprobs, plain.streams[p].logprobs, strict=True)
                       if a is not None)
    assert cascade_diff <= 1e-4, f"cascade on/off log-probs differ by {cascade_diff:.2e}"
    hf = hf_siblings(lm, prompt, casc, children)
    floors: dict[int, list[float]] = {1: [], NUM_CHILDREN: []}
    for _ in range(3):  # alternating: the weight matmuls of one step over 1 and over 8 rows
        for batch in floors:
            floors[batch].append(matmul_floor_s(lm.model, batch)[0])
    rates = {name: phase_rates(steps) for name, (_, steps) in runs.items()}
    rates["HF generate, batch 8"] = hf["rates"]
    base = rates["tim, 1 worker"]
    for r in rates.values():
        r["x_one_worker"] = r["tok_s"] / base["tok_s"]
        r["x_one_worker_median"] = r["median_step_tok_s"] / base["median_step_tok_s"]
    median = statistics.median
    return {"shared_prefix_tokens": casc.streams[children[0]].parent_tokens,
            "matmul_gain_8_rows": NUM_CHILDREN * median(floors[1]) / median(floors[NUM_CHILDREN]),
            "matmul_floor_s": floors, "cascade_logprob_diff": cascade_diff,
            "hf_first_logprob_diff": hf["first_logprob_diff"], "rates": rates,
            "steps": {name: [asdict(s) for s in steps] for name, (_, steps) in runs.items()}}


def hf_siblings(lm: LoadedModel, prompt: list[int], record, children: list) -> dict:
    """HF ``generate`` at batch 8 on the same work: the shared prefix (prompt + plan) is
    prefilled once and its cache repeated 8 times; each row is then a child's forced header
    followed by as many greedy tokens as each child sampled in tim.

    The phase counts what tim's does: the forward over the headers that samples each
    child's first token, then the decode steps (the median step: decode steps only)."""
    first = record.streams[children[0]]
    prefix = (prompt + record.streams[()].token_ids)[: first.parent_tokens]
    num_header = first.forced.index(False)
    num_new = sum(1 for f in first.forced if not f)
    rows = torch.tensor([prefix + record.streams[p].token_ids[:num_header] for p in children])
    cache = DynamicCache(config=lm.model.config)
    lm.model.set_attn_implementation("sdpa")
    with torch.inference_mode():
        lm.model(input_ids=torch.tensor([prefix]), use_cache=True, **{cache_kwarg(lm.model): cache})
    cache.batch_repeat_interleave(NUM_CHILDREN)
    _, logits, clocks_ = hf_generate(lm, rows, num_new, cache, include_first=True)
    diff = first_child_logprob_diff(record, children, logits[0], num_header)
    assert diff <= LOGPROB_TOL, f"tim's first child log-probs differ from HF's by {diff:.2e}"
    walls = [wall for wall, _ in clocks_]  # the headers' forward, then the decode steps
    tokens = NUM_CHILDREN * len(walls)
    assert tokens == sum(1 for p in children for f in record.streams[p].forced if not f)
    return {"first_logprob_diff": diff, "rates": {
        "child_tokens": tokens, "phase_steps": len(walls), "phase_s": sum(walls),
        "tok_s": tokens / sum(walls), "decode_steps": len(walls) - 1,
        "median_step_tok_s": NUM_CHILDREN / statistics.median(walls[1:]),
        "steps_sampling_nothing": 0}}


# ---------------------------------------------------------------------- 3. overhead
def overhead(steps: list[dict]) -> dict:
    """Means over decode steps, so the parts add up: step = forward + chooser + rest."""
    n = len(steps)
    ms = {k: 1e3 * sum(s[k] for s in steps) / n
          for k in ("wall_s", "forward_s", "attention_s", "choose_s")}
    return {"steps": n, "step_ms": ms["wall_s"], "forward_ms": ms["forward_s"],
            "attention_ms": ms["attention_s"], "choose_ms": ms["choose_s"],
            "rest_ms": ms["wall_s"] - ms["forward_s"] - ms["choose_s"],
            "overhead_pct": 100 * (ms["wall_s"] - ms["forward_s"]) / ms["wall_s"]}


def bench_overhead(flat: dict, siblings: dict) -> dict:
    def decoding(name: str, streams: int) -> list[dict]:
        steps = [Step(**s) for s in siblings["steps"][name]]
        return [asdict(s) for s in child_phase(steps)
                if s.num_tokens == s.num_streams == s.num_child_sampled == streams]
    return {"flat decode, B=1": overhead(flat["tim_steps"]),
            "1 worker, shared prefix, B=1": overhead(decoding("tim, 1 worker", 1)),
            "8 workers, cascade, B=8": overhead(decoding("tim, 8 workers, cascade", NUM_CHILDREN)),
            "8 workers, no cascade, B=8": overhead(decoding("tim, 8 workers, no cascade",
                                                            NUM_CHILDREN))}


# ---------------------------------------------------------------------- report
def tables(info: dict, results: dict) -> str:
    shown = ("wall", "cpu") if info["threads"] == 1 else ("wall",)  # CPU time: one thread only
    out = [machine_line(info), "", "Flat decode, batch 1: tokens/s from the median step, and % of the roofline "
           "(decode weight bytes / read bandwidth), by wall clock and by this thread's CPU time:",
           "", "| model | clock | weights MB | read GB/s | roofline tok/s | matmuls only "
           "| HF generate | tim | tim / HF |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        f = r["flat"]
        for clock in shown:
            c = f[clock]
            cells = [f"{c[k + '_tok_s']:.2f} ({c[k + '_roofline_pct']:.0f}%)"
                     for k in ("floor", "hf", "tim")]
            out.append(f"| {name} | {clock} | {f['weight_mb']:.0f} | "
                       f"{c['read_bandwidth_gbs']:.1f} | {c['roofline_tok_s']:.2f} | "
                       + " | ".join(cells) + f" | {c['tim_over_hf']:.2f}x |")
    out += ["", "Checks (asserted before any figure is computed): " + "; ".join(
        f"{name}: tim's greedy token = HF's at {r['flat']['greedy_agreement']} steps, max "
        f"|dlogprob| over the vocabulary {r['flat']['max_logprob_diff']:.1e}"
        for name, r in results.items())]
    out += ["", "8 siblings over a shared prefix (children's decode phase; one run each):", "",
            "| model | run | prefix | child tokens | phase s | tok/s | x 1 worker "
            "| median-step tok/s | x 1 worker |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        s = r["siblings"]
        for run, x in s["rates"].items():
            out.append(f"| {name} | {run} | {s['shared_prefix_tokens']} | {x['child_tokens']} | "
                       f"{x['phase_s']:.1f} | {x['tok_s']:.2f} | {x['x_one_worker']:.2f}x | "
                       f"{x['median_step_tok_s']:.2f} | {x['x_one_worker_median']:.2f}x |")
    out += ["", "Checks: " + "; ".join(
        f"{name}: same child text and tokens in the three tim runs, cascade on/off max "
        f"|dlogprob| {r['siblings']['cascade_logprob_diff']:.1e}, first child token vs HF "
        f"{r['siblings']['hf_first_logprob_diff']:.1e}" for name, r in results.items())]
    out += ["", "Weight matmuls alone, one step over 8 rows vs over 1 row, tokens/s ratio "
            "(the most batching can give on this CPU): " + ", ".join(
                f"{name} {r['siblings']['matmul_gain_8_rows']:.2f}x"
                for name, r in results.items())]
    out += ["", "Engine time per decode step (means; overhead share = (step - forward) / step):",
            "", "| model | case | steps | step ms | forward ms | of which attention ms "
            "| chooser ms | rest of engine ms | overhead share |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        for case, o in r["overhead"].items():
            out.append(f"| {name} | {case} | {o['steps']} | {o['step_ms']:.1f} | "
                       f"{o['forward_ms']:.1f} | {o['attention_ms']:.1f} | {o['choose_ms']:.2f} | "
                       f"{o['rest_ms']:.2f} | {o['overhead_pct']:.1f}% |")
    if "qwen3-0.6b" in results:
        f, rates = results["qwen3-0.6b"]["flat"], results["qwen3-0.6b"]["siblings"]["rates"]
        x = rates["tim, 8 workers, cascade"]
        pct = {c: f[c]["tim_roofline_pct"] for c in shown}
        by = ", ".join(f"{v:.0f}% by {'wall clock' if c == 'wall' else 'CPU time'}"
                       for c, v in pct.items())
        out += ["", f"Targets (qwen3-0.6b): decode >= 80% of the roofline: {by} "
                f"({'met' if min(pct.values()) >= 80 else 'missed'}); 8 siblings >= 5x one "
                f"worker: {x['x_one_worker']:.2f}x, median-step {x['x_one_worker_median']:.2f}x "
                f"({'met' if x['x_one_worker'] >= 5 else 'missed'})"]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller prefix, fewer tokens")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers as JSON")
    parser.add_argument("--model", choices=[*MODELS, "both"], default="both")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    info = machine(args.threads)
    info["sizes"] = asdict(sizes)
    results = {}
    start = time.perf_counter()
    for name in MODELS if args.model == "both" else [args.model]:
        lm = build_model(name)
        flat = bench_flat(lm, sizes)
        siblings = bench_siblings(lm, sizes)
        results[name] = {"flat": flat, "siblings": siblings,
                         "overhead": bench_overhead(flat, siblings)}
        del lm
    info["loadavg_at_end"] = loadavg()
    info["total_s"] = time.perf_counter() - start
    print(tables(info, results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
