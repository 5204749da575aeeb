"""Speed of the SDE core, Adjoint Sampling training and SMC (pytest-benchmark; ``make bench``).

- SDE core: Euler–Maruyama steps per second of ``logz.sde.integrate`` with a 2 x 64
  FourierMLP control (batch 256, dim 10, 100 steps, per-step log-densities and the
  Brownian-bridge backward kernel), and its network-free overhead: ``integrate`` without a
  control against a bare loop ``x += g sqrt(dt) eps`` doing the same arithmetic.
- Adjoint Sampling training iterations per second on DW-4 at its default (reference-size)
  settings: batch 256, 100 steps, 2 x 64 net. PIS / DDS and DGFS / TB training speeds are in
  ``bench_pis_dds.py`` and ``bench_dgfs.py``.
- SMC: particle moves per second (HMC moves x particles) on Funnel-10 with 2000 particles.

Rates go to ``extra_info`` with the 1-minute load average: the team's machine is shared,
so compare runs only at similar load. Run:

    python -m pytest benchmarks/bench_core.py --benchmark-only -o python_files='bench_*.py' -s
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from logz.samplers.adjoint_sampling import AdjointSampling
from logz.samplers.nets import FourierMLP
from logz.samplers.smc import SMC
from logz.sde import BrownianReference, integrate, uniform_grid
from logz.targets import dw4
from logz.targets.funnel import Funnel

BATCH, DIM, STEPS, G, T = 256, 10, 100, math.sqrt(0.2), 5.0


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_sde_core_steps_per_second(benchmark, grad):
    """integrate() with a network control; with ``grad`` the backward pass is included."""
    torch.manual_seed(0)
    ref = BrownianReference(G)
    times = uniform_grid(T, STEPS)
    net = FourierMLP(DIM, hidden=64, layers=2, T=T, zero_init=False)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.zeros(BATCH, DIM)

    def run() -> None:
        with torch.set_grad_enabled(grad):
            traj = integrate(ref, x0, times, net, generator=gen, keep_path=False, keep_steps=False)
            if grad:
                (traj.control_cost.mean() + traj.log_forward_sum.mean()).backward()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    rate = STEPS / benchmark.stats.stats.mean
    benchmark.extra_info.update(steps_per_s=rate, batch=BATCH, dim=DIM, loadavg_1min=_load())
    print(f"\nSDE core ({'with' if grad else 'no'} backward): {rate:.0f} steps/s")


@pytest.mark.parametrize("log_densities", [False, True])
def test_sde_core_network_free_overhead(benchmark, log_densities):
    """integrate() without a control (and without the bridge term) vs a bare Euler–Maruyama loop
    doing the same arithmetic: the core's own per-step overhead."""
    ref = BrownianReference(G)
    times = uniform_grid(T, STEPS)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.zeros(BATCH, DIM)
    std = G * math.sqrt(T / STEPS)

    def bare() -> torch.Tensor:
        x, lf = x0, torch.zeros(BATCH)
        for _ in range(STEPS):
            eps = torch.randn(x.shape, generator=gen)
            x = x + std * eps
            if log_densities:
                lf = lf - 0.5 * eps.pow(2).sum(-1)
        return x

    def core() -> None:
        integrate(ref, x0, times, None, reference=False, generator=gen, log_densities=log_densities,
                  keep_path=False, keep_steps=False)

    import time
    bare()  # warm-up
    start = time.perf_counter()
    for _ in range(5):
        bare()
    bare_s = (time.perf_counter() - start) / 5
    benchmark.pedantic(core, rounds=5, iterations=1, warmup_rounds=1)
    core_s = benchmark.stats.stats.mean
    benchmark.extra_info.update(steps_per_s=STEPS / core_s, bare_steps_per_s=STEPS / bare_s,
                                overhead_us_per_step=1e6 * (core_s - bare_s) / STEPS,
                                ratio_to_bare=core_s / bare_s, loadavg_1min=_load())
    print(f"\nnetwork-free core: {STEPS / core_s:.0f} steps/s, bare loop {STEPS / bare_s:.0f} steps/s, "
          f"overhead {1e6 * (core_s - bare_s) / STEPS:.0f} us/step")


@pytest.mark.parametrize("network,layers", [("mlp", 2), ("egnn", 3)])
def test_adjoint_sampling_training_speed_dw4(benchmark, network, layers):
    """Adjoint Sampling iterations per second (batch 256, 100 steps, width 64; buffer refresh included)."""
    sampler = AdjointSampling(dw4(), batch_size=256, num_steps=100, hidden=64, layers=layers, network=network, seed=0)
    sampler.fit(1, progress=False)  # optimizer and first buffer outside the timing
    per_round = sampler.refresh_every  # one buffer refresh per round, as in a long run
    benchmark.pedantic(lambda: sampler.fit(per_round, progress=False), rounds=3, iterations=1)
    rate = per_round / benchmark.stats.stats.mean
    benchmark.extra_info.update(it_per_s=rate, loadavg_1min=_load())
    print(f"\nAdjoint Sampling DW-4 ({network}): {rate:.1f} it/s")


def test_smc_moves_per_second_funnel10(benchmark):
    """SMC on Funnel-10, 2000 particles (8 replicates): particle HMC moves per second."""
    smc = SMC(Funnel(10), seed=0)
    results = []
    benchmark.pedantic(lambda: results.append(smc.run(2000)), rounds=3, iterations=1)
    temps = sum(r.num_temperatures for r in results) / len(results)
    moves = temps * smc.num_mcmc_steps * 2000
    rate = moves / benchmark.stats.stats.mean
    benchmark.extra_info.update(moves_per_s=rate, temperatures=temps, leapfrog_steps=smc.leapfrog_steps,
                                gradients_per_s=rate * smc.leapfrog_steps, loadavg_1min=_load())
    print(f"\nSMC Funnel-10: {temps:.0f} temperatures, {rate:.3g} particle moves/s")
