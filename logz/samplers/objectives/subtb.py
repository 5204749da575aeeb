"""Sub-trajectory balance with a learned log-flow (DGFS; Zhang et al. 2023): every pair i < j
of a path gives a residual r_ij = log F_i - log F_j + sum_{k=i}^{j-1} (log P_F - log P_B),
lambda^(j-i)-weighted (``losses.subtb_loss``), so the learning signal reaches the control from
short segments, not only through the terminal reward.

The log-flow, parameterised as in the reference code,

    log F(x, t) = NN_flow(t, x) + (t/T) log R(x) + (1 - t/T) log N(x; 0, sigma^2 max(0.01 T, t) I),

is pinned to log R at t = T, NN_flow zero-initialised; a custom ``flow(x, t)`` module gives
the whole log F instead. ``learned_log_z`` is log F(0, 0): every path starts at x_0 = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from logz.samplers import losses
from logz.samplers._common import _check, _is_int
from logz.samplers.nets import FourierMLP
from logz.samplers.objectives.gfn import GFNConfig, GFNObjective
from logz.sde.reference import gaussian_log_prob


@dataclass(frozen=True)
class SubTBConfig(GFNConfig):
    subtb_lambda: float = 2.0
    subtb_pairs: Optional[int] = None

    def validate(self) -> "SubTBConfig":
        lam, pairs = self.subtb_lambda, self.subtb_pairs
        _check("subtb_lambda", isinstance(lam, (int, float)) and lam > 0, lam, "> 0")
        _check("subtb_pairs", pairs is None or (_is_int(pairs) and pairs >= 1), pairs, "None or an integer >= 1")
        return super().validate()


class LearnedFlow(GFNObjective):
    """The log-flow network and its parameterisation (shared by SubTB and DB)."""

    needs_flow = True

    def __init__(self, config, flow: Optional[nn.Module] = None):
        self.config, self.custom_flow = config.validate(), flow

    def modules(self, s) -> dict[str, nn.Module]:
        if self.custom_flow is not None:
            _check("flow", isinstance(self.custom_flow, nn.Module), self.custom_flow, "a torch.nn.Module f(x, t)")
            self.flow = self.custom_flow.to(device=s.device, dtype=s.dtype)
        else:
            with torch.random.fork_rng(devices=[]):  # init from the seed, global RNG untouched
                torch.manual_seed(s.seed + 7919)
                self.flow = FourierMLP(s.dim, 1, hidden=s.network.hidden, layers=s.network.layers, T=s.T,
                                       zero_init=True).to(device=s.device, dtype=s.dtype)
        return {"flow": self.flow}

    def log_flow(self, s, states: Tensor, log_reward: Tensor) -> Tensor:
        """log F at every state of paths on the training grid: Tensor[N+1, B], row N = log R.

        Args:
            states: Tensor[N+1, B, dim]; log_reward: Tensor[N+1, B], log R at every state.
        """
        # row N is pinned to log R at t = T: the net runs on the N earlier rows only
        return torch.cat([self._log_flow_rows(s, states[:-1], s.times[:-1], log_reward[:-1]), log_reward[-1:]])

    def log_flow_at(self, s, x: Tensor, k: int, log_reward: Tensor) -> Tensor:
        """log F(x, t_k) at grid index 0 <= k < N of states x Tensor[B, dim] (log_reward
        Tensor[B], log R(x)): Tensor[B]. The intermediate log-densities of SMC along the
        learned path (``logz.samplers.learned_path_smc``); at k = N log F is log R itself."""
        return self._log_flow_rows(s, x[None], s.times[k:k + 1], log_reward[None])[0]

    def _log_flow_rows(self, s, x: Tensor, t: Tensor, log_reward: Tensor) -> Tensor:
        """log F at states x Tensor[M, B, dim] at grid times t Tensor[M] (all < T): Tensor[M, B]."""
        M, B, d = x.shape
        if isinstance(self.flow, FourierMLP) and self.custom_flow is None:  # time branch once per grid time
            nn_out = self.flow.forward_with_features(x, self.flow.time_features(t)[:, None, :]).squeeze(-1)
            var = (s.sigma ** 2) * t.clamp_min(0.01 * s.T)
            log_ref = gaussian_log_prob(x, 0.0, var.view(M, 1, 1))
            frac = (t / s.T).view(M, 1)
            return nn_out + frac * log_reward + (1 - frac) * log_ref
        return self.flow(x.reshape(M * B, d), t.repeat_interleave(B)).view(M, B)

    def learned_log_z(self, s) -> Optional[float]:
        with torch.no_grad():
            states = torch.zeros(s.num_steps + 1, 1, s.dim, dtype=s.dtype, device=s.device)
            log_r = self.log_reward(s, states[:, 0]).view(-1, 1)
            return float(self.log_flow(s, states, log_r)[0, 0])


class SubTB(LearnedFlow):
    name = "subtb"

    def modules(self, s) -> dict[str, nn.Module]:
        self.weights = losses.subtb_weights(s.num_steps, self.config.subtb_lambda, s.dtype, s.device)
        return super().modules(s)

    def residual(self, s, log_pf, log_pb, log_r, log_f):
        loss = losses.subtb_loss(log_pf, log_pb, log_f, weights=self.weights,
                                 num_pairs=self.config.subtb_pairs, generator=s.generator)
        return loss, log_f[0, 0].detach()


__all__ = ["LearnedFlow", "SubTB", "SubTBConfig"]
