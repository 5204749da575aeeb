"""What the GFlowNet-style objectives (TB, DB, SubTB, and VarGrad on residuals) share: their
batch is the sampler's off-policy paths (``behaviour.OffPolicyPaths``), scored step by step
under the current control (log P_F, log P_B; with the log-flow at every state where the
objective learns one), gathered over ranks, and reduced by the objective's own ``residual``.

``minibatches``: Adam updates per iteration, each on every K-th path of the batch; the
reference code makes one update per PATH. Every residual is divided by dim^2, as the
reference code divides every residual by dim. ``log_reward_min`` clamps log R from below
so that -inf rewards give finite residuals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from logz.samplers._common import _check, _is_int, _log_mean_exp
from logz.samplers.objectives import Objective


@dataclass(frozen=True)
class GFNConfig:
    log_reward_min: float = -1e6
    minibatches: int = 1

    def validate(self) -> "GFNConfig":
        _check("minibatches", _is_int(self.minibatches) and self.minibatches >= 1, self.minibatches,
               "an integer in [1, batch_size]")
        return self


class GFNBatch(NamedTuple):
    states: Tensor               # [N+1, B, dim], detached, forward paths first
    n_forward: int               # forward (on- or off-policy simulated) paths among the B
    controls: Optional[Tensor]   # [N, B, dim] with their graph, or None (evaluated in the loss)
    log_r_all: Optional[Tensor]  # [N+1, B] log R at every state (objectives with a log-flow)
    log_r: Tensor                # [B] log R(x_N), clamped at log_reward_min


class GFNInfo(NamedTuple):
    learned_log_z: Optional[Tensor]  # the objective's own log Z (TB's parameter, log F(0, 0))
    log_z: Tensor                    # batch estimates: NaN unless the paths are on-policy
    elbo: Tensor
    ess: Tensor


class GFNObjective(Objective):
    """Subclasses set ``name`` and ``needs_flow`` and define ``residual``."""

    needs_flow = False

    def log_reward(self, s, x: Tensor) -> Tensor:
        return s.log_reward(x).clamp_min(self.config.log_reward_min)

    def simulate(self, s, iteration: int) -> GFNBatch:
        if self.config.minibatches == 1:
            states, n_fwd, controls = s.behaviour.paths(s, iteration)
        else:  # the control is re-evaluated per minibatch, after the previous update
            with torch.no_grad():
                states, n_fwd, _ = s.behaviour.paths(s, iteration)
            controls = None
        with torch.no_grad():
            N1, B, d = states.shape
            log_r_all = None
            if self.needs_flow:  # log R at every state, one batched call
                log_r_all = self.log_reward(s, states.reshape(N1 * B, d)).view(N1, B)
                log_r = log_r_all[-1]
            else:
                log_r = self.log_reward(s, states[-1])
            if s.behaviour.buffer is not None:
                s.behaviour.buffer.add(states[-1, :n_fwd], log_r[:n_fwd])
        return GFNBatch(states, n_fwd, controls, log_r_all, log_r)

    def step(self, s, iteration: int) -> dict:
        batch = self.simulate(s, iteration)
        K, B, n_fwd = self.config.minibatches, batch.states.shape[1], batch.n_forward
        if K == 1:
            loss, learned, log_w = self._loss(s, batch)
            fwd = torch.cat([torch.arange(n_fwd, device=s.device) + r * B for r in range(s.shard.world_size)])
            log_w = log_w[fwd]
        else:
            # K Adam updates, each on every K-th path (forward and replayed paths mixed alike)
            log_w = torch.empty(B, dtype=s.dtype, device=s.device)
            for k in range(K):
                cols = torch.arange(k, B, K, device=s.device)
                part = GFNBatch(batch.states[:, cols], 0, None,
                                None if batch.log_r_all is None else batch.log_r_all[:, cols], batch.log_r[cols])
                loss, learned, lw = self._loss(s, part)
                log_w[cols] = lw
                if k < K - 1:
                    s.trainer.apply(loss)
            log_w = log_w[:n_fwd]
        with torch.no_grad():  # batch estimates: only meaningful for on-policy forward paths
            n = log_w.numel()
            on_policy = s.behaviour.noise_scale(iteration) == 1.0 and n >= 2
            nan = log_w.new_tensor(math.nan)
            info = GFNInfo(learned, _log_mean_exp(log_w) if on_policy else nan, log_w.mean() if on_policy else nan,
                           torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)) / n
                           if on_policy else nan)
        return {"loss": loss, **{k: v for k, v in info._asdict().items() if v is not None}}

    def _loss(self, s, batch: GFNBatch) -> tuple[Tensor, Optional[Tensor], Tensor]:
        """(loss, learned log Z or None, every gathered path's detached log-weight)."""
        log_pf, log_pb = s.step_log_densities(batch.states, controls=batch.controls)
        N = s.num_steps
        rows = [log_pf, log_pb, batch.log_r[None]]
        if self.needs_flow:
            rows.append(self.log_flow(s, batch.states, batch.log_r_all)[:-1])
        # one gather of every per-path term: each rank computes the loss of the global batch
        gathered = s.shard.gather(torch.cat(rows), dim=1)
        log_pf, log_pb, log_r = gathered[:N], gathered[N:2 * N], gathered[2 * N]
        log_f = torch.cat([gathered[2 * N + 1:], log_r[None]]) if self.needs_flow else None
        loss, learned = self.loss(s, (log_pf, log_pb, log_r, log_f))
        log_w = (log_r + log_pb.sum(0) - log_pf.sum(0)).detach()
        return loss / s.dim ** 2, learned, log_w

    def loss(self, s, terms) -> tuple[Tensor, Optional[Tensor]]:
        """``residual`` of gathered (log_pf [N, B], log_pb [N, B], log_r [B], log_f [N+1, B] or
        None): (loss, learned log Z or None)."""
        return self.residual(s, *terms)

    def residual(self, s, log_pf, log_pb, log_r, log_f):  # pragma: no cover - abstract
        raise NotImplementedError

    def learned_log_z(self, s) -> Optional[float]:
        return None


__all__ = ["GFNBatch", "GFNConfig", "GFNInfo", "GFNObjective"]
