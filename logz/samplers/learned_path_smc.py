"""SMC-corrected log Z: sequential importance resampling along a learned path.

A ``PathSampler`` whose path carries intermediate unnormalised log-densities log gamma_k on
its grid (DGFS's learned log-flow: gamma_k = F(., t_k), ``objectives.subtb.LearnedFlow``)
defines an SMC sampler: its forward kernels P_F move the particles, its backward kernels P_B
and the gamma_k weight them. The N steps are cut into S segments at k_0 = 0 < ... < k_S = N
(``sequential.segment_ends``); a particle's incremental log-weight over segment s is

    log G_s = log gamma_{k_s}(x_{k_s}) - log gamma_{k_{s-1}}(x_{k_{s-1}}) + sum_k [log P_B,k - log P_F,k]

with the boundary terms gamma_0 = p_0 (the initial law, normalised: log p_0 = 0 for the
point mass x_0 = 0 of DGFS) and gamma_N = p~ (the unclamped reward). The product of a
path's G_s therefore telescopes to the plain path weight w = p~(x_N) P_B / (p_0 P_F).
R independent replicates of P particles run as one batch; per replicate

    log Z^ = sum_s logsumexp(log W^(s-1) + log G_s),   W the normalised weights carried over,

unbiased in Z^ for any positive gamma_k (exact or not: a poor log-flow costs variance, not
bias). When a replicate's ESS / P falls below ``resample_threshold`` it is resampled
(systematic, ``smc_kernels.systematic_resample``) and its weights reset to uniform. The error
bar comes from the R replicates (``smc_result.combine_replicates``, as for SMC). Segments are
simulated by the sampler's own ``simulate`` on the slice ``times[k_{s-1}:k_s + 1]`` of its
grid (the shared core, ``logz.sde.integrate``, starts from any given states and times).
No MCMC refresh at the resampling points (the gamma_k are differentiable, so a MALA move
could be added with ``smc_kernels.hmc_move``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from logz.samplers.sequential import normalised_ess
from logz.samplers.smc_kernels import systematic_resample


class LearnedPathResult(NamedTuple):
    log_z: Tensor        # [R] per-replicate log Z^ (independent: the error bar)
    particles: Tensor    # [R, P, d] at the end of the path
    log_weights: Tensor  # [R, P] normalised final weights (the particles' importance weights)
    resampled: Tensor    # [S, R] bool: which replicates resampled after which segment
    ess: Tensor          # [S, R] ESS / P after each segment's reweighting (where the path degenerates)


def reweight(log_z: Tensor, log_w: Tensor, inc: Tensor, carried: Sequence[Tensor], threshold: float,
             generator: torch.Generator) -> tuple[Tensor, Tensor, list[Tensor], Tensor, Tensor]:
    """One SMC reweighting and ESS-triggered resampling of R replicates of P particles.

    Args:
        log_z: Tensor[R], the running log Z^; log_w: Tensor[R, P], normalised log-weights;
        inc: Tensor[R, P], the incremental log-weights; carried: per-particle tensors
        [R, P, ...] that follow the particles (states, their log-densities).
    Returns:
        (log_z + logsumexp(log_w + inc), the new normalised log-weights (uniform where
        resampled), the carried tensors resampled, resampled Tensor[R] bool, ESS / P Tensor[R]).
    """
    R, P = log_w.shape
    log_z = log_z + torch.logsumexp(log_w + inc, -1)
    log_w = torch.log_softmax(log_w + inc, -1)
    ess = normalised_ess(log_w)
    low = ess < threshold
    if bool(low.any()):
        idx = systematic_resample(log_w, generator)  # [R, P]; only the `low` rows are used
        pick = torch.where(low[:, None], idx, torch.arange(P, device=log_w.device).expand(R, P))
        carried = [torch.gather(v, 1, pick.view(R, P, *(1,) * (v.ndim - 2)).expand_as(v)) for v in carried]
        log_w = torch.where(low[:, None], torch.full_like(log_w, -math.log(P)), log_w)
    return log_z, log_w, list(carried), low, ess


@torch.no_grad()
def learned_path_log_z(s, replicates: int, particles: int, ends: Sequence[int], *, resample_threshold: float,
                       generator: torch.Generator) -> LearnedPathResult:
    """Run the estimator with ``s``, a ``PathSampler`` with ``intermediate_log_density(x, k)``
    (log gamma_k at grid index 0 < k < N, Tensor[B]): its initial law, its kernels under the
    current control, its grid cut at ``ends``. All R x P particles move as one batch."""
    if not 0.0 <= resample_threshold <= 1.0:
        raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold!r}")
    R, P, N = replicates, particles, s.num_steps
    x, log_gamma = s.initial(R * P, generator)  # gamma_0 = p_0
    log_w = x.new_full((R, P), -math.log(P))
    log_z = x.new_zeros(R)
    resampled, ess = [], []
    for k0, k1 in zip(ends[:-1], ends[1:]):
        tr = s.simulate(x, s.times[k0:k1 + 1], generator, keep_path=False, keep_steps=False)[0]
        x = tr.final
        end_gamma = s.log_reward(x) if k1 == N else s.intermediate_log_density(x, k1)
        inc = (end_gamma - log_gamma + tr.log_path_ratio).view(R, P)
        log_z, log_w, (x, log_gamma), low, e = reweight(log_z, log_w, inc, [x.view(R, P, -1), end_gamma.view(R, P)],
                                                       resample_threshold, generator)
        x, log_gamma = x.reshape(R * P, -1), log_gamma.reshape(-1)
        resampled.append(low)
        ess.append(e)
    return LearnedPathResult(log_z, x.view(R, P, -1), log_w, torch.stack(resampled), torch.stack(ess))


__all__ = ["LearnedPathResult", "learned_path_log_z", "reweight"]
