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
remove mass, moves create it. Hence a kernel whose scale follows each particle (Newton-Gibbs),
MCMC work tied to the path (``smc_moves``), heavy reference tails (``smc_reference``). The
variants measured and dropped on the way are in ``docs/smc.md``. This module is the algorithm;
``smc_kernels`` holds the MCMC kernels, tempering and resampling steps.

The estimate combines ``num_replicates`` independent runs, batched as one tensor [R, N, dim]
(``smc_result``: why many small replicates, how they give log Z and its error bar); their
temperatures, move scales and step sizes are adapted from all replicates together
(``pooled_adaptation``), so no small run is biased by adapting to itself.

Distributed (``shard``, see ``logz.distributed``): each rank holds N / world_size particles of
every replicate, with per-particle noise from the global draw (``Shard.randn``), so a run on any
number of ranks equals the one-process run with the same seed, up to float round-off. The
log-weights [R, N] are GLOBAL on every rank (the incremental log-likelihoods are all-gathered
once per temperature), so tempering, ESS, log Z and resampling indices agree everywhere;
resampling all-gathers the resampled replicates' particles (with cached log-densities and
gradients) and each rank takes its rows; spread and acceptance are summed over ranks. Target
calls run under ``Shard.guard``: a failure on one rank raises on all.
"""

from __future__ import annotations

import hashlib
import math
from typing import Optional

import torch
from torch import Tensor
from tqdm.auto import tqdm

from logz.distributed import Shard, resolve
from logz.samplers._common import progress_disabled
from logz.samplers.training import History
from logz.samplers.estimators import LogZEstimate
from logz.samplers.smc_kernels import exchange, next_delta, systematic_resample
from logz.samplers.smc_moves import DEFAULT_MOVES_PER_BETA, GIBBS_MAX_DIM, Moves, target_terms
from logz.samplers.smc_reference import DefensiveReference
from logz.samplers.smc_result import (MAX_REPLICATES, MIN_REPLICATE_PARTICLES, REPLICATE_ESS_MIN,
                                      SMCResult, combine_replicates, eve_relative_variance,
                                      replicates_for)
from logz.targets.base import check_input, target_name

__all__ = ["AIS", "DEFAULT_MOVES_PER_BETA", "GIBBS_MAX_DIM", "MAX_REPLICATES",
           "MIN_REPLICATE_PARTICLES", "REPLICATE_ESS_MIN", "SMC", "SMCResult",
           "eve_relative_variance", "replicates_for", "systematic_resample"]


class SMC:
    """Adaptive SMC sampler on the geometric path from a Gaussian / Student-t reference.

    Args:
        target: any object with ``dim`` and ``log_prob`` (differentiable).
        init_std: reference scale s; default the target's ``init_std`` hint, else 1.
        reference_df, reference_mix: the reference is the defensive mixture
            (1 - mix) N(0, s^2 I) + mix t_df(0, s^2 I), see ``smc_reference`` for why.
            ``reference_df = math.inf`` or ``mix = 0``: Gaussian; ``mix = 1``: pure t.
        num_replicates: independent SMC runs that share ``num_samples`` particles (>= 2); default
            (None) ``replicates_for(num_samples)``: up to ``MAX_REPLICATES`` runs of at least
            ``MIN_REPLICATE_PARTICLES`` particles each.
        cess: conditional-ESS fraction kept per temperature step, in (0, 1).
        resample_threshold: resample when the ESS fraction falls below this.
        num_mcmc_steps: MCMC moves (Gibbs sweeps or HMC moves) at every temperature.
        moves_per_beta: extra moves per unit of beta, each step getting its share (see
            ``smc_moves.Moves.count``); default ``DEFAULT_MOVES_PER_BETA[kernel]``.
        kernel: "gibbs", "hmc", "mala" (HMC with one leapfrog step), or "auto" ("gibbs" up
            to ``GIBBS_MAX_DIM`` dimensions, "hmc" above).
        leapfrog_steps: leapfrog steps per HMC move.
        step_size: initial HMC step size, relative to the particles' spread.
        step_jitter: each particle's HMC step is the adapted one divided by a log-uniform
            factor in [1, step_jitter] (1 = no jitter).
        target_accept: acceptance rate the HMC step size adapts to.
        pooled_adaptation: adapt the temperature ladder (mean conditional ESS), the moves'
            scale and the HMC step size from all replicates together: adapting a run from its
            own particles biases its Z^ by O(steps / N), which showed with 50-particle replicates
            on a 20-D Gaussian (mean z -0.8 over 17 seeds); pooled, each replicate moves them by
            1 / R only, and the replicates stay independent given them.
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
                  "moves_per_beta": moves_per_beta is None or moves_per_beta >= 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SMC: invalid {name} = {locals()[name]!r}")
        self.target = target
        self.dim = int(target.dim)
        self.reference = DefensiveReference.checked(
            self.dim, init_std if init_std is not None else getattr(target, "init_std", 1.0), reference_df,
            reference_mix)
        self.init_std, self.reference_df, self.reference_mix = self.reference[1:]
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
        self.step_jitter, self.target_accept = float(step_jitter), float(target_accept)
        self.max_temperatures, self.pooled_adaptation = int(max_temperatures), bool(pooled_adaptation)
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
        return combine_replicates(result.log_z, self.shard.gather(result.log_weights, dim=1))

    def sample(self, n: int, progress: Optional[bool] = None) -> Tensor:
        """n approximate target samples: one SMC run, pooled and resampled. Tensor[n, dim];
        distributed, the particles are gathered and every rank returns the same n samples."""
        result = self.run(n, progress=progress)
        log_w, x = (self.shard.gather(t, dim=1) for t in (result.log_weights, result.particles))
        pooled = (log_w + result.log_z[:, None]).reshape(-1)
        idx = torch.multinomial(torch.softmax(pooled, 0), n, replacement=True,
                                generator=self.generator)
        return x.reshape(-1, self.dim)[idx]

    # -- the algorithm ------------------------------------------------------
    def _moves(self) -> Moves:
        """The move phase (with the reference, the path's beta = 0 end), from the configuration."""
        return Moves(self.target, self.reference, self.kernel, self.num_mcmc_steps, self.moves_per_beta,
                     self.leapfrog_steps, self.step_jitter, self.target_accept, self.pooled_adaptation,
                     self.generator, self.shard)

    def _fingerprint(self, num_samples: int) -> dict:
        """What must agree across ranks for a distributed run (configuration, generator state)."""
        config = {k: repr(v) for k, v in vars(self).items() if isinstance(v, (int, float, str, torch.dtype))}
        state = hashlib.sha256(self.generator.get_state().cpu().numpy().tobytes()).hexdigest()
        return {"target": target_name(self.target), "num_samples": int(num_samples), "generator": state,
                **config}

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
        moves = self._moves()
        ref = moves.reference
        x = ref.sample(R, n, generator=self.generator, shard=sh, dtype=self.dtype, device=self.device)
        with sh.guard():
            check_input(self.target, x[0])
            # The gradient is validated even for the Gibbs kernel: SMC's contract is a
            # differentiable target, whichever kernel the dimension selects.
            lp, grad_t = target_terms(self.target, x, need_grad=self.num_mcmc_steps + self.moves_per_beta > 0)
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
            ell = sh.gather(lp - ref.log_prob(x), dim=1)  # [R, N], every rank
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
                carry_grad = self.kernel != "gibbs" and grad_t is not None  # HMC's cached gradients travel
                x, lp, *g = exchange([x, lp[..., None]] + [grad_t] * carry_grad, idx, resample, sh)
                lp, grad_t = lp[..., 0], g[0] if carry_grad else grad_t
                log_w = torch.where(resample[:, None], torch.full_like(log_w, -math.log(N)), log_w)
                eve = torch.where(resample[:, None], torch.gather(eve, 1, idx), eve)
                n_resample += resample.long()
            x, lp, grad_t, eps, acc_sum, n_moves = moves.run(x, lp, grad_t, beta, eps, delta, log_w[:, mine])
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


class AIS(SMC):
    """Annealed importance sampling: SMC that never resamples (``resample_threshold`` 1e-12)."""

    def __init__(self, target, *, resample_threshold: float = 1e-12, **config):
        super().__init__(target, resample_threshold=resample_threshold, **config)


