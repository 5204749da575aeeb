"""Fixed-grid ODE solvers dx/dt = func(x, t), with their cost in function evaluations (NFE).

``func(x, t)`` takes x: Tensor[B, d] (any shape, in fact) and t: a 0-dim tensor, and returns
dx/dt with the shape of x. One solver loop ``odeint``; the method sets the step:

- explicit Runge–Kutta steps from a Butcher tableau: "euler" (order 1), "heun" (2),
  "midpoint" (2), "rk4" (4); s evaluations per step.
- "rf2": RF-Solver-2 (Wang et al., "Taming Rectified Flow for Inversion and Editing",
  arXiv 2411.04746): the second-order Taylor step x + h v + h^2/2 dv/dt with the total time
  derivative dv/dt from the finite difference (v(x + h/2 v, t + h/2) - v(x, t)) / (h/2), as in
  the authors' sampler. Written out, x + h v + h (v_mid - v) = x + h v_mid: the step is the
  explicit midpoint rule in exact arithmetic (the tests check agreement to rounding). 2 NFE/step.
- "heun_pc": Heun with FlowTurbo's pseudo-corrector (Zhao et al., arXiv 2409.18128): the
  corrector's evaluation v(x + h v_k, t + h) at the predicted point is reused as the next
  step's first evaluation instead of re-evaluating at the corrected point. The reuse error
  is O(h^2) in v, O(h^3) per step, so the method stays second order at 1 NFE per step
  (+1 for the first). A two-step method: the carried velocity is the solver's state.

``nfe(method, num_steps)`` gives the cost; ``CountingField`` wraps a field and counts calls.
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
ORDERS = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4, "rf2": 2, "heun_pc": 2}
# evaluations per step, and extra evaluations once per solve
_COST = {"euler": (1, 0), "heun": (2, 0), "midpoint": (2, 0), "rk4": (4, 0), "rf2": (2, 0),
         "heun_pc": (1, 1)}


def methods() -> list[str]:
    return sorted(ORDERS)


def _check_method(method: str) -> None:
    if method not in ORDERS:
        raise ValueError(f"unknown ODE method {method!r}; choose one of {methods()}")


def nfe(method: str, num_steps: int) -> int:
    """Number of evaluations of ``func`` that ``odeint`` makes with ``num_steps`` steps."""
    _check_method(method)
    per_step, once = _COST[method]
    return per_step * int(num_steps) + once


class CountingField:
    """``func`` that counts its calls in ``calls`` (the measured NFE of a solve)."""

    def __init__(self, func: VectorField):
        self.func, self.calls = func, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return self.func(x, t)


def rk_step(func: VectorField, x: Tensor, t: Tensor, h: Tensor, method: str = "rk4") -> Tensor:
    """One explicit Runge–Kutta step from (x, t) with step h. Returns x at t + h."""
    try:
        c, A, b = _TABLEAUS[method]
    except KeyError:
        raise ValueError(f"unknown Runge–Kutta method {method!r}; choose one of {sorted(_TABLEAUS)}") \
            from None
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


def rf_solver_step(func: VectorField, x: Tensor, t: Tensor, h: Tensor) -> Tensor:
    """RF-Solver-2 step (arXiv 2411.04746; the Taylor expansion to second order).

    v = func(x, t); dv/dt ~ (func(x + h/2 v, t + h/2) - v) / (h/2); x + h v + h^2/2 dv/dt.
    """
    v = func(x, t)
    half = 0.5 * h
    dv_dt = (func(x + half * v, t + half) - v) / half
    return x + h * v + (0.5 * h * h) * dv_dt


def pseudo_corrector_step(func: VectorField, x: Tensor, t: Tensor, h: Tensor,
                          v: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Heun step with FlowTurbo's pseudo-corrector (arXiv 2409.18128).

    ``v``: the velocity carried from the previous step (evaluated at the previous predicted
    point), or None on the first step. Returns (x at t + h, the velocity to carry).
    """
    if v is None:
        v = func(x, t)
    v_next = func(x + h * v, t + h)
    return x + (0.5 * h) * (v + v_next), v_next


def odeint(func: VectorField, x0: Tensor, times: Tensor, method: str = "rk4",
           keep_path: bool = False) -> Tensor:
    """Integrate dx/dt = func(x, t) over the grid ``times``.

    Args:
        x0: initial state (Tensor[B, d] or any shape func accepts).
        times: Tensor[N+1], strictly increasing (integrate backward in time by
            writing func in reversed time).
        method: one of ``methods()``: "euler", "heun", "midpoint", "rk4", "rf2", "heun_pc".
        keep_path: return all states Tensor[N+1, *x0.shape] instead of the final one.
    Returns:
        Final state with the shape of x0, or the path. ``nfe(method, N)`` evaluations.
    """
    _check_method(method)
    times = check_grid(times.to(device=x0.device, dtype=x0.dtype if x0.is_floating_point() else None))
    x = x0
    path: Optional[list[Tensor]] = [x0] if keep_path else None
    carried: Optional[Tensor] = None
    for k in range(times.numel() - 1):
        t, h = times[k], times[k + 1] - times[k]
        if method == "rf2":
            x = rf_solver_step(func, x, t, h)
        elif method == "heun_pc":
            x, carried = pseudo_corrector_step(func, x, t, h, carried)
        else:
            x = rk_step(func, x, t, h, method)
        if keep_path:
            path.append(x)
    return torch.stack(path) if keep_path else x
