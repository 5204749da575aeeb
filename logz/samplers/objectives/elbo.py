"""Reparameterised KL written as the negative ELBO: -mean log w over fresh paths simulated
WITH their graph. For shells whose weight has no Girsanov control-cost form (CMCD: the
backward kernel is a learned Langevin step, not a reference bridge), so KL(P_F || P_B) =
log Z - E[log w] is minimised through log w itself. The score along the path is
differentiated by default (the exact reparameterisation gradient, as the CMCD reference
code's ``neg_elbo``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from logz.samplers import losses
from logz.samplers._common import _log_mean_exp
from logz.samplers.objectives import Objective
from logz.samplers.objectives.kl import KLInfo


@dataclass(frozen=True)
class ELBOConfig:
    differentiate_score: bool = True

    def validate(self) -> "ELBOConfig":
        return self


class ELBO(Objective):
    name = "kl"

    def __init__(self, config: ELBOConfig = ELBOConfig()):
        self.config = config.validate()
        self.differentiate_score = bool(config.differentiate_score)

    def simulate(self, s, iteration: int) -> Tensor:
        x0, log_p0 = s.initial(s.local_batch_size, s.generator)
        tr = s.simulate(x0, s.times, s.generator, keep_steps=False)[0]
        return s.log_reward(tr.final) + tr.log_path_ratio - log_p0  # log w [B], with its graph

    def loss(self, s, log_w: Tensor) -> tuple[Tensor, KLInfo]:
        log_w = s.shard.gather(log_w)  # every rank computes the global loss (logz.distributed)
        loss = -log_w.mean()
        log_w = log_w.detach()
        return loss / s.dim, KLInfo(_log_mean_exp(log_w), log_w.mean(), losses.zero_density_fraction(log_w))


__all__ = ["ELBO", "ELBOConfig"]
