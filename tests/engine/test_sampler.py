"""tim/engine/sampler.py and the SamplingChooser, against a reference written here.

The reference builds, in float64 and one token at a time, the distribution a step should
draw from: grammar mask, then temperature, then top-k, then top-p. The sampler's own
distribution is read where it draws (``torch.multinomial``), so the two are compared
exactly, not through sampling noise; one test also checks the drawn frequencies.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tim.engine.choosers import SamplingChooser, TokenReplay
from tim.engine.sampler import SamplingParams, apply_token_bitmask, sample, stream_generator
from tim.errors import TimError

# ------------------------------------------------------------------ the reference


def reference_allowed(bitmask_row: list[int], vocab_size: int) -> list[bool]:
    """Token t is allowed iff bit t % 32 of word t // 32 is set (llguidance's layout)."""
    allowed = []
    for t in range(vocab_size):
        word = t // 32
        allowed.append(word < len(bitmask_row) and (bitmask_row[word] >> (t % 32)) & 1 == 1)
    return allowed


def reference_distribution(logits: list[float], params: SamplingParams,
                           allowed: list[bool] | None = None) -> list[float]:
    """The probability of each token at one sampling step, in float64 Python."""
    vocab = range(len(logits))
    live = [allowed is None or allowed[t] for t in vocab]
    if params.greedy:
        best = max((t for t in vocab if live[t]), key=lambda t: logits[t])
        return [float(t == best) for t in vocab]
    scaled = [logits[t] / params.temperature if live[t] else -math.inf for t in vocab]
    if params.top_k:  # the k highest survive
        kth = sorted(scaled, reverse=True)[min(params.top_k, len(scaled)) - 1]
        scaled = [s if s >= kth else -math.inf for s in scaled]
    top = max(scaled)
    weights = [math.exp(s - top) if s > -math.inf else 0.0 for s in scaled]
    probs = [w / sum(weights) for w in weights]
    if params.top_p < 1:  # a token survives while the mass ranked above it is < top_p
        above, kept = 0.0, [0.0] * len(probs)
        for t in sorted(vocab, key=lambda t: -probs[t]):
            if above < params.top_p:
                kept[t] = probs[t]
            above += probs[t]
        probs = [p / sum(kept) for p in kept]
    return probs


def ranked_mass_above(probs: list[float]) -> list[float]:
    ordered = sorted(probs, reverse=True)
    return [sum(ordered[:i]) for i in range(len(ordered))]


@contextmanager
def drawn_distributions():
    """Yields a list that collects every distribution ``torch.multinomial`` draws from."""
    seen: list[torch.Tensor] = []
    real = torch.multinomial

    def spy(probs, *args, **kwargs):
        seen.append(probs.detach().double() / probs.detach().double().sum())
        return real(probs, *args, **kwargs)

    with mock.patch.object(torch, "multinomial", spy):
        yield seen


# ------------------------------------------------------------------ strategies

# Distinct logits (0.1 apart): ties would make top-k and top-p depend on sort order.
logit_rows = st.integers(2, 40).flatmap(
    lambda v: st.lists(st.integers(-120, 120), min_size=v, max_size=v, unique=True)
).map(lambda ints: [i / 10 for i in ints])
sampling_params = st.builds(
    SamplingParams,
    temperature=st.sampled_from([0.0, 0.3, 0.7, 1.0, 2.5]),
    top_p=st.sampled_from([1.0, 0.95, 0.7, 0.3, 0.01]),
    top_k=st.sampled_from([0, 1, 3, 10, 100]),
    seed=st.integers(0, 2**32),
)


@st.composite
def masked_rows(draw):
    """(logits, bitmask words) with at least one allowed token; words may be fewer or more
    than the vocabulary needs."""
    logits = draw(logit_rows)
    num_words = draw(st.integers(1, (len(logits) + 31) // 32 + 1))
    words = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=num_words,
                          max_size=num_words))
    assume(any(reference_allowed(words, len(logits))))
    return logits, words


def as_bitmask(words: list[int]) -> torch.Tensor:
    return torch.tensor([words], dtype=torch.int32)  # (1, W)


# ------------------------------------------------------------------ grammar masks


@settings(max_examples=200, deadline=None)
@given(masked_rows())
def test_bitmask_allows_exactly_the_set_bits(row):
    logits, words = row
    masked = apply_token_bitmask(torch.tensor([logits]), as_bitmask(words))[0]
    allowed = reference_allowed(words, len(logits))
    assert [m != -math.inf for m in masked.tolist()] == allowed
    kept = [m for m, a in zip(masked.tolist(), allowed, strict=True) if a]
    assert kept == [x for x, a in zip(torch.tensor(logits).tolist(), allowed, strict=True) if a]


def test_bitmask_bit_31_and_rows_are_independent():
    logits = torch.zeros(2, 40)
    bitmask = torch.tensor([[-(2**31), 0], [1, 1 << 7]], dtype=torch.int32)  # (2, 2)
    allowed = (apply_token_bitmask(logits, bitmask) == 0).nonzero().tolist()
    assert allowed == [[0, 31], [1, 0], [1, 39]]


# ------------------------------------------------------------------ the distribution drawn


@settings(max_examples=300, deadline=None)
@given(logit_rows, sampling_params)
@example([9.9, 10.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], SamplingParams(temperature=0.3))
def test_the_sampler_draws_from_the_reference_distribution(logits, params):
    assume(not params.greedy)
    want = reference_distribution(logits, params)
    if params.top_p < 1:  # a token at the exact top_p boundary is decided by rounding
        before_cut = reference_distribution(logits, SamplingParams(
            temperature=params.temperature, top_k=params.top_k))
        assume(all(abs(m - params.top_p) > 1e-5 for m in ranked_mass_above(before_cut)))
    with drawn_distributions() as seen:
        out = sample(torch.tensor([logits]), params, [stream_generator(params.seed, "()")])
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], torch.tensor(want, dtype=torch.float64),
                               atol=2e-5, rtol=0)  # fp32 softmax of logits / T
    assert want[int(out.token_ids[0])] > 0


@settings(max_examples=300, deadline=None)
@given(masked_rows(), sampling_params)
def test_masked_tokens_are_never_drawn_and_the_rest_follow_the_reference(row, params):
    logits, words = row
    allowed = reference_allowed(words, len(logits))
    want = reference_distribution(logits, params, allowed)
    if params.top_p < 1 and not params.greedy:
        before_cut = reference_distribution(logits, SamplingParams(
            temperature=params.temperature, top_k=params.top_k), allowed)
        assume(all(abs(m - params.top_p) > 1e-5 for m in ranked_mass_above(before_cut)))
    with drawn_distributions() as seen:
        out = sample(torch.tensor([logits]), params, [stream_generator(params.seed, "()")],
                     as_bitmask(words))
    token = int(out.token_ids[0])
    assert allowed[token] and want[token] > 0
    if params.greedy:
        assert seen == [] and want[token] == 1.0  # the best allowed token, no draw
    else:
        torch.testing.assert_close(seen[0], torch.tensor(want, dtype=torch.float64),
                                   atol=2e-5, rtol=0)  # fp32 softmax of logits / T


def test_drawn_frequencies_match_the_reference():
    logits = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, 3.0]
    params = SamplingParams(temperature=0.8, top_k=6, top_p=0.9, seed=11)
    words = [0b01111111]  # token 7, the most likely, is masked out
    want = torch.tensor(reference_distribution(logits, params,
                                                reference_allowed(words, len(logits))))
    num_draws = 4000
    generators = [stream_generator(params.seed, repr((i,))) for i in range(num_draws)]
    out = sample(torch.tensor([logits] * num_draws), params, generators,
                 torch.tensor([words] * num_draws, dtype=torch.int32))
    freq = torch.bincount(out.token_ids, minlength=len(logits)).double() / num_draws
    assert freq[want == 0].sum() == 0  # masked, beyond top-k or beyond top-p: never drawn
    assert (freq - want).abs().max() < 0.03  # 4 sigma at 4000 draws


@settings(max_examples=100, deadline=None)
@given(masked_rows())
def test_greedy_takes_the_best_allowed_token_whatever_top_k_and_top_p(row):
    logits, words = row
    allowed = reference_allowed(words, len(logits))
    best = max((t for t in range(len(logits)) if allowed[t]), key=lambda t: logits[t])
    for params in (SamplingParams(), SamplingParams(top_k=1, top_p=0.01)):
        out = sample(torch.tensor([logits]), params, [torch.Generator()], as_bitmask(words))
        assert int(out.token_ids[0]) == best


# ------------------------------------------------------------------ the log-prob recorded


@settings(max_examples=200, deadline=None)
@given(masked_rows(), sampling_params)
def test_the_recorded_logprob_is_the_raw_models_before_any_mask(row, params):
    logits, words = row
    out = sample(torch.tensor([logits]), params, [stream_generator(params.seed, "()")],
                 as_bitmask(words))
    token = int(out.token_ids[0])
    raw = logits[token] - math.log(sum(math.exp(x) for x in logits))  # log_softmax, float64
    assert abs(float(out.logprobs[0]) - raw) < 1e-5
    # not the log-prob under the mask, which is larger when the mask removed real mass
    allowed = reference_allowed(words, len(logits))
    masked_out = sum(math.exp(x) for x, a in zip(logits, allowed, strict=True) if not a)
    if masked_out > 1e-3 * sum(math.exp(x) for x in logits):
        under_mask = logits[token] - math.log(sum(
            math.exp(x) for x, a in zip(logits, allowed, strict=True) if a))
        assert float(out.logprobs[0]) < under_mask - 1e-4


# ------------------------------------------------------------------ seeded streams


def draws(generator: torch.Generator, logits: torch.Tensor, n: int) -> list[int]:
    params = SamplingParams(temperature=1.0)
    return [int(sample(logits[None], params, [generator]).token_ids[0]) for _ in range(n)]


FLAT = torch.zeros(50)  # uniform over 50 tokens: any dependence between streams shows


def test_same_seed_and_path_give_the_same_samples():
    a = draws(stream_generator(7, repr((0, 1))), FLAT, 40)
    assert a == draws(stream_generator(7, repr((0, 1))), FLAT, 40)
    assert a != draws(stream_generator(8, repr((0, 1))), FLAT, 40)  # another seed
    assert a != draws(stream_generator(7, repr((1, 0))), FLAT, 40)  # another path


def test_streams_are_independent_of_each_other_and_of_scheduling():
    paths = [(), (0,), (1,), (1, 0)]
    alone = {p: draws(stream_generator(3, repr(p)), FLAT, 20) for p in paths}
    # all four decoded in one batch per step, in a shuffled order each step
    gens = {p: stream_generator(3, repr(p)) for p in paths}
    together: dict = {p: [] for p in paths}
    order = list(paths)
    for step in range(20):
        order = order[step % 4:] + order[: step % 4]
        out = sample(FLAT.repeat(len(order), 1), SamplingParams(temperature=1.0),
                     [gens[p] for p in order])
        for p, token in zip(order, out.token_ids.tolist(), strict=True):
            together[p].append(token)
    assert together == alone
    assert len({tuple(v) for v in alone.values()}) == len(paths)  # distinct streams


def test_sampling_chooser_uses_each_streams_generator():
    class FakeStream:
        def __init__(self, path):
            self.path, self.rng = path, stream_generator(5, repr(path))

    params = SamplingParams(temperature=0.9, top_p=0.9, seed=5)
    chooser = SamplingChooser(params)
    logits = torch.randn(2, 30, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0x0FFFFFFF], [0x3F]], dtype=torch.int32)
    picked = chooser.choose([FakeStream((0,)), FakeStream((1,))], logits, mask)
    want = sample(logits, params, [stream_generator(5, repr((0,))),
                                   stream_generator(5, repr((1,)))], mask)
    assert chooser.seed == 5
    assert [t for t, _ in picked] == want.token_ids.tolist()
    assert [lp for _, lp in picked] == pytest.approx(want.logprobs.tolist(), abs=0)


def test_token_replay_gives_the_recorded_tokens_with_raw_logprobs():
    class FakeStream:
        def __init__(self, path):
            self.path = path

    replay = TokenReplay({(): [4, 2], (0,): [9]})
    logits = torch.randn(2, 12, generator=torch.Generator().manual_seed(1))
    picked = replay.choose([FakeStream(()), FakeStream((0,))], logits)
    raw = torch.log_softmax(logits, dim=-1)
    assert picked == [(4, pytest.approx(float(raw[0, 4]))), (9, pytest.approx(float(raw[1, 9])))]
    assert replay.choose([FakeStream(())], logits[:1])[0][0] == 2
    with pytest.raises(TimError, match=r"stream \[0\] asks for token 2, but the record has 1"):
        replay.choose([FakeStream((0,))], logits[:1])
