"""SCLD's sequential estimator: sequential importance resampling along CMCD's path.

The N Langevin steps are cut into S segments at k_0 = 0 < k_1 < ... < k_S = N. R
independent replicates of P particles each run every segment's controlled kernels; a
particle's incremental log-weight over segment s is

    log G_s = log gamma_{k_s}(x_{k_s}) - log gamma_{k_{s-1}}(x_{k_{s-1}}) + sum_k [log B_k - log F_k]

(gamma_{k_0} = pi0, gamma_{k_S} = p~; SCLD repository ``algorithms/scld/is_weights.py``,
``per_sample_sub_traj_is_weight``), and

    log Z^ = sum_s log sum_i W_i^(s-1) G_s,i,   W the normalised weights carried over,

unbiased in Z^ (``get_lnz_elbo_increment`` there). When a replicate's ESS falls below
``resample_threshold`` x P it is resampled (systematic, ``smc_kernels.systematic_resample``)
and its weights reset to uniform; then, optionally, MCMC moves leaving gamma_{k_s} invariant
refresh the particles at each inner segment end: SMC's move phase (``smc_moves.Moves``, the
library's one implementation: Newton-Gibbs sweeps or HMC, scale and step size adapted from
the particles, ``Moves.count`` moves for the segment's step in beta), with pi0 as the
reference (a ``DefensiveReference`` with no t component). The error bar comes from the R
independent replicates (``estimators.combine_independent_log_z``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from logz.samplers import annealed_langevin as al
from logz.samplers.smc_kernels import systematic_resample
from logz.samplers.smc_moves import Moves, target_terms
from logz.sde import gaussian_noise


class SequentialResult(NamedTuple):
    log_z: Tensor        # [R] per-replicate log Z^ (independent: the error bar)
    particles: Tensor    # [R, P, d] at the end of the path
    log_weights: Tensor  # [R, P] normalised final weights (the particles' importance weights)
    resampled: Tensor    # [S, R] bool: which replicates resampled after which segment
    acceptance: Tensor   # [S, R] mean MCMC acceptance per segment end (NaN without moves)
    moves: Tensor        # [S, R] MCMC moves made at each segment end (the estimate's cost)


class Segment(NamedTuple):
    """One segment's detached sub-trajectories, kept to re-score them under new parameters."""

    k0: int
    k1: int
    states: Tensor       # [k1-k0+1, R*P, d]
    start_log_p: Tensor  # [R*P], log p~ at the start (gamma's beta may be learned: kept apart)
    end_log_p: Tensor    # [R*P], log p~ at the end
    log_g: Tensor        # [R*P], the increment log G under the simulating parameters (replay priority)


def segment_ends(num_steps: int, segments: int) -> list[int]:
    """k_0 = 0 < k_1 < ... < k_S = num_steps, as even as the integers allow."""
    if not (isinstance(segments, int) and 1 <= segments <= num_steps):
        raise ValueError(f"segments must be an integer in [1, num_steps={num_steps}], got {segments!r}")
    return [round(s * num_steps / segments) for s in range(segments + 1)]


def normalised_ess(log_w: Tensor) -> Tensor:
    """ESS / P of normalised log-weights [R, P] per replicate, Tensor[R]."""
    return torch.exp(-torch.logsumexp(2 * log_w, -1)) / log_w.shape[-1]


def reweight(log_z: Tensor, log_w: Tensor, inc: Tensor, carried: Sequence[Tensor], threshold: float,
             generator: torch.Generator, force: Optional[Tensor] = None
             ) -> tuple[Tensor, Tensor, list[Tensor], Tensor, Tensor]:
    """One SMC reweighting and ESS-triggered resampling of R replicates of P particles.

    Args:
        log_z: Tensor[R], the running log Z^; log_w: Tensor[R, P], normalised log-weights;
        inc: Tensor[R, P], the incremental log-weights; carried: per-particle tensors
        [R, P, ...] that follow the particles (states, their log-densities).
    Returns:
        (log_z + logsumexp(log_w + inc), the new normalised log-weights (uniform where
        resampled), the carried tensors resampled, resampled Tensor[R] bool, ESS / P Tensor[R]).
        ``force``: Tensor[R] bool, replicates to resample whatever their ESS. A replicate whose
        particles all have zero weight gets log Z^ = -inf (Z^_r = 0, an unbiased draw) and
        uniform weights.
    """
    R, P = log_w.shape
    log_z = log_z + torch.logsumexp(log_w + inc, -1)
    extinct = torch.isneginf(log_z)[:, None]
    log_w = torch.where(extinct, torch.full_like(log_w, -math.log(P)), torch.log_softmax(log_w + inc, -1))
    ess = normalised_ess(log_w)
    low = ess < threshold if force is None else (ess < threshold) | force
    if bool(low.any()):
        idx = systematic_resample(log_w, generator)  # [R, P]; only the `low` rows are used
        pick = torch.where(low[:, None], idx, torch.arange(P, device=log_w.device).expand(R, P))
        carried = [torch.gather(v, 1, pick.view(R, P, *(1,) * (v.ndim - 2)).expand_as(v)) for v in carried]
        log_w = torch.where(low[:, None], torch.full_like(log_w, -math.log(P)), log_w)
    return log_z, log_w, list(carried), low, ess


@torch.no_grad()
def sequential_log_z(s, replicates: int, particles: int, ends: Sequence[int], *, resample_threshold: float,
                     moves: Optional[Moves] = None, step_size: float = 1.0, generator: torch.Generator,
                     record: Optional[list] = None) -> SequentialResult:
    """Run the estimator with sampler ``s`` (a ``logz.samplers.cmcd.CMCD``): its initial law,
    kernels, schedule and control. All R x P particles move as one batch. ``moves``: the MCMC
    refresh at inner segment ends (None: none; its generator should be ``generator``);
    ``step_size``: the HMC kernel's initial step (relative to the particles' spread).
    ``record``: a list to which each segment's ``Segment`` is appended (SCLD's training)."""
    if not 0.0 <= resample_threshold <= 1.0:
        raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold!r}")
    R, P = replicates, particles
    betas, eps = s.annealing.betas(), s.annealing.step_sizes()
    args = dict(betas=betas, eps=eps, init_var=s.init_var, times=s.times, score=s.kernel_score, control=s.policy())
    draw = gaussian_noise(generator)
    x, log_gamma = s.initial(R * P, generator)  # gamma_0 = pi0
    start_log_p = s.particle_log_p(x) if record is not None else None
    log_w = x.new_full((R, P), -math.log(P))
    log_z = x.new_zeros(R)
    step = x.new_full((R,), float(step_size))
    resampled, acceptance, n_moves = [], [], []
    carry = None  # (score, control) at x when still valid: each state's are computed once
    for k0, k1 in zip(ends[:-1], ends[1:]):
        terms = al.simulate(x, k0, k1, draw=draw, start=carry, **args)
        carry = (terms.scores[-1], terms.controls[-1])
        log_f, log_b = al.log_densities(terms, betas[k0 + 1:k1 + 1], eps[k0:k1], s.init_var)
        x = terms.states[-1]
        log_p = s.particle_log_p(x)
        end_gamma = al.log_gamma(log_p, x, betas[k1], s.init_var)
        inc = end_gamma - log_gamma + (log_b - log_f).sum(0)
        # a particle thrown out of the target's domain (non-finite density or state) has zero
        # weight; its replicate resamples now, so that every segment starts from live particles
        inc = torch.where(torch.isfinite(inc), inc, torch.full_like(inc, -math.inf))
        if record is not None:
            record.append(Segment(k0, k1, terms.states, start_log_p, log_p, inc))
        dead = torch.isneginf(inc).view(R, P).any(-1)
        log_z, log_w, kept, low, _ = reweight(log_z, log_w, inc.view(R, P),
                                              [v.view(R, P, *v.shape[1:]) for v in (x, log_p, *carry)],
                                              resample_threshold, generator, force=dead)
        x, log_p, carry = kept[0].reshape(R * P, -1), kept[1].reshape(-1), tuple(v.reshape(R * P, -1) for v in kept[2:])
        resampled.append(low)
        acc, count = x.new_full((R,), math.nan), torch.zeros(R, dtype=torch.long, device=x.device)
        if moves is not None and k1 < ends[-1]:
            xr, lpr = x.view(R, P, -1), log_p.view(R, P)
            grad = target_terms(s.target, xr, need_grad=True)[1] if moves.kernel != "gibbs" else None
            delta = (betas[k1] - betas[k0]).to(x).expand(R)
            xr, lpr, _, step, acc_sum, count = moves.run(xr, lpr, grad, betas[k1].to(x).expand(R), step, delta,
                                                         log_w)
            acc = torch.where(count > 0, acc_sum / count.clamp_min(1), acc)
            x, log_p = xr.reshape(R * P, -1), lpr.reshape(-1)
            if bool((count > 0).any()):
                carry = None
        acceptance.append(acc)
        n_moves.append(count)
        log_gamma = al.log_gamma(log_p, x, betas[k1], s.init_var)
        start_log_p = log_p
    return SequentialResult(log_z, x.view(R, P, -1), log_w, torch.stack(resampled), torch.stack(acceptance),
                            torch.stack(n_moves))


__all__ = ["Segment", "SequentialResult", "normalised_ess", "reweight", "segment_ends", "sequential_log_z"]
