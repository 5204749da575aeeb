"""SCLD's training loss: the log-variance of each segment's incremental weights, summed over
segments, on detached sub-trajectories of the sequential process itself (resampled and
MCMC-refreshed between segments, so every segment starts near its gamma_{k_{s-1}}):

    loss = sum_s Var_i [ log gamma_{k_s}(x_{k_s}) - log gamma_{k_{s-1}}(x_{k_{s-1}})
                         + sum_{k in s} (log B_k - log F_k) ]   / dim,

re-scored under the current control, schedule and step sizes (``annealed_langevin``). Each
iteration runs one particle system of ``batch_size`` particles. With the sampler's replay
buffer (``subtrajectory_buffer``, SCLD's default) the batch of every segment is half fresh
sub-trajectories (a random half of this run's) and half drawn from the buffer by priority,
whose priorities are then set to their re-scored increments (SCLD repository,
``algorithms/scld/scld.py``, training with buffer); without it, all of this run's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from logz.samplers import annealed_langevin as al
from logz.samplers.objectives import Objective
from logz.samplers.objectives.kl import KLInfo


#: a segment's log-variance is clipped here (SCLD repository, ``loss_fns.py``: 1e7)
VARIANCE_CLIP = 1e7


#: MAD x this = the standard deviation, for a normal sample
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class SubLogVarianceConfig:
    """winsorize: a segment's increments are clamped to median +- winsorize x their robust
    standard deviation (1.4826 MAD) before the variance (math.inf: the plain log-variance).
    Why: where the unadjusted Langevin kernel is unstable (eps_k x curvature > 2, e.g. deep
    in a funnel's neck) a few particles get increments thousands of nats off; they carry no
    weight in the estimate (resampled away) but dominate the plain variance and its gradient,
    which then drives the control at random (measured on Funnel-10: loss ~1e6 at u = 0,
    estimates -0.07 -> -4.9 in 100 iterations). Clamped rows give no gradient; on a
    well-behaved segment (increments near normal) 5 robust SDs clamp almost nothing."""

    winsorize: float = 5.0

    def validate(self) -> "SubLogVarianceConfig":
        w = self.winsorize
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise ValueError(f"winsorize must be a number > 0 (math.inf: off), got {w!r}")
        return self


class SubLogVariance(Objective):
    name = "subtraj"

    def __init__(self, config: SubLogVarianceConfig = SubLogVarianceConfig()):
        self.config = config.validate()

    def __repr__(self) -> str:
        return f"SubLogVariance(winsorize={self.config.winsorize})"

    def simulate(self, s, iteration: int) -> tuple:
        from logz.samplers.sequential import Segment

        segments: list = []
        result = s.run_particles(1, s.local_batch_size, s.generator, training=True, record=segments)
        buffer = getattr(s, "buffer", None)
        if buffer is None:
            return segments, result.log_z, None
        buffer.add(segments)
        half = s.local_batch_size // 2
        order = torch.randperm(s.local_batch_size, generator=s.generator, device=s.generator.device)
        order = order.to(segments[0].log_g.device)
        alive = torch.ones_like(segments[0].log_g, dtype=torch.bool)
        for seg in segments:  # rows thrown out of the target's domain teach nothing (NaN states poison backward)
            alive &= torch.isfinite(seg.log_g) & torch.isfinite(seg.states).all(0).all(-1)
        fresh = order[alive[order]][:half]
        old, idx = buffer.sample(s.local_batch_size - half, s.generator)
        batch = [Segment(seg.k0, seg.k1, torch.cat([seg.states[:, fresh], o.states], 1),
                         torch.cat([seg.start_log_p[fresh], o.start_log_p]),
                         torch.cat([seg.end_log_p[fresh], o.end_log_p]), torch.cat([seg.log_g[fresh], o.log_g]))
                 for seg, o in zip(segments, old)]
        return batch, result.log_z, (idx, len(fresh))

    def loss(self, s, batch: tuple) -> tuple[Tensor, KLInfo]:
        segments, log_z, replayed = batch
        total, log_w, rescored = 0.0, 0.0, increments(s, segments)
        for inc in rescored:
            inc = s.shard.gather(inc)
            inc = winsorized(inc[torch.isfinite(inc)], self.config.winsorize)
            # float64: a particle deep in a funnel's neck has log p~ ~ -1e20, whose square
            # overflows float32; the clip (the reference code's, 1e7) leaves such a segment
            # without gradient for one iteration rather than stopping the training
            total = total + inc.double().var(unbiased=False).clamp(max=VARIANCE_CLIP).to(inc.dtype)
            log_w = log_w + inc.detach().mean()
        if replayed is not None:
            idx, half = replayed
            s.buffer.update(idx, [g.detach()[half:] for g in rescored])
        # log_z: this run's sequential estimate; elbo: sum of the segments' mean log G
        return total / s.dim, KLInfo(log_z.detach().reshape(()), torch.as_tensor(log_w))


def winsorized(inc: Tensor, width: float) -> Tensor:
    """inc Tensor[B] clamped to median +- width x 1.4826 MAD (bounds detached; unchanged when
    width is inf or the MAD is 0)."""
    if math.isinf(width) or inc.numel() < 3:
        return inc
    ref = inc.detach()
    med = ref.median()
    sd = MAD_TO_SD * (ref - med).abs().median()
    half = torch.where(sd > 0, width * sd, torch.full_like(sd, math.inf))  # no host sync
    return torch.minimum(torch.maximum(inc, med - half), med + half)


def increments(s, segments) -> list[Tensor]:
    """Each segment's increments log G [B_s] under the sampler's current control, schedule and
    step sizes, with the graph. Segments of equal length are scored in one batched call (with
    every step a segment, one call instead of N)."""
    betas, eps = s.annealing.betas(), s.annealing.step_sizes()
    out: list = [None] * len(segments)
    by_length: dict[int, list[int]] = {}
    for i, seg in enumerate(segments):
        by_length.setdefault(seg.k1 - seg.k0, []).append(i)
    for L, members in by_length.items():
        group = [segments[i] for i in members]
        sizes = [seg.states.shape[1] for seg in group]
        states = torch.cat([seg.states for seg in group], 1)  # [L+1, rows, d]
        k0 = torch.tensor([seg.k0 for seg in group]).repeat_interleave(torch.tensor(sizes)).to(states.device)
        steps = k0[None, :] + torch.arange(L + 1, device=states.device)[:, None]  # [L+1, rows]
        M1, rows, d = states.shape
        flat = states.reshape(M1 * rows, d)
        u = s.policy()(flat, s.times[steps.reshape(-1)]).view(M1, rows, d)
        terms = al.PathTerms(states, s.kernel_score(flat).view(M1, rows, d), u)
        log_f, log_b = al.log_densities(terms, betas[steps[1:]], eps[steps[:-1]], s.init_var)
        start_log_p = torch.cat([seg.start_log_p for seg in group])
        end_log_p = torch.cat([seg.end_log_p for seg in group])
        inc = (al.log_gamma(end_log_p, states[-1], betas[steps[-1]], s.init_var)
               - al.log_gamma(start_log_p, states[0], betas[steps[0]], s.init_var) + (log_b - log_f).sum(0))
        for i, part in zip(members, torch.split(inc, sizes)):
            out[i] = part
    return out


__all__ = ["SubLogVariance", "SubLogVarianceConfig", "VARIANCE_CLIP", "increments", "winsorized"]
