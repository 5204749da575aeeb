"""What a batched SMC run returns, how many replicates it is split into, and how they combine.

The SMC estimate Z^ is unbiased but a single run carries no simple error bar, so a run is R
independent replicates (default ``replicates_for(num_samples)``), combined by
``combine_replicates``: log Z = log mean_r Z^_r, with a delta-method standard error from their
spread, and ELBO = mean_r log Z^_r (a lower bound on log Z in expectation, by Jensen). Many
small replicates (40 x 50 particles at n = 2000) make the spread a good variance estimate.
Calibration over 50 seeds per target: results/calibration/ and docs/error_bars.md.
``SMCResult`` also keeps the genealogy (``eve``) from which ``eve_relative_variance`` estimates
each replicate's variance from that replicate alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from logz.samplers._common import _check, _is_int
from logz.samplers.estimators import (LogZEstimate, combine_independent_log_z, effective_sample_size,
                                      reliability, warn_once)

__all__ = ["MAX_REPLICATES", "MIN_REPLICATE_PARTICLES", "REPLICATE_ESS_MIN", "SMCResult",
           "combine_replicates", "eve_relative_variance", "replicate_layout", "replicates_for"]

#: default replicates: as many as MAX_REPLICATES, each of at least MIN_REPLICATE_PARTICLES
#: particles (see ``replicates_for`` and docs/error_bars.md for the measurement behind them).
MAX_REPLICATES, MIN_REPLICATE_PARTICLES = 40, 50
#: the estimate is flagged unreliable when the normalized ESS of the R replicate estimates
#: Z^_r falls below this (their relative spread above 1: one or two replicates carry it).
REPLICATE_ESS_MIN = 0.5


def replicates_for(num_samples: int) -> int:
    """Default number of replicates for ``num_samples`` particles in all: min(MAX_REPLICATES,
    num_samples // MIN_REPLICATE_PARTICLES), at least 2 (2000 particles: 40 runs of 50).

    Why many small runs rather than a few big ones: the error bar is the spread of the R
    replicate estimates Z^_r, whose distribution is right-skewed (the unbiased Z^_r is mostly
    a little low, sometimes high). With R = 8 the spread is a noisy variance estimate that is
    small exactly when the estimate is low, so z-scores came out too wide and shifted down
    (Funnel-10, 30 seeds: mean z -0.94, 73% within 2 SE); more replicates at the same total
    cost average over the skew and estimate the variance with R - 1 degrees of freedom."""
    return max(2, min(MAX_REPLICATES, int(num_samples) // MIN_REPLICATE_PARTICLES))


def replicate_layout(num_samples: int, replicates: Optional[int] = None) -> tuple[int, int]:
    """(R, P): the replicates (None: ``replicates_for(num_samples)``) and the particles per
    replicate, num_samples // R, of a run of ``num_samples`` particles in all; ValueError
    naming the option unless replicates is None or an integer >= 2 and P >= 2."""
    _check("replicates", replicates is None or (_is_int(replicates) and replicates >= 2), replicates,
           "None or an integer >= 2")
    _check("num_samples", _is_int(num_samples) and num_samples >= 2 * (replicates or 2), num_samples,
           f"an integer >= 2 x replicates = {2 * (replicates or 2)}")
    R = replicates_for(num_samples) if replicates is None else int(replicates)
    return R, int(num_samples) // R


@dataclass
class SMCResult:
    """One batched SMC run. R replicates of N particles in dimension d.

    Distributed, ``particles`` and ``log_weights`` are this rank's shard (N_local = N /
    world_size rows of each replicate, rank order); everything else is global and identical
    on every rank.

    Attributes:
        particles: Tensor[R, N, d] final particles (this rank's: [R, N_local, d]).
        log_weights: Tensor[R, N] final normalized log-weights (logsumexp = 0 per replicate
            over all ranks' particles; this rank's: [R, N_local]).
        log_z: Tensor[R] log Z^ of each replicate (global).
        betas: list of Tensor[R], the temperature ladder (replicates may differ).
        acceptance: list of Tensor[R], mean MCMC acceptance per temperature.
        step_sizes: list of Tensor[R], HMC step size per temperature.
        num_resamples: Tensor[R] how often each replicate resampled.
        moves: list of Tensor[R], MCMC moves (sweeps) per temperature.
        eve: LongTensor[R, N] (global), each final particle's ancestor among the initial
            draws: the genealogy the single-run variance estimator needs (``eve_relative_variance``).
    """

    particles: Tensor
    log_weights: Tensor
    log_z: Tensor
    betas: list = field(default_factory=list)
    acceptance: list = field(default_factory=list)
    step_sizes: list = field(default_factory=list)
    num_resamples: Optional[Tensor] = None
    moves: list = field(default_factory=list)
    eve: Optional[Tensor] = None

    @property
    def num_temperatures(self) -> int:
        return len(self.betas)


def eve_relative_variance(log_w: Tensor, eve: Tensor, num_resamples: Tensor) -> Tensor:
    """Single-run estimate of Var(Z^) / Z^2 of each replicate from its genealogy (Chan & Lai
    2013; Lee & Whiteley 2018; for adaptive tempering Du & Guyader 2021).

    1 - (N / (N - 1))^(T + 1) (1 - sum_k F_k^2), with F_k the final weight of the particles
    descended from initial particle k and T the number of resampling steps; with T = 0 it is
    the delta method of importance sampling. log_w [R, N] normalized final log-weights, eve
    LongTensor[R, N], num_resamples [R]. Clamped at 0 (the unbiased form can go negative).
    """
    R, N = log_w.shape
    family = torch.zeros_like(log_w).scatter_add_(1, eve, log_w.exp())
    log_factor = (num_resamples.to(log_w.dtype) + 1) * math.log(N / (N - 1))
    return (1 - torch.exp(log_factor) * (1 - (family ** 2).sum(1))).clamp_min(0.0)


def combine_replicates(log_z: Tensor, log_weights: Tensor) -> LogZEstimate:
    """The estimate from R replicates: log_z [R] their log Z^_r, log_weights [R, N] their
    normalized final log-weights (all particles, gathered over ranks). Flagged unreliable (and
    warned once) when the pooled particles' ESS is too small or when the normalized ESS of the
    Z^_r falls below ``REPLICATE_ESS_MIN`` (a few runs carry the estimate)."""
    log_z_hat, stderr = combine_independent_log_z(log_z)
    # Bessel's correction: the delta-method SE uses the 1/R variance of the Z^_r.
    R = log_z.numel()
    stderr *= math.sqrt(R / (R - 1))
    pooled = (log_weights + log_z[:, None]).reshape(-1)
    ess = effective_sample_size(pooled)
    ok, reason = reliability(log_z_hat, ess, int(pooled.numel()), warn=False)
    ess_rep = effective_sample_size(log_z)
    if ess_rep < REPLICATE_ESS_MIN:
        ok, reason = False, "; ".join(filter(None, [reason, (
            f"the replicates disagree: ESS of the {R} replicate estimates Z^_r is {ess_rep:.2f} "
            f"< {REPLICATE_ESS_MIN} (a few runs carry the estimate; the error bar is not reliable)")]))
    if not ok:
        warn_once("smc", f"unreliable SMC log Z estimate: {reason}")
    return LogZEstimate(log_z=log_z_hat, stderr=stderr, elbo=float(log_z.mean()), eubo=None,
                        ess=ess, num_samples=int(pooled.numel()), stderr_batches=stderr,
                        num_batches=R, neg_inf_fraction=float(torch.isneginf(pooled).double().mean()),
                        reliable=ok, reason=reason)
