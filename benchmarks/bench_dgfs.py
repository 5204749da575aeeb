"""Training speed of DGFS (SubTB) and TB on CPU (pytest-benchmark; run with ``make bench``).

Funnel-10, N = 100 steps, FourierMLP 2 x 64, batch 256 (DGFS, the DGFS reference budget) and
300 (TB, the gfn-diffusion budget). The figures to compare with are REFERENCE.md's, measured
on a 2-core CPU: gfn-diffusion TB, batch 300: about 4.1 it/s; official DGFS code, batch 256:
about 2.6 it/s (including its evaluations). The 1-minute load average is stored with every
measurement: the team's machine is shared, so compare runs only at similar load.

Run:  python -m pytest benchmarks/bench_dgfs.py --benchmark-only -s
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from logz.samplers.dgfs import DGFS
from logz.targets.funnel import Funnel

REFERENCE_IT_PER_S = {"subtb": 2.6, "tb": 4.1}  # REFERENCE.md, 2-core CPU


@pytest.mark.parametrize("loss, batch", [("subtb", 256), ("tb", 300)])
@pytest.mark.parametrize("threads", [1, 2])
def test_dgfs_training_speed_funnel10(benchmark, loss, batch, threads):
    torch.set_num_threads(threads)
    sampler = DGFS(Funnel(10), loss=loss, batch_size=batch, num_steps=100, hidden=64, layers=2, seed=0)
    benchmark.pedantic(lambda: sampler.fit(1, progress=False), rounds=8, iterations=1, warmup_rounds=1)
    start = time.perf_counter()
    sampler.fit(5, progress=False)
    its = 5 / (time.perf_counter() - start)
    benchmark.extra_info.update(
        loss=loss, batch=batch, threads=threads, it_per_s=its, reference_it_per_s=REFERENCE_IT_PER_S[loss],
        ratio_to_reference=its / REFERENCE_IT_PER_S[loss], loadavg_1min=os.getloadavg()[0],
        cpu_count=os.cpu_count())
    print(f"\n[{loss}, batch {batch}, {threads} thread(s)] logz {its:.2f} it/s "
          f"(reference code {REFERENCE_IT_PER_S[loss]} it/s), load average {os.getloadavg()[0]:.1f}")
