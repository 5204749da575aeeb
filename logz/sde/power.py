"""Power-law rate beta(t) = (b + a t)^rho with a closed-form integral.

A pure addition to ``schedules.py`` (same ``Schedule`` interface). It covers the
polynomial families of the Wasserstein analyses of Gao, Nguyen & Zhu (2025) and
Gao & Zhu (2024): a VE process with g(t) = (b + a t)^c is Brownian motion with
beta = g^2 = (b + a t)^(2c), and a VP process with beta(t) = (b + a t)^rho
(rho = 1 is ``LinearSchedule``).
"""

from __future__ import annotations

from torch import Tensor

from logz.sde.schedules import Schedule, Time, _as_tensor


class PowerSchedule(Schedule):
    """beta(t) = (b + a t)^rho with a >= 0, b >= 0, rho > 0 and b + a > 0.

    ``cumulative(t) = ((b + a t)^(rho+1) - b^(rho+1)) / (a (rho + 1))`` (``b^rho t`` when a = 0).
    """

    def __init__(self, a: float = 1.0, b: float = 1.0, rho: float = 1.0):
        if a < 0 or b < 0 or not rho > 0 or not a + b > 0:
            raise ValueError(f"PowerSchedule needs a >= 0, b >= 0, a + b > 0 and rho > 0, got "
                             f"a={a}, b={b}, rho={rho}")
        self.a, self.b, self.rho = float(a), float(b), float(rho)

    def __call__(self, t: Time) -> Tensor:
        return (self.b + self.a * _as_tensor(t)) ** self.rho

    def cumulative(self, t: Time) -> Tensor:
        t = _as_tensor(t)
        if self.a == 0:
            return self.b ** self.rho * t
        r1 = self.rho + 1
        return ((self.b + self.a * t) ** r1 - self.b ** r1) / (self.a * r1)

    def __repr__(self) -> str:
        return f"PowerSchedule(a={self.a}, b={self.b}, rho={self.rho})"
