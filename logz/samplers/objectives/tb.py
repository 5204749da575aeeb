"""Trajectory balance (Malkin et al. 2022) with a learned scalar log Z:
mean_b (log Z + sum_k log P_F - sum_k log P_B - log R)^2 (``losses.trajectory_balance_loss``);
``learned_log_z`` is the parameter."""

from __future__ import annotations

from typing import Optional

from torch import nn

from logz.samplers import losses
from logz.samplers.nets import LogZ
from logz.samplers.objectives.gfn import GFNConfig, GFNObjective


class TB(GFNObjective):
    name = "tb"

    def __init__(self, config: GFNConfig = GFNConfig()):
        self.config = config.validate()

    def modules(self, s) -> dict[str, nn.Module]:
        self.log_z = LogZ().to(device=s.device, dtype=s.dtype)
        return {"flow": self.log_z}

    def residual(self, s, log_pf, log_pb, log_r, log_f):
        return losses.trajectory_balance_loss(log_pf, log_pb, log_r, self.log_z()), self.log_z().detach()

    def learned_log_z(self, s) -> Optional[float]:
        return float(self.log_z().detach())


__all__ = ["TB"]
