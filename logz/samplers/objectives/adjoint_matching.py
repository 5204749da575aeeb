"""Reciprocal adjoint matching (Adjoint Sampling; Havens et al. 2025).

The base process has zero drift, dX = sigma(t) dW from X_0 = 0, so the lean adjoint is
constant in time, a_t = grad g(X_T) with the terminal cost g(x) = -log p~(x) + log p_T^base(x)
(``logz.sde.adjoint.constant_lean_adjoint``), and the regression target of u(x, t) is
-sigma(t) E[grad g(X_T) | X_t = x]. Reciprocal training draws (X_T, grad g(X_T)) from a
replay buffer filled by the current sampler (``paths_per_refresh`` paths every
``refresh_every`` steps) and X_t from the base bridge given X_T, so one energy gradient
serves many updates:

    "control":  L = E |u(X_t, t) + sigma(t) grad g(X_T)|^2   (the paper's loss)
    "adjoint":  L = E |A(X_t, t) - grad g(X_T)|^2,  u = -sigma(t) A  (same minimiser, O(1) targets)

t is drawn uniform in the base's variance ("variance") or in time ("uniform"); buffer draws
are augmented by a random symmetry of the target where it has one (the tilted path measure
shares the target's symmetries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from logz.samplers.objectives import Objective
from logz.sde.adjoint import brownian_bridge, constant_lean_adjoint
from logz.targets.base import log_prob_and_grad


@dataclass(frozen=True)
class AdjointMatchingConfig:
    parameterization: str = "adjoint"
    time_sampling: str = "variance"
    paths_per_refresh: int = 256
    refresh_every: int = 20
    buffer_size: int = 10_000
    score_clip: Optional[float] = 100.0

    def validate(self) -> "AdjointMatchingConfig":
        for key in ("refresh_every", "paths_per_refresh", "buffer_size"):
            v = getattr(self, key)
            if int(v) != v or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        if self.time_sampling not in ("variance", "uniform"):
            raise ValueError(f"time_sampling must be 'variance' or 'uniform', got {self.time_sampling!r}")
        if self.parameterization not in ("adjoint", "control"):
            raise ValueError(f"parameterization must be 'adjoint' or 'control', got {self.parameterization!r}")
        if self.score_clip is not None and not self.score_clip > 0:
            raise ValueError(f"score_clip must be > 0 or None, got {self.score_clip}")
        return self


class MatchingBatch(NamedTuple):
    x_t: Tensor      # [B, dim], bridge states
    t: Tensor        # [B]
    adjoint: Tensor  # [B, dim], grad g(X_T) of each bridge's end


class MatchingInfo(NamedTuple):
    pass


class AdjointMatching(Objective):
    name = "adjoint_matching"

    def __init__(self, config: AdjointMatchingConfig, schedule, T: float, symmetry=None):
        self.config, self.schedule, self.T, self.symmetry = config.validate(), schedule, float(T), symmetry
        self.var_T = float(schedule.cumulative(self.T))
        self.buffer_x: Optional[Tensor] = None
        self.buffer_g: Optional[Tensor] = None

    def terminal_cost_grad(self, s, x: Tensor) -> Tensor:
        """grad g(x) = -grad log p~(x) - x / nu_T, per-sample norm clipped at ``score_clip``. [B, dim]."""
        _, score = log_prob_and_grad(s.target, x)
        grad = -score - x / self.var_T
        if self.config.score_clip is not None:
            norm = grad.norm(dim=-1, keepdim=True)
            grad = grad * (self.config.score_clip / norm).clamp(max=1.0)
        return grad

    def time_at_variance_fraction(self, frac: Tensor) -> Tensor:
        """t with nu_t = frac * nu_T under the geometric schedule (nu_t = s(t)^2 - s_min^2)."""
        s_min, log_ratio = self.schedule.sigma_min, math.log(self.schedule.sigma_max / self.schedule.sigma_min)
        return self.T * torch.log1p(frac * self.var_T / s_min ** 2) / (2 * log_ratio)

    @torch.no_grad()
    def refresh(self, s) -> None:
        x0, _ = s.initial(self.config.paths_per_refresh, s.generator)
        x1 = s.simulate(x0, s.times, s.generator, log_densities=False, keep_path=False, keep_steps=False)[0].final
        g = self.terminal_cost_grad(s, x1)
        empty = x1.new_empty(0, s.dim)
        keep = self.config.buffer_size
        self.buffer_x = torch.cat([empty if self.buffer_x is None else self.buffer_x, x1])[-keep:]
        self.buffer_g = torch.cat([empty if self.buffer_g is None else self.buffer_g, g])[-keep:]

    def simulate(self, s, iteration: int) -> MatchingBatch:
        if iteration % self.config.refresh_every == 0 or self.buffer_x is None:
            self.refresh(s)
        B, gen = s.batch_size, s.generator
        idx = torch.randint(0, self.buffer_x.shape[0], (B,), generator=gen, device=s.device)
        x1, grad = self.buffer_x[idx], self.buffer_g[idx]
        if self.symmetry is not None:  # the tilted path measure shares the target's symmetries
            x1, grad = self.symmetry(x1, grad, generator=gen)
        adjoint = constant_lean_adjoint(grad, 1)[0]  # zero-drift base: grad g(X_T) at every time
        u = torch.rand(B, generator=gen, dtype=s.dtype, device=s.device)
        t = self.time_at_variance_fraction(u) if self.config.time_sampling == "variance" else u * self.T
        t = t.clamp(min=1e-3 * self.T, max=self.T * (1 - 1e-3))  # bridge is degenerate at the ends
        var_t = self.schedule.cumulative(t).to(s.dtype)
        xt = brownian_bridge(x1, var_t, torch.as_tensor(self.var_T, dtype=s.dtype), generator=gen)
        return MatchingBatch(xt, t, adjoint)

    def loss(self, s, batch: MatchingBatch) -> tuple[Tensor, MatchingInfo]:
        out = s.control(batch.x_t, batch.t)
        if self.config.parameterization == "adjoint":
            loss = (out - batch.adjoint).pow(2).sum(-1).mean()
        else:
            sigma = self.schedule.sqrt(batch.t).to(s.dtype)[:, None]
            loss = (out + sigma * batch.adjoint).pow(2).sum(-1).mean()
        return loss / s.dim, MatchingInfo()


__all__ = ["AdjointMatching", "AdjointMatchingConfig", "MatchingBatch", "MatchingInfo"]
