"""Rate schedules beta(t) >= 0 with closed-form integrals.

One object serves every linear reference process in ``reference.py``:
Brownian motion dX = sqrt(beta(t)) dW (variance grows by the integral of beta),
variance-preserving OU dX = -1/2 beta(t) X dt + s sqrt(beta(t)) dW, and the
variance-exploding process (Brownian with a geometric schedule). Theory code
(``logz.theory``) builds its forward processes on the same schedules.

Every method accepts Python floats or tensors of any shape (broadcast).
"""

from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor

Time = Union[float, Tensor]


def _as_tensor(t: Time) -> Tensor:
    return t if isinstance(t, Tensor) else torch.as_tensor(t, dtype=torch.float64)


class Schedule:
    """A nonnegative rate beta(t) and its integral B(s, t) = int_s^t beta(u) du."""

    def __call__(self, t: Time) -> Tensor:
        raise NotImplementedError

    def cumulative(self, t: Time) -> Tensor:
        """int_0^t beta(u) du."""
        raise NotImplementedError

    def integral(self, s: Time, t: Time) -> Tensor:
        """int_s^t beta(u) du (negative if t < s)."""
        return self.cumulative(t) - self.cumulative(s)

    def sqrt(self, t: Time) -> Tensor:
        """sqrt(beta(t)): the diffusion coefficient g(t) of a Brownian reference."""
        return torch.sqrt(self(t))


class ConstantSchedule(Schedule):
    """beta(t) = value. A Brownian reference with this schedule has g = sqrt(value)."""

    def __init__(self, value: float):
        if not value > 0:
            raise ValueError(f"ConstantSchedule needs value > 0, got {value}")
        self.value = float(value)

    def __call__(self, t: Time) -> Tensor:
        return torch.full_like(_as_tensor(t), self.value)

    def cumulative(self, t: Time) -> Tensor:
        return self.value * _as_tensor(t)

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.value})"


class LinearSchedule(Schedule):
    """beta(t) = beta_min + (beta_max - beta_min) t / T (the VP-SDE of Song et al. 2021)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        if beta_min < 0 or beta_max < 0 or T <= 0:
            raise ValueError(f"LinearSchedule needs beta_min, beta_max >= 0 and T > 0, got "
                             f"{beta_min}, {beta_max}, {T}")
        self.beta_min, self.beta_max, self.T = float(beta_min), float(beta_max), float(T)

    def __call__(self, t: Time) -> Tensor:
        t = _as_tensor(t)
        return self.beta_min + (self.beta_max - self.beta_min) * t / self.T

    def cumulative(self, t: Time) -> Tensor:
        t = _as_tensor(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t ** 2 / self.T

    def __repr__(self) -> str:
        return f"LinearSchedule({self.beta_min}, {self.beta_max}, T={self.T})"


class GeometricSchedule(Schedule):
    """beta(t) = d/dt sigma(t)^2 with sigma(t) = sigma_min (sigma_max/sigma_min)^(t/T).

    Brownian motion with this rate is the variance-exploding (VE) process; the
    variance added on [0, t] is sigma(t)^2 - sigma_min^2. Adjoint Sampling uses it
    as its noise schedule.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0, T: float = 1.0):
        if not 0 < sigma_min < sigma_max or T <= 0:
            raise ValueError(f"GeometricSchedule needs 0 < sigma_min < sigma_max and T > 0, got "
                             f"{sigma_min}, {sigma_max}, {T}")
        self.sigma_min, self.sigma_max, self.T = float(sigma_min), float(sigma_max), float(T)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: Time) -> Tensor:
        return self.sigma_min * torch.exp(self._log_ratio * _as_tensor(t) / self.T)

    def __call__(self, t: Time) -> Tensor:
        return 2.0 * self._log_ratio / self.T * self.sigma(t) ** 2

    def cumulative(self, t: Time) -> Tensor:
        return self.sigma(t) ** 2 - self.sigma_min ** 2

    def __repr__(self) -> str:
        return f"GeometricSchedule({self.sigma_min}, {self.sigma_max}, T={self.T})"


class CosineSchedule(Schedule):
    """The cosine schedule (Nichol & Dhariwal 2021) as a VP rate on [0, T].

    alpha_bar(t) = cos^2(pi/2 (t/T + s)/(1 + s)) / cos^2(pi/2 s/(1+s)) runs 1 -> ~0; the
    VP rate is beta(t) = -d/dt log alpha_bar(t) and int_0^t beta = -log alpha_bar(t).
    Here time runs the other way (t = 0 noise, t = T data in the samplers' convention
    is handled by the reference process, not the schedule). ``max_beta`` clips the rate.
    """

    def __init__(self, T: float = 1.0, s: float = 0.008, max_beta: float = 50.0):
        if T <= 0:
            raise ValueError(f"CosineSchedule needs T > 0, got {T}")
        self.T, self.s, self.max_beta = float(T), float(s), float(max_beta)

    def _phase(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * (t / self.T + self.s) / (1 + self.s)

    def __call__(self, t: Time) -> Tensor:
        t = _as_tensor(t)
        rate = math.pi / (self.T * (1 + self.s)) * torch.tan(self._phase(t))
        return rate.clamp(max=self.max_beta)

    def cumulative(self, t: Time) -> Tensor:
        # unclipped closed form; the clip only matters within ~1e-3 T of t = T
        t = _as_tensor(t)
        phase0 = 0.5 * math.pi * self.s / (1 + self.s)
        return 2 * (torch.log(torch.cos(torch.as_tensor(phase0, dtype=t.dtype)))
                    - torch.log(torch.cos(self._phase(t)).clamp_min(1e-12)))

    def __repr__(self) -> str:
        return f"CosineSchedule(T={self.T}, s={self.s})"


def as_schedule(value: Union[float, Schedule]) -> Schedule:
    """A float is read as a constant rate beta; a Schedule passes through."""
    if isinstance(value, Schedule):
        return value
    return ConstantSchedule(float(value))
