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
and its weights reset to uniform; optionally ``mcmc_steps`` MALA moves targeting
gamma_{k_s} (``smc_kernels.hmc_move`` with one leapfrog step, step size adapted toward
``target_accept``) refresh the particles at each segment end. The error bar comes from the R
independent replicates (``estimators.combine_independent_log_z``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from logz.samplers import annealed_langevin as al
from logz.samplers.smc_kernels import adapt_step_size, hmc_move, spread, systematic_resample
from logz.sde import gaussian_noise
from logz.targets.base import log_prob_and_grad


class SequentialResult(NamedTuple):
    log_z: Tensor        # [R] per-replicate log Z^ (independent: the error bar)
    particles: Tensor    # [R, P, d] at the end of the path
    log_weights: Tensor  # [R, P] normalised final weights (the particles' importance weights)
    resampled: Tensor    # [S, R] bool: which replicates resampled after which segment
    acceptance: Tensor   # [S, R] mean MALA acceptance per segment end (NaN without MCMC)


class Segment(NamedTuple):
    """One segment's detached sub-trajectories, kept to re-score them under new parameters."""

    k0: int
    k1: int
    states: Tensor       # [k1-k0+1, R*P, d]
    start_log_p: Tensor  # [R*P], log p~ at the start (gamma's beta may be learned: kept apart)
    end_log_p: Tensor    # [R*P], log p~ at the end


def segment_ends(num_steps: int, segments: int) -> list[int]:
    """k_0 = 0 < k_1 < ... < k_S = num_steps, as even as the integers allow."""
    if not (isinstance(segments, int) and 1 <= segments <= num_steps):
        raise ValueError(f"segments must be an integer in [1, num_steps={num_steps}], got {segments!r}")
    return [round(s * num_steps / segments) for s in range(segments + 1)]


def normalised_ess(log_w: Tensor) -> Tensor:
    """ESS / P of normalised log-weights [R, P] per replicate, Tensor[R]."""
    return torch.exp(-torch.logsumexp(2 * log_w, -1)) / log_w.shape[-1]


@torch.no_grad()
def sequential_log_z(s, replicates: int, particles: int, ends: Sequence[int], *, resample_threshold: float,
                     mcmc_steps: int = 0, target_accept: float = 0.574, generator: torch.Generator,
                     record: Optional[list] = None) -> SequentialResult:
    """Run the estimator with sampler ``s`` (a ``logz.samplers.cmcd.CMCD``): its initial law,
    kernels, schedule and control. All R x P particles move as one batch. ``record``: a list
    to which each segment's ``Segment`` is appended (SCLD's sub-trajectory training)."""
    if not 0.0 <= resample_threshold <= 1.0:
        raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold!r}")
    R, P = replicates, particles
    betas, eps = s.annealing.betas(), s.annealing.step_sizes()
    args = dict(betas=betas, eps=eps, init_var=s.init_var, times=s.times, score=s.kernel_score, control=s.policy())
    draw = gaussian_noise(generator)
    x, log_gamma = s.initial(R * P, generator)  # gamma_0 = pi0
    start_log_p = s.log_reward(x) if record is not None else None
    log_w = x.new_full((R, P), -math.log(P))
    log_z = x.new_zeros(R)
    step = x.new_full((R,), 0.5)  # MALA step, x the particles' spread
    resampled, acceptance = [], []
    for k0, k1 in zip(ends[:-1], ends[1:]):
        terms = al.simulate(x, k0, k1, draw=draw, **args)
        log_f, log_b = al.log_densities(terms, betas[k0 + 1:k1 + 1], eps[k0:k1], s.init_var)
        x = terms.states[-1]
        log_p = s.log_reward(x)
        if record is not None:
            record.append(Segment(k0, k1, terms.states, start_log_p, log_p))
        end_gamma = al.log_gamma(log_p, x, betas[k1], s.init_var)
        inc = (end_gamma - log_gamma + (log_b - log_f).sum(0)).view(R, P)
        log_z = log_z + torch.logsumexp(log_w + inc, -1)
        log_w = torch.log_softmax(log_w + inc, -1)
        low = normalised_ess(log_w) < resample_threshold
        if bool(low.any()):
            idx = systematic_resample(log_w, generator)  # [R, P]; only the `low` rows are used
            pick = torch.where(low[:, None], idx, torch.arange(P, device=x.device).expand(R, P))
            x = torch.gather(x.view(R, P, -1), 1, pick[..., None].expand(R, P, x.shape[-1])).reshape(R * P, -1)
            log_p = torch.gather(log_p.view(R, P), 1, pick).reshape(-1)
            log_w = torch.where(low[:, None], torch.full_like(log_w, -math.log(P)), log_w)
        resampled.append(low)
        acc = x.new_full((R,), math.nan)
        if mcmc_steps > 0 and k1 < ends[-1]:
            x, log_p, acc, step = _refresh(s, x.view(R, P, -1), log_p.view(R, P), log_w, betas[k1], step,
                                           mcmc_steps, target_accept, generator)
            x, log_p = x.reshape(R * P, -1), log_p.reshape(-1)
        acceptance.append(acc)
        log_gamma = al.log_gamma(log_p, x, betas[k1], s.init_var)
        start_log_p = log_p
    return SequentialResult(log_z, x.view(R, P, -1), log_w, torch.stack(resampled), torch.stack(acceptance))


def _refresh(s, x: Tensor, log_p: Tensor, log_w: Tensor, beta: Tensor, step: Tensor, moves: int,
             target_accept: float, generator: torch.Generator):
    """``moves`` MALA moves leaving gamma_beta invariant (one fixed kernel per move: the
    preconditioner and step are set before it); the step adapts between moves."""
    R = x.shape[0]
    var = s.init_var

    def terms(y: Tensor):  # a proposal outside the target's domain is rejected, not an error
        with torch.enable_grad():
            flat = y.reshape(-1, y.shape[-1]).detach().requires_grad_(True)
            lp = s.target.log_prob(flat)
            g = torch.autograd.grad(lp.sum(), flat)[0]
        ok = torch.isfinite(lp) & torch.isfinite(g).all(-1)
        return (torch.where(ok, lp.detach(), -math.inf).view(y.shape[:-1]),
                torch.where(ok[:, None], g, 0.0).view(y.shape))

    log_ref = lambda y: -0.5 * y.square().sum(-1) / var  # noqa: E731  (constants cancel in MH)
    grad_ref = lambda y: -y / var  # noqa: E731
    grad = log_prob_and_grad(s.target, x.reshape(-1, x.shape[-1]))[1].view(x.shape)
    b, active = beta.expand(R).to(x), torch.ones(R, dtype=torch.bool, device=x.device)
    acc_sum = x.new_zeros(R)
    for _ in range(moves):
        scale = spread(x, log_w)
        x, log_p, grad, acc = hmc_move(x, log_p, grad, b, step, scale, active, terms=terms, log_ref=log_ref,
                                       grad_ref=grad_ref, leapfrog_steps=1, step_jitter=1.0,
                                       generator=generator)
        step = adapt_step_size(step, acc, active, target_accept)
        acc_sum = acc_sum + acc
    return x, log_p, acc_sum / moves, step


__all__ = ["Segment", "SequentialResult", "normalised_ess", "segment_ends", "sequential_log_z"]
