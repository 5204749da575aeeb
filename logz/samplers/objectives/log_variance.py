"""VarGrad / log-variance: 1/2 the batch variance of log w over detached paths
(``losses.log_variance_loss``), for PIS and DDS (``loss="vargrad"``).

Paths may come from a behaviour process with extra noise (``exploration`` multiplies the
noise std; 1 = on-policy). Unchunked, the simulation keeps the control's values with their
graph (``GridControl(record_controls=True)``): log w needs u(x_k, t_k) under the current
parameters, exactly what the simulation computed, so nothing is re-evaluated. With
``grad_checkpoint_steps`` (bounded memory) or a custom control the paths are re-scored: in
chunks, log w without graph first, then per chunk the backward of sum_i c_i log w_i
(``losses.vargrad_weights``), so the loss returned needs no backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from logz.samplers import losses
from logz.samplers._common import _check, _is_int, _log_mean_exp
from logz.samplers.objectives import Objective
from logz.samplers.objectives.gfn import GFNConfig, GFNObjective


@dataclass(frozen=True)
class LogVarianceConfig:
    exploration: float = 1.0
    grad_checkpoint_steps: Optional[int] = None

    def validate(self) -> "LogVarianceConfig":
        e, c = self.exploration, self.grad_checkpoint_steps
        _check("exploration", isinstance(e, (int, float)) and e > 0, e, "> 0")
        _check("grad_checkpoint_steps", c is None or (_is_int(c) and c >= 1), c, "None or an integer >= 1")
        return self


class LogVarianceBatch(NamedTuple):
    states: Tensor              # [N+1, B, dim], detached
    controls: Optional[Tensor]  # [N, B, dim] recorded with their graph, or None (re-scored)
    log_r: Tensor               # [B], log p~(x_N)
    log_p0: Tensor              # [B]


class LogVarianceInfo(NamedTuple):
    log_z: Tensor         # importance-weighted log Z of the batch
    elbo: Tensor          # mean log w of the batch
    zero_density: Tensor  # share of paths ending where log p~ = -inf (left out of the loss)


class LogVariance(Objective):
    name = "vargrad"

    def __init__(self, config: LogVarianceConfig = LogVarianceConfig()):
        self.config = config.validate()
        self.checkpoint_steps = config.grad_checkpoint_steps
        self.on_policy = config.exploration == 1.0

    def _chunked(self, s) -> bool:
        return self.checkpoint_steps is not None and self.checkpoint_steps < s.num_steps

    def simulate(self, s, iteration: int) -> LogVarianceBatch:
        record = not self._chunked(s) and s.on_grid
        with torch.no_grad():
            x0, log_p0 = s.initial(s.local_batch_size, s.generator)
        with torch.set_grad_enabled(record and torch.is_grad_enabled()):
            tr, control = s.simulate(x0, s.times, s.generator, record_controls=record, log_densities=False,
                                     keep_steps=False, noise_scale=self.config.exploration)
        with torch.no_grad():
            log_r = s.log_reward(tr.final)
        return LogVarianceBatch(tr.states, control.controls if record else None, log_r, log_p0)

    def loss(self, s, batch: LogVarianceBatch) -> tuple[Tensor, LogVarianceInfo]:
        states, N = batch.states, s.num_steps
        if not self._chunked(s):
            log_w = s.shard.gather(batch.log_r + s.rescore(states, 0, N, batch.controls) - batch.log_p0)
            loss = losses.log_variance_loss(log_w)
            log_w = log_w.detach()
            return loss / s.dim, LogVarianceInfo(_log_mean_exp(log_w), log_w.mean(), losses.zero_density_fraction(log_w))
        chunk = self.checkpoint_steps
        with torch.no_grad():
            log_w = batch.log_r - batch.log_p0 + sum(s.rescore(states, k0, min(k0 + chunk, N))
                                                     for k0 in range(0, N, chunk))
            log_w = s.shard.gather(log_w)
        # this rank's paths' coefficients, times the world size: the trainer averages gradients
        weights = losses.vargrad_weights(log_w)[s.shard.rows(s.local_batch_size)] * (s.shard.world_size / s.dim)
        for k0 in range(0, N, chunk):
            (weights * s.rescore(states, k0, min(k0 + chunk, N))).sum().backward()
        loss = losses.log_variance_loss(log_w)
        return loss / s.dim, LogVarianceInfo(_log_mean_exp(log_w), log_w.mean(), losses.zero_density_fraction(log_w))


class PathVarGrad(GFNObjective):
    """VarGrad on the residuals ("TB with the batch-optimal log Z"; ``losses.vargrad_path_loss``):
    nothing learned besides the control."""

    name = "vargrad"

    def __init__(self, config: GFNConfig = GFNConfig()):
        self.config = config.validate()

    def residual(self, s, log_pf, log_pb, log_r, log_f):
        return losses.vargrad_path_loss(log_pf, log_pb, log_r), None


__all__ = ["PathVarGrad", "LogVariance", "LogVarianceBatch", "LogVarianceConfig", "LogVarianceInfo"]
