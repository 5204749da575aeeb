"""Sequential Controlled Langevin Diffusions (SCLD; Chen, Richter, Berner, Blessing, Neumann &
Anandkumar, ICLR 2025): CMCD's process and control, estimated by sequential importance
resampling along the path (``logz.samplers.sequential``).

What is built: the estimator (segments, incremental weights, ESS-triggered systematic
resampling, optional MALA refresh, replicate error bar) and the training loss on the
sub-trajectories of the sequential process (``objectives.sub_log_variance``, default;
CMCD's "vargrad" and "kl" also apply). Not built: the paper's replay buffer of
sub-trajectories (``docs/sequential_samplers.md``).
"""

from __future__ import annotations

import math
from typing import Optional

from logz.samplers._common import _check, _is_int
from logz.samplers.cmcd import CMCD
from logz.samplers.objectives import Objective
from logz.samplers.objectives.sub_log_variance import SubLogVariance
from logz.samplers.estimators import LogZEstimate, combine_independent_log_z, effective_sample_size
from logz.samplers.sequential import SequentialResult, segment_ends, sequential_log_z


class SCLD(CMCD):
    """CMCD with the sequential estimate. Args as ``CMCD``, plus:

    segments: S, the pieces of the path between resampling points (None: min(8, num_steps)).
    resample_threshold: resample a replicate when its ESS / P falls below this (0.3; 0:
        never, 1: after every segment). mcmc_steps: MALA moves at each inner segment end (0).
    replicates: R independent particle systems per estimate (8): the error bar.
    loss: "subtraj" (segment-wise log-variance on the sequential process, SCLD's), "vargrad", "kl".
    """

    name = "scld"
    losses = ("subtraj", "vargrad", "kl")

    def __init__(self, target, *, segments: Optional[int] = None, resample_threshold: float = 0.3, mcmc_steps: int = 0,
                 replicates: int = 8, loss: str = "subtraj", **kw):
        _check("replicates", _is_int(replicates) and replicates >= 2, replicates, "an integer >= 2")
        _check("mcmc_steps", _is_int(mcmc_steps) and mcmc_steps >= 0, mcmc_steps, "an integer >= 0")
        _check("resample_threshold", isinstance(resample_threshold, (int, float)) and
               0 <= resample_threshold <= 1, resample_threshold, "in [0, 1]")
        super().__init__(target, loss=loss, **kw)
        if self.shard.active:
            raise ValueError("scld does not split over processes yet (its particle system runs on one rank)")
        segments = min(8, self.num_steps) if segments is None else segments
        self.ends = segment_ends(self.num_steps, segments)
        self.resample_threshold, self.mcmc_steps = float(resample_threshold), int(mcmc_steps)
        self.replicates = int(replicates)
        for fp in (self.fingerprint, self.trainer.fingerprint):  # checkpoints must match these too
            fp.update(segments=int(segments), resample_threshold=self.resample_threshold, mcmc_steps=self.mcmc_steps)

    def _objective(self, loss: str, exploration: float) -> Objective:
        return SubLogVariance() if loss == "subtraj" else super()._objective(loss, exploration)

    def run(self, num_samples: int) -> SequentialResult:
        """One sequential run of ``num_samples`` particles in all (R replicates of num_samples // R)."""
        _check("num_samples", _is_int(num_samples) and num_samples >= 2 * self.replicates, num_samples,
               f"an integer >= 2 x replicates = {2 * self.replicates}")
        with self.shard.guard():
            return sequential_log_z(self, self.replicates, int(num_samples) // self.replicates, self.ends,
                                    resample_threshold=self.resample_threshold, mcmc_steps=self.mcmc_steps,
                                    generator=self.eval_generator)

    def estimate_log_z(self, num_samples: int = 2000, progress: Optional[bool] = None) -> LogZEstimate:
        """log Z^ = log mean over replicates of Z^_r, its standard error from their spread
        (Bessel-corrected), ELBO = mean log Z^_r, ESS of the pooled final weights."""
        result = self.run(num_samples)
        log_z, stderr = combine_independent_log_z(result.log_z)
        R = result.log_z.numel()
        pooled = (result.log_weights + result.log_z[:, None]).reshape(-1)
        return LogZEstimate(log_z=log_z, stderr=stderr * math.sqrt(R / (R - 1)), elbo=float(result.log_z.mean()),
                            eubo=None, ess=effective_sample_size(pooled), num_samples=int(pooled.numel()))


__all__ = ["SCLD"]
