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

from dataclasses import dataclass

import torch
from torch import Tensor

from logz.samplers import annealed_langevin as al
from logz.samplers.objectives import Objective
from logz.samplers.objectives.kl import KLInfo


@dataclass(frozen=True)
class SubLogVarianceConfig:
    def validate(self) -> "SubLogVarianceConfig":
        return self


class SubLogVariance(Objective):
    name = "subtraj"

    def __init__(self, config: SubLogVarianceConfig = SubLogVarianceConfig()):
        self.config = config.validate()

    def simulate(self, s, iteration: int) -> tuple:
        from logz.samplers.sequential import Segment

        segments: list = []
        result = s.run_particles(1, s.local_batch_size, s.generator, training=True, record=segments)
        buffer = getattr(s, "buffer", None)
        if buffer is None:
            return segments, result.log_z, None
        buffer.add(segments)
        half = s.local_batch_size // 2
        fresh = torch.randperm(s.local_batch_size, generator=s.generator, device=s.generator.device)[:half]
        fresh = fresh.to(segments[0].log_g.device)
        old, idx = buffer.sample(s.local_batch_size - half, s.generator)
        batch = [Segment(seg.k0, seg.k1, torch.cat([seg.states[:, fresh], o.states], 1),
                         torch.cat([seg.start_log_p[fresh], o.start_log_p]),
                         torch.cat([seg.end_log_p[fresh], o.end_log_p]), torch.cat([seg.log_g[fresh], o.log_g]))
                 for seg, o in zip(segments, old)]
        return batch, result.log_z, (idx, half)

    def loss(self, s, batch: tuple) -> tuple[Tensor, KLInfo]:
        segments, log_z, replayed = batch
        betas, eps = s.annealing.betas(), s.annealing.step_sizes()
        total, log_w, rescored = 0.0, 0.0, []
        for seg in segments:
            log_f, log_b = al.log_densities(s.path_terms(seg.states, seg.k0), betas[seg.k0 + 1:seg.k1 + 1],
                                            eps[seg.k0:seg.k1], s.init_var)
            inc = (al.log_gamma(seg.end_log_p, seg.states[-1], betas[seg.k1], s.init_var)
                   - al.log_gamma(seg.start_log_p, seg.states[0], betas[seg.k0], s.init_var)
                   + (log_b - log_f).sum(0))
            rescored.append(inc.detach())
            inc = s.shard.gather(inc)
            total = total + inc.var(unbiased=False)
            log_w = log_w + inc.detach().mean()
        if replayed is not None:
            idx, half = replayed
            s.buffer.update(idx, [g[half:] for g in rescored])
        # log_z: this run's sequential estimate; elbo: sum of the segments' mean log G
        return total / s.dim, KLInfo(log_z.detach().reshape(()), torch.as_tensor(log_w))


__all__ = ["SubLogVariance", "SubLogVarianceConfig"]
