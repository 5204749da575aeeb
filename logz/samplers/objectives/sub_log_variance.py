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

Distributed (``logz.distributed``): the run splits its particles over the ranks
(``sequential``). The buffer is global and the same on every rank (a checkpoint is the same
whichever rank writes it): every rank adds all ranks' sub-trajectories (one all-gather), draws
the same fresh and replayed rows with the shared generator, and re-scores its share of the
batch (``share``); the loss is taken over the all-gathered increments (``Shard.gather``), so
the gradients, averaged over ranks by the trainer, are the one-process gradients.
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
        """(this rank's segments of the batch, the run's log Z^, the replayed rows' buffer
        indices and the number of fresh rows (None without buffer), the batch's global rows)."""
        from logz.samplers.sequential import Segment

        segments: list = []
        result = s.run_particles(1, s.batch_size, s.generator, training=True, record=segments)
        buffer = getattr(s, "buffer", None)
        if buffer is None:  # the batch is the run itself, already split over the ranks
            return segments, result.log_z, None, s.batch_size
        segments = gather_segments(segments, s.shard)
        buffer.add(segments)
        half = s.batch_size // 2
        order = torch.randperm(s.batch_size, generator=s.generator, device=s.generator.device)
        order = order.to(segments[0].log_g.device)
        alive = torch.ones_like(segments[0].log_g, dtype=torch.bool)
        for seg in segments:  # rows thrown out of the target's domain teach nothing (NaN states poison backward)
            alive &= torch.isfinite(seg.log_g) & torch.isfinite(seg.states).all(0).all(-1)
        fresh = order[alive[order]][:half]
        old, idx = buffer.sample(s.batch_size - half, s.generator)
        batch = [Segment(seg.k0, seg.k1, torch.cat([seg.states[:, fresh], o.states], 1),
                         torch.cat([seg.start_log_p[fresh], o.start_log_p]),
                         torch.cat([seg.end_log_p[fresh], o.end_log_p]), torch.cat([seg.log_g[fresh], o.log_g]))
                 for seg, o in zip(segments, old)]
        rows = batch[0].log_g.numel()
        return share(batch, rows, s.shard), result.log_z, (idx, len(fresh)), rows

    def loss(self, s, batch: tuple) -> tuple[Tensor, KLInfo]:
        segments, log_z, replayed, rows = batch
        # all ranks' increments, in the global batch's row order (one collective for all segments)
        rescored = s.shard.gather(torch.stack(increments(s, segments)), dim=1)[:, :rows]
        total, log_w = 0.0, 0.0
        for inc in rescored:
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


def gather_segments(segments, shard) -> list:
    """All ranks' rows of one replicate's recorded ``sequential.Segment``s, in the global
    particle order, on every rank (one all-gather); the segments themselves on one process."""
    if not shard.active:
        return segments
    n = segments[0].log_g.numel()
    parts = [t for seg in segments for t in (seg.states.transpose(0, 1).reshape(n, -1), seg.start_log_p[:, None],
                                             seg.end_log_p[:, None], seg.log_g[:, None])]
    full = torch.split(shard.gather(torch.cat(parts, 1)), [p.shape[1] for p in parts], 1)
    return [type(seg)(seg.k0, seg.k1, states.reshape(len(states), *seg.states.shape[::2]).transpose(0, 1),
                      start[:, 0], end[:, 0], log_g[:, 0])
            for seg, (states, start, end, log_g) in zip(segments, zip(*[iter(full)] * 4))]


def share(segments, rows: int, shard) -> list:
    """This rank's rows of a global batch of ``rows`` sub-trajectories: ceil(rows / world size)
    consecutive rows each, the last ranks' padded with copies of the last row, so that every
    rank re-scores as many rows (all-gather needs equal sizes) and the all-gathered increments'
    first ``rows`` are the batch in order (the padding, dropped there, gets no gradient)."""
    if not shard.active:
        return segments
    per = -(-rows // shard.world_size)
    idx = torch.arange(shard.rank * per, (shard.rank + 1) * per, device=segments[0].log_g.device).clamp(max=rows - 1)
    return [type(seg)(seg.k0, seg.k1, seg.states[:, idx], seg.start_log_p[idx], seg.end_log_p[idx], seg.log_g[idx])
            for seg in segments]


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
        log_f, log_b = al.log_densities(terms, betas[steps[1:]], eps[steps[:-1]], s.pi0)
        start_log_p = torch.cat([seg.start_log_p for seg in group])
        end_log_p = torch.cat([seg.end_log_p for seg in group])
        inc = (al.log_gamma(end_log_p, states[-1], betas[steps[-1]], s.pi0)
               - al.log_gamma(start_log_p, states[0], betas[steps[0]], s.pi0) + (log_b - log_f).sum(0))
        for i, part in zip(members, torch.split(inc, sizes)):
            out[i] = part
    return out


__all__ = ["SubLogVariance", "SubLogVarianceConfig", "VARIANCE_CLIP", "gather_segments", "increments", "share",
           "winsorized"]
