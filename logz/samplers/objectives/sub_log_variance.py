"""SCLD's training loss: the log-variance of each segment's incremental weights, summed over
segments, on detached sub-trajectories of the sequential process itself (resampled and
MCMC-refreshed between segments, so every segment starts near its gamma_{k_{s-1}}):

    loss = sum_s Var_i [ log gamma_{k_s}(x_{k_s}) - log gamma_{k_{s-1}}(x_{k_{s-1}})
                         + sum_{k in s} (log B_k - log F_k) ]   / dim,

re-scored under the current control, schedule and step sizes (``annealed_langevin``). The
batch is one particle system of ``batch_size`` particles (one replicate). The paper also
replays sub-trajectories from a prioritised buffer; that part is not built
(``docs/sequential_samplers.md``).
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
        from logz.samplers.sequential import sequential_log_z

        segments: list = []
        result = sequential_log_z(s, 1, s.local_batch_size, s.ends, resample_threshold=s.resample_threshold,
                                  mcmc_steps=s.mcmc_steps, generator=s.generator, record=segments)
        return segments, result.log_z

    def loss(self, s, batch: tuple) -> tuple[Tensor, KLInfo]:
        segments, log_z = batch
        betas, eps = s.annealing.betas(), s.annealing.step_sizes()
        total, log_w = 0.0, 0.0
        for seg in segments:
            log_f, log_b = al.log_densities(s.path_terms(seg.states, seg.k0), betas[seg.k0 + 1:seg.k1 + 1],
                                            eps[seg.k0:seg.k1], s.init_var)
            inc = (al.log_gamma(seg.end_log_p, seg.states[-1], betas[seg.k1], s.init_var)
                   - al.log_gamma(seg.start_log_p, seg.states[0], betas[seg.k0], s.init_var)
                   + (log_b - log_f).sum(0))
            inc = s.shard.gather(inc)
            total = total + inc.var(unbiased=False)
            log_w = log_w + inc.detach().mean()
        # log_z: this run's sequential estimate; elbo: sum of the segments' mean log G
        return total / s.dim, KLInfo(log_z.detach().reshape(()), torch.as_tensor(log_w))


__all__ = ["SubLogVariance", "SubLogVarianceConfig"]
