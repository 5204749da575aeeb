"""Noise schedules sigma(t) for flow models, and the SDE with the flow's marginals.

For the linear path x_t = (1 - t) x0 + t x1 (x0 ~ N(0, I)) the score is
grad log p_t(x) = (t v(x, t) - x) / (1 - t), so for ANY sigma(t) the SDE

    dX = b(X, t) dt + sigma(t) dW,   b = v + sigma^2 / 2 * (t v - X) / (1 - t),

has the same marginals p_t as the ODE dX = v dt. The memoryless choice
sigma(t)^2 = 2 (1 - t) / t makes X_0 and X_1 independent and b = 2 v - x / t
(Adjoint Matching, arXiv 2409.08861, Sec. 4); in practice sigma^2 =
2 (1 - t + h) / (t + h) with a small offset h so that sigma(0) is finite.

A fine-tuned velocity v_ft defines drift b_ft the same way, and
b_ft - b_base = kappa(t) (v_ft - v_base) with kappa = 1 + sigma^2 t / (2 (1 - t))
(kappa = 2 for the exact memoryless schedule, the paper's u = 2 (v_ft - v_base) / sigma).
Writing the control as u = kappa (v_ft - v_base) / sigma keeps the controlled SDE's
marginals equal to those of the fine-tuned ODE for every sigma, offset included.
"""

from __future__ import annotations

import warnings
from typing import Callable, Union

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]


def _t(t) -> Tensor:
    return t if isinstance(t, Tensor) else torch.as_tensor(t, dtype=torch.float64)


class NoiseSchedule:
    """sigma(t) >= 0 on [0, 1). ``memoryless`` says whether X_0 and X_1 are independent."""

    memoryless: bool = False

    def __call__(self, t) -> Tensor:
        raise NotImplementedError


class MemorylessNoise(NoiseSchedule):
    """sigma(t) = sqrt(2 (1 - t + h) / (t + h)): memoryless up to the offset h (default 0.025 = 1/40)."""

    memoryless = True

    def __init__(self, offset: float = 1.0 / 40):
        if not 0 <= offset < 1:
            raise ValueError(f"offset h must be in [0, 1), got {offset}")
        self.offset = float(offset)

    def __call__(self, t) -> Tensor:
        t = _t(t)
        return torch.sqrt(2 * (1 - t + self.offset) / (t + self.offset))

    def __repr__(self) -> str:
        return f"MemorylessNoise(offset={self.offset})"


class ConstantNoise(NoiseSchedule):
    """sigma(t) = value: NOT memoryless (the baseline whose tilt is biased)."""

    def __init__(self, value: float):
        if not value > 0:
            raise ValueError(f"noise level must be > 0, got {value}")
        self.value = float(value)

    def __call__(self, t) -> Tensor:
        return torch.full_like(_t(t), self.value)

    def __repr__(self) -> str:
        return f"ConstantNoise({self.value})"


class ScaledNoise(NoiseSchedule):
    """sigma(t) = scale * base_sigma(t); memoryless only when scale == 1."""

    def __init__(self, base: NoiseSchedule, scale: float):
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.base, self.scale = base, float(scale)
        self.memoryless = base.memoryless and self.scale == 1.0

    def __call__(self, t) -> Tensor:
        return self.scale * self.base(t)

    def __repr__(self) -> str:
        return f"ScaledNoise({self.base!r}, {self.scale})"


class CallableNoise(NoiseSchedule):
    """Wrap a user callable sigma(t); memorylessness is checked numerically (``is_memoryless``)."""

    def __init__(self, fn: Callable[[Tensor], Tensor]):
        self.fn = fn
        self.memoryless = is_memoryless(fn)

    def __call__(self, t) -> Tensor:
        return torch.as_tensor(self.fn(_t(t)), dtype=_t(t).dtype)


def is_memoryless(sigma: Callable[[Tensor], Tensor], rtol: float = 0.1) -> bool:
    """Whether sigma(t)^2 is within ``rtol`` of 2 (1 - t) / t on t in [0.1, 0.9].

    The interval avoids the ends, where practical schedules add an offset.
    """
    t = torch.linspace(0.1, 0.9, 17, dtype=torch.float64)
    s2 = torch.as_tensor(sigma(t), dtype=torch.float64) ** 2
    ref = 2 * (1 - t) / t
    return bool(((s2 - ref).abs() <= rtol * ref).all())


def as_noise(value: Union[None, float, NoiseSchedule, Callable], num_steps: int) -> NoiseSchedule:
    """None -> MemorylessNoise(1 / num_steps); float -> ConstantNoise; callable -> CallableNoise."""
    if value is None:
        return MemorylessNoise(1.0 / num_steps)
    if isinstance(value, NoiseSchedule):
        return value
    if isinstance(value, (int, float)):
        return ConstantNoise(float(value))
    if callable(value):
        return CallableNoise(value)
    raise TypeError(f"noise must be None, a float, a NoiseSchedule or a callable, got {type(value).__name__}")


def warn_if_not_memoryless(noise: NoiseSchedule, who: str = "AdjointMatching") -> None:
    if not noise.memoryless:
        warnings.warn(
            f"{who}: noise schedule {noise!r} is not memoryless (sigma(t)^2 != 2(1-t)/t). Adjoint "
            f"Matching then converges to a BIASED distribution, not p_base * exp(r) / Z (the initial "
            f"value function bias, arXiv 2409.08861 Sec. 4). Use MemorylessNoise() unless you want "
            f"this baseline (NonMemorylessAdjointMatching).", UserWarning, stacklevel=3)


class FlowSDE:
    """dX = b(X, t) dt + sigma(t) dW with b = v + sigma^2/2 (t v - X)/(1 - t), t in [0, 1).

    Implements the SDE protocol of ``logz.sde.integrate`` (``f``, ``g``).
    ``v`` is any velocity v(x, t) -> Tensor[B, d].
    """

    def __init__(self, velocity: Velocity, noise: NoiseSchedule):
        self.velocity, self.noise = velocity, noise

    def g(self, t) -> Tensor:
        return self.noise(t)

    def score_weight(self, t: Tensor) -> Tensor:
        """sigma(t)^2 / (2 (1 - t)): b = v + w (t v - x). Undefined at t = 1."""
        t = _t(t)
        return self.noise(t) ** 2 / (2 * (1 - t))

    def kappa(self, t: Tensor) -> Tensor:
        """b_ft - b_base = kappa(t) (v_ft - v_base); kappa = 1 + sigma^2 t / (2 (1 - t))."""
        t = _t(t)
        return 1 + self.score_weight(t) * t

    def drift_from_velocity(self, v: Tensor, x: Tensor, t: Tensor) -> Tensor:
        w = self.score_weight(t).to(x)
        tt = _t(t).to(x)
        if w.ndim == 1:
            w, tt = w[:, None], tt[:, None]
        return v + w * (tt * v - x)

    def f(self, x: Tensor, t: Tensor) -> Tensor:
        return self.drift_from_velocity(self.velocity(x, t), x, t)


def check_velocity(velocity: Velocity, dim: int, dtype: torch.dtype = torch.float32,
                   device=None, name: str = "velocity") -> None:
    """Probe v(x, t) on a small batch, with 0-dim and [B] times; raise a clear ValueError if wrong."""
    x = torch.zeros(3, dim, dtype=dtype, device=device)
    for t in (torch.tensor(0.5, dtype=dtype, device=device), torch.full((3,), 0.5, dtype=dtype, device=device)):
        with torch.no_grad():
            out = velocity(x, t)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            raise ValueError(f"{name}(x, t) must return Tensor[B, dim] = {tuple(x.shape)} for x of that "
                             f"shape and t of shape {tuple(t.shape)}; got "
                             f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"{name}(x, t) returned non-finite values at x = 0, t = 0.5")

