"""Speed and memory of PIS / DDS training (pytest-benchmark; run with ``make bench``).

Training iterations per second on Funnel-10, batch 300, 100 steps, hidden 64 (2 layers), KL
loss, CPU, for logz and — in the same process, same thread count, single iterations
interleaved so that both see the same machine load — a faithful re-implementation of the
reference PIS training loop (``_reference_pis_iteration``, after Zhang & Chen's ``pis``
code: ``PISNN`` with ``f_format="t_tnet_grad"`` integrated by ``torchsde.sdeint(method=
"euler")``, ``loss_pis``):

- the SDE state is augmented with the control cost ([x, cost], ``quad_reg``) and every
  Euler step evaluates the drift and the diffusion of the augmented state, with a
  ``torch.cat`` each;
- the drift: ``nan_to_num`` of the state, the score by autograd (``BaseSet.score``), clipped,
  the ``FourierMLP`` with its time features recomputed for every row at every step (the
  reference expands t to the batch), the ``TimeConder`` c(t) (3 layers) on the scalar t;
- one backward through the whole simulation, one Adam step.

It runs on logz's ``Funnel`` and logz's modules with the reference's layer shapes, so both
sides do the same network arithmetic and only the loop differs; it omits torchsde's own
per-step overhead (its Brownian-increment bookkeeping) and the reference funnel's
``MultivariateNormal`` log-density, both of which make the real code slower. REFERENCE.md's
figure for the real PIS code on a 2-core CPU is about 4 it/s.

Reported (``extra_info`` and printed): median it/s of both from wall-clock time and from the
process's CPU time (robust to other jobs on a shared machine), their ratios, the 1-minute
load average before and after.

Run:  python -m pytest benchmarks/bench_pis_dds.py --benchmark-only -s
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from logz.samplers.dds import DDS
from logz.samplers.nets import FourierMLP, TimeScale
from logz.samplers.pis import PIS
from logz.targets.funnel import Funnel
from _timing import interleaved_rates  # noqa: E402  (benchmarks/ is on sys.path)

BATCH, STEPS, HIDDEN = 300, 100, 64


def _reference_pis_iteration(policy, lgv_coef, optimizer, target, gen, g=math.sqrt(0.2), T=5.0,
                             clip=1e4):
    """One training iteration of the reference PIS code's loop (see the module docstring)."""
    dt = T / STEPS
    B, d = BATCH, target.dim
    y = torch.zeros(B, d + 1)  # [x, control cost]
    for i in range(STEPS):
        t = torch.tensor(i * dt)
        x = torch.nan_to_num(y[:, :-1])
        with torch.no_grad():  # BaseSet.score: autograd of the energy on a detached copy
            xg = x.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                (-target.log_prob(xg)).sum().backward()
            grad = xg.grad.data
        grad = torch.clip(grad, -clip, clip)
        f = torch.clip(policy(x, t.expand(B)), -clip, clip)  # time features for every row
        control = f - lgv_coef(t) * grad
        dreg = 0.5 * control.pow(2).sum(-1, keepdim=True)  # quad_reg
        drift = torch.cat((control * g, dreg), dim=1)
        diffusion = torch.cat((torch.ones(B, d) * g, torch.zeros(B, 1)), dim=1)
        noise = torch.randn(B, d + 1, generator=gen) * math.sqrt(dt)
        y = y + drift * dt + diffusion * noise
    state = torch.nan_to_num(y[:, :-1])
    reg_loss = y[:, -1].mean() / d
    prior_nll = 0.5 * (state ** 2).sum(-1) / (g * g * T) + 0.5 * d * math.log(2 * math.pi * g * g * T)
    loss = reg_loss + (-target.log_prob(state).mean() - prior_nll.mean()) / d
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _reference_pis(target):
    torch.manual_seed(0)
    policy = FourierMLP(target.dim, hidden=HIDDEN, layers=2)
    lgv_coef = TimeScale(1, hidden=HIDDEN, layers=3)  # TimeConder(64, 1, 3)
    opt = torch.optim.Adam(list(policy.parameters()) + list(lgv_coef.parameters()), lr=5e-3,
                           weight_decay=1e-7)
    gen = torch.Generator().manual_seed(0)
    return lambda: _reference_pis_iteration(policy, lgv_coef, opt, target, gen)




def _report(benchmark, label: str, threads: int, res: dict, ours: str, ref: str) -> None:
    w, c = res["wall_it_per_s"], res["cpu_it_per_s"]
    benchmark.extra_info.update(
        threads=threads, logz_it_per_s=w[ours], reference_it_per_s=w[ref], ratio=w[ours] / w[ref],
        logz_cpu_it_per_s=c[ours], reference_cpu_it_per_s=c[ref], cpu_ratio=c[ours] / c[ref],
        loadavg_1min=res["loadavg_1min"], cpu_count=os.cpu_count())
    print(f"\n[{label}, {threads} thread(s)] wall: logz {w[ours]:.2f} it/s, reference loop {w[ref]:.2f} it/s, "
          f"ratio {w[ours] / w[ref]:.2f} | CPU time: logz {c[ours]:.2f}, reference {c[ref]:.2f}, "
          f"ratio {c[ours] / c[ref]:.2f} | load average {res['loadavg_1min'][0]:.1f} -> "
          f"{res['loadavg_1min'][1]:.1f}")


@pytest.mark.parametrize("threads", [1, 2])
def test_pis_training_speed_funnel10(benchmark, threads):
    torch.set_num_threads(threads)
    target = Funnel(10)
    sampler = PIS(target, batch_size=BATCH, num_steps=STEPS, hidden=HIDDEN, layers=2, loss="kl", seed=0)
    benchmark.pedantic(lambda: sampler.fit(1, progress=False), rounds=5, iterations=1, warmup_rounds=1)
    res = interleaved_rates({"logz": lambda: sampler.fit(1, progress=False),
                             "reference": _reference_pis(target)}, rounds=12)
    _report(benchmark, "PIS KL, Funnel-10, batch 300, 100 steps", threads, res, "logz", "reference")


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
