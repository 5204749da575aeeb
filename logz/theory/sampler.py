"""The discretized PF-ODE sampler: exponential integrator and the core's Runge-Kutta methods.

Sampler time t in [0, T] runs noise -> data (forward time s = T - t):

    dy/dt = f(T - t) y + 1/2 g(T - t)^2 score(y, T - t),     y_0 ~ N(0, sigma_T^2 I).

``method="exp"`` is the exponential integrator of Gao & Zhu: on [t_k, t_{k+1}] the score is
frozen at (y_k, t_k) and the linear part integrated exactly,

    y_{k+1} = phi_k y_k + psi_k score(y_k, T - t_k)

with phi_k, psi_k from the forward process. The other methods ("euler", "heun",
"midpoint", "rk4") are the explicit Runge-Kutta solvers of ``logz.sde.ode`` applied to
the vector field above (this module defines no Runge-Kutta of its own).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from logz.sde.grids import uniform_grid
from logz.sde.ode import ORDERS as _RK_ORDERS
from logz.sde.ode import odeint
from logz.theory._threads import single_threaded
from logz.theory.processes import ForwardProcess, check_horizon

Score = Callable[[Tensor, Tensor], Tensor]
"""score(x: Tensor[B, d], s: 0-dim tensor, forward time) -> Tensor[B, d]."""

ORDERS: dict[str, int] = {"exp": 1, **_RK_ORDERS}
METHODS: tuple[str, ...] = tuple(ORDERS)


def check_steps(K) -> int:
    """K as an int, or ValueError unless an integer >= 1."""
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"number of steps K must be an integer >= 1, got {K}")
    return int(K)


def steps_from(T: float, K=None, h=None) -> tuple[int, float]:
    """(K, h) from exactly one of K (steps) or h (step size, must divide T)."""
    T = check_horizon(T)
    if (K is None) == (h is None):
        raise ValueError("give exactly one of K (number of steps) or h (step size)")
    if K is not None:
        K = check_steps(K)
        return K, T / K
    h = float(h)
    if not h > 0:
        raise ValueError(f"step size h must be > 0, got {h}")
    K = round(T / h)
    if K < 1 or abs(K * h - T) > 1e-9 * T:
        raise ValueError(f"step size h = {h} must divide T = {T} (T/h = {T / h:.6g} is not an integer)")
    return K, T / K


def ei_coefficients(process: ForwardProcess, T: float, K: int) -> tuple[Tensor, Tensor]:
    """(phi, psi): Tensor[K] each, float64, for the uniform grid t_k = k T / K."""
    t = uniform_grid(T, check_steps(K), dtype=torch.float64)
    s = T - t
    return process.phi(s[1:], s[:-1]), process.psi(s[1:], s[:-1])


@single_threaded
def solve_pf_ode(score: Score, process: ForwardProcess, x0: Tensor, T: float, K: int,
                 method: str = "exp", keep_path: bool = False) -> Tensor:
    """Run the PF-ODE sampler with K uniform steps from y_0 = x0 at t = 0 to t = T.

    Args:
        score: score(x, s) with s the forward time (0-dim tensor of x's dtype).
        x0: Tensor[B, d] initial states.
        method: "exp", "euler", "heun", "midpoint" or "rk4".
        keep_path: return Tensor[K+1, B, d] (all grid states) instead of Tensor[B, d].
    """
    if method not in ORDERS:
        raise ValueError(f"unknown PF-ODE method {method!r}; choose one of {list(METHODS)}")
    T, K = check_horizon(T), check_steps(K)
    grid = uniform_grid(T, K, dtype=x0.dtype)
    s_grid = T - uniform_grid(T, K, dtype=torch.float64)
    if method == "exp":
        phi, psi = (c.to(x0.dtype) for c in ei_coefficients(process, T, K))
        s_cast = s_grid.to(x0.dtype)
        x, path = x0, [x0]
        for k in range(K):
            x = phi[k] * x + psi[k] * score(x, s_cast[k])
            if keep_path:
                path.append(x)
        return torch.stack(path) if keep_path else x

    def field(x: Tensor, t: Tensor) -> Tensor:
        s = T - t.double()
        return (process.f(s).to(x.dtype) * x
                + 0.5 * process.g2(s).to(x.dtype) * score(x, s.to(x.dtype)))

    return odeint(field, x0, grid, method, keep_path=keep_path)
