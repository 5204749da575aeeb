"""Forward processes dx = -f(s) x ds + g(s) dB of the PF-ODE theory, with closed forms.

Forward time s in [0, T] runs data -> noise (the sampler runs the other way, t = T - s).

    mu_s = exp(-int_0^s f),          sigma_s^2 = int_0^s (mu_s / mu_u)^2 g(u)^2 du,

so x_s = mu_s x_0 + sigma_s Z. The exponential integrator of the PF-ODE needs, for a
step from forward time s_hi down to s_lo < s_hi,

    phi(s_lo, s_hi) = mu_{s_lo} / mu_{s_hi}                      (>= 1),
    psi(s_lo, s_hi) = 1/2 int_{s_lo}^{s_hi} (mu_{s_lo} / mu_u) g(u)^2 du.

Every family is built on the shared schedules of ``logz.sde`` (no second copy):
VP uses ``VPReference`` (beta = g^2, f = beta / 2), VE uses ``BrownianReference``
(f = 0, g^2 = beta). Families without a closed form for sigma^2 or psi
(``LinearSDE``) use composite Gauss-Legendre quadrature, which the tests also use
to check the closed forms. All coefficients are returned in float64.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from logz.sde.power import PowerSchedule
from logz.sde.reference import BrownianReference, VPReference
from logz.sde.schedules import (ConstantSchedule, CosineSchedule, GeometricSchedule, LinearSchedule,
                                Schedule, Time, as_schedule)

_GL_ORDER = 8
_GL_X, _GL_W = (torch.tensor(v, dtype=torch.float64) for v in np.polynomial.legendre.leggauss(_GL_ORDER))


def _f64(t: Time) -> Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


def check_horizon(T) -> float:
    """T as a float, or ValueError unless finite and > 0."""
    try:
        T = float(T)
    except (TypeError, ValueError):
        raise ValueError(f"time horizon T must be a number, got {T!r}") from None
    if not (math.isfinite(T) and T > 0):
        raise ValueError(f"time horizon T must be finite and > 0, got {T}")
    return T


def _panels(a: Time, b: Time, panels: int) -> tuple[Tensor, Tensor]:
    a, b = torch.broadcast_tensors(_f64(a), _f64(b))
    frac = torch.linspace(0.0, 1.0, int(panels) + 1, dtype=torch.float64)
    edges = a[..., None] + (b - a)[..., None] * frac            # [..., P+1]
    return 0.5 * (edges[..., 1:] + edges[..., :-1]), 0.5 * (edges[..., 1:] - edges[..., :-1])


def _nodes(a: Time, b: Time, panels: int) -> Tensor:
    """The Gauss-Legendre nodes ``integrate`` uses: Tensor[..., panels, 8]."""
    mid, half = _panels(a, b, panels)
    return mid[..., None] + half[..., None] * _GL_X


def quadrature(a: Time, b: Time, panels: int = 16) -> tuple[Tensor, Tensor]:
    """Nodes and weights of ``integrate``: int_a^b fn ~ (fn(nodes) * weights).sum((-1, -2)).

    Returns (nodes, weights), each Tensor[..., panels, 8] for a, b of shape [...].
    """
    mid, half = _panels(a, b, panels)
    return mid[..., None] + half[..., None] * _GL_X, half[..., None] * _GL_W


def integrate(fn: Callable[[Tensor], Tensor], a: Time, b: Time, panels: int = 16) -> Tensor:
    """Composite Gauss-Legendre int_a^b fn(u) du, vectorized over broadcast a, b (float64).

    ``fn`` maps a float64 tensor of nodes (any shape) to values of the same shape.
    """
    mid, half = _panels(a, b, panels)
    nodes = mid[..., None] + half[..., None] * _GL_X             # [..., P, n]
    return (fn(nodes) * _GL_W * half[..., None]).sum((-1, -2))


class ForwardProcess:
    """dx = -f(s) x ds + g(s) dB with x_s = mu_s x_0 + sigma_s Z. Subclasses give closed forms.

    Attributes:
        name: registry name (``make_process``), or a description.
        horizon: the T the process was built for (schedules tied to T), or None.
        stationary_var: variance of the stationary law N(0, v I), or None (VE has none).
    """

    name: str = "process"
    horizon: Optional[float] = None
    stationary_var: Optional[float] = None

    def f(self, s: Time) -> Tensor:
        raise NotImplementedError

    def g2(self, s: Time) -> Tensor:
        """g(s)^2."""
        raise NotImplementedError

    def log_mu(self, s: Time) -> Tensor:
        """log mu_s = -int_0^s f."""
        raise NotImplementedError

    def mu(self, s: Time) -> Tensor:
        return torch.exp(self.log_mu(s))

    def sigma2(self, s: Time) -> Tensor:
        """sigma_s^2 (quadrature unless overridden)."""
        s = _f64(s)
        lm = self.log_mu(s)
        return integrate(lambda u: self.g2(u) * torch.exp(2 * (lm[..., None, None] - self.log_mu(u))),
                         torch.zeros_like(s), s, panels=64)

    def phi(self, s_lo: Time, s_hi: Time) -> Tensor:
        """mu_{s_lo} / mu_{s_hi}: the linear factor of one exponential-integrator step."""
        return torch.exp(self.log_mu(s_lo) - self.log_mu(s_hi))

    def psi(self, s_lo: Time, s_hi: Time) -> Tensor:
        """1/2 int_{s_lo}^{s_hi} (mu_{s_lo}/mu_u) g(u)^2 du: the score factor of one step."""
        s_lo, s_hi = torch.broadcast_tensors(_f64(s_lo), _f64(s_hi))
        lm = self.log_mu(s_lo)
        return 0.5 * integrate(lambda u: self.g2(u) * torch.exp(lm[..., None, None] - self.log_mu(u)),
                               s_lo, s_hi, panels=16)

    def check(self, T: float) -> None:
        """Raise ValueError unless the process meets the theorem's assumptions on [0, T].

        Assumption (as used here): f and g^2 finite and >= 0 on [0, T], sigma_T^2 > 0, and the
        closed forms consistent with the rates (a clipped rate, e.g. ``CosineSchedule`` at its
        ``max_beta``, breaks int f = -log mu and the exactness of everything downstream).
        """
        T = check_horizon(T)
        s = torch.linspace(0.0, T, 513, dtype=torch.float64)
        f, g2 = self.f(s), self.g2(s)
        if not bool(torch.isfinite(f).all() & torch.isfinite(g2).all()):
            raise ValueError(f"schedule outside the theorem's assumptions: f or g^2 not finite on "
                             f"[0, T={T}] for {self}")
        if bool((f < 0).any()) or bool((g2 < 0).any()):
            raise ValueError(f"schedule outside the theorem's assumptions: need f >= 0 and g^2 >= 0 "
                             f"on [0, T], got min f = {float(f.min()):.3g}, min g^2 = "
                             f"{float(g2.min()):.3g} for {self}")
        sig2 = float(self.sigma2(T))
        if not sig2 > 0:
            raise ValueError(f"schedule outside the theorem's assumptions: sigma_T^2 = {sig2} must "
                             f"be > 0 (no noise at T) for {self}")
        int_f = float(integrate(self.f, 0.0, T, panels=256))
        if abs(int_f + float(self.log_mu(T))) > 1e-6 * (1 + abs(int_f)):
            raise ValueError(f"schedule outside the theorem's assumptions: int_0^T f = {int_f:.6g} but "
                             f"-log mu_T = {-float(self.log_mu(T)):.6g} (is the rate clipped?) for "
                             f"{self}")
        quad = float(sigma2_by_quadrature(self, T))
        if abs(quad - sig2) > 1e-6 * (1 + sig2):
            raise ValueError(f"schedule outside the theorem's assumptions: closed-form sigma_T^2 = "
                             f"{sig2:.6g} disagrees with int (mu_T/mu_u)^2 g^2 du = {quad:.6g} "
                             f"(is the rate clipped?) for {self}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def sigma2_by_quadrature(process: ForwardProcess, s: Time) -> Tensor:
    """sigma_s^2 by quadrature from the rates alone (the definition), ignoring any closed form."""
    return ForwardProcess.sigma2(process, s)


class VPProcess(ForwardProcess):
    """Variance preserving: f = beta/2, g^2 = beta; mu = e^{-B/2}, sigma^2 = 1 - e^{-B}, B = int beta.

    Stationary law N(0, I). ``psi = phi - 1`` in closed form.
    """

    stationary_var = 1.0

    def __init__(self, beta, name: str = "vp", horizon: Optional[float] = None):
        self.schedule: Schedule = as_schedule(beta)
        self.reference = VPReference(self.schedule, std=1.0)
        self.name, self.horizon = name, horizon

    def f(self, s: Time) -> Tensor:
        return 0.5 * self.schedule(_f64(s))

    def g2(self, s: Time) -> Tensor:
        return self.schedule(_f64(s))

    def log_mu(self, s: Time) -> Tensor:
        return -0.5 * self.schedule.cumulative(_f64(s))

    def mu(self, s: Time) -> Tensor:
        return self.reference.mean_coeff(0.0, _f64(s))

    def sigma2(self, s: Time) -> Tensor:
        return self.reference.transition_var(0.0, _f64(s))

    def psi(self, s_lo: Time, s_hi: Time) -> Tensor:
        return torch.expm1(0.5 * self.schedule.integral(_f64(s_lo), _f64(s_hi)))

    def __repr__(self) -> str:
        return f"VPProcess({self.schedule})"


class SubVPProcess(VPProcess):
    """Sub-VP (Song et al. 2021): f = beta/2, g^2 = beta (1 - e^{-2B}); sigma^2 = (1 - e^{-B})^2."""

    stationary_var = 1.0

    def g2(self, s: Time) -> Tensor:
        s = _f64(s)
        return self.schedule(s) * -torch.expm1(-2 * self.schedule.cumulative(s))

    def sigma2(self, s: Time) -> Tensor:
        return (-torch.expm1(-self.schedule.cumulative(_f64(s)))) ** 2

    def psi(self, s_lo: Time, s_hi: Time) -> Tensor:
        # psi = 1/2 mu_lo (J(hi) - J(lo)), J(s) = int_0^s g^2/mu = 2(e^{B/2} - 1) + 2/3 (e^{-3B/2} - 1)
        b_lo, b_hi = self.schedule.cumulative(_f64(s_lo)), self.schedule.cumulative(_f64(s_hi))
        dj = (2 * torch.exp(0.5 * b_lo) * torch.expm1(0.5 * (b_hi - b_lo))
              + (2 / 3) * torch.exp(-1.5 * b_lo) * torch.expm1(-1.5 * (b_hi - b_lo)))
        return 0.5 * torch.exp(-0.5 * b_lo) * dj

    def __repr__(self) -> str:
        return f"SubVPProcess({self.schedule})"


class VEProcess(ForwardProcess):
    """Variance exploding: f = 0, g^2 = beta; mu = 1, sigma^2 = int_0^s beta. No stationary law."""

    def __init__(self, beta, name: str = "ve", horizon: Optional[float] = None):
        self.schedule: Schedule = as_schedule(beta)
        self.reference = BrownianReference(self.schedule)
        self.name, self.horizon = name, horizon

    def f(self, s: Time) -> Tensor:
        return torch.zeros_like(_f64(s))

    def g2(self, s: Time) -> Tensor:
        return self.schedule(_f64(s))

    def log_mu(self, s: Time) -> Tensor:
        return torch.zeros_like(_f64(s))

    def sigma2(self, s: Time) -> Tensor:
        return self.reference.transition_var(0.0, _f64(s))

    def psi(self, s_lo: Time, s_hi: Time) -> Tensor:
        return 0.5 * self.schedule.integral(_f64(s_lo), _f64(s_hi))

    def __repr__(self) -> str:
        return f"VEProcess({self.schedule})"


class LinearSDE(ForwardProcess):
    """Any f, g^2 given as schedules (``f=None`` for f = 0); sigma^2 and psi by quadrature."""

    def __init__(self, f: Optional[Schedule], g2: Schedule, name: str = "linear-sde",
                 horizon: Optional[float] = None):
        self.f_schedule, self.g2_schedule = f, g2
        self.name, self.horizon = name, horizon

    def f(self, s: Time) -> Tensor:
        s = _f64(s)
        return torch.zeros_like(s) if self.f_schedule is None else self.f_schedule(s)

    def g2(self, s: Time) -> Tensor:
        return self.g2_schedule(_f64(s))

    def log_mu(self, s: Time) -> Tensor:
        s = _f64(s)
        return torch.zeros_like(s) if self.f_schedule is None else -self.f_schedule.cumulative(s)

    def __repr__(self) -> str:
        return f"LinearSDE(f={self.f_schedule}, g2={self.g2_schedule})"


# name -> (builder(T, **params), default T, what the free "horizon" of iteration_complexity is)
def _vp(T, beta=1.0):
    return VPProcess(ConstantSchedule(beta), "vp", T)


def _vp_linear(T, beta_min=0.1, beta_max=20.0):
    return VPProcess(LinearSchedule(beta_min, beta_max, T), "vp-linear", T)


def _vp_power(T, a=1.0, b=1.0, rho=2.0):
    return VPProcess(PowerSchedule(a, b, rho), "vp-power", T)


def _vp_cosine(T, s=0.008, end=0.99):
    # the cosine rate diverges at the schedule's own end: stop at `end` of it, no clipping
    return VPProcess(CosineSchedule(T=T / end, s=s, max_beta=math.inf), "vp-cosine", T)


def _subvp(T, beta_min=0.1, beta_max=20.0):
    return SubVPProcess(LinearSchedule(beta_min, beta_max, T), "subvp", T)


def _ve(T, sigma_min=0.01, sigma_max=50.0):
    return VEProcess(GeometricSchedule(sigma_min, sigma_max, T), "ve", T)


def _ve_power(T, sigma_max=50.0, c=0.5):
    # g(s) = (a s)^c, so sigma_s^2 = a^{2c} s^{2c+1} / (2c+1); a is set by sigma_T = sigma_max.
    # c = 1/2 gives sigma(s) = sigma_max s / T, the EDM / Karras noise level.
    if not c > 0:
        raise ValueError(f"ve-power needs c > 0, got {c}")
    a = (sigma_max ** 2 * (2 * c + 1) / T ** (2 * c + 1)) ** (1 / (2 * c))
    return VEProcess(PowerSchedule(a=a, b=0.0, rho=2 * c), "ve-power", T)


PROCESSES: dict[str, tuple[Callable[..., ForwardProcess], float]] = {
    "vp": (_vp, 10.0),
    "vp-linear": (_vp_linear, 1.0),
    "vp-power": (_vp_power, 3.0),
    "vp-cosine": (_vp_cosine, 1.0),
    "subvp": (_subvp, 1.0),
    "ve": (_ve, 1.0),
    "ve-power": (_ve_power, 1.0),
}


def process_names() -> list[str]:
    return list(PROCESSES)


def make_process(name: str, T: Optional[float] = None, **params) -> ForwardProcess:
    """Build a registered forward process for horizon T (default: the family's default T).

    Families: ``vp`` (constant beta), ``vp-linear`` (beta_min -> beta_max over [0, T]),
    ``vp-power`` (beta = (b + a s)^rho), ``vp-cosine``, ``subvp`` (linear beta), ``ve``
    (geometric sigma_min -> sigma_max: g = a e^{bs}), ``ve-power`` (g = (a s)^c). ``params``
    are the family's schedule parameters (e.g. ``beta=2.0``, ``sigma_max=100``).
    """
    if name not in PROCESSES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {process_names()}")
    builder, default_T = PROCESSES[name]
    return builder(check_horizon(default_T if T is None else T), **params)


def default_horizon(name: str) -> float:
    if name not in PROCESSES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {process_names()}")
    return PROCESSES[name][1]
