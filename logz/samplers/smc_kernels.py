"""SMC's building blocks: pi_beta-invariant MCMC moves, the adaptive tempering step,
resampling and particle exchange.

Pure functions on batched particle tensors [R, N, d] (R replicates of N particles, as in
``logz.samplers.smc``) that take their densities as callables, the shared generator and a
``logz.distributed.Shard``. Particles are sharded along N: a rank holds N_local = N /
world_size particles of every replicate, per-particle noise comes from ``shard.randn`` /
``shard.rand`` (the global draw, this rank's slice, so particle i sees the same noise whatever
the world size) and per-replicate draws are plain torch, identical on every rank. On
``SINGLE`` every collective is the identity and the draws are exactly plain torch.

The kernels do no communication themselves: they return the acceptance averaged over this
rank's particles, and the caller (which guards their target calls, see ``Shard.guard``)
averages it over ranks with ``rank_mean``.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from logz._random import log_uniform
from logz.distributed import SINGLE, Shard

#: Newton-Gibbs finite-difference step and fallback random-walk scale, x the particle spread.
GIBBS_FD_STEP, GIBBS_RW_SCALE = 0.1, 1.0


def global_draw(shard: Shard, draw: Callable[[list], Tensor], shape: Sequence[int], dim: int) -> Tensor:
    """This rank's slice of ``draw(global shape)``, the global shape having ``shape[dim] *
    world_size`` rows along ``dim`` (like ``Shard.randn``, for any sampler, e.g. gamma)."""
    shape = list(shape)
    if not shard.active:
        return draw(shape)
    n = shape[dim]
    shape[dim] = n * shard.world_size
    return draw(shape).narrow(dim, shard.rank * n, n)


def rank_mean(v: Tensor, shard: Shard = SINGLE) -> Tensor:
    """Mean over ranks of a per-rank mean [R] (every rank holds as many particles): the
    global particle mean, identical on every rank; ``v`` itself on one process."""
    if not shard.active:
        return v
    return shard.gather(v[:, None], dim=1).mean(1)


def rank_sum(v: Tensor, shard: Shard = SINGLE) -> Tensor:
    """Sum over ranks of per-rank sums [R, 1, ...], identical on every rank."""
    if not shard.active:
        return v
    return shard.gather(v, dim=1).sum(1, keepdim=True)


def spread(x: Tensor, log_w: Tensor, shard: Shard = SINGLE) -> Tensor:
    """Weighted per-coordinate standard deviation [R, 1, d] of the global particle system
    (``x`` [R, N_local, d], ``log_w`` its rows of the globally normalized log-weights): the HMC
    preconditioner and the Gibbs finite-difference / random-walk scale (fixed during a
    temperature's moves, so each move is a fixed pi_beta-invariant kernel)."""
    w = log_w.exp()[..., None]
    mean = rank_sum((w * x).sum(1, keepdim=True), shard)
    return rank_sum((w * (x - mean) ** 2).sum(1, keepdim=True), shard).sqrt().clamp_min(1e-6)


def systematic_resample(log_w: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Systematic resampling indices per row. log_w: Tensor[R, N] -> LongTensor[R, N].

    One uniform per row: with global weights and a shared generator, every rank computes the
    same indices."""
    R, N = log_w.shape
    w = torch.softmax(log_w, dim=-1)
    cdf = torch.cumsum(w, dim=-1)
    cdf[:, -1] = 1.0  # guard against round-off
    u = (torch.rand(R, 1, generator=generator, dtype=w.dtype, device=w.device)
         + torch.arange(N, dtype=w.dtype, device=w.device)) / N
    return torch.searchsorted(cdf, u).clamp_max(N - 1)


def next_delta(log_w: Tensor, ell: Tensor, beta: Tensor, cess: float, pooled: bool = False) -> Tensor:
    """Largest step in beta (per replicate) whose conditional ESS is >= cess * N (Zhou,
    Johansen & Aston 2016). log_w: normalized log-weights [R, N], ell: log p~ - log ref [R, N],
    both global (every rank computes the same step); beta [R]. ``pooled``: one step for all
    replicates (which must share beta), from their mean conditional ESS fraction."""
    remaining = 1.0 - beta

    def cess_fraction(delta: Tensor) -> Tensor:
        inc = torch.where(torch.isfinite(ell), delta[:, None] * ell,
                          torch.full_like(ell, -math.inf))
        inc = torch.where(delta[:, None] == 0, torch.zeros_like(inc), inc)
        a = torch.logsumexp(log_w + inc, -1)
        b = torch.logsumexp(log_w + 2 * inc, -1)
        frac = torch.exp(2 * a - b)  # weights normalized: this is CESS / N
        return frac.mean().expand_as(frac) if pooled else frac

    ok_full = cess_fraction(remaining) >= cess
    lo, hi = torch.zeros_like(beta), remaining.clone()
    for _ in range(40):  # bisection to ~1e-12 relative
        mid = 0.5 * (lo + hi)
        good = cess_fraction(mid) >= cess
        lo = torch.where(good, mid, lo)
        hi = torch.where(good, hi, mid)
    delta = torch.where(ok_full, remaining, lo)
    # never stall: at least a tiny step (CESS criterion cannot be met only if l is degenerate)
    return torch.where(remaining > 0, delta.clamp_min(torch.minimum(remaining, 1e-10 + 0 * beta)),
                       torch.zeros_like(beta))


def exchange(states: Sequence[Tensor], idx: Tensor, replicates: Tensor,
             shard: Shard = SINGLE) -> list:
    """Resample particle state across ranks.

    states: tensors [R, N_local, ...] of one dtype that travel with the particles (positions,
    cached log-densities, gradients); idx: LongTensor[R, N] global resampling indices,
    identical on every rank; replicates: BoolTensor[R], the replicates that resample (the
    others keep their particles). The resampling replicates' states are all-gathered in one
    collective and each rank takes its rows of ``idx``. Returns the new states."""
    rep = replicates.nonzero().flatten()
    n = states[0].shape[1]
    widths = [s[0, 0].numel() for s in states]
    packed = torch.cat([s[rep].reshape(len(rep), n, -1) for s in states], -1)
    full = shard.gather(packed, dim=1)  # [R', N, C]
    mine = idx[rep][:, shard.rows(n)]
    picked = torch.gather(full, 1, mine[..., None].expand(-1, -1, full.shape[-1]))
    out, offset = [], 0
    for s, c in zip(states, widths):
        s = s.clone()
        s[rep] = picked[..., offset:offset + c].reshape(s[rep].shape)
        out.append(s)
        offset += c
    return out


def gibbs_sweep(x: Tensor, lp: Tensor, beta: Tensor, scale: Tensor, active: Tensor, *,
                log_prob: Callable[[Tensor], Tensor], log_ref_q: Callable[[Tensor], Tensor],
                generator: torch.Generator, shard: Shard = SINGLE) -> tuple[Tensor, Tensor, Tensor]:
    """One Metropolis-within-Gibbs sweep over the coordinates (random order), pi_beta-invariant,
    pi_beta = ref^(1 - beta) p~^beta.

    Coordinate j is proposed from a Gaussian fitted at the current point by a 3-point
    Newton step, f(x_j ± delta) with delta = GIBBS_FD_STEP x spread_j: mean
    x_j - f'/f'', variance -1/f''; where the fit is not concave (or not finite) a random
    walk with GIBBS_RW_SCALE x spread_j. The reverse proposal is fitted the same way at
    the proposed point and the move is Metropolis-Hastings corrected. For a Gaussian
    conditional the proposal *is* the conditional (acceptance 1) whatever its scale, so
    a particle in a funnel's neck gets steps of the neck's width and one in its mouth
    of the mouth's -- what a global HMC step size cannot do. Cost: 2 batched target
    calls per coordinate, no gradients.

    x [R, N, d], lp = log p~(x) [R, N], beta [R], scale [R, 1, d], active [R] (inactive
    replicates stay put); log_prob: the target's batched log p~ [M, d] -> [M]; log_ref_q: log
    reference density as a function of |x|^2. Returns new (x, lp, mean acceptance [R] over
    this rank's particles).
    """
    R, N, d = x.shape
    b = beta[:, None]
    ninf = -math.inf
    x = x.clone()
    q = (x * x).sum(-1)
    f = (1 - b) * log_ref_q(q) + b * lp
    order = torch.randperm(d, generator=generator).tolist()
    noise = shard.randn((d, R, N), generator=generator, dtype=x.dtype, device=x.device, dim=2)
    log_u = log_uniform(shard.rand((d, R, N), generator=generator, dtype=x.dtype, device=x.device, dim=2))
    acc_sum = torch.zeros(R, dtype=x.dtype, device=x.device)
    for k, j in enumerate(order):
        dl, rw2 = GIBBS_FD_STEP * scale[:, :, j], (GIBBS_RW_SCALE * scale[:, :, j]) ** 2  # [R, 1]
        xj = x[..., j]
        q_rest = q - xj * xj

        def log_pi(values: Tensor) -> tuple[Tensor, Tensor]:  # coordinate j set to values[m]
            xs = x.unsqueeze(0).repeat(values.shape[0], 1, 1, 1)
            xs[..., j] = values
            with torch.no_grad():
                lp_m = log_prob(xs.view(-1, d)).view(values.shape)
            f_m = (1 - b) * log_ref_q(q_rest + values * values) + b * lp_m
            return f_m.nan_to_num(nan=ninf, posinf=ninf), lp_m

        def newton(f0: Tensor, f_up: Tensor, f_down: Tensor, at: Tensor) -> tuple[Tensor, Tensor]:
            curv = (f_up + f_down - 2 * f0) / (dl * dl)
            slope = (f_up - f_down) / (2 * dl)
            ok = (curv < 0) & (curv > ninf) & torch.isfinite(slope)
            curv = torch.where(ok, curv, -1.0)
            return torch.where(ok, at - slope / curv, at), torch.where(ok, -1.0 / curv, rw2)

        f_pm, _ = log_pi(torch.stack([xj + dl, xj - dl]))
        mean, var = newton(f, f_pm[0], f_pm[1], xj)
        y = mean + var.sqrt() * noise[k]
        f_y, lp_y = log_pi(torch.stack([y, y + dl, y - dl]))
        mean_r, var_r = newton(f_y[0], f_y[1], f_y[2], y)
        log_a = f_y[0] - f + 0.5 * ((y - mean) ** 2 / var - (xj - mean_r) ** 2 / var_r
                                    + torch.log(var / var_r))
        log_a = log_a.nan_to_num(nan=ninf).clamp_max(0.0)
        acc = (log_u[k] < log_a) & active[:, None]
        x[..., j] = torch.where(acc, y, xj)
        q = torch.where(acc, q_rest + y * y, q)
        lp, f = torch.where(acc, lp_y[0], lp), torch.where(acc, f_y[0], f)
        acc_sum += log_a.exp().mean(-1)
    return x, lp, acc_sum / d


def hmc_move(x: Tensor, lp: Tensor, grad_t: Tensor, beta: Tensor, eps: Tensor, scale: Tensor,
             active: Tensor, *, terms: Callable[[Tensor], tuple[Tensor, Tensor]],
             log_ref: Callable[[Tensor], Tensor], grad_ref: Callable[[Tensor], Tensor],
             leapfrog_steps: int, step_jitter: float, generator: torch.Generator,
             shard: Shard = SINGLE) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One HMC move per particle (inverse mass scale^2), pi_beta-invariant; MALA is
    ``leapfrog_steps = 1``. Replicates not ``active`` [R] stay put.

    terms: x [R, N, d] -> (log p~, gradient), non-finite mapped to -inf (rejected); log_ref,
    grad_ref: the reference's log density and gradient. Per-particle step sizes are
    log-uniform over [eps / jitter, eps] x scale: state-independent (so reversible); the
    small ones enter narrow regions a global step would reject. Returns new (x, lp, grad_t,
    mean acceptance [R] over this rank's particles)."""
    b = beta[:, None]

    def log_pi(lp_: Tensor, x_: Tensor) -> Tensor:
        return (1 - b) * log_ref(x_) + b * lp_

    def grad_pi(g_: Tensor, x_: Tensor) -> Tensor:
        return (1 - b[..., None]) * grad_ref(x_) + b[..., None] * g_

    kw = dict(generator=generator, dtype=x.dtype, device=x.device, dim=1)
    u = shard.rand(x.shape[:-1], **kw)
    step = (eps[:, None] * torch.exp(-math.log(step_jitter) * u))[..., None] * scale
    q = shard.randn(x.shape, **kw)
    h0 = log_pi(lp, x) - 0.5 * (q * q).sum(-1)
    xn, gn = x, grad_t
    q = q + 0.5 * step * grad_pi(gn, xn)
    for i in range(leapfrog_steps):
        xn = xn + step * q
        lpn, gn = terms(xn)
        if i < leapfrog_steps - 1:
            q = q + step * grad_pi(gn, xn)
    q = q + 0.5 * step * grad_pi(gn, xn)
    h1 = log_pi(lpn, xn) - 0.5 * (q * q).sum(-1)
    log_accept = torch.nan_to_num(h1 - h0, nan=-math.inf).clamp_max(0.0)
    u = shard.rand(log_accept.shape, **kw)
    accept = (log_uniform(u) < log_accept) & active[:, None]
    a3 = accept[..., None]
    return (torch.where(a3, xn, x), torch.where(accept, lpn, lp), torch.where(a3, gn, grad_t),
            log_accept.exp().mean(-1))


def adapt_step_size(eps: Tensor, acceptance: Tensor, active: Tensor, target_accept: float) -> Tensor:
    """Robbins-Monro on the log step size toward ``target_accept`` (active replicates only)."""
    return torch.where(active, eps * torch.exp(acceptance - target_accept), eps)
