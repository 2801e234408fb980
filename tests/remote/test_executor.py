"""tim.remote.executor: the Executor protocol over a server, chunks, and the same greedy
tree as the local engine (a tiny random model behind the fake server of this folder)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from tests.remote.fake_server import FakeServer
from tim.engine import Engine, EngineConfig, Feed, SamplingParams
from tim.errors import TimError
from tim.remote import Remote, RemoteError
from tim.remote.executor import TokenRequest
from tim.stress.model import stress_model

GREEDY = {"temperature": 0.0, "top_p": 1.0, "top_k": -1}


@pytest.fixture(scope="module")
def tiny():
    return stress_model(seed=1, num_layers=1)


@pytest.fixture
def server(tiny):
    with FakeServer(tiny.model) as server:
        yield server


def config(**kw) -> EngineConfig:
    base = dict(format="parallel", max_workers=1, pruning="buffer:0", positions="reencode",
                max_new_tokens=400, max_depth=3, max_fanout=3, max_string_chars=8)
    return EngineConfig(**{**base, **kw})


def prompt_of(loaded) -> list[int]:
    return loaded.tokenizer.encode("Q: 2+2?\nA:", add_special_tokens=False)


def run_both(loaded, server: FakeServer, cfg: EngineConfig, tools=(), **remote_kw):
    local = Engine(loaded.model, loaded.tokenizer, cfg, tools=tools).run(prompt_of(loaded))
    executors = []
    remote = Remote(server.url, "tiny", **remote_kw)

    def factory():
        executors.append(remote())
        return executors[-1]

    engine = Engine(None, loaded.tokenizer, cfg, tools=tools, executor=factory)
    remote_record = engine.run(prompt_of(loaded))
    return local, remote_record, executors[0]


def assert_same_stream(local, remote, path):
    mine, theirs = local.streams[path], remote.streams[path]
    assert theirs.token_ids == mine.token_ids, f"stream {path} differs"
    assert theirs.forced == mine.forced
    for a, b in zip(mine.logprobs, theirs.logprobs, strict=True):
        assert (a is None) == (b is None) and (a is None or abs(a - b) < 1e-4)


@pytest.mark.parametrize("chunk_tokens", [1, 8])
def test_same_greedy_tree_as_the_local_engine(tiny, server, chunk_tokens):
    local, remote, executor = run_both(tiny, server, config(), chunk_tokens=chunk_tokens)
    assert local.error is None and local.forks and local.joins and local.evictions
    assert remote.error is None
    assert remote.streams.keys() == local.streams.keys()
    for path in local.streams:
        assert_same_stream(local, remote, path)
    assert [(e.stream, e.ranges) for e in remote.evictions] == \
        [(e.stream, e.ranges) for e in local.evictions]
    assert [j.delta for j in remote.joins] == [j.delta for j in local.joins]
    assert remote.num_reencoded == local.num_reencoded
    stats = executor.stats
    assert stats.num_used == remote.num_generated
    # tokens the grammar rejected were asked again under its mask, one at a time
    assert 0 < stats.num_constrained < stats.num_requests
    assert sum("allowed_token_ids" in body for body in server.bodies) == stats.num_constrained


def add_one(n: int) -> int:
    """n + 1."""
    return n + 1


def test_tool_results_are_forced_into_the_next_request():
    loaded = stress_model(seed=9, num_layers=1)  # a seed whose tree calls the tool
    with FakeServer(loaded.model) as own:
        local, remote, _ = run_both(loaded, own, config(), tools=[add_one])
        assert local.tool_calls and local.error is None and remote.error is None
        assert [(c.stream, c.name) for c in remote.tool_calls] == \
            [(c.stream, c.name) for c in local.tool_calls]
        sent = [loaded.tokenizer.decode(body["prompt"]) for body in own.bodies]
        assert any('"tool_result": ' in text for text in sent)  # the result went as prompt
    for path in local.streams:
        assert_same_stream(local, remote, path)


def test_siblings_send_concurrent_requests(server):
    loaded = stress_model(seed=0, num_layers=1)
    with FakeServer(loaded.model) as own:
        local, remote, _ = run_both(loaded, own, config(max_workers=3, max_new_tokens=120),
                                    chunk_tokens=4)
        assert own.max_in_flight >= 2
    children = local.forks[0].children
    assert len(children) == 3
    for path in [(), *children]:  # decoded from the same views, they agree exactly
        assert_same_stream(local, remote, path)


def test_chunks_are_reused_until_the_view_leaves_them(tiny, server):
    executor = Remote(server.url, "tiny", chunk_tokens=4)()
    view = executor.open([1, 2, 3], writer="prompt")
    taken = []
    for i in range(6):
        (token, _), = executor.next_tokens([TokenRequest(view, (), 0, None)], GREEDY)
        taken.append(token)
        executor.step([Feed(view, (), i, (token,))])
    assert len(server.bodies) == 2  # 6 tokens from chunks of 4
    assert server.bodies[1]["prompt"] == [1, 2, 3, *taken[:4]]
    executor.step([Feed(view, (), 6, (taken[0] ^ 1,))])  # a forced token: the chunk is stale
    executor.next_tokens([TokenRequest(view, (), 0, None)], GREEDY)
    assert len(server.bodies) == 3
    executor.evict(view, 1, 2)  # an eviction: the tail is re-sent without the evicted token
    executor.next_tokens([TokenRequest(view, (), 0, None)], GREEDY)
    assert server.bodies[3]["prompt"] == [1, 3, *taken, taken[0] ^ 1]
    executor.drop(view)
    executor.close()


def test_a_rejected_token_is_asked_again_under_the_mask(tiny, server):
    executor = Remote(server.url, "tiny", chunk_tokens=4)()
    view = executor.open([1, 2, 3], writer="prompt")
    (free, _), = executor.next_tokens([TokenRequest(view, (), 0, None)], GREEDY)
    mask = torch.zeros(((len(tiny.tokenizer) + 31) // 32,), dtype=torch.int32)
    allowed = [t for t in (7, 40, 41) if t != free]
    for t in allowed:
        mask[t >> 5] |= 1 << (t & 31)
    (token, logprob), = executor.next_tokens([TokenRequest(view, (), 0, mask)], GREEDY)
    assert token in allowed and logprob < 0
    assert server.bodies[-1]["allowed_token_ids"] == sorted(allowed)
    assert server.bodies[-1]["max_tokens"] == 1
    executor.drop(view)
    executor.close()


def test_evictions_of_tokens_a_live_child_holds_are_deferred(server):
    executor = Remote(server.url, "tiny")()
    parent = executor.open([1, 2, 3, 4], writer="prompt")
    child = executor.fork(parent)
    executor.step([Feed(child, (0,), 0, (5, 6))])
    assert executor.evict(parent, 1, 3).deferred
    result = executor.evict(child, 4, 5)  # the child's own token
    assert not result.deferred and result.num_evicted == 1 and child.token_ids == [1, 2, 3, 4, 6]
    assert executor.live([parent, child]) == (5, 4)
    assert executor.join(parent, child, first_own=4) == 0
    assert parent.token_ids == [1, 2, 3, 4, 6] and not child.is_alive
    result = executor.evict(parent, 1, 3)
    assert not result.deferred and result.reencode.start == 1 and parent.token_ids == [1, 4, 6]
    executor.drop(parent)
    executor.close()


def test_the_executor_refuses_shift(tiny, server):
    engine = Engine(None, tiny.tokenizer, config(positions="shift"),
                    executor=Remote(server.url, "tiny"))
    with pytest.raises(TimError, match="does not support positions='shift'"):
        engine.run(prompt_of(tiny))


def test_a_server_error_mid_run_ends_the_run_with_a_clear_error(tiny, server):
    server.faults.extend([("delay", 0.0)] * 5 + [("status", 500)])
    engine = Engine(None, tiny.tokenizer, config(), executor=Remote(server.url, "tiny"))
    with pytest.raises(RemoteError, match=r"answered 500 to the (constrained )?completion of "
                                          r"stream \[.*\] \(prompt of \d+ tokens"):
        engine.run(prompt_of(tiny))
    assert not [t for t in threading.enumerate() if t.name.startswith("tim-remote")]


def test_cancel_aborts_the_request_in_flight(tiny, server):
    server.faults.extend([("delay", 0.0)] * 3 + [("delay", 30.0)])
    engine = Engine(None, tiny.tokenizer, config(), executor=Remote(server.url, "tiny"))
    timer = threading.Timer(1.0, engine.cancel)
    timer.start()
    record = engine.run(prompt_of(tiny))
    assert record.error == "cancelled"
    assert 30.0 not in server.delays_ended  # the run did not wait for the delayed answer


def interrupt_when_waiting(server: FakeServer) -> None:
    """Ctrl-C for this process once the run waits on the server (never before: it would
    stop pytest itself)."""
    deadline = time.monotonic() + 20
    while not server.bodies and time.monotonic() < deadline:
        time.sleep(0.05)
    if server.bodies:
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt during the test. A process a non-interactive shell
    starts in the background ignores SIGINT, and Python then installs no handler for it
    (CI may run the suite so): without this the interrupt would be lost and the run hang."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(120)
def test_ctrl_c_aborts_the_requests_and_leaves_no_thread(server, ctrl_c_raises):
    loaded = stress_model(seed=0, num_layers=1)
    with FakeServer(loaded.model) as own:
        own.faults.extend([("delay", 30.0)] * 100)
        engine = Engine(None, loaded.tokenizer, config(max_workers=3),
                        executor=Remote(own.url, "tiny", timeout_s=60))
        threading.Thread(target=interrupt_when_waiting, args=(own,), daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            engine.run(prompt_of(loaded))
        assert not own.delays_ended  # interrupted before any of the 30 s delays ran out
    assert not [t for t in threading.enumerate() if t.name.startswith("tim-remote")]


def test_engine_wants_a_model_or_an_executor(tiny, server):
    with pytest.raises(ValueError, match="either a model"):
        Engine(None, tiny.tokenizer, config())
    with pytest.raises(ValueError, match="either a model"):
        Engine(tiny.model, tiny.tokenizer, config(), executor=Remote(server.url, "tiny"))


def test_sampling_parameters_and_seeds_are_passed_through(tiny, server):
    engine = Engine(None, tiny.tokenizer, config(max_new_tokens=40),
                    executor=Remote(server.url, "tiny", chunk_tokens=4))
    first = engine.run(prompt_of(tiny), sampling=SamplingParams(temperature=1.0, top_p=0.9,
                                                                 top_k=20, seed=3))
    bodies, server.bodies[:] = list(server.bodies), []
    again = engine.run(prompt_of(tiny), sampling=SamplingParams(temperature=1.0, top_p=0.9,
                                                                 top_k=20, seed=3))
    assert {p: s.token_ids for p, s in again.streams.items()} == \
        {p: s.token_ids for p, s in first.streams.items()}
    assert [b["seed"] for b in server.bodies] == [b["seed"] for b in bodies]
    assert all((b["temperature"], b["top_p"], b["top_k"]) == (1.0, 0.9, 20) for b in bodies)
    assert len({b["seed"] for b in bodies}) > 1  # per stream and view length, not one seed
    server.bodies[:] = []
    engine.run(prompt_of(tiny), sampling=SamplingParams(temperature=1.0, seed=4))
    assert server.bodies[0]["seed"] != bodies[0]["seed"]
