"""Sequential Monte Carlo / annealed importance sampling: the classical baseline.

Anneals along the geometric path pi_beta(x) ∝ ref(x)^(1-beta) p~(x)^beta from a
Gaussian / Student-t mixture reference (beta = 0) to the target (beta = 1):

1. the next temperature is chosen by bisection so that the conditional ESS of the
   incremental weights is ``cess`` * N (Zhou, Johansen & Aston 2016);
2. log Z accumulates log sum_i W_i exp((beta' - beta) l_i), l = log p~ - log ref;
3. particles are resampled (systematic) when the ESS falls below ``resample_threshold`` * N;
4. pi_beta-invariant moves: ``num_mcmc_steps`` per temperature plus ``moves_per_beta``
   spread along beta; Newton-Gibbs sweeps up to ``GIBBS_MAX_DIM`` dimensions, HMC above.

Why (measured on Funnel-10, where the former HMC / Gaussian-reference version gave
log Z^ ≈ -0.2 ... -0.6 at stderr ≈ 0.05): a geometric path from any bounded reference
empties narrow high-density regions (a funnel's neck) at intermediate beta and refills
them only near beta = 1. Reweighting can remove mass, only moves can create it, so what
the kernel cannot carry there in time is missing from the incremental weights -- a
systematic lag. It took a kernel whose scale follows each particle (Gibbs, see
``_gibbs_sweep``), MCMC work tied to the path rather than to the CESS ladder (which takes
a few big steps exactly there, see ``_num_moves``), and heavy reference tails (with a
Gaussian reference p~/ref has infinite variance on heavier-tailed targets, so Z^_r is
heavy-tailed, log mean Z^_r biased low and the error bar too small, even with exact
sampling). Tried and dropped (none reached 3 SE at a few seconds): capped beta / logit-beta
steps, CESS 0.99, wider step jitter, MALA, longer trajectories, MAD / gradient-variance
preconditioners, gradient-norm (GIST) step sizes, random-walk Gibbs, ensemble stretch
moves, over-relaxation, and moving until the tempering statistic decorrelates.

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

#: kernel="auto": Newton-Gibbs up to this dimension (a sweep costs 2 batched target calls,
#: 5N rows, per coordinate), HMC above (``leapfrog_steps`` gradient calls per move).
GIBBS_MAX_DIM = 16
#: Newton-Gibbs finite-difference step and fallback random-walk scale, x the particle spread.
GIBBS_FD_STEP, GIBBS_RW_SCALE = 0.1, 1.0
#: default moves_per_beta: Newton-Gibbs sweeps / HMC moves per unit of beta.
DEFAULT_MOVES_PER_BETA = {"gibbs": 200.0, "hmc": 40.0, "mala": 40.0}


@dataclass
class SMCResult:
    """One batched SMC run. R replicates of N particles in dimension d.

    Attributes:
        particles: Tensor[R, N, d] final particles.
        log_weights: Tensor[R, N] final normalized log-weights (logsumexp = 0 per replicate).
        log_z: Tensor[R] log Z^ of each replicate.
        betas: list of Tensor[R], the temperature ladder (replicates may differ).
        acceptance: list of Tensor[R], mean MCMC acceptance per temperature.
        step_sizes: list of Tensor[R], HMC step size per temperature.
        num_resamples: Tensor[R] how often each replicate resampled.
        moves: list of Tensor[R], MCMC moves (sweeps) per temperature.
    """

    particles: Tensor
    log_weights: Tensor
    log_z: Tensor
    betas: list = field(default_factory=list)
    acceptance: list = field(default_factory=list)
    step_sizes: list = field(default_factory=list)
    num_resamples: Optional[Tensor] = None
    moves: list = field(default_factory=list)

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
    """Adaptive SMC sampler on the geometric path from a Gaussian / Student-t reference.

    Args:
        target: any object with ``dim`` and ``log_prob`` (differentiable).
        init_std: reference scale s; default the target's ``init_std`` hint, else 1.
        reference_df, reference_mix: the reference is the defensive mixture
            (1 - mix) N(0, s^2 I) + mix t_df(0, s^2 I) (Hesterberg 1995): the t component keeps
            the weights' variance finite on heavier-tailed targets (p~/N(0, s^2) has infinite
            variance on Funnel-10), the Gaussian keeps near-Gaussian targets nearly exact
            (a pure t_3 reference multiplied the error of log Z^ by ~3 on them).
            ``reference_df = math.inf`` or ``mix = 0``: Gaussian; ``mix = 1``: pure t.
        num_replicates: independent SMC runs that share ``num_samples`` particles (>= 2).
        cess: conditional-ESS fraction kept per temperature step, in (0, 1).
        resample_threshold: resample when the ESS fraction falls below this.
        num_mcmc_steps: MCMC moves (Gibbs sweeps or HMC moves) at every temperature.
        moves_per_beta: extra moves per unit of beta, each step getting its share (see
            ``_num_moves``); default ``DEFAULT_MOVES_PER_BETA[kernel]``.
        kernel: "gibbs", "hmc", "mala" (HMC with one leapfrog step), or "auto" ("gibbs" up
            to ``GIBBS_MAX_DIM`` dimensions, "hmc" above).
        leapfrog_steps: leapfrog steps per HMC move.
        step_size: initial HMC step size, relative to the particles' spread.
        step_jitter: each particle's HMC step is the adapted one divided by a log-uniform
            factor in [1, step_jitter] (1 = no jitter).
        target_accept: acceptance rate the HMC step size adapts to.
        max_temperatures: safety cap on the ladder length.
        seed, device, dtype: randomness and placement (float64 default: log Z sums many terms).
    """

    def __init__(self, target, *, init_std: Optional[float] = None, reference_df: float = 3.0,
                 reference_mix: float = 0.3,
                 num_replicates: int = 8, cess: float = 0.95, resample_threshold: float = 0.5,
                 num_mcmc_steps: int = 2, moves_per_beta: Optional[float] = None,
                 kernel: str = "auto", leapfrog_steps: int = 5, step_size: Optional[float] = None,
                 step_jitter: float = 10.0, target_accept: float = 0.65,
                 max_temperatures: int = 2000, seed: int = 0, device=None,
                 dtype: torch.dtype = torch.float64):
        if not (hasattr(target, "dim") and hasattr(target, "log_prob")):
            raise ValueError(f"target {target!r} must have `dim` and `log_prob(x)`")
        if kernel not in ("auto", "gibbs", "hmc", "mala"):
            raise ValueError(f"kernel must be 'auto', 'gibbs', 'hmc' or 'mala', got {kernel!r}")
        checks = {"cess": 0 < cess < 1, "resample_threshold": 0 < resample_threshold <= 1,
                  "target_accept": 0 < target_accept < 1, "num_replicates": num_replicates >= 2,
                  "num_mcmc_steps": num_mcmc_steps >= 0, "leapfrog_steps": leapfrog_steps >= 1,
                  "max_temperatures": max_temperatures >= 1, "step_jitter": step_jitter >= 1,
                  "reference_df": reference_df > 0, "reference_mix": 0 <= reference_mix <= 1,
                  "moves_per_beta": moves_per_beta is None or moves_per_beta >= 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SMC: invalid {name} = {locals()[name]!r}")
        self.target = target
        self.dim = int(target.dim)
        self.init_std = float(init_std if init_std is not None else getattr(target, "init_std", 1.0))
        if not self.init_std > 0:
            raise ValueError(f"SMC: init_std must be > 0, got {self.init_std}")
        self.reference_df = float(reference_df)
        self.reference_mix = 0.0 if math.isinf(self.reference_df) else float(reference_mix)
        self.num_replicates = int(num_replicates)
        self.cess, self.resample_threshold = float(cess), float(resample_threshold)
        if kernel == "auto":
            kernel = "gibbs" if self.dim <= GIBBS_MAX_DIM else "hmc"
        self.kernel = kernel
        self.num_mcmc_steps = int(num_mcmc_steps)
        self.moves_per_beta = float(DEFAULT_MOVES_PER_BETA[kernel] if moves_per_beta is None
                                    else moves_per_beta)
        self.leapfrog_steps = 1 if kernel == "mala" else int(leapfrog_steps)
        self.step_size = float(step_size) if step_size is not None else 1.0 / self.dim ** 0.25
        self.step_jitter = float(step_jitter)
        self.target_accept = float(target_accept)
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
        # Bessel's correction: the delta-method SE uses the 1/R variance of the Z^_r,
        # which with R = 8 replicates understates the standard error by 7%.
        R = result.log_z.numel()
        stderr *= math.sqrt(R / (R - 1))
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

    # -- reference ------------------------------------------------------------
    def _ref_parts(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """log of the Gaussian and of the t component (mixture weights included), q = |x|^2."""
        s2, nu, d, m = self.init_std ** 2, self.reference_df, self.dim, self.reference_mix
        ninf = torch.full_like(q, -math.inf)
        gauss = (-0.5 * q / s2 - 0.5 * d * math.log(2 * math.pi * s2) + math.log1p(-m)) if m < 1 else ninf
        if m == 0:
            return gauss, ninf
        c = math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - 0.5 * d * math.log(nu * math.pi * s2)
        return gauss, c - 0.5 * (nu + d) * torch.log1p(q / (nu * s2)) + math.log(m)

    def _ref_q(self, q: Tensor) -> Tensor:
        """Normalized log reference density as a function of q = |x|^2."""
        return torch.logaddexp(*self._ref_parts(q))

    def _log_ref(self, x: Tensor) -> Tensor:
        return self._ref_q((x * x).sum(-1))

    def _grad_ref(self, x: Tensor) -> Tensor:
        s2, nu = self.init_std ** 2, self.reference_df
        q = (x * x).sum(-1, keepdim=True)
        gauss, t = self._ref_parts(q)
        r_t = torch.exp(t - torch.logaddexp(gauss, t))  # responsibility of the t component
        return -(1 - r_t) * x / s2 - r_t * (nu + self.dim) * x / (nu * s2 + q)

    def _sample_ref(self, R: int, N: int) -> Tensor:
        z = torch.randn(R, N, self.dim, generator=self.generator, dtype=self.dtype, device=self.device)
        if self.reference_mix > 0:  # t = z / sqrt(chi2_nu / nu) for the t component
            half_nu = torch.full((R, N, 1), self.reference_df / 2, dtype=self.dtype, device=self.device)
            chi2_half = torch._standard_gamma(half_nu, generator=self.generator)  # chi2_nu / 2
            pick = torch.rand(R, N, 1, generator=self.generator, dtype=self.dtype,
                              device=self.device) < self.reference_mix
            z = torch.where(pick, z * (0.5 * self.reference_df / chi2_half).sqrt(), z)
        return self.init_std * z

    # -- the algorithm ------------------------------------------------------
    def _target_terms(self, x: Tensor, need_grad: bool, strict: bool = True
                      ) -> tuple[Tensor, Optional[Tensor]]:
        """log p~ (and gradient) at x [R, N, d]. strict: ValueError naming the target on
        NaN/+inf/bad shape; proposals use strict=False: non-finite -> -inf (rejected)."""
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
        delta = torch.where(ok_full, remaining, lo)
        # never stall: at least a tiny step (CESS criterion cannot be met only if l is degenerate)
        return torch.where(remaining > 0, delta.clamp_min(torch.minimum(remaining, 1e-10 + 0 * beta)),
                           torch.zeros_like(beta))

    def _num_moves(self, delta: Tensor) -> Tensor:
        """Moves per replicate for a step delta: num_mcmc_steps + moves_per_beta * delta.

        The CESS rule spaces temperatures by how much the *weights* change, so it takes a
        few large steps where mass must be *moved* into regions no particle occupies yet
        (a funnel's neck fills for beta in ~[0.6, 1]); MCMC work per unit of beta follows
        the path itself. (Weighting it toward beta = 1, density 3 beta^2, was cheaper but
        left a lag from the draining phase at small beta.) Stochastic rounding keeps the
        expected total exact; replicates already at beta = 1 (delta = 0) do not move.
        """
        u = torch.rand(delta.shape, generator=self.generator, dtype=delta.dtype, device=delta.device)
        extra = torch.floor(self.moves_per_beta * delta + u).long()
        return torch.where(delta > 0, self.num_mcmc_steps + extra, torch.zeros_like(extra))

    def _gibbs_sweep(self, x: Tensor, lp: Tensor, beta: Tensor, scale: Tensor, active: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """One Metropolis-within-Gibbs sweep over the coordinates (random order), pi_beta-invariant.

        Coordinate j is proposed from a Gaussian fitted at the current point by a 3-point
        Newton step, f(x_j ± delta) with delta = GIBBS_FD_STEP x spread_j: mean
        x_j - f'/f'', variance -1/f''; where the fit is not concave (or not finite) a random
        walk with GIBBS_RW_SCALE x spread_j. The reverse proposal is fitted the same way at
        the proposed point and the move is Metropolis-Hastings corrected. For a Gaussian
        conditional the proposal *is* the conditional (acceptance 1) whatever its scale, so
        a particle in a funnel's neck gets steps of the neck's width and one in its mouth
        of the mouth's -- what a global HMC step size cannot do. Cost: 2 batched target
        calls per coordinate, no gradients.
        Returns new (x, lp, mean acceptance [R]).
        """
        R, N, d = x.shape
        b = beta[:, None]
        gen, ninf = self.generator, -math.inf
        x = x.clone()
        q = (x * x).sum(-1)
        f = (1 - b) * self._ref_q(q) + b * lp
        order = torch.randperm(d, generator=gen).tolist()
        noise = torch.randn(d, R, N, generator=gen, dtype=x.dtype, device=x.device)
        log_u = torch.log(torch.rand(d, R, N, generator=gen, dtype=x.dtype, device=x.device))
        acc_sum = torch.zeros(R, dtype=x.dtype, device=x.device)
        for k, j in enumerate(order):
            dl, rw2 = GIBBS_FD_STEP * scale[:, :, j], (GIBBS_RW_SCALE * scale[:, :, j]) ** 2  # [R, 1]
            xj = x[..., j]
            q_rest = q - xj * xj

            def log_pi(values: Tensor) -> tuple[Tensor, Tensor]:  # coordinate j set to values[m]
                xs = x.unsqueeze(0).repeat(values.shape[0], 1, 1, 1)
                xs[..., j] = values
                with torch.no_grad():
                    lp_m = self.target.log_prob(xs.view(-1, d)).view(values.shape)
                f_m = (1 - b) * self._ref_q(q_rest + values * values) + b * lp_m
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

    def _hmc(self, x: Tensor, lp: Tensor, grad_t: Tensor, beta: Tensor, eps: Tensor,
             scale: Tensor, active: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One HMC move per particle (inverse mass scale^2), pi_beta-invariant; replicates
        not ``active`` [R] stay put. Returns new (x, lp, grad_t, acceptance rate [R])."""
        b = beta[:, None]

        def log_pi(lp_: Tensor, x_: Tensor) -> Tensor:
            return (1 - b) * self._log_ref(x_) + b * lp_

        def grad_pi(g_: Tensor, x_: Tensor) -> Tensor:
            return (1 - b[..., None]) * self._grad_ref(x_) + b[..., None] * g_

        # Per-particle step sizes, log-uniform over [eps / jitter, eps]: state-independent
        # (so reversible); the small ones enter narrow regions a global step would reject.
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
        accept = (torch.log(u) < log_accept) & active[:, None]
        a3 = accept[..., None]
        return (torch.where(a3, xn, x), torch.where(accept, lpn, lp), torch.where(a3, gn, grad_t),
                log_accept.exp().mean(-1))

    @staticmethod
    def _spread(x: Tensor, log_w: Tensor) -> Tensor:
        """Weighted per-coordinate standard deviation [R, 1, d]: the HMC preconditioner
        and the Gibbs finite-difference / random-walk scale (fixed during a temperature's
        moves, so each move is a fixed pi_beta-invariant kernel)."""
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
        x = self._sample_ref(R, N)
        check_input(self.target, x[0])
        # The gradient is validated even for the Gibbs kernel: SMC's contract is a
        # differentiable target, whichever kernel the dimension selects.
        lp, grad_t = self._target_terms(x, need_grad=self.num_mcmc_steps + self.moves_per_beta > 0)
        hmc = self.kernel != "gibbs"
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
                if hmc:
                    grad_t = torch.gather(grad_t, 1, idx[..., None].expand(-1, -1, self.dim))
                log_w = torch.where(keep, log_w, torch.full_like(log_w, -math.log(N)))
                n_resample += resample.long()
            n_moves = self._num_moves(delta)
            acc_sum = torch.zeros(R, dtype=dt, device=dev)
            if int(n_moves.max()) > 0:
                scale = self._spread(x, log_w)
                for m in range(int(n_moves.max())):
                    active = m < n_moves
                    if hmc:
                        x, lp, grad_t, acc = self._hmc(x, lp, grad_t, beta, eps, scale, active)
                        # Robbins–Monro on log step size toward the target acceptance
                        eps = torch.where(active, eps * torch.exp(acc - self.target_accept), eps)
                    else:
                        x, lp, acc = self._gibbs_sweep(x, lp, beta, scale, active)
                    acc_sum = acc_sum + torch.where(active, acc, torch.zeros_like(acc))
            result.betas.append(beta.clone())
            result.acceptance.append(acc_sum / n_moves.clamp_min(1))
            result.step_sizes.append(eps.clone())
            result.moves.append(n_moves)
            bar.n = int(1000 * float(beta.min()))
            bar.set_postfix(temps=len(result.betas), moves=int(n_moves.max()))
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
