"""``tim serve`` as a user starts it (``python -m tim serve --model tiny-qwen3``), and
``python -m tim`` behaving exactly as the ``tim`` script."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import openai
import pytest

from tim.cli import main

START_S = 120  # bounds on waiting for the process, never measured thresholds
TIM_SCRIPT = Path(sys.executable).with_name("tim")


def first_line(stream, timeout_s):
    """The first line the process writes, read in a thread so that waiting is bounded."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    return lines.get(timeout=timeout_s)


@pytest.mark.slow
def test_tim_serve_starts_on_loopback_answers_and_stops_cleanly():
    command = [sys.executable, "-m", "tim", "serve", "--model", "tiny-qwen3", "--port", "0",
               "--api-key", "k1", "--max-depth", "1", "--max-fanout", "2",
               "--max-string-chars", "4", "--kv-budget-tokens", "16384"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        line = first_line(proc.stdout, START_S)
        assert line.startswith("tim serve: tiny-qwen3 on http://127.0.0.1:"), line
        base_url = line.split(" on ", 1)[1].strip()
        client = openai.OpenAI(base_url=base_url, api_key="k1", max_retries=0, timeout=START_S)
        assert [m.id for m in client.models.list()] == ["tiny-qwen3"]
        reply = client.chat.completions.create(
            model="tiny-qwen3", messages=[{"role": "user", "content": "2 + 2?"}], max_tokens=30)
        ext = reply.model_extra["tim"]
        assert reply.usage.completion_tokens == ext["stats"]["tokens_generated"] == 30
        assert reply.choices[0].finish_reason == "length" and ext["answer"] is None
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful stop: the batcher closes its pool
        _, err = proc.communicate(timeout=START_S)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped; every KV page was freed" in err


def test_tim_serve_refuses_a_bad_argument_in_one_line(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--port", "-5"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tim serve: error: argument --port: must be >= 0" in err


def test_tim_serve_names_a_tool_that_does_not_import(capsys):
    assert main(["serve", "--model", "tiny-qwen3", "--tools", "math:no_such_fn"]) == 1
    err = capsys.readouterr().err
    assert "tim serve: error: --tools 'math:no_such_fn'" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["info"], ["no-such-command"], ["serve", "--port", "x"]])
def test_python_dash_m_tim_is_the_tim_command(args):
    assert TIM_SCRIPT.exists(), f"the tim script is not installed beside {sys.executable}"
    by_module = subprocess.run([sys.executable, "-m", "tim", *args], capture_output=True,
                               text=True, timeout=START_S, stdin=subprocess.DEVNULL)
    by_script = subprocess.run([str(TIM_SCRIPT), *args], capture_output=True, text=True,
                               timeout=START_S, stdin=subprocess.DEVNULL)
    assert by_module.returncode == by_script.returncode
    assert by_module.stdout == by_script.stdout
    # argparse names the program from argv[0]; python -m tim and the script both say "tim"
    assert by_module.stderr == by_script.stderr
