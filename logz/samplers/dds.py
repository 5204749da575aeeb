"""Denoising Diffusion Sampler (DDS; Vargas, Grathwohl & Doucet 2023).

The reference is a variance-preserving Ornstein–Uhlenbeck process started in its
stationary law,

    dX = -1/2 beta(t) X dt + sigma sqrt(beta(t)) dW,   X_0 ~ N(0, sigma^2 I),

so every marginal is N(0, sigma^2 I) and the process is reversible. The controlled
process adds sigma sqrt(beta(t)) u(X, t) dt and is integrated with the exponential
integrator (``scheme="exact"`` in ``logz.sde.integrate``):

    x_{k+1} = a_k x_k + s_k sqrt(dt_k) u(x_k, t_k) + s_k eps,
    a_k = exp(-1/2 int beta),  s_k^2 = sigma^2 (1 - a_k^2),

whose uncontrolled kernel is exact. The backward kernel P_B is the exact OU transition
(reversibility), so with log p_0 = log N(x_0; 0, sigma^2 I)

    log w = log p~(x_N) + sum_k log P_B - sum_k log P_F - log p_0(x_0),

and with u = 0 this is log p~(x_N) - log N(x_N; 0, sigma^2 I) exactly. Losses,
estimators, training and checkpoints are those of ``PIS`` (``pis.py``): DDS differs
only in the reference process and the integrator.

Noise schedule: by default the cosine schedule of Nichol & Dhariwal run backwards in
sampler time (time runs 0 -> T from the prior to the target, so the rate is large
at t = 0, where the first step forgets x_0, and small near the target).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from logz.samplers._common import _check
from logz.samplers.pis import PIS
from logz.sde import CosineSchedule, LinearReference, Schedule, VPReference
from logz.sde.schedules import Time, _as_tensor


class ReversedSchedule(Schedule):
    """beta_rev(t) = beta(T - t) on [0, T]; int_0^t beta_rev = B(T) - B(T - t)."""

    def __init__(self, base: Schedule, T: float):
        if not T > 0:
            raise ValueError(f"time horizon T must be > 0, got {T}")
        self.base, self.T = base, float(T)

    def __call__(self, t: Time) -> Tensor:
        return self.base(self.T - _as_tensor(t))

    def cumulative(self, t: Time) -> Tensor:
        t = _as_tensor(t)
        return self.base.cumulative(torch.full_like(t, self.T)) - self.base.cumulative(self.T - t)

    def __repr__(self) -> str:
        return f"ReversedSchedule({self.base}, T={self.T})"


class DDS(PIS):
    """Denoising Diffusion Sampler: ``PIS``'s composition on the VP reference (exact integrator).

    Args:
        target: see ``PIS``.
        init_std: sigma, the reference's stationary std (default: the target's ``init_std``
            hint, else 1).
        beta: "cosine" (default, reversed cosine schedule), a float (constant rate) or a
            ``logz.sde.Schedule`` (used as given, in sampler time).
        T: horizon (default 1). num_steps: exponential-integrator steps (default 100).
        **config: every other ``PIS`` option (loss, batch_size, seed, groups and their fields, ...).
    """

    name = "dds"
    scheme = "exact"

    def __init__(self, target, *, init_std: Optional[float] = None,
                 beta: Union[str, float, Schedule] = "cosine", T: float = 1.0, num_steps: int = 100,
                 **config):
        if "diffusion" in config:
            raise ValueError("DDS has no 'diffusion' option: its reference is set by init_std and beta")
        if init_std is None:
            init_std = float(getattr(target, "init_std", 1.0) or 1.0)
        self._vp = (init_std, beta)
        super().__init__(target, T=T, num_steps=num_steps, **config)

    def _reference(self, *, diffusion, T) -> LinearReference:
        init_std, beta = self._vp
        _check("init_std", isinstance(init_std, (int, float)) and init_std > 0, init_std, "> 0")
        _check("beta", beta == "cosine" or isinstance(beta, Schedule) or
               (isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta > 0),
               beta, "'cosine', a rate > 0 or a Schedule")
        self.init_std, self.beta = float(init_std), beta
        schedule = ReversedSchedule(CosineSchedule(T), T) if beta == "cosine" else beta
        return VPReference(schedule, std=self.init_std)
