"""tim/tools/executor.py: timeouts, concurrency, hung tools, shutdown and interpreter exit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tim.errors import TimError
from tim.tools import ToolExecutor, ToolRegistry, tool

RELEASE = threading.Event()  # hung tools wait on it; set at the end so no thread lingers


@pytest.fixture(autouse=True, scope="module")
def _release_hung_tools():
    yield
    RELEASE.set()


def nap(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return f"slept {seconds}"


def hang(tag: str = "") -> str:
    """Wait until the test module ends."""
    RELEASE.wait()
    return "released " + tag


def boom() -> None:
    """Raise."""
    raise ValueError("boom")


def leave() -> None:
    """Exit the thread."""
    raise SystemExit(3)


@tool(timeout_s=0.1)
def quick_hang() -> str:
    """Hang, with its own short timeout."""
    RELEASE.wait()
    return "late"


REGISTRY = ToolRegistry([nap, hang, boom, leave, quick_hang])


def test_result_and_errors_resolve_as_outcomes():
    with ToolExecutor(REGISTRY, timeout_s=5) as executor:
        ok = executor.submit("nap", {"seconds": 0})
        raised = executor.submit("boom", {})
        exited = executor.submit("leave", {})
        unknown = executor.submit("nope", {})
        invalid = executor.submit("nap", {"seconds": "x"})
        outcomes = [f.result(timeout=5) for f in (ok, raised, exited, unknown, invalid)]
    assert outcomes[0].result_json == '"slept 0.0"' and outcomes[0].error is None
    assert outcomes[1].error == "tool 'boom' raised ValueError: boom"
    assert outcomes[2].error == "tool 'leave' raised SystemExit: 3"
    assert outcomes[3].error.startswith("unknown tool 'nope'")
    assert outcomes[4].error.startswith("invalid arguments for tool 'nap'")
    assert all(f.exception() is None for f in (ok, raised, exited, unknown, invalid))


def test_hung_tool_times_out_and_the_caller_can_poll():
    executor = ToolExecutor(REGISTRY, timeout_s=0.2)
    start = time.perf_counter()
    future = executor.submit("hang", {"tag": "a"})
    assert not future.done()
    while not future.done():
        assert time.perf_counter() - start < 5, "the watchdog never resolved the call"
        time.sleep(0.01)
    waited = time.perf_counter() - start
    outcome = future.result()
    message = "tool 'hang' timed out after 0.2 s; it may still be running in the background"
    assert outcome.error == message and json.loads(outcome.result_json) == {"error": message}
    assert 0.2 <= waited < 2 and 0.2 <= outcome.elapsed_s < 2
    executor.shutdown()


def test_per_tool_timeout_overrides_the_default():
    with ToolExecutor(REGISTRY, timeout_s=30) as executor:
        start = time.perf_counter()
        outcome = executor.submit("quick_hang", {}).result(timeout=5)
        assert time.perf_counter() - start < 2
    assert outcome.error.startswith("tool 'quick_hang' timed out after 0.1 s")


def test_two_slow_tools_run_in_parallel():
    with ToolExecutor(REGISTRY, timeout_s=5, max_workers=2) as executor:
        start = time.perf_counter()
        futures = [executor.submit("nap", {"seconds": 0.4}) for _ in range(2)]
        outcomes = [f.result(timeout=5) for f in futures]
        elapsed = time.perf_counter() - start
    assert [o.result_json for o in outcomes] == ['"slept 0.4"'] * 2
    assert elapsed < 0.75, f"took {elapsed:.2f} s: not parallel (sum would be 0.8 s)"


def test_max_workers_bounds_concurrency():
    with ToolExecutor(REGISTRY, timeout_s=5, max_workers=1) as executor:
        start = time.perf_counter()
        futures = [executor.submit("nap", {"seconds": 0.15}) for _ in range(3)]
        assert all(f.result(timeout=5).error is None for f in futures)
        assert time.perf_counter() - start >= 0.45


def test_a_hung_tool_does_not_block_later_calls():
    executor = ToolExecutor(REGISTRY, timeout_s=0.2, max_workers=1)
    hung = executor.submit("hang", {"tag": "b"})
    later = executor.submit("nap", {"seconds": 0})
    assert later.result(timeout=5).result_json == '"slept 0.0"'
    assert hung.result(timeout=0).error.startswith("tool 'hang' timed out")
    executor.shutdown()


def test_many_calls_all_resolve_with_their_own_results():
    with ToolExecutor(REGISTRY, timeout_s=5, max_workers=3) as executor:
        futures = [executor.submit("nap", {"seconds": i / 1000}) for i in range(30)]
        results = [f.result(timeout=10).result_json for f in futures]
    assert results == [json.dumps(f"slept {i / 1000}") for i in range(30)]


def test_cancelled_queued_call_is_skipped():
    executor = ToolExecutor(REGISTRY, timeout_s=0.3, max_workers=1)
    first = executor.submit("nap", {"seconds": 0.1})
    queued = executor.submit("nap", {"seconds": 0})
    assert queued.cancel() and queued.cancelled()
    after = executor.submit("nap", {"seconds": 0})
    assert first.result(timeout=5).error is None and after.result(timeout=5).error is None
    executor.shutdown()


def test_shutdown_does_not_wait_for_a_hung_tool():
    executor = ToolExecutor(REGISTRY, timeout_s=30, max_workers=1)
    running = executor.submit("hang", {"tag": "c"})
    queued = executor.submit("nap", {"seconds": 0})
    time.sleep(0.05)  # let the worker start the hung call
    start = time.perf_counter()
    executor.shutdown()
    assert time.perf_counter() - start < 0.5
    assert running.result(timeout=0).error == (
        "tool 'hang' was still running when the tool executor shut down")
    assert queued.result(timeout=0).error == "tool 'nap' did not run: the tool executor shut down"
    with pytest.raises(TimError, match="shut down; cannot call tool 'nap'"):
        executor.submit("nap", {"seconds": 0})
    executor.shutdown()  # a second call does nothing


def test_shutdown_wait_lets_running_calls_finish_or_time_out():
    executor = ToolExecutor(REGISTRY, timeout_s=0.3, max_workers=2)
    finishing = executor.submit("nap", {"seconds": 0.1})
    hung = executor.submit("hang", {"tag": "d"})
    time.sleep(0.05)
    start = time.perf_counter()
    executor.shutdown(wait=True)
    assert time.perf_counter() - start < 2
    assert finishing.result(timeout=0).result_json == '"slept 0.1"'
    assert hung.result(timeout=0).error.startswith("tool 'hang' timed out after 0.3 s")


def test_interpreter_exits_while_a_tool_hangs():
    script = textwrap.dedent("""
        import time
        from tim.tools import ToolExecutor, ToolRegistry

        def stuck() -> None:
            time.sleep(600)

        executor = ToolExecutor(ToolRegistry([stuck]), timeout_s=0.1)
        print(executor.submit("stuck", {}).result().error, flush=True)
        executor.submit("stuck", {})  # still running at exit, never shut down
    """)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tool 'stuck' timed out after 0.1 s")
    assert time.perf_counter() - start < 15


@pytest.mark.parametrize("kwargs, message", [
    ({"timeout_s": 0}, "timeout_s must be a positive number of seconds, got 0"),
    ({"timeout_s": float("nan")}, "got nan"),
    ({"max_workers": 0}, "max_workers must be a positive int, got 0"),
    ({"max_workers": 2.0}, "got 2.0"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ToolExecutor(REGISTRY, **kwargs)


def test_done_callbacks_may_submit_more_calls():
    # callbacks run in the thread that resolves the future (a worker or the watchdog); the
    # executor must not hold its lock then, or this would deadlock
    executor = ToolExecutor(REGISTRY, timeout_s=0.2, max_workers=2)
    follow_ups = []
    for name, params in (("nap", {"seconds": 0}), ("hang", {"tag": "e"})):
        executor.submit(name, params).add_done_callback(
            lambda _: follow_ups.append(executor.submit("nap", {"seconds": 0})))
    deadline = time.perf_counter() + 5
    while len(follow_ups) < 2 and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert [f.result(timeout=5).result_json for f in follow_ups] == ['"slept 0.0"'] * 2
    executor.shutdown()
