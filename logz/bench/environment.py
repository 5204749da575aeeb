"""What a benchmark record says about where it ran: peak memory of a block (CUDA allocator
peak or polled process RSS) and the versions / git commit / machine / device of the process."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional, Union

import torch


class PeakMemory:
    """Peak memory while the ``with`` block runs: CUDA allocator peak on a CUDA device, else the
    process RSS polled every ``interval`` s (Linux ``/proc/self/statm``) by a daemon thread.

    After exit: ``peak_mib`` (peak RSS or CUDA peak allocated), ``start_mib`` and ``kind``.
    """

    def __init__(self, device: torch.device, interval: float = 0.05):
        self.device, self.interval = device, interval
        self.kind = "cuda_allocated" if device.type == "cuda" else "rss"
        self.start_mib = self.peak_mib = math.nan
        self._stop = threading.Event()

    @staticmethod
    def rss_mib() -> float:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
        except (OSError, ValueError, IndexError):  # not Linux: the lifetime high-water mark
            import resource
            scale = 1 if sys.platform == "darwin" else 1024
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mib = max(self.peak_mib, self.rss_mib())

    def __enter__(self) -> "PeakMemory":
        if self.kind == "cuda_allocated":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_mib = torch.cuda.memory_allocated(self.device) / 2 ** 20
        else:
            self.start_mib = self.peak_mib = self.rss_mib()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "cuda_allocated":
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = max(self.peak_mib, self.rss_mib())


_ENV_CACHE: dict = {}


def environment(device: Union[str, torch.device, None] = None) -> dict:
    """Versions, git commit, machine and device of this process (cached per device)."""
    dev = torch.device(device or "cpu")
    if str(dev) in _ENV_CACHE:
        return dict(_ENV_CACHE[str(dev)])
    import numpy
    import logz

    repo = Path(logz.__file__).resolve().parent.parent

    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    status = git("status", "--porcelain", "--untracked-files=no")
    env = {"logz_version": logz.__version__, "torch_version": torch.__version__,
           "numpy_version": numpy.__version__, "python_version": platform.python_version(),
           "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
           "device": str(dev), "git_commit": git("rev-parse", "HEAD"),
           "git_dirty": None if status is None else bool(status)}
    if dev.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(dev)
    _ENV_CACHE[str(dev)] = env
    return dict(env)


__all__ = ["PeakMemory", "environment"]
