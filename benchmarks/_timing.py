"""Timing helper shared by the speed benchmarks (ratios measured in one run)."""

import os
import statistics
import time
from typing import Callable

def interleaved_rates(fns: dict[str, Callable[[], object]], rounds: int) -> dict:
    """Alternate single calls of every fn for ``rounds`` rounds (after one warm-up call each);
    median calls/s by wall-clock and by CPU time, and the 1-minute load average around it."""
    load_before = os.getloadavg()[0]
    for fn in fns.values():
        fn()
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            cpu[k].append(time.process_time() - c)
            wall[k].append(time.perf_counter() - w)
    return {"wall_it_per_s": {k: 1 / statistics.median(v) for k, v in wall.items()},
            "cpu_it_per_s": {k: 1 / statistics.median(v) for k, v in cpu.items()},
            "loadavg_1min": (load_before, os.getloadavg()[0])}
