"""SMC's move phase: after reweighting to pi_beta, move the particles with pi_beta-invariant
MCMC (Newton-Gibbs sweeps or HMC), as many moves as the step in beta calls for, with the
moves' scale and the HMC step size adapted from the particles.

Why MCMC work tied to the path (``Moves.count``) rather than to the temperature ladder:
reweighting can only remove mass, moves create it, and the CESS rule takes a few large
steps exactly where mass must be carried into regions no particle occupies yet (a funnel's
neck fills for beta in ~[0.6, 1]). The kernels themselves are in ``smc_kernels``; this
module decides how many, at what scale, and adapts the step size.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from logz.distributed import Shard
from logz.samplers.smc_kernels import adapt_step_size, gibbs_sweep, hmc_move, rank_mean, spread
from logz.samplers.smc_reference import DefensiveReference
from logz.targets.base import checked_log_prob, log_prob_and_grad

__all__ = ["DEFAULT_MOVES_PER_BETA", "GIBBS_MAX_DIM", "Moves", "target_terms"]

#: kernel="auto": Newton-Gibbs up to this dimension (a sweep costs 2 batched target calls,
#: 5N rows, per coordinate), HMC above (``leapfrog_steps`` gradient calls per move).
GIBBS_MAX_DIM = 16
#: default moves_per_beta: Newton-Gibbs sweeps / HMC moves per unit of beta. Doubled (Gibbs) and
#: quadrupled (HMC) from 200 / 40 when the calibration studies showed a lag the replicates'
#: spread cannot see: the pooled estimate of 960 Funnel-10 replicates sat 2 SE below log Z, and
#: on a 20-D Gaussian of condition number 100 HMC at 40 moves gave log Z^ -0.10 (mean z -2.2,
#: 21 seeds); see docs/error_bars.md and results/calibration/.
DEFAULT_MOVES_PER_BETA = {"gibbs": 400.0, "hmc": 160.0, "mala": 160.0}


def target_terms(target, x: Tensor, need_grad: bool, strict: bool = True
                 ) -> tuple[Tensor, Optional[Tensor]]:
    """log p~ (and gradient) at x [R, N, d]. strict: ValueError naming the target on
    NaN/+inf/bad shape; proposals use strict=False: non-finite -> -inf (rejected)."""
    flat = x.reshape(-1, x.shape[-1])
    if not strict:
        with torch.enable_grad():
            xg = flat.detach().requires_grad_(True)
            lp = target.log_prob(xg)
            (grad,) = torch.autograd.grad(lp.sum(), xg)
        bad = ~torch.isfinite(lp) | ~torch.isfinite(grad).all(-1)
        lp = torch.where(bad, torch.full_like(lp, -math.inf), lp.detach())
        grad = torch.where(bad[:, None], torch.zeros_like(grad), grad)
        return lp.view(x.shape[:-1]), grad.view(x.shape)
    if need_grad:
        lp, grad = log_prob_and_grad(target, flat)
        return lp.view(x.shape[:-1]), grad.view(x.shape)
    with torch.no_grad():
        return checked_log_prob(target, flat).view(x.shape[:-1]), None


class Moves(NamedTuple):
    """The move phase's configuration (see ``SMC`` for the meaning of each option).

    Fields: target; reference (the path's beta = 0 end); kernel "gibbs", "hmc" or "mala";
    num_mcmc_steps, moves_per_beta (how many moves, see ``count``); leapfrog_steps,
    step_jitter, target_accept (HMC); pooled (adapt from all replicates together);
    generator, shard (randomness and distribution, shared with the sampler).
    """

    target: Any
    reference: DefensiveReference
    kernel: str
    num_mcmc_steps: int
    moves_per_beta: float
    leapfrog_steps: int
    step_jitter: float
    target_accept: float
    pooled: bool
    generator: torch.Generator
    shard: Shard

    def count(self, delta: Tensor) -> Tensor:
        """Moves per replicate for a step delta: num_mcmc_steps + moves_per_beta * delta.

        The CESS rule spaces temperatures by how much the *weights* change, so it takes a
        few large steps where mass must be *moved* into regions no particle occupies yet;
        MCMC work per unit of beta follows the path itself. Stochastic rounding keeps the
        expected total exact; replicates already at beta = 1 (delta = 0) do not move.
        """
        u = torch.rand(delta.shape, generator=self.generator, dtype=delta.dtype, device=delta.device)
        extra = torch.floor(self.moves_per_beta * delta + u).long()
        return torch.where(delta > 0, self.num_mcmc_steps + extra, torch.zeros_like(extra))

    def step(self, x: Tensor, lp: Tensor, grad_t: Optional[Tensor], beta: Tensor, eps: Tensor,
             scale: Tensor, active: Tensor):
        """One MCMC move (Gibbs sweep or HMC move) of this rank's particles; a failure on one
        rank raises on every rank. Returns (x, lp, grad_t, global mean acceptance [R])."""
        ref = self.reference
        with self.shard.guard():
            if self.kernel == "gibbs":
                x, lp, acc = gibbs_sweep(x, lp, beta, scale, active, log_prob=self.target.log_prob,
                                         log_ref_q=ref.log_prob_q, generator=self.generator,
                                         shard=self.shard)
            else:
                x, lp, grad_t, acc = hmc_move(
                    x, lp, grad_t, beta, eps, scale, active,
                    terms=lambda y: target_terms(self.target, y, need_grad=True, strict=False),
                    log_ref=ref.log_prob, grad_ref=ref.grad, leapfrog_steps=self.leapfrog_steps,
                    step_jitter=self.step_jitter, generator=self.generator, shard=self.shard)
        return x, lp, grad_t, rank_mean(acc, self.shard)

    def run(self, x: Tensor, lp: Tensor, grad_t: Optional[Tensor], beta: Tensor, eps: Tensor,
            delta: Tensor, log_w: Tensor):
        """The move phase at temperature beta [R] after a step delta [R]: ``count(delta)``
        moves per replicate at a scale from the particles' weighted spread (this rank's
        log-weights log_w [R, N_local]), adapting the HMC step size eps [R] after each move.
        Returns (x, lp, grad_t, eps, summed acceptance [R], moves [R])."""
        R, dim = x.shape[0], x.shape[-1]
        n_moves = self.count(delta)
        acc_sum = torch.zeros(R, dtype=x.dtype, device=x.device)
        if int(n_moves.max()) > 0:
            if self.pooled:  # one scale from all replicates' particles
                pooled_w = (log_w - math.log(R)).reshape(1, -1)
                scale = spread(x.reshape(1, -1, dim), pooled_w, self.shard).expand(R, 1, dim)
            else:
                scale = spread(x, log_w, self.shard)
            for m in range(int(n_moves.max())):
                active = m < n_moves
                x, lp, grad_t, acc = self.step(x, lp, grad_t, beta, eps, scale, active)
                if self.kernel != "gibbs":
                    acc_a = acc[active].mean().expand_as(acc) if self.pooled else acc
                    eps = adapt_step_size(eps, acc_a, active, self.target_accept)
                acc_sum = acc_sum + torch.where(active, acc, torch.zeros_like(acc))
        return x, lp, grad_t, eps, acc_sum, n_moves
