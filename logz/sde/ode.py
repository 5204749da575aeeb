"""Fixed-grid ODE solvers dx/dt = func(x, t): Euler (order 1), Heun (2), RK4 (4).

``func(x, t)`` takes x: Tensor[B, d] (any shape, in fact) and t: a 0-dim tensor,
and returns dx/dt with the shape of x. One solver loop; the method only sets the
Butcher tableau of an explicit Runge–Kutta step.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from logz.sde.grids import check_grid

VectorField = Callable[[Tensor, Tensor], Tensor]

# Explicit Runge–Kutta tableaus: (c, A, b), stage i evaluates at t + c_i h and
# x + h sum_j A_ij k_j.
_TABLEAUS = {
    "euler": ((0.0,), ((),), (1.0,)),
    "heun": ((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    "midpoint": ((0.0, 0.5), ((), (0.5,)), (0.0, 1.0)),
    "rk4": ((0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
            (1 / 6, 1 / 3, 1 / 3, 1 / 6)),
}
ORDERS = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4}


def methods() -> list[str]:
    return sorted(_TABLEAUS)


def rk_step(func: VectorField, x: Tensor, t: Tensor, h: Tensor, method: str = "rk4") -> Tensor:
    """One explicit Runge–Kutta step from (x, t) with step h. Returns x at t + h."""
    try:
        c, A, b = _TABLEAUS[method]
    except KeyError:
        raise ValueError(f"unknown ODE method {method!r}; choose one of {methods()}") from None
    ks: list[Tensor] = []
    for ci, Ai in zip(c, A):
        xi = x
        for aij, kj in zip(Ai, ks):
            if aij != 0.0:
                xi = xi + (h * aij) * kj
        ks.append(func(xi, t + ci * h))
    out = x
    for bi, ki in zip(b, ks):
        if bi != 0.0:
            out = out + (h * bi) * ki
    return out


def odeint(func: VectorField, x0: Tensor, times: Tensor, method: str = "rk4",
           keep_path: bool = False) -> Tensor:
    """Integrate dx/dt = func(x, t) over the grid ``times``.

    Args:
        x0: initial state (Tensor[B, d] or any shape func accepts).
        times: Tensor[N+1], strictly increasing (integrate backward in time by
            writing func in reversed time).
        method: "euler", "heun", "midpoint" or "rk4".
        keep_path: return all states Tensor[N+1, *x0.shape] instead of the final one.
    Returns:
        Final state with the shape of x0, or the path.
    """
    if method not in _TABLEAUS:
        raise ValueError(f"unknown ODE method {method!r}; choose one of {methods()}")
    times = check_grid(times.to(device=x0.device, dtype=x0.dtype if x0.is_floating_point() else None))
    x = x0
    path: Optional[list[Tensor]] = [x0] if keep_path else None
    for k in range(times.numel() - 1):
        x = rk_step(func, x, times[k], times[k + 1] - times[k], method)
        if keep_path:
            path.append(x)
    return torch.stack(path) if keep_path else x
