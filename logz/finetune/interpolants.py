"""Interpolants for flow matching (SiT, Ma et al., arXiv 2401.08740): paths, parameterisations,
and the SDE sampler with a free diffusion coefficient w(t).

Path x_t = alpha(t) x1 + sigma(t) x0 with x0 ~ N(0, I) at t = 0 (noise) and x1 ~ data at
t = 1 (the time direction of ``FlowMatching`` and of SiT's reference code):

- "linear" (rectified flow): alpha = t, sigma = 1 - t;
- "gvp" (generalised variance preserving, trigonometric): alpha = sin(pi t / 2),
  sigma = cos(pi t / 2), so alpha^2 + sigma^2 = 1;
- "vp" (the DDPM/score-SDE schedule with beta from 0.1 to 20): log alpha =
  -1/4 (1 - t)^2 (20 - 0.1) - 1/2 (1 - t) 0.1, sigma = sqrt(1 - alpha^2); alpha(0) = 6.6e-3,
  so the N(0, I) prior is not exactly p_0 (the VP path's built-in initialisation error).

Velocity and score of the same marginals (E[. | x_t = x] of the conditional quantities):

    v(x, t) = E[alpha' x1 + sigma' x0 | x],   s(x, t) = grad log p_t(x) = -E[x0 | x] / sigma,
    v = (alpha'/alpha) x + lam(t) s,   lam = alpha' sigma^2 / alpha - sigma sigma'.

A model may regress the velocity (target alpha' x1 + sigma' x0) or the noise (target x0, so
s = -eps_hat / sigma); ``velocity_from_score`` / ``score_from_velocity`` convert (singular where
alpha = 0 or lam = 0, i.e. at the ends of the path; samplers stay inside [t_min, t_max]).

SDE with the same marginals for any w(t) >= 0 (SiT, in this time direction):

    dX = [v(X, t) + w(t) s(X, t)] dt + sqrt(2 w(t)) dW,

w = 0 being the probability-flow ODE. ``DIFFUSIONS`` holds SiT's named choices of w(t).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Interpolant", "LinearInterpolant", "GVPInterpolant", "VPInterpolant", "INTERPOLANTS",
           "make_interpolant", "DIFFUSIONS", "make_diffusion", "InterpolantSDE"]


def _t(t, like: Optional[Tensor] = None) -> Tensor:
    if isinstance(t, Tensor):
        return t if like is None else t.to(like.dtype)
    return torch.as_tensor(t, dtype=torch.float64 if like is None else like.dtype)


class Interpolant:
    """x_t = alpha(t) x1 + sigma(t) x0. Subclasses give alpha, sigma and their derivatives.

    ``t_min``, ``t_max``: the interval where the conditional velocity target and the
    velocity/score conversion are finite; training draws t there and samplers stay there.
    """

    name: str = "interpolant"
    t_min: float = 0.0
    t_max: float = 1.0

    def alpha(self, t) -> Tensor:
        raise NotImplementedError

    def sigma(self, t) -> Tensor:
        raise NotImplementedError

    def d_alpha(self, t) -> Tensor:
        raise NotImplementedError

    def d_sigma(self, t) -> Tensor:
        raise NotImplementedError

    def sigma_dsigma(self, t) -> Tensor:
        """sigma sigma' = 1/2 d(sigma^2)/dt (finite even where sigma' is not)."""
        return self.sigma(t) * self.d_sigma(t)

    def lam(self, t) -> Tensor:
        """lam(t) = alpha' sigma^2 / alpha - sigma sigma' in v = (alpha'/alpha) x + lam s."""
        return self.d_alpha(t) * self.sigma(t) ** 2 / self.alpha(t) - self.sigma_dsigma(t)

    # --- training pairs ------------------------------------------------------
    def sample_time(self, n: int, generator: Optional[torch.Generator] = None,
                    dtype: torch.dtype = torch.float32) -> Tensor:
        """t ~ U[t_min, t_max], Tensor[n]."""
        u = torch.rand(int(n), generator=generator, dtype=dtype)
        return self.t_min + (self.t_max - self.t_min) * u

    def pair(self, x0: Tensor, x1: Tensor, t: Tensor, prediction: str = "velocity") -> tuple[Tensor, Tensor]:
        """(x_t, regression target) for noise x0, data x1: Tensor[B, d], t: Tensor[B].

        ``prediction``: "velocity" (target alpha' x1 + sigma' x0) or "noise" (target x0).
        """
        tc = t.to(x1.dtype)[:, None]
        xt = self.alpha(tc) * x1 + self.sigma(tc) * x0
        if prediction == "velocity":
            return xt, self.d_alpha(tc) * x1 + self.d_sigma(tc) * x0
        if prediction == "noise":
            return xt, x0
        raise ValueError(f"prediction must be 'velocity' or 'noise', got {prediction!r}")

    # --- conversions ------------------------------------------------------
    def velocity_from_score(self, score: Tensor, x: Tensor, t) -> Tensor:
        t = _t(t, x)
        return self.d_alpha(t) / self.alpha(t) * x + self.lam(t) * score

    def score_from_velocity(self, v: Tensor, x: Tensor, t) -> Tensor:
        """Inverts ``velocity_from_score`` where alpha > 0; where alpha = 0, p_t = N(0, sigma^2 I)
        and s = -x / sigma^2 exactly. Undefined where lam = 0 (at the data end, sigma = 0)."""
        t = _t(t, x)
        a = self.alpha(t)
        if not bool(torch.all(a > 0)):
            safe = torch.where(a > 0, a, torch.ones_like(a))
            inner = (v - self.d_alpha(t) / safe * x) / torch.where(a > 0, self.lam(t), torch.ones_like(a))
            return torch.where(a > 0, inner, -x / self.sigma(t) ** 2)
        return (v - self.d_alpha(t) / a * x) / self.lam(t)

    def velocity_from_noise(self, eps: Tensor, x: Tensor, t) -> Tensor:
        """Velocity of a noise-prediction model eps_hat(x, t) ~ E[x0 | x_t = x]."""
        return self.velocity_from_score(-eps / self.sigma(_t(t, x)), x, t)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LinearInterpolant(Interpolant):
    """alpha = t, sigma = 1 - t (rectified flow / conditional OT)."""

    name = "linear"

    def alpha(self, t):
        return _t(t)

    def sigma(self, t):
        return 1 - _t(t)

    def d_alpha(self, t):
        return torch.ones_like(_t(t))

    def d_sigma(self, t):
        return -torch.ones_like(_t(t))


class GVPInterpolant(Interpolant):
    """alpha = sin(pi t / 2), sigma = cos(pi t / 2)."""

    name = "gvp"

    def alpha(self, t):
        return torch.sin(0.5 * math.pi * _t(t))

    def sigma(self, t):
        return torch.cos(0.5 * math.pi * _t(t))

    def d_alpha(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * _t(t))

    def d_sigma(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * _t(t))


class VPInterpolant(Interpolant):
    """log alpha = -1/4 (1-t)^2 (beta_max - beta_min) - 1/2 (1-t) beta_min, sigma = sqrt(1 - alpha^2).

    sigma' = -alpha alpha' / sigma is infinite at t = 1, so training stops at
    t_max = 1 - 1e-5 (SiT's train_eps for VP); sigma sigma' = -alpha alpha' stays finite.
    """

    name = "vp"
    t_max = 1.0 - 1e-5

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 <= beta_min < beta_max:
            raise ValueError(f"need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def _log_alpha(self, t):
        s = 1 - _t(t)
        return -0.25 * s ** 2 * (self.beta_max - self.beta_min) - 0.5 * s * self.beta_min

    def alpha(self, t):
        return torch.exp(self._log_alpha(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(2 * self._log_alpha(t)))

    def d_alpha(self, t):
        s = 1 - _t(t)
        return self.alpha(t) * (0.5 * s * (self.beta_max - self.beta_min) + 0.5 * self.beta_min)

    def d_sigma(self, t):
        return -self.alpha(t) * self.d_alpha(t) / self.sigma(t)

    def sigma_dsigma(self, t):
        return -self.alpha(t) * self.d_alpha(t)

    def __repr__(self) -> str:
        return f"VPInterpolant(beta_min={self.beta_min}, beta_max={self.beta_max})"


INTERPOLANTS = {"linear": LinearInterpolant, "gvp": GVPInterpolant, "vp": VPInterpolant}


def make_interpolant(spec: Union[str, Interpolant, None] = "linear") -> Interpolant:
    """An ``Interpolant`` from a name in ``INTERPOLANTS`` (None: linear) or an instance."""
    if spec is None:
        return LinearInterpolant()
    if isinstance(spec, Interpolant):
        return spec
    if spec not in INTERPOLANTS:
        raise ValueError(f"unknown interpolant {spec!r}; choose one of {sorted(INTERPOLANTS)}")
    return INTERPOLANTS[spec]()


# --- the diffusion coefficient and the SDE sampler ------------------------------
Diffusion = Callable[[Tensor], Tensor]
"""w(t) >= 0 for t: Tensor (any shape)."""


def _diffusions(path: Interpolant) -> dict[str, Diffusion]:
    """SiT's named w(t) (``compute_diffusion`` of the reference code), in this time direction."""
    return {
        "ode": lambda t: torch.zeros_like(_t(t)),
        "constant": lambda t: torch.ones_like(_t(t)),
        "sbdm": lambda t: path.lam(t),
        "sigma": lambda t: path.sigma(t),
        "linear": lambda t: 1 - _t(t),
        "decreasing": None,            # 0.25 (norm cos(pi t) + 1)^2: norm inside, as in SiT's code
        "increasing-decreasing": lambda t: torch.sin(math.pi * _t(t)) ** 2,
    }


DIFFUSIONS = tuple(_diffusions(LinearInterpolant()))


def make_diffusion(spec: Union[str, Diffusion], path: Interpolant, norm: float = 1.0) -> Diffusion:
    """w(t) = norm * form(t), the form named in ``DIFFUSIONS`` or a callable; "decreasing" is
    SiT's 0.25 (norm cos(pi t) + 1)^2 (the norm inside the square, as in its reference code)."""
    if not norm >= 0:
        raise ValueError(f"diffusion norm must be >= 0, got {norm}")
    if spec == "decreasing":
        return lambda t: 0.25 * (norm * torch.cos(math.pi * _t(t)) + 1) ** 2
    if callable(spec):
        form = spec
    else:
        forms = _diffusions(path)
        if spec not in forms:
            raise ValueError(f"unknown diffusion {spec!r}; choose one of {list(forms)} or pass w(t)")
        form = forms[spec]
    return lambda t: norm * form(t)


class InterpolantSDE:
    """dX = [v + w s] dt + sqrt(2 w) dW on a path, s from ``score`` or from v.

    Args:
        velocity: v(x, t), x: Tensor[B, d], t: 0-dim tensor.
        interpolant: the path v was trained on (name or ``Interpolant``).
        diffusion: w(t), a name in ``DIFFUSIONS`` or a callable; ``norm`` scales it.
        score: s(x, t) if the model has one; else s = ``score_from_velocity`` (1 NFE per step).
    """

    def __init__(self, velocity: Velocity, interpolant: Union[str, Interpolant] = "linear",
                 diffusion: Union[str, Diffusion] = "sigma", norm: float = 1.0,
                 score: Optional[Velocity] = None):
        self.velocity, self.path = velocity, make_interpolant(interpolant)
        self.w = make_diffusion(diffusion, self.path, norm)
        self.score = score

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        v = self.velocity(x, t)
        w = self.w(t).to(x.dtype)
        if not bool(torch.any(w != 0)):
            return v
        s = self.score(x, t) if self.score is not None else self.path.score_from_velocity(v, x, t)
        return v + w * s

    def sample(self, x0: Tensor, num_steps: int, *, t_min: Optional[float] = None,
               t_max: Optional[float] = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """Euler–Maruyama from x0 (the prior draw at t_min) on a uniform grid to t_max.

        The last step adds no noise (SiT's "Mean" last step). NFE = num_steps. Tensor like x0.
        """
        if int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps}")
        lo = self.path.t_min if t_min is None else float(t_min)
        hi = self.path.t_max if t_max is None else float(t_max)
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"need 0 <= t_min < t_max <= 1, got {lo}, {hi}")
        times = torch.linspace(lo, hi, int(num_steps) + 1, dtype=x0.dtype, device=x0.device)
        w_grid = self.w(times[:-1]).to(x0.dtype)
        if not bool(torch.isfinite(w_grid).all() & (w_grid >= 0).all()):
            raise ValueError(f"diffusion w(t) must be finite and >= 0 on the grid [{lo}, {hi}) "
                             f"(e.g. 'sbdm' is infinite where alpha = 0: raise t_min)")
        x = x0
        with torch.no_grad():
            for k in range(int(num_steps)):
                t, h = times[k], times[k + 1] - times[k]
                x = x + h * self.drift(x, t)
                if k + 1 < int(num_steps):
                    w = self.w(t).to(x.dtype)
                    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
                    x = x + torch.sqrt(2 * w * h) * noise
        return x
