"""Sequential Controlled Langevin Diffusions (SCLD; Chen, Richter, Berner, Blessing, Neumann &
Anandkumar, ICLR 2025): CMCD's process and control, run as a sequential Monte Carlo sampler
along the path (``logz.samplers.sequential``): segments, incremental weights, ESS-triggered
resampling, MCMC refresh at segment ends, and an error bar from independent replicates.

Training (SCLD's): the log-variance of every segment's increments on the sequential
process's own sub-trajectories, half fresh and half replayed by priority from a buffer
(``objectives.sub_log_variance``, ``subtrajectory_buffer``); CMCD's "vargrad" and "kl"
also apply. The MCMC refresh is SMC's move phase (``smc_moves.Moves``: Newton-Gibbs up to
``GIBBS_MAX_DIM`` dimensions, HMC above), its number of moves tied to the path: a segment
from beta to beta' gets ``mcmc_steps`` + ``moves_per_beta`` x (beta' - beta) moves
(stochastically rounded). Estimates make ``ESTIMATE_MOVES_FACTOR`` (8) x SMC's calibrated
``moves_per_beta``: an estimate follows minutes of training and its variance hinges on the
refresh (untrained, 4 seeds a line, SE of log Z^ at 2000 particles for 1 / 4 / 8 x SMC's:
Ionosphere 0.126 / 0.066 / 0.061, Sonar 0.171 / 0.069 / 0.059, Many-Well-32 0.138 / 0.091 /
0.072, Funnel-10 0.053 / 0.034 / 0.038; ``results/sequential_grid_v3/moves_untrained``), at
15-70 s an estimate on one core. Training uses a few (``train_moves_per_beta``), for speed. By
default every step is a segment end (resampling is ESS-triggered, so it happens only where
the weights degenerate), as the reference code runs Funnel, LGCP and Sonar.

Distributed (``shard``, see ``logz.distributed``): data-parallel like SMC and the other path
samplers. Each rank holds P / world_size particles of every replicate (``sequential``), the
replay buffer is global and the same on every rank, and the loss is taken over all ranks'
increments (``objectives.sub_log_variance``): training and estimates equal one process with
the same seed, up to float rounding, and every rank returns the same ``LogZEstimate``. The
world size must divide ``batch_size`` and the particles per replicate, num_samples //
replicates.

Defaults meant for targets logz has not seen: pi0 and the Langevin step from the target's
``init_std`` s0 (eps_k = 1e-4 s0^2: small, so that an untrained control is nearly SMC along
a fixed grid). The unadjusted Langevin kernel is unstable where eps_k x the target's
curvature exceeds 2 (a funnel's neck); the particles that go there get increments thousands
of nats off and are lost, which biases log Z^ low with an error bar that does not see it
(Funnel-10 untrained, 3 seeds: -0.21 +- 0.04, z -4.5 to -6.5, at 1e-3 s0^2; -0.04 at 1e-4;
Many-Well-32 alike at both; ``results/sequential/README.md``). The training loss is
winsorized for the same particles (``SubLogVarianceConfig``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from logz.samplers._common import _check, _is_int
from logz.samplers.cmcd import CMCD
from logz.samplers.estimators import LogZEstimate
from logz.samplers.objectives import Objective
from logz.samplers.objectives.sub_log_variance import SubLogVariance, SubLogVarianceConfig
from logz.samplers.sequential import SequentialResult, segment_ends, sequential_log_z
from logz.samplers.smc_moves import DEFAULT_MOVES_PER_BETA, GIBBS_MAX_DIM, Moves, target_terms
from logz.samplers.smc_result import combine_replicates, replicate_layout
from logz.samplers.subtrajectory_buffer import SubtrajectoryBuffer
from logz.targets.base import call_log_prob

KERNELS = ("auto", "gibbs", "hmc", "mala")
#: estimates' moves per unit of beta, as a multiple of SMC's (see the module's docstring)
ESTIMATE_MOVES_FACTOR = 8


class SCLD(CMCD):
    """CMCD with the sequential estimate. Args as ``CMCD``, plus:

    segments: S, the pieces of the path between resampling points (None: num_steps, every step).
    resample_threshold: resample a replicate when its ESS / P falls below this (0.3; 0:
        never, 1: after every segment).
    mcmc_kernel: "auto" (Newton-Gibbs up to ``GIBBS_MAX_DIM`` dimensions, HMC above),
        "gibbs", "hmc" or "mala"; leapfrog_steps: per HMC move (5).
    mcmc_steps: moves at every inner segment end, in training and estimates (0).
    moves_per_beta: moves per unit of beta in estimates (None: ``ESTIMATE_MOVES_FACTOR`` x SMC's
        calibrated default for the kernel, ``smc_moves.DEFAULT_MOVES_PER_BETA``; 0: none).
    train_moves_per_beta: moves per unit of beta while training (8).
    step_size: eps_k / s0^2 (1e-4; see above).
    replicates: R independent particle systems per estimate, the error bar (None: SMC's
        calibrated ``smc_result.replicates_for(num_samples)``, 40 of 50 at 2000 particles).
    loss: "subtraj" (segment-wise log-variance on the sequential process, SCLD's), "vargrad", "kl".
    winsorize: "subtraj"'s increments are clamped to median +- winsorize robust SDs per segment
        (5; math.inf: the plain log-variance; ``SubLogVarianceConfig``).
    buffer: replay sub-trajectories ("subtraj" only; True); buffer_batches: its capacity in
        batches (20, the reference code's); buffer_temperature: of its softmax priorities (1).
    """

    name = "scld"
    losses = ("subtraj", "vargrad", "kl")

    def __init__(self, target, *, segments: Optional[int] = None, resample_threshold: float = 0.3,
                 mcmc_kernel: str = "auto", mcmc_steps: int = 0, moves_per_beta: Optional[float] = None,
                 train_moves_per_beta: float = 8.0, step_size: float = 1e-4,
                 leapfrog_steps: int = 5, replicates: Optional[int] = None, loss: str = "subtraj", buffer: bool = True,
                 buffer_batches: int = 20, buffer_temperature: float = 1.0, winsorize: float = 5.0, **kw):
        _check("replicates", replicates is None or (_is_int(replicates) and replicates >= 2), replicates,
               "None or an integer >= 2")
        _check("mcmc_steps", _is_int(mcmc_steps) and mcmc_steps >= 0, mcmc_steps, "an integer >= 0")
        _check("mcmc_kernel", mcmc_kernel in KERNELS, mcmc_kernel, f"one of {KERNELS}")
        _check("leapfrog_steps", _is_int(leapfrog_steps) and leapfrog_steps >= 1, leapfrog_steps, "an integer >= 1")
        for key, v in (("moves_per_beta", moves_per_beta), ("train_moves_per_beta", train_moves_per_beta)):
            _check(key, (v is None and key == "moves_per_beta") or (isinstance(v, (int, float)) and
                   not isinstance(v, bool) and math.isfinite(v) and v >= 0), v, "a number >= 0")
        _check("resample_threshold", isinstance(resample_threshold, (int, float)) and
               0 <= resample_threshold <= 1, resample_threshold, "in [0, 1]")
        _check("buffer", isinstance(buffer, bool), buffer, "True or False")
        _check("buffer_batches", _is_int(buffer_batches) and buffer_batches >= 1, buffer_batches, "an integer >= 1")
        self._loss_config = SubLogVarianceConfig(winsorize).validate()
        super().__init__(target, loss=loss, step_size=step_size, **kw)
        segments = self.num_steps if segments is None else segments
        self.ends = segment_ends(self.num_steps, segments)
        self.resample_threshold, self.mcmc_steps = float(resample_threshold), int(mcmc_steps)
        self.mcmc_kernel = ("gibbs" if self.dim <= GIBBS_MAX_DIM else "hmc") if mcmc_kernel == "auto" else mcmc_kernel
        self.leapfrog_steps = 1 if self.mcmc_kernel == "mala" else int(leapfrog_steps)
        self.moves_per_beta = float(ESTIMATE_MOVES_FACTOR * DEFAULT_MOVES_PER_BETA[self.mcmc_kernel]
                                    if moves_per_beta is None else moves_per_beta)
        self.train_moves_per_beta = float(train_moves_per_beta)
        self.replicates = None if replicates is None else int(replicates)
        self.buffer = (SubtrajectoryBuffer(int(buffer_batches) * self.batch_size, buffer_temperature)
                       if buffer and self.loss == "subtraj" else None)
        for fp in (self.fingerprint, self.trainer.fingerprint):  # checkpoints must match these too
            fp.update(segments=int(segments), resample_threshold=self.resample_threshold, mcmc_steps=self.mcmc_steps,
                      train_moves_per_beta=self.train_moves_per_beta, mcmc_kernel=self.mcmc_kernel, buffer=self.buffer is not None,
                      winsorize=self._loss_config.winsorize)
        self.shard.check_same(f"{self.name} configuration", {**self.fingerprint, "replicates": self.replicates,
                                                              "moves_per_beta": self.moves_per_beta})
        if self.trainer.eval_every:  # a periodic estimate that cannot split fails now, not mid-training
            self._split(self.eval_samples)

    def _objective(self, loss: str, exploration: float) -> Objective:
        return SubLogVariance(self._loss_config) if loss == "subtraj" else super()._objective(loss, exploration)

    def _extra_state(self) -> dict:
        return {"buffer": self.buffer.state_dict()} if getattr(self, "buffer", None) is not None else {}

    def _load_extra_state(self, state: dict) -> None:
        if getattr(self, "buffer", None) is not None:
            self.buffer.load_state_dict(state.get("buffer"))

    def kernel_score(self, x: torch.Tensor) -> torch.Tensor:
        """The kernels' clipped grad log p~, with a non-finite one (a particle thrown out of the
        target's domain, e.g. deep into a funnel's neck where float32 overflows) set to 0: such
        a particle gets log p~ = -inf (``particle_log_p``), zero weight and is resampled away
        at the segment's end, instead of stopping the run. Differentiated scores (the "kl"
        loss) stay validated."""
        if self.objective.differentiate_score:
            return super().kernel_score(x)
        _, grad = target_terms(self.target, x[None], need_grad=True, strict=False)
        return grad[0].clamp(-self.score_clip, self.score_clip)

    def particle_log_p(self, x: torch.Tensor) -> torch.Tensor:
        """log p~ of the particles, -inf where it (or the state) is not finite (zero weight)."""
        with torch.no_grad():
            lp = call_log_prob(self.target, x)
        ok = torch.isfinite(lp) & torch.isfinite(x).all(-1)
        return torch.where(ok, lp, torch.full_like(lp, -math.inf))

    def moves(self, generator: torch.Generator, training: bool) -> Optional[Moves]:
        """The MCMC refresh of a run (None when it makes no moves): SMC's move phase with pi0 (a
        ``DefensiveReference``) as the reference; ``train_moves_per_beta`` moves per unit of beta
        in training, ``moves_per_beta`` in estimates."""
        per_beta = self.train_moves_per_beta if training else self.moves_per_beta
        if self.mcmc_steps == 0 and per_beta == 0:
            return None
        return Moves(self.target, self.pi0, self.mcmc_kernel, self.mcmc_steps, per_beta, self.leapfrog_steps,
                     10.0, 0.65, True, generator, self.shard)

    def run_particles(self, replicates: int, particles: int, generator: torch.Generator, *, training: bool = False,
                      record: Optional[list] = None) -> SequentialResult:
        """One sequential run of ``replicates`` x ``particles`` (training: the cheap refresh)."""
        return sequential_log_z(self, replicates, particles, self.ends, resample_threshold=self.resample_threshold,
                                moves=self.moves(generator, training), step_size=1.0 / self.dim ** 0.25,
                                generator=generator, record=record)

    def _split(self, num_samples: int) -> tuple[int, int]:
        """(R, P): the replicates and particles per replicate of a run of ``num_samples``;
        ValueError naming the numbers unless the world size divides P."""
        R, P = replicate_layout(num_samples, self.replicates)
        self.shard.local_size(P, f"{self.name} particles per replicate (num_samples {num_samples} // {R} replicates)")
        return R, P

    def run(self, num_samples: int) -> SequentialResult:
        """One sequential run of ``num_samples`` particles in all (R replicates of P =
        num_samples // R; distributed, the world size must divide P)."""
        R, P = self._split(num_samples)
        with self.shard.guard():
            return self.run_particles(R, P, self.eval_generator)

    def estimate_log_z(self, num_samples: int = 2000, progress: Optional[bool] = None) -> LogZEstimate:
        """SMC's estimate from the replicates (``smc_result.combine_replicates``): log Z^ = log
        mean of the Z^_r, its standard error from their spread (Bessel-corrected), ELBO = mean
        log Z^_r, ESS of the pooled final weights; flagged unreliable as SMC's (too few
        effective particles, or a few replicates carrying the estimate)."""
        result = self.run(num_samples)
        return combine_replicates(result.log_z, result.log_weights)


__all__ = ["ESTIMATE_MOVES_FACTOR", "SCLD"]
