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
Optionally ``mcmc_steps`` MALA moves targeting gamma_{k_s} (differentiable: the log-flow net and
the target's score; ``smc_kernels.hmc_move`` with one leapfrog step) refresh the particles at
each inner segment end: the only way a particle reaches mass that the learned kernels do not
carry it to. The moves' parameters are fixed before the segment is simulated (predictable), so
each move is a fixed gamma_{k_s}-invariant kernel and Z^ stays unbiased: the proposal scale is
the reference's marginal std at t_{k_s} times a per-replicate step adapted toward
``target_accept`` from the acceptance at the previous segment ends. (A preconditioner taken
from the spread of the very particles being moved, as in ``sequential._refresh``, biased Z^ by
about +5% with P = 8 particles in 5-D here: measured in ``docs/smc_corrected.md``.)
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from logz.samplers.sequential import normalised_ess, reweight
from logz.samplers.smc_kernels import adapt_step_size, hmc_move


class LearnedPathResult(NamedTuple):
    log_z: Tensor        # [R] per-replicate log Z^ (independent: the error bar)
    particles: Tensor    # [R, P, d] at the end of the path
    log_weights: Tensor  # [R, P] normalised final weights (the particles' importance weights)
    resampled: Tensor    # [S, R] bool: which replicates resampled after which segment
    ess: Tensor          # [S, R] ESS / P after each segment's reweighting (where the path degenerates)
    acceptance: Tensor   # [S, R] mean MALA acceptance per segment end (NaN without MCMC): the moves' health


@torch.no_grad()
def learned_path_log_z(s, replicates: int, particles: int, ends: Sequence[int], *, resample_threshold: float,
                       generator: torch.Generator, mcmc_steps: int = 0,
                       target_accept: float = 0.574) -> LearnedPathResult:
    """Run the estimator with ``s``, a ``PathSampler`` with ``intermediate_log_density(x, k)``
    (log gamma_k at grid index 0 < k < N, Tensor[B]): its initial law, its kernels under the
    current control, its grid cut at ``ends``. All R x P particles move as one batch."""
    if not 0.0 <= resample_threshold <= 1.0:
        raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold!r}")
    R, P, N = replicates, particles, s.num_steps
    x, log_gamma = s.initial(R * P, generator)  # gamma_0 = p_0
    log_w = x.new_full((R, P), -math.log(P))
    log_z = x.new_zeros(R)
    step = x.new_full((R,), 0.5)  # MALA step, x the reference's marginal std
    resampled, ess, acceptance = [], [], []
    for k0, k1 in zip(ends[:-1], ends[1:]):
        tr = s.simulate(x, s.times[k0:k1 + 1], generator, keep_path=False, keep_steps=False)[0]
        x = tr.final
        end_gamma = s.log_reward(x) if k1 == N else s.intermediate_log_density(x, k1)
        inc = (end_gamma - log_gamma + tr.log_path_ratio).view(R, P)
        log_z, log_w, (x, log_gamma), low, e = reweight(log_z, log_w, inc, [x.view(R, P, -1), end_gamma.view(R, P)],
                                                       resample_threshold, generator)
        acc = x.new_full((R,), math.nan)
        if mcmc_steps > 0 and k1 < N:
            x, log_gamma, acc = _refresh(s, k1, x, log_gamma, step, mcmc_steps, generator)
            step = adapt_step_size(step, acc, torch.ones_like(low), target_accept)  # for the next segment end
        x, log_gamma = x.reshape(R * P, -1), log_gamma.reshape(-1)
        resampled.append(low)
        ess.append(e)
        acceptance.append(acc)
    return LearnedPathResult(log_z, x.view(R, P, -1), log_w, torch.stack(resampled), torch.stack(ess),
                             torch.stack(acceptance))


def _refresh(s, k: int, x: Tensor, log_gamma: Tensor, step: Tensor, moves: int, generator: torch.Generator):
    """``moves`` MALA moves of x [R, P, d] leaving gamma_k invariant, with the step ``step`` [R]
    times the reference's marginal std at t_k: (x, log gamma_k(x), mean acceptance [R])."""
    R = x.shape[0]

    def terms(y: Tensor):  # a proposal with a non-finite log-density or gradient is rejected
        with torch.enable_grad():
            flat = y.reshape(-1, y.shape[-1]).detach().requires_grad_(True)
            lg = s.intermediate_log_density(flat, k)
            g = torch.autograd.grad(lg.sum(), flat)[0]
        ok = torch.isfinite(lg) & torch.isfinite(g).all(-1)
        return (torch.where(ok, lg.detach(), -math.inf).view(y.shape[:-1]),
                torch.where(ok[:, None], g, 0.0).view(y.shape))

    scale = s.reference.marginal_var(s.times[k]).sqrt().to(x).expand(R, 1, x.shape[-1])
    grad = terms(x)[1]
    ones, active = x.new_ones(R), torch.ones(R, dtype=torch.bool, device=x.device)
    acc_sum = x.new_zeros(R)
    for _ in range(moves):  # beta = 1: the move targets gamma_k itself (no reference factor)
        x, log_gamma, grad, acc = hmc_move(x, log_gamma, grad, ones, step, scale, active, terms=terms,
                                           log_ref=lambda y: y.new_zeros(y.shape[:-1]), grad_ref=torch.zeros_like,
                                           leapfrog_steps=1, step_jitter=1.0, generator=generator)
        acc_sum = acc_sum + acc
    return x, log_gamma, acc_sum / moves


__all__ = ["LearnedPathResult", "learned_path_log_z"]
