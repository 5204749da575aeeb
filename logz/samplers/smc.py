"""Sequential Monte Carlo / annealed importance sampling: the classical baseline.

Anneals along the geometric path pi_beta(x) ∝ ref(x)^(1-beta) p~(x)^beta from a
Gaussian / Student-t mixture reference (beta = 0) to the target (beta = 1):

1. the next temperature is chosen by bisection so that the conditional ESS of the
   incremental weights is ``cess`` * N (Zhou, Johansen & Aston 2016);
2. log Z accumulates log sum_i W_i exp((beta' - beta) l_i), l = log p~ - log ref;
3. particles are resampled (systematic) when the ESS falls below ``resample_threshold`` * N;
4. pi_beta-invariant moves: ``num_mcmc_steps`` per temperature plus ``moves_per_beta``
   spread along beta; Newton-Gibbs sweeps up to ``GIBBS_MAX_DIM`` dimensions, HMC above.

Why: a geometric path from any bounded reference empties narrow high-density regions (a
funnel's neck) at intermediate beta and refills them only near beta = 1; reweighting can only
remove mass, moves create it, so what the kernel cannot carry there in time is missing from the
incremental weights. Hence a kernel whose scale follows each particle (Newton-Gibbs, see
``smc_kernels.gibbs_sweep``), MCMC work tied to the path rather than to the CESS ladder (see
``_num_moves``), and heavy reference tails (with a Gaussian reference p~/ref has infinite
variance on heavier-tailed targets). The variants measured and dropped on the way are in
``docs/smc.md``.

The SMC estimate Z^ is unbiased but a single run carries no simple error bar, so
``num_replicates`` (default ``replicates_for(num_samples)``) independent runs (batched: one
tensor [R, N, dim]) are combined:
log Z = log mean_r Z^_r, with a delta-method standard error from their spread, and
ELBO = mean_r log Z^_r (a lower bound on log Z in expectation, by Jensen). Many small
replicates (40 x 50 particles at n = 2000) make the spread a good variance estimate; their
temperatures, move scales and step sizes are adapted from all replicates together
(``pooled_adaptation``), so no 50-particle run is biased by adapting to itself. Calibration
over 50 seeds per target: results/calibration/ and docs/error_bars.md.

Distributed (``shard``, see ``logz.distributed``): particles are sharded along N, each rank
holding N / world_size particles of every replicate, with per-particle noise from the global
draw (``Shard.randn``), so a run on any number of ranks equals the one-process run with the
same seed and total particles, up to float round-off. The log-weights are kept GLOBAL on every
rank ([R, N], all-gathering the incremental log-likelihoods once per temperature), so
tempering, ESS, log Z and the resampling indices are computed identically everywhere;
resampling all-gathers the resampling replicates' particles (with their cached log-densities
and gradients) and each rank takes its rows; the spread and the acceptance rates are summed
over ranks. Target calls run under ``Shard.guard``: a failure on one rank raises on all.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor
from tqdm.auto import tqdm

from logz.distributed import Shard, resolve
from logz.samplers._common import progress_disabled
from logz.samplers.training import History
from logz.samplers.estimators import (LogZEstimate, combine_independent_log_z,
                                      effective_sample_size, reliability, warn_once)
from logz.samplers.smc_kernels import (adapt_step_size, exchange, gibbs_sweep, global_draw,
                                       hmc_move, next_delta, rank_mean, spread,
                                       systematic_resample)
from logz.targets.base import check_input, checked_log_prob, log_prob_and_grad, target_name

#: kernel="auto": Newton-Gibbs up to this dimension (a sweep costs 2 batched target calls,
#: 5N rows, per coordinate), HMC above (``leapfrog_steps`` gradient calls per move).
GIBBS_MAX_DIM = 16
#: default replicates: as many as MAX_REPLICATES, each of at least MIN_REPLICATE_PARTICLES
#: particles (see ``replicates_for`` and docs/error_bars.md for the measurement behind them).
MAX_REPLICATES, MIN_REPLICATE_PARTICLES = 40, 50
#: the estimate is flagged unreliable when the normalized ESS of the R replicate estimates
#: Z^_r falls below this (their relative spread above 1: one or two replicates carry it).
REPLICATE_ESS_MIN = 0.5
#: default moves_per_beta: Newton-Gibbs sweeps / HMC moves per unit of beta. Doubled (Gibbs) and
#: quadrupled (HMC) from 200 / 40 when the calibration studies showed a lag the replicates'
#: spread cannot see: the pooled estimate of 960 Funnel-10 replicates sat 2 SE below log Z, and
#: on a 20-D Gaussian of condition number 100 HMC at 40 moves gave log Z^ -0.10 (mean z -2.2,
#: 21 seeds); see docs/error_bars.md and results/calibration/.
DEFAULT_MOVES_PER_BETA = {"gibbs": 400.0, "hmc": 160.0, "mala": 160.0}


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
        num_replicates: independent SMC runs that share ``num_samples`` particles (>= 2); default
            (None) ``replicates_for(num_samples)``: up to ``MAX_REPLICATES`` runs of at least
            ``MIN_REPLICATE_PARTICLES`` particles each.
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
        pooled_adaptation: the temperature ladder (mean conditional ESS), the moves' scale and
            the HMC step size are adapted from all replicates together rather than from each
            replicate's own particles. Adapting a run from its own particles biases its Z^ by
            O(steps / N); with many small replicates (50 particles) that bias showed on a 20-D
            Gaussian (mean z -0.8 over 17 seeds). Pooled, each replicate influences its kernel
            parameters by 1 / R only, and the replicates stay independent given them.
        max_temperatures: safety cap on the ladder length.
        seed, device, dtype: randomness and placement (float64 default: log Z sums many terms).
        shard: a ``logz.distributed.Shard`` to split the particles over processes (default:
            ``current_shard()``, one process unless torch.distributed is initialised). Every
            rank must use the same configuration and seed (checked at each run).
    """

    def __init__(self, target, *, init_std: Optional[float] = None, reference_df: float = 3.0,
                 reference_mix: float = 0.3,
                 num_replicates: Optional[int] = None, cess: float = 0.95, resample_threshold: float = 0.5,
                 num_mcmc_steps: int = 2, moves_per_beta: Optional[float] = None,
                 kernel: str = "auto", leapfrog_steps: int = 5, step_size: Optional[float] = None,
                 step_jitter: float = 10.0, target_accept: float = 0.65,
                 max_temperatures: int = 2000, pooled_adaptation: bool = True, seed: int = 0, device=None,
                 dtype: torch.dtype = torch.float64, shard: Optional[Shard] = None):
        if not (hasattr(target, "dim") and hasattr(target, "log_prob")):
            raise ValueError(f"target {target!r} must have `dim` and `log_prob(x)`")
        if kernel not in ("auto", "gibbs", "hmc", "mala"):
            raise ValueError(f"kernel must be 'auto', 'gibbs', 'hmc' or 'mala', got {kernel!r}")
        checks = {"cess": 0 < cess < 1, "resample_threshold": 0 < resample_threshold <= 1,
                  "target_accept": 0 < target_accept < 1,
                  "num_replicates": num_replicates is None or num_replicates >= 2,
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
        self.num_replicates = None if num_replicates is None else int(num_replicates)
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
        self.pooled_adaptation = bool(pooled_adaptation)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.shard = resolve(shard)
        self.last_result: Optional[SMCResult] = None

    # -- scikit-learn shape -------------------------------------------------
    def fit(self, iterations: int = 0, progress: bool = False) -> History:
        """Classical sampler: nothing to learn. Returns an empty ``History``."""
        return History()

    def estimate_log_z(self, num_samples: int = 2000, progress: Optional[bool] = None) -> LogZEstimate:
        """Run SMC with ``num_samples`` particles in all (split over the replicates and, when
        distributed, the ranks); the same estimate on every rank."""
        result = self.run(num_samples, progress=progress)
        log_z, stderr = combine_independent_log_z(result.log_z)
        # Bessel's correction: the delta-method SE uses the 1/R variance of the Z^_r.
        R = result.log_z.numel()
        stderr *= math.sqrt(R / (R - 1))
        pooled = (self.shard.gather(result.log_weights, dim=1) + result.log_z[:, None]).reshape(-1)
        ess = effective_sample_size(pooled)
        ok, reason = reliability(log_z, ess, int(pooled.numel()), warn=False)
        ess_rep = effective_sample_size(result.log_z)
        if ess_rep < REPLICATE_ESS_MIN:
            ok, reason = False, "; ".join(filter(None, [reason, (
                f"the replicates disagree: ESS of the {R} replicate estimates Z^_r is {ess_rep:.2f} "
                f"< {REPLICATE_ESS_MIN} (a few runs carry the estimate; the error bar is not reliable)")]))
        if not ok:
            warn_once("smc", f"unreliable SMC log Z estimate: {reason}")
        return LogZEstimate(log_z=log_z, stderr=stderr, elbo=float(result.log_z.mean()), eubo=None,
                            ess=ess, num_samples=int(pooled.numel()), stderr_batches=stderr,
                            num_batches=R, neg_inf_fraction=float(torch.isneginf(pooled).double().mean()),
                            reliable=ok, reason=reason)

    def sample(self, n: int, progress: Optional[bool] = None) -> Tensor:
        """n approximate target samples: one SMC run, pooled and resampled. Tensor[n, dim];
        distributed, the particles are gathered and every rank returns the same n samples."""
        result = self.run(n, progress=progress)
        log_w, x = (self.shard.gather(t, dim=1) for t in (result.log_weights, result.particles))
        pooled = (log_w + result.log_z[:, None]).reshape(-1)
        idx = torch.multinomial(torch.softmax(pooled, 0), n, replacement=True,
                                generator=self.generator)
        return x.reshape(-1, self.dim)[idx]

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

    def _sample_ref(self, R: int, n: int) -> Tensor:
        """[R, n, d] reference draws: this rank's n particles of each replicate."""
        gen, kw = self.generator, dict(dtype=self.dtype, device=self.device)
        z = self.shard.randn((R, n, self.dim), generator=gen, dim=1, **kw)
        if self.reference_mix > 0:  # t = z / sqrt(chi2_nu / nu) for the t component
            chi2_half = global_draw(  # chi2_nu / 2
                self.shard, lambda shape: torch._standard_gamma(
                    torch.full(shape, self.reference_df / 2, **kw), generator=gen), (R, n, 1), dim=1)
            pick = self.shard.rand((R, n, 1), generator=gen, dim=1, **kw) < self.reference_mix
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

    def _fingerprint(self, num_samples: int) -> dict:
        """What must agree across ranks for a distributed run (configuration, generator state)."""
        config = {k: repr(v) for k, v in vars(self).items() if isinstance(v, (int, float, str, torch.dtype))}
        state = hashlib.sha256(self.generator.get_state().cpu().numpy().tobytes()).hexdigest()
        return {"target": target_name(self.target), "num_samples": int(num_samples), "generator": state,
                **config}

    def _move(self, x: Tensor, lp: Tensor, grad_t: Optional[Tensor], beta: Tensor, eps: Tensor,
              scale: Tensor, active: Tensor):
        """One MCMC move (Gibbs sweep or HMC move) of this rank's particles; a failure on one
        rank raises on every rank. Returns (x, lp, grad_t, global mean acceptance [R])."""
        with self.shard.guard():
            if self.kernel == "gibbs":
                x, lp, acc = gibbs_sweep(x, lp, beta, scale, active, log_prob=self.target.log_prob,
                                         log_ref_q=self._ref_q, generator=self.generator,
                                         shard=self.shard)
            else:
                x, lp, grad_t, acc = hmc_move(
                    x, lp, grad_t, beta, eps, scale, active,
                    terms=lambda y: self._target_terms(y, need_grad=True, strict=False),
                    log_ref=self._log_ref, grad_ref=self._grad_ref, leapfrog_steps=self.leapfrog_steps,
                    step_jitter=self.step_jitter, generator=self.generator, shard=self.shard)
        return x, lp, grad_t, rank_mean(acc, self.shard)

    @torch.no_grad()
    def run(self, num_samples: int, progress: Optional[bool] = None) -> SMCResult:
        """A batched SMC run with ``num_samples`` particles split over the replicates (and the
        ranks: the world size must divide the particles per replicate, num_samples // R)."""
        R, sh = self.num_replicates or replicates_for(num_samples), self.shard
        N = int(num_samples) // R
        if N < 2:
            raise ValueError(f"SMC needs at least 2 particles per replicate: num_samples = "
                             f"{num_samples} with {R} replicates gives {N}")
        n = sh.local_size(N, f"SMC particles per replicate (num_samples {num_samples} // {R} replicates)")
        if sh.active:
            sh.check_same("SMC configuration and generator state", self._fingerprint(num_samples))
        dev, dt = self.device, self.dtype
        x = self._sample_ref(R, n)
        with sh.guard():
            check_input(self.target, x[0])
            # The gradient is validated even for the Gibbs kernel: SMC's contract is a
            # differentiable target, whichever kernel the dimension selects.
            lp, grad_t = self._target_terms(x, need_grad=self.num_mcmc_steps + self.moves_per_beta > 0)
        hmc = self.kernel != "gibbs"
        log_w = torch.full((R, N), -math.log(N), dtype=dt, device=dev)  # global, on every rank
        eve = torch.arange(N, device=dev).expand(R, N).clone()  # global, like log_w
        mine = sh.rows(n)
        log_z = torch.zeros(R, dtype=dt, device=dev)
        beta = torch.zeros(R, dtype=dt, device=dev)
        eps = torch.full((R,), self.step_size, dtype=dt, device=dev)
        n_resample = torch.zeros(R, dtype=torch.long, device=dev)
        result = SMCResult(x, log_w, log_z)
        bar = tqdm(total=1.0, disable=progress_disabled(progress, sh.is_main), unit="β", leave=False,
                   desc=f"SMC {target_name(self.target)}",  # β from 0 to 1; β/s or s/β, temperatures
                   bar_format="{desc}: β = {n:.3f} of 1 |{bar}| {elapsed}<{remaining}, {rate_fmt}{postfix}")
        for _ in range(self.max_temperatures):
            if bool((beta >= 1).all()):
                break
            ell = sh.gather(lp - self._log_ref(x), dim=1)  # [R, N], every rank
            delta = next_delta(log_w, ell, beta, self.cess, pooled=self.pooled_adaptation)
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
                carry_grad = hmc and grad_t is not None  # cached gradients travel with HMC particles
                x, lp, *g = exchange([x, lp[..., None]] + [grad_t] * carry_grad, idx, resample, sh)
                lp, grad_t = lp[..., 0], g[0] if carry_grad else grad_t
                log_w = torch.where(resample[:, None], torch.full_like(log_w, -math.log(N)), log_w)
                eve = torch.where(resample[:, None], torch.gather(eve, 1, idx), eve)
                n_resample += resample.long()
            n_moves = self._num_moves(delta)
            acc_sum = torch.zeros(R, dtype=dt, device=dev)
            if int(n_moves.max()) > 0:
                if self.pooled_adaptation:  # one scale from all replicates' particles
                    pooled_w = (log_w[:, mine] - math.log(R)).reshape(1, -1)
                    scale = spread(x.reshape(1, -1, self.dim), pooled_w, sh).expand(R, 1, self.dim)
                else:
                    scale = spread(x, log_w[:, mine], sh)
                for m in range(int(n_moves.max())):
                    active = m < n_moves
                    x, lp, grad_t, acc = self._move(x, lp, grad_t, beta, eps, scale, active)
                    if hmc:
                        acc_a = acc[active].mean().expand_as(acc) if self.pooled_adaptation else acc
                        eps = adapt_step_size(eps, acc_a, active, self.target_accept)
                    acc_sum = acc_sum + torch.where(active, acc, torch.zeros_like(acc))
            result.betas.append(beta.clone())
            result.acceptance.append(acc_sum / n_moves.clamp_min(1))
            result.step_sizes.append(eps.clone())
            result.moves.append(n_moves)
            bar.n = float(beta.min())
            bar.set_postfix(temperatures=len(result.betas), moves=int(n_moves.max()), refresh=False)
            bar.refresh()  # one refresh per temperature
        else:
            raise RuntimeError(f"SMC did not reach beta = 1 within max_temperatures = "
                               f"{self.max_temperatures} (min beta {float(beta.min()):.3g}); raise "
                               f"max_temperatures or lower cess")
        bar.close()
        result.particles, result.log_weights, result.log_z = x, log_w[:, mine].clone(), log_z
        result.num_resamples, result.eve = n_resample, eve
        self.last_result = result
        return result


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


class AIS(SMC):
    """Annealed importance sampling: SMC that never resamples (``resample_threshold`` 1e-12)."""

    def __init__(self, target, *, resample_threshold: float = 1e-12, **config):
        super().__init__(target, resample_threshold=resample_threshold, **config)


