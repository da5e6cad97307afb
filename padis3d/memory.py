"""Peak resident memory of this process or of a child, in MiB, from Linux's ``VmHWM`` (the
high-water mark of a process's own address space, in ``/proc/PID/status``), its current
``VmRSS``, and the peak so far at the end of each stage of a run (:class:`StagePeaks`).

Hand-written because neither the standard library nor psutil reports another process's peak:
``resource`` gives ``ru_maxrss``, which Linux inflates with the parent's address space as it
was before ``exec``, and psutil has current RSS only."""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def vm_hwm_mb(pid: int | str = "self") -> float:
    """``VmHWM`` of process ``pid`` in MiB; 0 once it has exited (or off Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return 0.0


def vm_rss_mb(pid: int | str = "self") -> float:
    """``VmRSS`` (current resident memory) of process ``pid`` in MiB; 0 once it has exited (or off Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return 0.0


class StagePeaks:
    """Peak resident memory (``VmHWM``, MiB) at the end of each stage of a run.

    ``mark(name)`` records the high-water mark when stage ``name`` ends: the values rise
    stage by stage, and the first stage that reaches the run's peak is the one that set it.
    The mark is never reset (``/proc/self/clear_refs`` could, but that also resets what
    ``getrusage``, ``/usr/bin/time`` and a parent's ``wait4`` report as the peak)."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    def mark(self, name: str) -> float:
        """Close stage ``name``: the peak so far in MiB (also kept in ``stages``)."""
        hwm = peak_rss_mb()
        self.stages[name] = round(hwm, 1)
        return hwm

    @property
    def peak(self) -> float:
        """The run's peak resident memory so far, in MiB."""
        return peak_rss_mb()


def model_mb(module) -> float:
    """Bytes of a torch module's parameters and buffers, in MiB (the model's share of memory)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident memory so far in MiB: ``VmHWM``, else ``ru_maxrss``."""
    return vm_hwm_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        1024 if sys.platform != "darwin" else 2**20)


def wait_polling_peak(proc: subprocess.Popen, interval: float = 0.05) -> float:
    """Wait for ``proc`` to exit, polling its ``VmHWM``; the largest value seen, in MiB."""
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, vm_hwm_mb(proc.pid))
        time.sleep(interval)
    return peak
