"""Linear Gaussian reference processes with closed-form transitions.

Every process here is dX = -lam(t) X dt + g(t) dW with X_0 ~ N(0, v0 I), so all
marginals and transitions are centered Gaussians with scalar (isotropic) variance:

    X_t | X_s = x  ~  N(a(s, t) x, q(s, t) I),      X_t ~ N(0, v(t) I).

That is all a path-space sampler needs: the forward kernel of the uncontrolled
process, its backward kernel (the Gaussian "bridge" X_s | X_t), and the marginal
log-density. The processes implement the SDE protocol of ``integrate.py``
(``f(x, t)`` drift, ``g(t)`` diffusion) so they can be integrated like any SDE.

Shapes: ``x`` is Tensor[B, dim]; times are floats or tensors broadcastable to [B].
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor

from logz.sde.schedules import Schedule, Time, _as_tensor, as_schedule

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(x: Tensor, mean: Union[Tensor, float], var: Union[Tensor, float]) -> Tensor:
    """log N(x; mean, var I) summed over the last dim. ``var`` broadcasts to x[..., :1].

    Returns Tensor[B].
    """
    var = torch.as_tensor(var, dtype=x.dtype, device=x.device)
    if var.ndim == 1 and x.ndim == 2 and var.shape[0] == x.shape[0]:
        var = var[:, None]
    d = x.shape[-1]
    return -0.5 * (((x - mean) ** 2) / var).sum(-1) - 0.5 * d * (LOG_2PI + torch.log(var).squeeze(-1))


class LinearReference:
    """dX = -lam(t) X dt + g(t) dW, X_0 ~ N(0, v0 I). Subclasses define the closed forms.

    Attributes:
        init_std: sqrt(v0); 0 means X_0 = 0 exactly.
    """

    init_std: float = 0.0

    # --- SDE protocol -------------------------------------------------
    def f(self, x: Tensor, t: Time) -> Tensor:
        """Drift -lam(t) x. Shape of x."""
        return -self.lam(t).to(x) * x

    def g(self, t: Time) -> Tensor:
        """Diffusion coefficient (scalar per time)."""
        raise NotImplementedError

    def lam(self, t: Time) -> Tensor:
        raise NotImplementedError

    # --- closed forms -------------------------------------------------
    def mean_coeff(self, s: Time, t: Time) -> Tensor:
        """a(s, t) = exp(-int_s^t lam)."""
        raise NotImplementedError

    def transition_var(self, s: Time, t: Time) -> Tensor:
        """q(s, t) = int_s^t exp(-2 int_u^t lam) g(u)^2 du."""
        raise NotImplementedError

    def marginal_var(self, t: Time) -> Tensor:
        """v(t) = a(0,t)^2 v0 + q(0,t)."""
        return self.mean_coeff(0.0, t) ** 2 * self.init_std ** 2 + self.transition_var(0.0, t)

    def log_marginal(self, x: Tensor, t: Time) -> Tensor:
        """log N(x; 0, v(t) I), Tensor[B]. Undefined at t = 0 when init_std = 0."""
        return gaussian_log_prob(x, 0.0, self.marginal_var(t).to(x))

    def sample_initial(self, n: int, dim: int, *, generator: Optional[torch.Generator] = None,
                       dtype: Optional[torch.dtype] = None, device=None) -> Tensor:
        """X_0 ~ N(0, v0 I): Tensor[n, dim] (zeros when init_std = 0)."""
        dtype = dtype or torch.get_default_dtype()
        if self.init_std == 0:
            return torch.zeros(n, dim, dtype=dtype, device=device)
        return self.init_std * torch.randn(n, dim, generator=generator, dtype=dtype, device=device)

    def forward_coefficients(self, times: Tensor) -> tuple[Tensor, Tensor]:
        """Exact kernel X_{k+1} | X_k = x ~ N(a_k x, std_k^2 I) on a grid.

        Args: times Tensor[N+1]. Returns (a Tensor[N], std Tensor[N]).
        """
        s, t = times[:-1].double(), times[1:].double()
        a = self.mean_coeff(s, t)
        std = self.transition_var(s, t).clamp_min(0).sqrt()
        return a.to(times), std.to(times)

    def backward_coefficients(self, times: Tensor) -> tuple[Tensor, Tensor]:
        """Bridge X_k | X_{k+1} = y ~ N(b_k y, r_k^2 I) of the uncontrolled process.

        From X_{k+1} = a X_k + std eps and X_k ~ N(0, v_k): b = a v_k / v_{k+1},
        r^2 = v_k std^2 / v_{k+1}. When X_0 = 0 the first step is deterministic (r_0 = 0,
        b_0 = 0); its log-density is defined as 0, as in DGFS/PIS.
        Returns (b Tensor[N], r Tensor[N]).
        """
        s, t = times[:-1].double(), times[1:].double()
        a = self.mean_coeff(s, t)
        q = self.transition_var(s, t)
        v_s, v_t = self.marginal_var(s), self.marginal_var(t)
        b = a * v_s / v_t
        r = (v_s * q / v_t).clamp_min(0).sqrt()
        return b.to(times), r.to(times)

    def terminal_log_prob(self, x: Tensor, T: Time) -> Tensor:
        """log-density of the reference's marginal at the final time, Tensor[B]."""
        return self.log_marginal(x, T)


class BrownianReference(LinearReference):
    """dX = sqrt(beta(t)) dW from X_0 ~ N(0, init_std^2 I) (init_std = 0: X_0 = 0).

    ``diffusion`` is a float g (constant, beta = g^2) or a ``Schedule`` for beta(t).
    PIS and DGFS use g = sqrt(0.2), T = 5 (PIS) or g = 1, T = 1 (DGFS) from X_0 = 0.
    """

    def __init__(self, diffusion: Union[float, Schedule] = 1.0, init_std: float = 0.0):
        if isinstance(diffusion, Schedule):
            self.schedule = diffusion
        else:
            if not diffusion > 0:
                raise ValueError(f"diffusion coefficient must be > 0, got {diffusion}")
            self.schedule = as_schedule(float(diffusion) ** 2)
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        self.init_std = float(init_std)

    def lam(self, t: Time) -> Tensor:
        return torch.zeros_like(_as_tensor(t))

    def f(self, x: Tensor, t: Time) -> Tensor:
        return torch.zeros_like(x)

    def g(self, t: Time) -> Tensor:
        return self.schedule.sqrt(t)

    def mean_coeff(self, s: Time, t: Time) -> Tensor:
        return torch.ones_like(_as_tensor(t) - _as_tensor(s))

    def transition_var(self, s: Time, t: Time) -> Tensor:
        return self.schedule.integral(s, t)

    def __repr__(self) -> str:
        return f"BrownianReference({self.schedule}, init_std={self.init_std})"


class VPReference(LinearReference):
    """Variance-preserving OU: dX = -1/2 beta(t) X dt + std sqrt(beta(t)) dW, X_0 ~ N(0, std^2 I).

    The law N(0, std^2 I) is invariant, so every marginal is N(0, std^2 I) and the
    process is reversible: its bridge equals its forward kernel. DDS uses it.
    """

    def __init__(self, beta: Union[float, Schedule] = 1.0, std: float = 1.0):
        if not std > 0:
            raise ValueError(f"VPReference std must be > 0, got {std}")
        self.schedule = as_schedule(beta)
        self.init_std = float(std)

    def lam(self, t: Time) -> Tensor:
        return 0.5 * self.schedule(t)

    def g(self, t: Time) -> Tensor:
        return self.init_std * self.schedule.sqrt(t)

    def mean_coeff(self, s: Time, t: Time) -> Tensor:
        return torch.exp(-0.5 * self.schedule.integral(s, t))

    def transition_var(self, s: Time, t: Time) -> Tensor:
        return self.init_std ** 2 * -torch.expm1(-self.schedule.integral(s, t))

    def marginal_var(self, t: Time) -> Tensor:
        return torch.full_like(_as_tensor(t), self.init_std ** 2)

    def __repr__(self) -> str:
        return f"VPReference({self.schedule}, std={self.init_std})"
