"""Packed rows against one forward per view (tim/train/pack.py).

The oracle is plain: each view alone through a plain HF forward. A packed row (trie, 4D
ancestor mask) must give every label the same log-probability, to float noise.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.models import tiny_model, tiny_tokenizer
from tim.train.families import make_example
from tim.train.gold import GoldConfig, GoldWriter
from tim.train.pack import attention_mask, collate, pack_views
from tim.train.views import IGNORE, TrainingView, record_views


@pytest.fixture(scope="module")
def views():
    writer = GoldWriter(tiny_tokenizer(), GoldConfig(pruning="buffer:0"))
    return (record_views(writer.record(make_example("records", 2, 1)))
            + record_views(writer.record(make_example("chain", 1, 2))))


def _keyed_logprobs(model, ids, positions, labels, mask=None):
    """{(context tokens, label): log-prob} for every label of one sequence."""
    with torch.no_grad():
        kwargs = {} if mask is None else {"attention_mask": mask}
        logits = model(input_ids=torch.tensor([ids]), position_ids=torch.tensor([positions]),
                       **kwargs).logits[0]
    lp = torch.log_softmax(logits.float(), dim=-1)
    return [(k, label, lp[k, label].item()) for k, label in enumerate(labels) if label != IGNORE]


@pytest.mark.parametrize("share", [True, False])
def test_packed_rows_give_each_label_its_own_views_logprob(views, share):
    model = tiny_model("llama", vocab_size=len(tiny_tokenizer()),
                       max_position_embeddings=4096).model
    model.set_attn_implementation("sdpa")
    expected = {}
    for v in views:
        for k, label, lp in _keyed_logprobs(model, v.input_ids, v.position_ids, v.labels):
            expected[(tuple(zip(v.input_ids[:k + 1], v.position_ids[:k + 1], strict=True)), label)] = lp
    rows = pack_views(views, 2048, share_prefixes=share)
    got = {}
    for row in rows:
        batch = collate([row])
        for k, label, lp in _keyed_logprobs(model, row.input_ids, row.position_ids, row.labels,
                                            batch["attention_mask"]):
            path, node = [], k
            while node >= 0:
                path.append((row.input_ids[node], row.position_ids[node]))
                node = row.parents[node]
            got[(tuple(reversed(path)), label)] = lp
    assert got.keys() == expected.keys()
    assert max(abs(got[key] - expected[key]) for key in got) < 1e-4
    total = sum(len(v) for v in views)
    if share:
        assert sum(len(r) for r in rows) < total / 2  # the trie saves most of it here
    else:
        assert sum(len(r) for r in rows) == total


def test_a_view_longer_than_a_row_is_refused_by_name():
    view = TrainingView((0, 1), (1, 2, 3), (0, 1, 2), (IGNORE, 2, 3))
    with pytest.raises(ValueError, match=r"stream \[0, 1\] has 3 tokens, more than max_len=2"):
        pack_views([view], 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=6), min_size=1, max_size=6),
       st.integers(6, 12))
def test_every_label_lands_once_with_its_exact_prefix(seqs, max_len):
    views = [TrainingView((), tuple(s), tuple(range(len(s))),
                          tuple((t + 1) % 4 if i % 2 else IGNORE for i, t in enumerate(s)))
             for s in seqs]
    rows = pack_views(views, max_len)
    want = sorted((tuple(v.input_ids[:k + 1]), label) for v in views
                  for k, label in enumerate(v.labels) if label != IGNORE)
    got = []
    for row in rows:
        assert len(row) <= max_len
        mask = attention_mask(row.parents)
        for k, label in enumerate(row.labels):
            if label != IGNORE:
                got.append((tuple(row.input_ids[j] for j in range(k + 1) if mask[k, j]), label))
    # a label shared by identical prefixes is trained once: compare as sets of occurrences
    assert sorted(set(got)) == sorted(set(want)) and len(got) <= len(want)
