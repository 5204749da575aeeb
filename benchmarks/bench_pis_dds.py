"""Speed and memory of PIS / DDS training (pytest-benchmark; run with ``make bench``).

Training iterations per second on Funnel-10, batch 300, 100 steps, hidden 64, CPU, for
logz and — in the same run, same process, same thread count — a reference-style loop
(``_reference_style_iteration``): a re-implementation of how the PIS / DGFS /
gfn-diffusion code computes one PIS-loss iteration (time features recomputed for every
row at every step, the score by autograd with a detach, the control cost summed in a
Python loop). It is NOT the reference code itself; REFERENCE.md's figure for the real
code on a 2-core CPU is about 4 it/s (gfn-diffusion TB) and 3.2 it/s (its PIS loss).
The ratio logz / reference-style is stored in ``extra_info`` with the load average.

Run:  python -m pytest benchmarks/bench_pis_dds.py --benchmark-only [-s]
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
import torch

from logz.samplers.dds import DDS
from logz.samplers.nets import FourierMLP, TimeScale
from logz.samplers.pis import PIS
from logz.targets.funnel import Funnel

BATCH, STEPS, HIDDEN = 300, 100, 64


def _reference_style_iteration(policy, scale, optimizer, target, gen, g=math.sqrt(0.2), T=5.0):
    """One PIS-loss iteration written the way the reference code does it."""
    dt = T / STEPS
    B, d = BATCH, target.dim
    x = torch.zeros(B, d)
    cost = torch.zeros(B)
    for i in range(STEPS):
        t = torch.full((B, 1), i * dt / T)  # per-row time, features recomputed every step
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            grad = torch.autograd.grad(target.log_prob(xg).sum(), xg)[0].detach()
        grad = torch.nan_to_num(grad).clamp(-1e2, 1e2)
        u = (policy(x, t.squeeze(-1)) + scale(t.squeeze(-1)) * grad).clamp(-1e4, 1e4)
        noise = torch.randn(B, d, generator=gen)
        x = x + g * u * dt + g * math.sqrt(dt) * noise
        cost = cost + 0.5 * (u ** 2).sum(-1) * dt
    terminal = -0.5 * (x ** 2).sum(-1) / (g * g * T) - 0.5 * d * math.log(2 * math.pi * g * g * T)
    loss = ((cost + terminal - target.log_prob(x)) / d).mean()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(policy.parameters()) + list(scale.parameters()), 1.0)
    optimizer.step()
    return loss.item()


def _its_per_second(fn, n: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


@pytest.mark.parametrize("threads", [1, 2])
def test_pis_training_speed_funnel10(benchmark, threads):
    torch.set_num_threads(threads)
    target = Funnel(10)
    sampler = PIS(target, batch_size=BATCH, num_steps=STEPS, hidden=HIDDEN, layers=2, seed=0)
    benchmark.pedantic(lambda: sampler.fit(1, progress=False), rounds=10, iterations=1,
                       warmup_rounds=1)
    torch.manual_seed(0)
    policy, scale = FourierMLP(10, hidden=HIDDEN, layers=2), TimeScale(1, hidden=HIDDEN, layers=2)
    opt = torch.optim.Adam(list(policy.parameters()) + list(scale.parameters()), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    # interleave the two measurements so both see the same machine load
    logz_rates, ref_rates = [], []
    for _ in range(3):
        logz_rates.append(_its_per_second(lambda: sampler.fit(1, progress=False), 3))
        ref_rates.append(_its_per_second(lambda: _reference_style_iteration(policy, scale, opt, target, gen), 3))
    logz_its, ref_its = max(logz_rates), max(ref_rates)
    benchmark.extra_info.update(
        threads=threads, logz_it_per_s=logz_its, reference_style_it_per_s=ref_its,
        ratio=logz_its / ref_its, loadavg_1min=os.getloadavg()[0], cpu_count=os.cpu_count())
    print(f"\n[{threads} thread(s)] logz PIS {logz_its:.2f} it/s, reference-style {ref_its:.2f} it/s, "
          f"ratio {logz_its / ref_its:.2f}, load average {os.getloadavg()[0]:.1f}")


def test_dds_training_speed_funnel10(benchmark):
    torch.set_num_threads(1)
    sampler = DDS(Funnel(10), batch_size=BATCH, num_steps=STEPS, hidden=HIDDEN, layers=2, seed=0)
    benchmark.pedantic(lambda: sampler.fit(1, progress=False), rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(loadavg_1min=os.getloadavg()[0])


_MEMORY_SCRIPT = """
import resource, sys, torch
torch.set_num_threads(1)
from logz.samplers.pis import PIS
from logz.targets.funnel import Funnel
chunk = None if sys.argv[1] == "none" else int(sys.argv[1])
s = PIS(Funnel(10), batch_size=1024, num_steps=1000, grad_checkpoint_steps=chunk, loss=sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s.fit(1, progress=False)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.parametrize("loss, chunk", [("kl", "none"), ("kl", "32"), ("vargrad", "none"), ("vargrad", "100")])
def test_memory_1000_steps_batch_1024(benchmark, loss, chunk):
    """Peak extra RSS (MiB) of one training iteration at 1000 steps x batch 1024."""
    def run() -> float:
        out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, chunk, loss], check=True,
                             capture_output=True, text=True)
        return float(out.stdout.strip())
    peak = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(peak_extra_rss_mib=peak, loss=loss, grad_checkpoint_steps=chunk)
    print(f"\n{loss} with grad_checkpoint_steps={chunk}: peak extra RSS {peak:.0f} MiB")
