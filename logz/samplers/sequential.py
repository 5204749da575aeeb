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
the particles, ``Moves.count`` moves for the segment's step in beta), with pi0 (the
sampler's ``DefensiveReference``) as the reference. The error bar comes from the R
independent replicates (``estimators.combine_independent_log_z``).

Distributed (the sampler's ``Shard``), as SMC (``logz.samplers.smc``): each rank holds P /
world_size particles of every replicate (a training batch is one replicate, so splitting by
replicate would not split it). A particle's noise is its rows of the whole system's draw
(``particle_noise``), the log-weights [R, P] are global on every rank (the increments are
all-gathered once per segment), so log Z^, ESS and the resampling indices agree everywhere;
resampling exchanges the particles of the replicates that resample (``smc_kernels.exchange``)
and the moves adapt from global statistics (``smc_moves``). A run on any number of ranks
therefore equals the one-process run with the same seed, up to float rounding.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from logz.distributed import SINGLE, Shard
from logz.samplers import annealed_langevin as al
from logz.samplers.smc_kernels import exchange, systematic_resample
from logz.samplers.smc_moves import Moves, target_terms
from logz.sde import Noise


class SequentialResult(NamedTuple):
    log_z: Tensor        # [R] per-replicate log Z^ (independent: the error bar)
    particles: Tensor    # [R, P_local, d] at the end of the path (this rank's; all P on one process)
    log_weights: Tensor  # [R, P] normalised final weights of all particles (global, on every rank)
    resampled: Tensor    # [S, R] bool: which replicates resampled after which segment
    acceptance: Tensor   # [S, R] mean MCMC acceptance per segment end (NaN without moves)
    moves: Tensor        # [S, R] MCMC moves made at each segment end (the estimate's cost)


class Segment(NamedTuple):
    """One segment's detached sub-trajectories, kept to re-score them under new parameters."""

    k0: int
    k1: int
    states: Tensor       # [k1-k0+1, R*P_local, d] (this rank's particles)
    start_log_p: Tensor  # [R*P_local], log p~ at the start (gamma's beta may be learned: kept apart)
    end_log_p: Tensor    # [R*P_local], log p~ at the end
    log_g: Tensor        # [R*P_local], the increment log G under the simulating parameters (replay priority)


def segment_ends(num_steps: int, segments: int) -> list[int]:
    """k_0 = 0 < k_1 < ... < k_S = num_steps, as even as the integers allow."""
    if not (isinstance(segments, int) and 1 <= segments <= num_steps):
        raise ValueError(f"segments must be an integer in [1, num_steps={num_steps}], got {segments!r}")
    return [round(s * num_steps / segments) for s in range(segments + 1)]


def particle_noise(shard: Shard, generator: torch.Generator, replicates: int) -> Noise:
    """A ``Noise`` for flat particle batches [R * P_local, ...] whose P particles per replicate
    are split over the ranks: this rank's particles' rows of the whole system's draw [R, P, ...]
    (``Shard.randn`` along P), so particle (r, i) sees the same noise whatever the world size;
    on one process exactly ``torch.randn`` of the flat shape."""
    def draw(shape, dtype, device) -> Tensor:
        local = (replicates, shape[0] // replicates, *shape[1:])
        return shard.randn(local, generator=generator, dtype=dtype, device=device, dim=1).reshape(shape)
    return draw


def normalised_ess(log_w: Tensor) -> Tensor:
    """ESS / P of normalised log-weights [R, P] per replicate, Tensor[R]."""
    return torch.exp(-torch.logsumexp(2 * log_w, -1)) / log_w.shape[-1]


def reweight(log_z: Tensor, log_w: Tensor, inc: Tensor, carried: Sequence[Tensor], threshold: float,
             generator: torch.Generator, force: Optional[Tensor] = None, shard: Shard = SINGLE
             ) -> tuple[Tensor, Tensor, list[Tensor], Tensor, Tensor]:
    """One SMC reweighting and ESS-triggered resampling of R replicates of P particles.

    Args:
        log_z: Tensor[R], the running log Z^; log_w: Tensor[R, P], normalised log-weights;
        inc: Tensor[R, P], the incremental log-weights (both global: the same on every rank);
        carried: per-particle tensors [R, P_local, ...] of one dtype that follow the particles
        (states, their log-densities; this rank's particles, exchanged over ``shard``).
    Returns:
        (log_z + logsumexp(log_w + inc), the new normalised log-weights (uniform where
        resampled), the carried tensors resampled, resampled Tensor[R] bool, ESS / P Tensor[R]).
        ``force``: Tensor[R] bool, replicates to resample whatever their ESS. A replicate whose
        particles all have zero weight gets log Z^ = -inf (Z^_r = 0, an unbiased draw) and
        uniform weights.
    """
    P = log_w.shape[-1]
    log_z = log_z + torch.logsumexp(log_w + inc, -1)
    extinct = torch.isneginf(log_z)[:, None]
    log_w = torch.where(extinct, torch.full_like(log_w, -math.log(P)), torch.log_softmax(log_w + inc, -1))
    ess = normalised_ess(log_w)
    low = ess < threshold if force is None else (ess < threshold) | force
    if bool(low.any()):
        idx = systematic_resample(log_w, generator)  # [R, P]; only the `low` rows are used
        carried = exchange(carried, idx, low, shard)
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
    ``record``: a list to which each segment's ``Segment`` is appended (SCLD's training).
    Distributed (``s.shard``): the world size must divide P; each rank runs its P_local."""
    if not 0.0 <= resample_threshold <= 1.0:
        raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold!r}")
    R, P, sh = replicates, particles, s.shard
    n = sh.local_size(P, "particles per replicate")
    betas, eps = s.annealing.betas(), s.annealing.step_sizes()
    args = dict(betas=betas, eps=eps, pi0=s.pi0, times=s.times, score=s.kernel_score, control=s.policy())
    draw = particle_noise(sh, generator, R)
    if s.pi0.mix == 0:  # x_0 ~ gamma_0 = pi0
        x = s.pi0.scale * draw((R * n, s.dim), s.dtype, s.device)
    else:
        x = s.pi0.sample(R, n, generator=generator, shard=sh, dtype=s.dtype, device=s.device).reshape(R * n, s.dim)
    log_gamma = s.pi0.log_prob(x)
    start_log_p = s.particle_log_p(x) if record is not None else None
    log_w = x.new_full((R, P), -math.log(P))
    log_z = x.new_zeros(R)
    step = x.new_full((R,), float(step_size))
    resampled, acceptance, n_moves = [], [], []
    carry = None  # (score, control) at x when still valid: each state's are computed once
    for k0, k1 in zip(ends[:-1], ends[1:]):
        terms = al.simulate(x, k0, k1, draw=draw, start=carry, **args)
        carry = (terms.scores[-1], terms.controls[-1])
        log_f, log_b = al.log_densities(terms, betas[k0 + 1:k1 + 1], eps[k0:k1], s.pi0)
        x = terms.states[-1]
        log_p = s.particle_log_p(x)
        end_gamma = al.log_gamma(log_p, x, betas[k1], s.pi0)
        inc = end_gamma - log_gamma + (log_b - log_f).sum(0)
        # a particle thrown out of the target's domain (non-finite density or state) has zero
        # weight; its replicate resamples now, so that every segment starts from live particles
        inc = torch.where(torch.isfinite(inc), inc, torch.full_like(inc, -math.inf))
        if record is not None:
            record.append(Segment(k0, k1, terms.states, start_log_p, log_p, inc))
        inc_all = sh.gather(inc.view(R, n), dim=1)  # [R, P], every rank
        dead = torch.isneginf(inc_all).any(-1)
        log_z, log_w, kept, low, _ = reweight(log_z, log_w, inc_all,
                                              [v.view(R, n, *v.shape[1:]) for v in (x, log_p, *carry)],
                                              resample_threshold, generator, force=dead, shard=sh)
        x, log_p, carry = kept[0].reshape(R * n, -1), kept[1].reshape(-1), tuple(v.reshape(R * n, -1) for v in kept[2:])
        resampled.append(low)
        acc, count = x.new_full((R,), math.nan), torch.zeros(R, dtype=torch.long, device=x.device)
        if moves is not None and k1 < ends[-1]:
            xr, lpr = x.view(R, n, -1), log_p.view(R, n)
            grad = target_terms(s.target, xr, need_grad=True)[1] if moves.kernel != "gibbs" else None
            delta = (betas[k1] - betas[k0]).to(x).expand(R)
            xr, lpr, _, step, acc_sum, count = moves.run(xr, lpr, grad, betas[k1].to(x).expand(R), step, delta,
                                                         log_w[:, sh.rows(n)])
            acc = torch.where(count > 0, acc_sum / count.clamp_min(1), acc)
            x, log_p = xr.reshape(R * n, -1), lpr.reshape(-1)
            if bool((count > 0).any()):
                carry = None
        acceptance.append(acc)
        n_moves.append(count)
        log_gamma = al.log_gamma(log_p, x, betas[k1], s.pi0)
        start_log_p = log_p
    return SequentialResult(log_z, x.view(R, n, -1), log_w, torch.stack(resampled), torch.stack(acceptance),
                            torch.stack(n_moves))


__all__ = ["Segment", "SequentialResult", "normalised_ess", "particle_noise", "reweight", "segment_ends",
           "sequential_log_z"]
