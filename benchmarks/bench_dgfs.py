"""Training speed of DGFS (SubTB) and TB on CPU (pytest-benchmark; run with ``make bench``).

Funnel-10, N = 100 steps, FourierMLP 2 x 64, batch 256 (DGFS, the DGFS reference budget) and
300 (TB, the gfn-diffusion budget). Each logz sampler is timed against a faithful
re-implementation of its reference training loop, in the same process with the same thread
count, single iterations interleaved so that both see the same machine load:

- ``_reference_dgfs_iteration``, after the official DGFS code (``gflownet.sample_traj`` and
  ``SubTrajectoryBalanceTransitionBased.train_step``): a rollout that evaluates, at every
  step, the PIS-Grad drift (score by autograd, time features recomputed for every row, the
  ``TimeConder`` on the scalar t) and the interpolated log-flow target of the new states
  (log R of every state), with ``x.abs().max().item()`` and the trajectory kept on the CPU;
  then ONE ADAM STEP PER PATH (256 per iteration), each re-scoring its path (drift with the
  score on its N states, the flow net on its N+1 states) in a SubTB loss over all pairs.
- ``_reference_tb_iteration``, after gfn-diffusion (``fwd_tb`` with ``get_trajectory_fwd``,
  PIS architectures, Langevin drift): a rollout that computes, at every step, the drift with
  its graph (score by autograd, per-row time features, per-row Langevin scaling), stores
  log P_F and log P_B per step, then the TB loss over the batch, one backward, one Adam step.

Both run on logz's ``Funnel`` and logz's modules with the references' layer shapes (so the
network arithmetic per row is the same and only the loop differs), not on the references'
own target classes. The figures REFERENCE.md gives for the real code on a 2-core CPU:
gfn-diffusion TB, batch 300: about 4.1 it/s; official DGFS code, batch 256: about 2.6 it/s
(including its evaluations).

Reported (``extra_info`` and printed): median it/s of both from wall-clock time and from the
process's CPU time (robust to other jobs on a shared machine), their ratios, and the 1-minute
load average before and after.

Run:  python -m pytest benchmarks/bench_dgfs.py --benchmark-only -s
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from logz.samplers.dgfs import DGFS
from logz.samplers.losses import subtb_weights
from logz.samplers.nets import FourierMLP, TimeScale
from logz.targets.funnel import Funnel
from _timing import interleaved_rates  # noqa: E402  (benchmarks/ is on sys.path)

REFERENCE_IT_PER_S = {"subtb": 2.6, "tb": 4.1}  # REFERENCE.md, 2-core CPU
STEPS, DT, HIDDEN = 100, 0.01, 64
LOG_2PI = math.log(2 * math.pi)


def _normal_logp(x, std):
    """Sum over the last dim of log N(x; 0, std^2) (std a float or broadcastable tensor)."""
    std = torch.as_tensor(std, dtype=x.dtype)
    return (-0.5 * (x / std) ** 2 - torch.log(std) - 0.5 * LOG_2PI).sum(-1)


def _score(target, x):
    """grad log p~ by autograd on a detached copy, as the references compute it."""
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        return torch.autograd.grad(target.log_prob(xg).sum(), xg)[0]


class _ReferenceDGFS:
    """The official DGFS training loop (see the module docstring), batch 256, sigma 1."""

    def __init__(self, target, batch=256, sigma=1.0, lam=2.0, clip=1e4, log_r_min=-1e6):
        torch.manual_seed(0)
        d = target.dim
        self.target, self.batch, self.sigma, self.clip, self.log_r_min = target, batch, sigma, clip, log_r_min
        self.policy = FourierMLP(d, hidden=HIDDEN, layers=2)
        self.lgv_coef = TimeScale(1, hidden=HIDDEN, layers=3)  # TimeConder(64, 1, 3)
        self.flow = FourierMLP(d, 1, hidden=HIDDEN, layers=2)
        self.t_end = STEPS * DT
        self.coef = subtb_weights(STEPS, lam, torch.float32)
        self.opt = torch.optim.Adam([
            {"params": list(self.policy.parameters()) + list(self.lgv_coef.parameters()), "lr": 1e-4},
            {"params": self.flow.parameters(), "lr": 1e-3}], weight_decay=1e-7)
        self.gen = torch.Generator().manual_seed(0)

    def log_r(self, x):
        lp = self.target.log_prob(x).detach()
        return torch.where(torch.isinf(lp), self.log_r_min, lp).clamp(min=self.log_r_min)

    def drift(self, t, x):  # t: 0-dim (rollout) or Tensor[N, 1] (re-scoring)
        x = torch.nan_to_num(x)
        grad = torch.clip(torch.nan_to_num(_score(self.target, x)), -self.clip, self.clip)
        f = torch.clip(self.policy(x, t.reshape(-1).expand(x.shape[0])), -self.clip, self.clip)
        return f + self.lgv_coef(t.reshape(-1)) * grad

    def fl_inter_logr(self, x, t):
        ratio = t / self.t_end
        coef = max(math.sqrt(0.01 * self.t_end), math.sqrt(t))
        return self.log_r(x) * ratio + _normal_logp(x, coef * self.sigma) * (1 - ratio)

    def iteration(self):
        B, d, sigma = self.batch, self.target.dim, self.sigma
        x = torch.zeros(B, d)
        traj = [(torch.tensor(0.0), x.cpu(), self.fl_inter_logr(x, 0.0).cpu())]
        x_max = 0.0
        for i in range(STEPS):  # sample_traj (no torch.no_grad in the reference)
            t = torch.tensor(i * DT)
            noise = torch.randn(B, d, generator=self.gen)
            u = self.drift(t, x)
            x = (x + u * sigma * DT + noise * sigma * math.sqrt(DT)).detach()
            fl = self.fl_inter_logr(x, (i + 1) * DT).detach().cpu()
            traj.append((t + DT, x.detach().cpu(), fl))
            x_max = max(x_max, x.abs().max().item())
        states = torch.stack([s for _, s, _ in traj], 1)  # [B, N+1, d]
        times = torch.stack([t for t, _, _ in traj]).view(-1, 1)  # [N+1, 1]
        log_rs = torch.stack([r for _, _, r in traj], 1)  # [B, N+1]
        for b in range(B):  # train_step: one Adam step per path
            s_b = states[b]
            mean = s_b[:-1] + self.drift(times[:-1], s_b[:-1]) * sigma * DT
            log_pf = _normal_logp(s_b[1:] - mean, sigma * math.sqrt(DT))
            t1 = times[1:]
            pb_mean = (t1 - DT) / t1 * s_b[1:]
            pb_std = ((t1 - DT) / t1).sqrt() * math.sqrt(DT) * sigma
            log_pb = torch.where((t1 <= DT).squeeze(1), 0.0, _normal_logp(s_b[:-1] - pb_mean, pb_std))
            flow_b = self.flow(s_b, times.reshape(-1)).squeeze(-1) + log_rs[b]
            flow_b = torch.cat([flow_b[:-1], log_rs[b][-1:]])
            diff = torch.cat([torch.zeros(1), (log_pf - log_pb).cumsum(-1)])
            a2 = flow_b[:, None] - flow_b[None, :] + (diff[None, :] - diff[:, None])
            if not torch.all(torch.isfinite(a2)):
                raise RuntimeError("non-finite SubTB residual")
            loss = torch.triu((a2 / d).pow(2) * self.coef, diagonal=1).sum()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return loss.item(), x_max


class _ReferenceTB:
    """gfn-diffusion's forward TB loop (see the module docstring), batch 300, PIS architectures."""

    def __init__(self, target, batch=300, t_scale=1.0, lgv_clip=1e2, gfn_clip=1e4):
        torch.manual_seed(0)
        d = target.dim
        self.target, self.batch, self.lgv_clip, self.gfn_clip = target, batch, lgv_clip, gfn_clip
        self.std = math.sqrt(t_scale)
        self.policy = FourierMLP(d, hidden=HIDDEN, layers=2)  # t_model + s_model + joint_model
        self.lgv_scale = TimeScale(1, hidden=HIDDEN, layers=3)  # LangevinScalingModelPIS (one scale)
        self.log_z = torch.nn.Parameter(torch.tensor(0.0))  # flow_model (a scalar log Z)
        self.opt = torch.optim.Adam([
            {"params": list(self.policy.parameters()) + list(self.lgv_scale.parameters()), "lr": 1e-3},
            {"params": [self.log_z], "lr": 1e-1}])
        self.gen = torch.Generator().manual_seed(0)

    def iteration(self):
        B, d = self.batch, self.target.dim
        ts = torch.linspace(0, 1, STEPS + 1).expand(B, STEPS + 1)  # uniform discretizer, per row
        log_pf = torch.zeros(B, STEPS)
        log_pb = torch.zeros(B, STEPS)
        states = torch.zeros(B, STEPS + 1, d)
        s = torch.zeros(B, d)
        self.opt.zero_grad()
        for i in range(STEPS):
            dts = ts[:, i + 1] - ts[:, i]
            grad = torch.clip(torch.nan_to_num(_score(self.target, s)), -self.lgv_clip, self.lgv_clip)
            pf_mean = self.policy(s, ts[:, i]) + self.lgv_scale(ts[:, i]) * grad
            pf_mean = torch.clip(pf_mean, -self.gfn_clip, self.gfn_clip)
            log_var = torch.full_like(pf_mean, 2 * math.log(self.std))
            noise_std = dts.sqrt().unsqueeze(1) * (log_var / 2).exp()
            s_ = s + dts.unsqueeze(1) * pf_mean.detach() + noise_std * torch.randn(B, d, generator=self.gen)
            noise = ((s_ - s) - dts.unsqueeze(1) * pf_mean) / noise_std
            log_pf[:, i] = -0.5 * (noise ** 2 + LOG_2PI + dts.log().unsqueeze(1) + log_var).sum(1)
            if i > 0:
                back_mean = s_ - s_ * (dts / ts[:, i + 1]).unsqueeze(1)
                back_var = self.std ** 2 * (dts * ts[:, i] / ts[:, i + 1]).unsqueeze(1) * torch.ones_like(s_)
                noise_b = (s - back_mean) / back_var.sqrt()
                log_pb[:, i] = -0.5 * (noise_b ** 2 + LOG_2PI + back_var.log()).sum(1)
            s = s_
            states[:, i + 1] = s
        with torch.no_grad():
            log_r = self.target.log_prob(states[:, -1]).detach()
        loss = 0.5 * ((log_pf.sum(-1) + self.log_z - log_pb.sum(-1) - log_r) ** 2).mean()
        loss.backward()
        self.opt.step()
        return loss.item()




@pytest.mark.parametrize("loss, batch", [("subtb", 256), ("tb", 300)])
@pytest.mark.parametrize("threads", [1, 2])
def test_dgfs_training_speed_funnel10(benchmark, loss, batch, threads):
    torch.set_num_threads(threads)
    target = Funnel(10)
    sampler = DGFS(target, loss=loss, batch_size=batch, num_steps=STEPS, dt=DT, hidden=HIDDEN, layers=2, seed=0)
    benchmark.pedantic(lambda: sampler.fit(1, progress=False), rounds=5, iterations=1, warmup_rounds=1)
    reference = _ReferenceDGFS(target, batch) if loss == "subtb" else _ReferenceTB(target, batch)
    # the DGFS reference loop takes about a second per iteration: fewer rounds
    res = interleaved_rates({"logz": lambda: sampler.fit(1, progress=False), "reference": reference.iteration},
                            rounds=4 if loss == "subtb" else 10)
    w, c = res["wall_it_per_s"], res["cpu_it_per_s"]
    benchmark.extra_info.update(
        loss=loss, batch=batch, threads=threads, logz_it_per_s=w["logz"], reference_loop_it_per_s=w["reference"],
        ratio=w["logz"] / w["reference"], logz_cpu_it_per_s=c["logz"], reference_loop_cpu_it_per_s=c["reference"],
        cpu_ratio=c["logz"] / c["reference"], reference_code_it_per_s=REFERENCE_IT_PER_S[loss],
        loadavg_1min=res["loadavg_1min"], cpu_count=os.cpu_count())
    print(f"\n[{loss}, batch {batch}, {threads} thread(s)] wall: logz {w['logz']:.2f} it/s, reference loop "
          f"{w['reference']:.2f} it/s, ratio {w['logz'] / w['reference']:.2f} | CPU time: logz {c['logz']:.2f}, "
          f"reference {c['reference']:.2f}, ratio {c['logz'] / c['reference']:.2f} | REFERENCE.md: "
          f"{REFERENCE_IT_PER_S[loss]} it/s | load average {res['loadavg_1min'][0]:.1f} -> {res['loadavg_1min'][1]:.1f}")
