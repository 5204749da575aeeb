"""Sequential Monte Carlo / annealed importance sampling: the classical baseline.

Anneals along the geometric path pi_beta(x) ∝ N(x; 0, s^2 I)^(1-beta) p~(x)^beta
from a Gaussian reference (beta = 0) to the target (beta = 1):

1. the next temperature is chosen by bisection so that the conditional ESS of the
   incremental weights is ``cess`` * N (Zhou, Johansen & Aston 2016);
2. log Z accumulates log sum_i W_i exp((beta' - beta) l_i), l = log p~ - log N(0, s^2);
3. particles are resampled (systematic) when the ESS falls below ``resample_threshold`` * N;
4. HMC moves (MALA when ``leapfrog_steps = 1``) leave pi_beta invariant, preconditioned
   by the particles' per-coordinate spread, with the step size adapted after each
   move toward ``target_accept``.

The SMC estimate Z^ is unbiased but a single run carries no simple error bar, so
``num_replicates`` independent runs (batched: one tensor [R, N, dim]) are combined:
log Z = log mean_r Z^_r, with a delta-method standard error from their spread, and
ELBO = mean_r log Z^_r (a lower bound on log Z in expectation, by Jensen).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor
from tqdm.auto import tqdm

from logz.samplers import register
from logz.samplers.estimators import (LogZEstimate, combine_independent_log_z,
                                      effective_sample_size)
from logz.targets.base import check_input, checked_log_prob, log_prob_and_grad, target_name


@dataclass
class SMCResult:
    """One batched SMC run. R replicates of N particles in dimension d.

    Attributes:
        particles: Tensor[R, N, d] final particles.
        log_weights: Tensor[R, N] final normalized log-weights (logsumexp = 0 per replicate).
        log_z: Tensor[R] log Z^ of each replicate.
        betas: list of Tensor[R], the temperature ladder (replicates may differ).
        acceptance: list of Tensor[R], mean HMC acceptance per temperature.
        step_sizes: list of Tensor[R], HMC step size per temperature.
        num_resamples: Tensor[R] how often each replicate resampled.
    """

    particles: Tensor
    log_weights: Tensor
    log_z: Tensor
    betas: list = field(default_factory=list)
    acceptance: list = field(default_factory=list)
    step_sizes: list = field(default_factory=list)
    num_resamples: Optional[Tensor] = None

    @property
    def num_temperatures(self) -> int:
        return len(self.betas)


def systematic_resample(log_w: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Systematic resampling indices per row. log_w: Tensor[R, N] -> LongTensor[R, N]."""
    R, N = log_w.shape
    w = torch.softmax(log_w, dim=-1)
    cdf = torch.cumsum(w, dim=-1)
    cdf[:, -1] = 1.0  # guard against round-off
    u = (torch.rand(R, 1, generator=generator, dtype=w.dtype, device=w.device)
         + torch.arange(N, dtype=w.dtype, device=w.device)) / N
    return torch.searchsorted(cdf, u).clamp_max(N - 1)


class SMC:
    """Adaptive SMC sampler with HMC moves on the geometric path.

    Args:
        target: any object with ``dim`` and ``log_prob`` (differentiable).
        init_std: reference Gaussian scale s; default the target's ``init_std`` hint, else 1.
        num_replicates: independent SMC runs that share ``num_samples`` particles (>= 2).
        cess: conditional-ESS fraction kept per temperature step, in (0, 1).
        resample_threshold: resample when the ESS fraction falls below this.
        num_mcmc_steps: HMC moves per temperature.
        leapfrog_steps: leapfrog steps per HMC move (1 = MALA).
        step_size: initial step size, relative to the particles' spread.
        step_jitter: each particle's step is the adapted one divided by a log-uniform
            factor in [1, step_jitter] (1 = no jitter).
        target_accept: acceptance rate the step size adapts to.
        max_temperatures: safety cap on the ladder length.
        seed, device, dtype: randomness and placement (float64 default: log Z sums many terms).
    """

    def __init__(self, target, *, init_std: Optional[float] = None, num_replicates: int = 8,
                 cess: float = 0.95, resample_threshold: float = 0.5, num_mcmc_steps: int = 3,
                 leapfrog_steps: int = 5, step_size: Optional[float] = None,
                 target_accept: float = 0.65, max_temperatures: int = 2000, seed: int = 0,
                 device=None, dtype: torch.dtype = torch.float64, kernel: str = "hmc",
                 step_jitter: float = 10.0, max_step: float = 1.0, preconditioner: str = "std"):
        if not (hasattr(target, "dim") and hasattr(target, "log_prob")):
            raise ValueError(f"target {target!r} must have `dim` and `log_prob(x)`")
        if kernel not in ("hmc", "mala"):
            raise ValueError(f"kernel must be 'hmc' or 'mala', got {kernel!r}")
        checks = {"cess": 0 < cess < 1, "resample_threshold": 0 < resample_threshold <= 1,
                  "target_accept": 0 < target_accept < 1, "num_replicates": num_replicates >= 2,
                  "num_mcmc_steps": num_mcmc_steps >= 0, "leapfrog_steps": leapfrog_steps >= 1,
                  "max_temperatures": max_temperatures >= 1, "step_jitter": step_jitter >= 1}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SMC: invalid {name} = {locals()[name]!r}")
        self.target = target
        self.dim = int(target.dim)
        self.init_std = float(init_std if init_std is not None else getattr(target, "init_std", 1.0))
        if not self.init_std > 0:
            raise ValueError(f"SMC: init_std must be > 0, got {self.init_std}")
        self.num_replicates = int(num_replicates)
        self.cess, self.resample_threshold = float(cess), float(resample_threshold)
        self.num_mcmc_steps = int(num_mcmc_steps)
        self.leapfrog_steps = 1 if kernel == "mala" else int(leapfrog_steps)
        self.step_size = float(step_size) if step_size is not None else 1.0 / self.dim ** 0.25
        self.target_accept = float(target_accept)
        self.step_jitter = float(step_jitter)
        self.max_step = float(max_step)
        if preconditioner not in ("std", "mad", "none"):
            raise ValueError(f"preconditioner must be 'std', 'mad' or 'none', got {preconditioner!r}")
        self.preconditioner = preconditioner
        self.max_temperatures = int(max_temperatures)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.last_result: Optional[SMCResult] = None

    # -- scikit-learn shape -------------------------------------------------
    def fit(self, iterations: int = 0, progress: bool = False) -> list:
        """Classical sampler: nothing to learn. Returns an empty history."""
        return []

    def estimate_log_z(self, num_samples: int = 2000, progress: bool = False) -> LogZEstimate:
        """Run SMC with ``num_samples`` particles in all (split over the replicates)."""
        result = self.run(num_samples, progress=progress)
        log_z, stderr = combine_independent_log_z(result.log_z)
        pooled = (result.log_weights + result.log_z[:, None]).reshape(-1)
        return LogZEstimate(log_z=log_z, stderr=stderr, elbo=float(result.log_z.mean()), eubo=None,
                            ess=effective_sample_size(pooled), num_samples=int(pooled.numel()))

    def sample(self, n: int, progress: bool = False) -> Tensor:
        """n approximate target samples: one SMC run, pooled and resampled. Tensor[n, dim]."""
        result = self.run(n, progress=progress)
        pooled = (result.log_weights + result.log_z[:, None]).reshape(-1)
        idx = torch.multinomial(torch.softmax(pooled, 0), n, replacement=True,
                                generator=self.generator)
        return result.particles.reshape(-1, self.dim)[idx]

    # -- the algorithm ------------------------------------------------------
    def _log_ref(self, x: Tensor) -> Tensor:
        s2 = self.init_std ** 2
        return -0.5 * (x * x).sum(-1) / s2 - 0.5 * self.dim * math.log(2 * math.pi * s2)

    def _target_terms(self, x: Tensor, need_grad: bool, strict: bool = True
                      ) -> tuple[Tensor, Optional[Tensor]]:
        """log p~ and its gradient for x: Tensor[R, N, d].

        strict: validate the output (ValueError naming the target on NaN/+inf/shape).
        HMC proposals use strict=False: a diverging leapfrog trajectory may leave the
        region where the target is finite, and such proposals are simply rejected
        (log p~ := -inf), which keeps pi_beta invariant.
        """
        flat = x.reshape(-1, self.dim)
        if not strict:
            with torch.enable_grad():
                xg = flat.detach().requires_grad_(True)
                lp = self.target.log_prob(xg)
                (grad,) = torch.autograd.grad(lp.sum(), xg)
            bad = ~torch.isfinite(lp) | ~torch.isfinite(grad).all(-1)
            lp = torch.where(bad, torch.full_like(lp, -math.inf), lp.detach())
            grad = torch.where(bad[:, None], torch.zeros_like(grad), grad)
            return lp.view(x.shape[:-1]), grad.view(x.shape)
        if need_grad:
            lp, grad = log_prob_and_grad(self.target, flat)
            return lp.view(x.shape[:-1]), grad.view(x.shape)
        with torch.no_grad():
            return checked_log_prob(self.target, flat).view(x.shape[:-1]), None

    def _next_delta(self, log_w: Tensor, ell: Tensor, beta: Tensor) -> Tensor:
        """Largest step in beta (per replicate) whose conditional ESS is >= cess * N."""
        remaining = 1.0 - beta

        def cess_fraction(delta: Tensor) -> Tensor:
            inc = torch.where(torch.isfinite(ell), delta[:, None] * ell,
                              torch.full_like(ell, -math.inf))
            inc = torch.where(delta[:, None] == 0, torch.zeros_like(inc), inc)
            a = torch.logsumexp(log_w + inc, -1)
            b = torch.logsumexp(log_w + 2 * inc, -1)
            return torch.exp(2 * a - b)  # weights normalized: this is CESS / N

        ok_full = cess_fraction(remaining) >= self.cess
        lo, hi = torch.zeros_like(beta), remaining.clone()
        for _ in range(40):  # bisection to ~1e-12 relative
            mid = 0.5 * (lo + hi)
            good = cess_fraction(mid) >= self.cess
            lo = torch.where(good, mid, lo)
            hi = torch.where(good, hi, mid)
        delta = torch.where(ok_full, remaining, lo).clamp_max(self.max_step)
        # never stall: at least a tiny step (CESS criterion cannot be met only if l is degenerate)
        return torch.where(remaining > 0, delta.clamp_min(torch.minimum(remaining, 1e-10 + 0 * beta)),
                           torch.zeros_like(beta))

    def _hmc(self, x: Tensor, lp: Tensor, grad_t: Tensor, beta: Tensor, eps: Tensor,
             scale: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One preconditioned HMC move per particle, leaving pi_beta invariant.

        x: [R, N, d]; lp, grad_t: target log-density and gradient at x; beta, eps: [R];
        scale: [R, 1, d] per-coordinate particle spread (the inverse mass is scale^2).
        Returns new (x, lp, grad_t, acceptance rate [R]).
        """
        b = beta[:, None]
        s2 = self.init_std ** 2

        def log_pi(lp_: Tensor, x_: Tensor) -> Tensor:
            return (1 - b) * self._log_ref(x_) + b * lp_

        def grad_pi(g_: Tensor, x_: Tensor) -> Tensor:
            return (1 - b[..., None]) * (-x_ / s2) + b[..., None] * g_

        # Per-particle random step sizes, log-uniform over [eps / jitter, eps]: drawn
        # independently of the state, so each move stays pi_beta-reversible, and the
        # small ones let particles enter narrow regions (a funnel's neck) that one
        # global step size, tuned to the bulk, would reject.
        u = torch.rand(x.shape[:-1], generator=self.generator, dtype=x.dtype, device=x.device)
        step = (eps[:, None] * torch.exp(-math.log(self.step_jitter) * u))[..., None] * scale
        q = torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)
        h0 = log_pi(lp, x) - 0.5 * (q * q).sum(-1)
        xn, gn = x, grad_t
        q = q + 0.5 * step * grad_pi(gn, xn)
        for i in range(self.leapfrog_steps):
            xn = xn + step * q
            lpn, gn = self._target_terms(xn, need_grad=True, strict=False)
            if i < self.leapfrog_steps - 1:
                q = q + step * grad_pi(gn, xn)
        q = q + 0.5 * step * grad_pi(gn, xn)
        h1 = log_pi(lpn, xn) - 0.5 * (q * q).sum(-1)
        log_accept = torch.nan_to_num(h1 - h0, nan=-math.inf).clamp_max(0.0)
        u = torch.rand(log_accept.shape, generator=self.generator, dtype=x.dtype, device=x.device)
        accept = torch.log(u) < log_accept
        a3 = accept[..., None]
        return (torch.where(a3, xn, x), torch.where(accept, lpn, lp), torch.where(a3, gn, grad_t),
                log_accept.exp().mean(-1))

    def _spread(self, x: Tensor, log_w: Tensor) -> Tensor:
        """Per-coordinate particle spread [R, 1, d] used as HMC preconditioner.

        "std" is the weighted standard deviation; "mad" the (unweighted, after
        resampling the weights are near-uniform) median absolute deviation x 1.4826,
        which heavy tails (a funnel's mouth) do not inflate.
        """
        if self.preconditioner == "mad":
            med = x.median(dim=1, keepdim=True).values
            return (1.4826 * (x - med).abs().median(dim=1, keepdim=True).values).clamp_min(1e-6)
        w = log_w.exp()[..., None]
        mean = (w * x).sum(1, keepdim=True)
        return ((w * (x - mean) ** 2).sum(1, keepdim=True)).sqrt().clamp_min(1e-6)

    @torch.no_grad()
    def run(self, num_samples: int, progress: bool = False) -> SMCResult:
        """A batched SMC run with ``num_samples`` particles split over the replicates."""
        R = self.num_replicates
        N = int(num_samples) // R
        if N < 2:
            raise ValueError(f"SMC needs at least 2 particles per replicate: num_samples = "
                             f"{num_samples} with {R} replicates gives {N}")
        dev, dt = self.device, self.dtype
        x = self.init_std * torch.randn(R, N, self.dim, generator=self.generator, dtype=dt, device=dev)
        check_input(self.target, x[0])
        lp, grad_t = self._target_terms(x, need_grad=self.num_mcmc_steps > 0)
        log_w = torch.full((R, N), -math.log(N), dtype=dt, device=dev)
        log_z = torch.zeros(R, dtype=dt, device=dev)
        beta = torch.zeros(R, dtype=dt, device=dev)
        eps = torch.full((R,), self.step_size, dtype=dt, device=dev)
        n_resample = torch.zeros(R, dtype=torch.long, device=dev)
        result = SMCResult(x, log_w, log_z)
        bar = tqdm(total=1000, disable=not progress, desc=f"SMC {target_name(self.target)}",
                   unit="‰β", leave=False)
        for _ in range(self.max_temperatures):
            if bool((beta >= 1).all()):
                break
            ell = lp - self._log_ref(x)
            delta = self._next_delta(log_w, ell, beta)
            inc = torch.where(delta[:, None] > 0, delta[:, None] * ell, torch.zeros_like(ell))
            inc = torch.nan_to_num(inc, nan=-math.inf)
            log_z = log_z + torch.logsumexp(log_w + inc, -1)
            log_w = torch.log_softmax(log_w + inc, -1)
            beta = torch.where(beta + delta >= 1 - 1e-12, torch.ones_like(beta), beta + delta)
            if bool(torch.isneginf(log_z).any()):
                raise ValueError(f"SMC on target {target_name(self.target)!r}: every particle of a "
                                 f"replicate has zero target density; widen init_std")
            ess = torch.exp(-torch.logsumexp(2 * log_w, -1)) / N
            resample = ess < self.resample_threshold
            if bool(resample.any()):
                idx = systematic_resample(log_w, self.generator)
                keep = ~resample[:, None]
                idx = torch.where(keep, torch.arange(N, device=dev).expand(R, N), idx)
                x = torch.gather(x, 1, idx[..., None].expand(-1, -1, self.dim))
                lp = torch.gather(lp, 1, idx)
                if grad_t is not None:
                    grad_t = torch.gather(grad_t, 1, idx[..., None].expand(-1, -1, self.dim))
                log_w = torch.where(keep, log_w, torch.full_like(log_w, -math.log(N)))
                n_resample += resample.long()
            acc_mean = torch.zeros(R, dtype=dt, device=dev)
            if self.num_mcmc_steps > 0:
                scale = self._spread(x, log_w)
                for _m in range(self.num_mcmc_steps):
                    x, lp, grad_t, acc = self._hmc(x, lp, grad_t, beta, eps, scale)
                    # Robbins–Monro on log step size toward the target acceptance
                    eps = eps * torch.exp(acc - self.target_accept)
                    acc_mean = acc_mean + acc / self.num_mcmc_steps
            result.betas.append(beta.clone())
            result.acceptance.append(acc_mean)
            result.step_sizes.append(eps.clone())
            bar.n = int(1000 * float(beta.min()))
            bar.set_postfix(temps=len(result.betas), accept=f"{float(acc_mean.mean()):.2f}")
            bar.refresh()
        else:
            raise RuntimeError(f"SMC did not reach beta = 1 within max_temperatures = "
                               f"{self.max_temperatures} (min beta {float(beta.min()):.3g}); raise "
                               f"max_temperatures or lower cess")
        bar.close()
        result.particles, result.log_weights, result.log_z = x, log_w, log_z
        result.num_resamples = n_resample
        self.last_result = result
        return result


register("smc", SMC)
register("ais", lambda target, **cfg: SMC(target, **{"resample_threshold": 1e-12, **cfg}))
