"""Backward (adjoint) integration along stored paths, one vector-Jacobian product per step.

For a path X_0, ..., X_N of dX = b(X, t) dt + ... on a grid t_0 < ... < t_N, the
adjoint of the Euler scheme X_{k+1} = X_k + h_k b(X_k, t_k) + noise is

    a_N given,    a_k = a_{k+1} + h_k [ a_{k+1}^T grad_x b(X_k, t_k) + grad_x c(X_k, t_k) ],

with an optional running cost c(x, t) -> Tensor[B]. Every term is one
vector-Jacobian product (``torch.autograd.grad`` of ``(a * b).sum() + c.sum()``),
never a Jacobian matrix, so a step costs about one backward pass of the drift and
O(B d) memory. Using grad b at (X_k, t_k), the point where Euler evaluated the
drift, makes ``a_k`` the exact gradient of the discretized terminal cost with
respect to X_k (discretize-then-optimize) and never evaluates b at t_N, where
memoryless drifts of flow models are singular.

- ``lean_adjoint``: c = 0 and b the *base* drift (Adjoint Matching, arXiv 2409.08861).
- ``adjoint_backward`` with the controlled drift and c = 1/2 |u|^2: the full
  ("continuous") adjoint of stochastic optimal control.
- ``constant_lean_adjoint``: a zero-drift base (Adjoint Sampling) has grad b = 0,
  so the lean adjoint is a_N at every time.
- ``brownian_bridge``: X_t | X_0 = 0, X_1 for dX = sigma(t) dW, used by reciprocal
  (replay-buffer) training in Adjoint Sampling.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from logz.sde.grids import check_grid

Drift = Callable[[Tensor, Tensor], Tensor]
RunningCost = Callable[[Tensor, Tensor], Tensor]


def _check_states(states: Tensor, times: Tensor, terminal: Tensor) -> None:
    if states.ndim != 3 or states.shape[0] != times.numel():
        raise ValueError(f"states must be Tensor[N+1, B, d] with N+1 = {times.numel()} grid points, "
                         f"got {tuple(states.shape)}")
    if terminal.shape != states.shape[1:]:
        raise ValueError(f"terminal adjoint must have shape {tuple(states.shape[1:])} (= [B, d]), "
                         f"got {tuple(terminal.shape)}")


def adjoint_backward(drift: Drift, states: Tensor, times: Tensor, terminal: Tensor,
                     running_cost: Optional[RunningCost] = None, *,
                     skip_first: bool = False) -> Tensor:
    """Integrate the adjoint backward along a stored path.

    Args:
        drift: b(x, t) -> Tensor[B, d]; t is a 0-dim tensor. Must be differentiable in x.
        states: Tensor[N+1, B, d], the path (no graph needed; it is detached here).
        times: Tensor[N+1], the grid the path was simulated on.
        terminal: Tensor[B, d], a_N (e.g. grad of the terminal cost at X_N).
        running_cost: optional c(x, t) -> Tensor[B] whose x-gradient enters each step.
        skip_first: leave a_0 = a_1 (do not evaluate b at t_0), for drifts that are
            singular at t_0 when a_0 is not needed.
    Returns:
        Tensor[N+1, B, d], detached: a_0, ..., a_N.
    """
    times = check_grid(times.to(device=states.device, dtype=states.dtype))
    _check_states(states, times, terminal)
    n = times.numel() - 1
    out = [None] * (n + 1)
    a = terminal.detach()
    out[n] = a
    for k in range(n - 1, -1, -1):
        if k == 0 and skip_first:
            out[0] = a
            break
        h = times[k + 1] - times[k]
        with torch.enable_grad():
            x = states[k].detach().requires_grad_(True)
            scalar = (a * drift(x, times[k])).sum()
            if running_cost is not None:
                scalar = scalar + running_cost(x, times[k]).sum()
            (vjp,) = torch.autograd.grad(scalar, x)
        a = a + h * vjp
        if not bool(torch.isfinite(a).all()):
            raise FloatingPointError(f"adjoint became non-finite at step {k} (t = {float(times[k]):.4g}); "
                                     f"the drift's Jacobian is too large there (check the noise schedule "
                                     f"near t = 0 or use a finer grid)")
        out[k] = a
    return torch.stack(out)


def lean_adjoint(base_drift: Drift, states: Tensor, times: Tensor, terminal: Tensor, *,
                 skip_first: bool = False) -> Tensor:
    """Lean adjoint of Adjoint Matching: a_k = a_{k+1} + h_k a_{k+1}^T grad_x b(X_k, t_k).

    ``terminal`` is a_N = -grad r(X_N) for a reward r (or grad g for a terminal cost g).
    Shapes as in ``adjoint_backward``; returns Tensor[N+1, B, d].
    """
    return adjoint_backward(base_drift, states, times, terminal, skip_first=skip_first)


def constant_lean_adjoint(terminal: Tensor, num_times: int) -> Tensor:
    """Lean adjoint of a zero-drift base: a_k = a_N for all k. Returns Tensor[num_times, B, d]
    (an expanded view, no copy)."""
    return terminal.detach().unsqueeze(0).expand(int(num_times), *terminal.shape)


def brownian_bridge(x1: Tensor, var_t: Tensor, var_1: Tensor, *,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """Sample X_t | X_0 = 0, X_1 = x1 for dX = sigma(t) dW (variance nu(t) = int_0^t sigma^2).

    X_t | X_1 ~ N((nu_t / nu_1) x1, nu_t (nu_1 - nu_t) / nu_1 I).

    Args:
        x1: Tensor[B, d]; var_t: Tensor[B] = nu(t); var_1: scalar tensor nu(1).
    Returns:
        Tensor[B, d].
    """
    if var_t.shape != x1.shape[:1]:
        raise ValueError(f"var_t must be Tensor[B] with B = {x1.shape[0]}, got {tuple(var_t.shape)}")
    ratio = (var_t / var_1)[:, None]
    std = (var_t * (var_1 - var_t) / var_1).clamp_min(0).sqrt()[:, None]
    eps = torch.randn(x1.shape, generator=generator, dtype=x1.dtype, device=x1.device)
    return ratio * x1 + std * eps
