"""Adaptive importance sampling: a Student-t proposal fitted to the target, then plain IS.

For a unimodal target (a GLM posterior, any log-concave density) this is the most accurate
log Z per second in the library: the proposal starts at the Laplace approximation (Newton's
mode, the autograd Hessian) and is refitted ``adapt_rounds`` times to the importance-weighted
mean and covariance of ``adapt_samples`` draws (population Monte Carlo's simplest form; Cappé
et al. 2004). The estimate then draws fresh samples from the fixed proposal:

    log Z^ = log mean_i w_i,   w_i = p~(x_i) / q(x_i),   x_i ~ q = t_df(mean, L L^T),

unbiased in Z^, with the delta-method error bar and the library's flags (Pareto k^, ESS;
``estimators.estimate_from_log_weights``). The t's tails (df = 10) are heavier than a
log-concave target's, so the weights are bounded where it matters; a target with several
modes or a funnel is not one this sampler fits, and the flags say so: use ``smc``.

Why it is here: a reference log Z for the logistic-regression targets to ±0.002 in a minute
of one core (``python -m logz.bench.reference ionosphere --sampler importance
--num-samples 1000000``), where 20000-particle SMC gives ±0.013 in five.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from logz.samplers._common import _as_dtype, _check, _is_int
from logz.samplers.estimators import LogZEstimate, effective_sample_size, estimate_from_log_weights
from logz.samplers.training import History
from logz.targets.base import checked_log_prob, log_prob_and_grad, target_name

__all__ = ["ImportanceSampler", "MIN_ADAPT_ESS", "Proposal", "laplace", "student_t_draw", "tempered"]


#: a refit uses the weights w^lambda with the largest lambda <= 1 whose ESS fraction is at least
#: this: a proposal far from the target (ESS ~ 1e-3 in d = 61 from the Laplace start) has too
#: few effective draws for a covariance, so it moves part of the way, as in adaptive tempering
MIN_ADAPT_ESS = 0.05


def tempered(log_w: Tensor, min_ess: float) -> float:
    """The largest lambda in (0, 1] whose weights w^lambda have an ESS fraction >= min_ess (bisection)."""
    if effective_sample_size(log_w) >= min_ess:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if effective_sample_size(mid * log_w) >= min_ess else (lo, mid)
    return max(lo, 1e-12)


class Proposal(NamedTuple):
    """The proposal t_df(mean, scale_tril scale_tril^T); ``ess``: the ESS fraction of the
    draws it was judged by (None for the starting Laplace fit)."""

    mean: Tensor        # [d]
    scale_tril: Tensor  # [d, d] lower triangular
    df: float
    ess: Optional[float]


def student_t_draw(p: Proposal, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n draws x ~ q and their log q(x).  -> (Tensor[n, d], Tensor[n]). df = inf: Gaussian."""
    d = p.mean.shape[0]
    z = torch.randn(n, d, generator=generator, dtype=p.mean.dtype, device=p.mean.device)
    log_det = torch.log(torch.diagonal(p.scale_tril)).sum()
    if math.isinf(p.df):
        y = z
        log_q = -0.5 * z.pow(2).sum(-1) - 0.5 * d * math.log(2 * math.pi)
    else:  # z / sqrt(g), g ~ Gamma(df/2, rate df/2); torch.distributions takes no generator
        g = torch._standard_gamma(torch.full((n,), p.df / 2, dtype=z.dtype, device=z.device),
                                  generator=generator) * (2 / p.df)
        y = z / g.sqrt()[:, None]
        log_q = (math.lgamma((p.df + d) / 2) - math.lgamma(p.df / 2) - 0.5 * d * math.log(p.df * math.pi)
                 - 0.5 * (p.df + d) * torch.log1p(y.pow(2).sum(-1) / p.df))
    return p.mean + y @ p.scale_tril.T, log_q - log_det


def laplace(target, x0: Tensor, max_steps: int = 50) -> Optional[tuple[Tensor, Tensor]]:
    """(mode, covariance = (-Hessian)^-1) by damped Newton from x0 [d], or None when the
    Hessian is not negative definite on the way or the iteration does not converge."""
    x = x0.clone()
    f = lambda v: checked_log_prob(target, v[None])[0]  # noqa: E731
    for _ in range(max_steps):
        lp, grad = log_prob_and_grad(target, x[None])
        hess = torch.autograd.functional.hessian(f, x)
        chol, info = torch.linalg.cholesky_ex(-hess)
        if int(info) != 0 or not bool(torch.isfinite(hess).all()):
            return None
        step = torch.cholesky_solve(grad[0][:, None], chol)[:, 0]
        decrement = float(grad[0] @ step)  # Newton decrement^2: converged below 1e-10
        if decrement < 1e-10:
            return x, torch.cholesky_inverse(chol)
        a = 1.0
        while a > 1e-8 and not float(f(x + a * step)) >= float(lp[0]):  # backtrack until no worse
            a /= 2
        x = x + a * step
    return None


class ImportanceSampler:
    """Adaptive importance sampling with a Student-t proposal (module doc).

    Args:
        target: any object with ``dim`` and ``log_prob(x: Tensor[B, dim]) -> Tensor[B]``.
        df: the proposal's degrees of freedom (> 2; ``math.inf``: Gaussian).
        adapt_rounds: refits to weighted moments after the Laplace start (0: Laplace only).
        adapt_samples: draws per refit (>= dim + 2).
        chunk: draws per batched target call (memory bound for large ``num_samples``).
        seed, device, dtype: randomness and placement (float64 default: log Z sums many terms).

    ``fit`` adapts the proposal (once; the first estimate or sample does it otherwise) and
    returns an empty ``History``: there is nothing else to learn. ``proposals`` keeps every
    fit with its ESS; the one with the highest ESS is used.
    """

    name = "importance"

    def __init__(self, target, *, df: float = 10.0, adapt_rounds: int = 12, adapt_samples: int = 50_000,
                 chunk: int = 100_000, seed: int = 0, device=None, dtype: torch.dtype = torch.float64):
        if not (hasattr(target, "dim") and hasattr(target, "log_prob")):
            raise ValueError(f"target {target!r} must have `dim` and `log_prob(x)`")
        d = int(target.dim)
        _check("df", isinstance(df, (int, float)) and not isinstance(df, bool) and df > 2, df,
               "a number > 2 (math.inf: Gaussian)")
        _check("adapt_rounds", _is_int(adapt_rounds) and adapt_rounds >= 0, adapt_rounds, "an integer >= 0")
        _check("adapt_samples", _is_int(adapt_samples) and adapt_samples >= d + 2, adapt_samples,
               f"an integer >= dim + 2 = {d + 2}")
        _check("chunk", _is_int(chunk) and chunk >= 1, chunk, "an integer >= 1")
        dtype = _as_dtype(dtype)
        self.target, self.dim, self.df = target, d, float(df)
        self.adapt_rounds, self.adapt_samples, self.chunk = int(adapt_rounds), int(adapt_samples), int(chunk)
        self.seed, self.dtype = int(seed), dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.proposals: list[Proposal] = []

    @property
    def proposal(self) -> Proposal:
        """The adapted proposal with the highest ESS (adapting first if needed)."""
        if not self.proposals:
            self._adapt()
        return max(self.proposals, key=lambda p: -1.0 if p.ess is None else p.ess)

    def fit(self, iterations: int = 0, progress: bool = False) -> History:
        """Adapt the proposal (``iterations`` is ignored: the rounds are ``adapt_rounds``)."""
        if not self.proposals:
            self._adapt()
        return History()

    def _adapt(self) -> None:
        d, kw = self.dim, dict(dtype=self.dtype, device=self.device)
        fit = laplace(self.target, torch.zeros(d, **kw))
        if fit is None:
            std = float(getattr(self.target, "init_std", 1.0) or 1.0)
            warnings.warn(f"importance: no Laplace fit of {target_name(self.target)} from 0 (the Hessian "
                          f"is not negative definite on Newton's way); starting from N(0, {std:g}^2 I)",
                          stacklevel=3)
            fit = (torch.zeros(d, **kw), std ** 2 * torch.eye(d, **kw))
        # a t_df with scale matrix S has covariance S df / (df - 2): match the covariance
        cov_to_scale = (self.df - 2) / self.df if math.isfinite(self.df) else 1.0
        mean, cov = fit
        p = Proposal(mean, torch.linalg.cholesky(cov * cov_to_scale), self.df, None)
        self.proposals = [p]
        for _ in range(self.adapt_rounds):
            x, log_w = self._draw(p, self.adapt_samples)
            self.proposals[-1] = p._replace(ess=effective_sample_size(log_w))
            w = torch.softmax(tempered(log_w, MIN_ADAPT_ESS) * log_w, 0).to(x)
            mean = (w[:, None] * x).sum(0)
            xc = x - mean
            chol, info = torch.linalg.cholesky_ex((w[:, None] * xc).T @ xc * cov_to_scale)
            if int(info) != 0 or not bool(torch.isfinite(chol).all()):
                break  # too few effective draws for a covariance: keep the fits so far
            p = Proposal(mean, chol, self.df, None)
            self.proposals.append(p)
        if self.proposals[-1].ess is None and self.adapt_rounds:  # judge the last refit too
            last = self.proposals[-1]
            self.proposals[-1] = last._replace(ess=effective_sample_size(self._log_weights(last, self.adapt_samples)))

    def _chunks(self, p: Proposal, n: int):
        """n draws from p in chunks of ``chunk``: (x Tensor[m, d], log-weights Tensor[m]) each."""
        for start in range(0, n, self.chunk):
            x, log_q = student_t_draw(p, min(self.chunk, n - start), self.generator)
            with torch.no_grad():
                yield x, checked_log_prob(self.target, x) - log_q

    def _draw(self, p: Proposal, n: int) -> tuple[Tensor, Tensor]:
        """n draws from p and their log-weights.  -> (Tensor[n, d], Tensor[n])."""
        xs, lws = zip(*self._chunks(p, n))
        return torch.cat(xs), torch.cat(lws)

    def _log_weights(self, p: Proposal, n: int) -> Tensor:
        """The log-weights of n draws from p, without keeping the draws.  -> Tensor[n]."""
        return torch.cat([lw for _, lw in self._chunks(p, n)])

    def estimate_log_z(self, num_samples: int = 2000, progress: Optional[bool] = None) -> LogZEstimate:
        """Plain IS with ``num_samples`` fresh draws from the adapted proposal."""
        _check("num_samples", _is_int(num_samples) and num_samples >= 2, num_samples, "an integer >= 2")
        return estimate_from_log_weights(self._log_weights(self.proposal, int(num_samples)))

    def sample(self, n: int, progress: Optional[bool] = None) -> Tensor:
        """n approximate target samples: 10 n proposal draws resampled by weight.  Tensor[n, dim]."""
        x, log_w = self._draw(self.proposal, 10 * int(n))
        idx = torch.multinomial(torch.softmax(log_w, 0), int(n), replacement=True, generator=self.generator)
        return x[idx]
