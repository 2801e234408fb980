"""The machine a benchmark ran on, as the first line of every report names it.

The scripts import this from their own folder (``python benchmarks/bench_*.py`` puts it on
``sys.path``), as ``bench_tree.py`` imports ``bench_engine.py``.
"""

from __future__ import annotations

import datetime
import os
import platform

import torch

__all__ = ["loadavg", "machine", "machine_line"]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, or ``"?"`` where ``/proc/loadavg`` is missing."""
    if not os.path.exists("/proc/loadavg"):
        return "?"
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine(threads: int | None = None) -> dict:
    """CPU, cores, torch and Python versions, torch threads (default: torch's current number),
    date, and the load average now (``loadavg_at_start``)."""
    cpu = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads() if threads is None else threads,
            "python": platform.python_version(), "date": datetime.date.today().isoformat(),
            "loadavg_at_start": loadavg()}


def machine_line(info: dict) -> str:
    """The first line of a report: CPU, torch, threads, date and load average."""
    return (f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
            f"({info['threads']} threads), Python {info['python']}, {info['date']}; load "
            f"average {info['loadavg_at_start']} at start, {info.get('loadavg_at_end', '?')} "
            f"at end")
