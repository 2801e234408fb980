"""tim/tools/executor.py: timeouts, concurrency, hung tools, shutdown and interpreter exit.

Nothing here depends on how fast a loaded machine is: concurrency is shown by calls that
meet or count each other, ordering by events; a time bound only catches a call that never
returns, with a margin of many seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict

import pytest

from tim.errors import TimError
from tim.tools import ToolExecutor, ToolRegistry, tool

RELEASE = threading.Event()  # hung tools wait on it; set at the end so no thread lingers
HANGING = defaultdict(threading.Event)  # HANGING[tag] is set once hang(tag) is running
NEVER = 30.0  # seconds: a bound that only a call that never returns can pass


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
    HANGING[tag].set()
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
        assert time.perf_counter() - start < NEVER, "the watchdog never resolved the call"
        time.sleep(0.01)
    waited = time.perf_counter() - start
    outcome = future.result()
    message = "tool 'hang' timed out after 0.2 s; it may still be running in the background"
    assert outcome.error == message and json.loads(outcome.result_json) == {"error": message}
    assert 0.2 <= waited and 0.2 <= outcome.elapsed_s <= waited  # never before its timeout
    executor.shutdown()


def test_per_tool_timeout_overrides_the_default():
    with ToolExecutor(REGISTRY, timeout_s=10 * NEVER) as executor:
        outcome = executor.submit("quick_hang", {}).result(timeout=NEVER)  # not the default
    assert outcome.error.startswith("tool 'quick_hang' timed out after 0.1 s")


def test_two_slow_tools_run_in_parallel():
    both_running = threading.Barrier(2)

    def meet() -> str:
        """Return once the other call is running too."""
        both_running.wait(timeout=NEVER)  # run one after the other, the first breaks it
        return "met"

    with ToolExecutor(ToolRegistry([meet]), timeout_s=2 * NEVER, max_workers=2) as executor:
        futures = [executor.submit("meet", {}) for _ in range(2)]
        outcomes = [f.result(timeout=2 * NEVER) for f in futures]
    assert [(o.result_json, o.error) for o in outcomes] == [('"met"', None)] * 2


@pytest.mark.parametrize("max_workers", [1, 2])
def test_max_workers_bounds_concurrency(max_workers):
    lock, running, most = threading.Lock(), [0], [0]

    def count() -> int:
        """Count the calls running at once."""
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)  # overlap, if the executor allows it
        with lock:
            running[0] -= 1
        return 0

    with ToolExecutor(ToolRegistry([count]), timeout_s=NEVER,
                      max_workers=max_workers) as executor:
        futures = [executor.submit("count", {}) for _ in range(6)]
        assert all(f.result(timeout=NEVER).error is None for f in futures)
    assert 1 <= most[0] <= max_workers


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
    assert HANGING["c"].wait(timeout=NEVER)  # the worker runs the hung call
    assert returns(executor.shutdown)  # waiting for it would be waiting forever
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
    assert HANGING["d"].wait(timeout=NEVER)  # both calls are running
    assert returns(lambda: executor.shutdown(wait=True))  # the hung one times out
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
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=4 * NEVER)  # far less than the 600 s it would hang
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tool 'stuck' timed out after 0.1 s")


def returns(call) -> bool:
    """True if ``call()`` returns within ``NEVER`` seconds (it runs in a helper thread)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=NEVER)
    return not thread.is_alive()


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
    deadline = time.perf_counter() + NEVER
    while len(follow_ups) < 2 and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert [f.result(timeout=NEVER).result_json for f in follow_ups] == ['"slept 0.0"'] * 2
    executor.shutdown()
