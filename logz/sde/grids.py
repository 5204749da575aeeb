"""Time grids 0 = t_0 < t_1 < ... < t_N = T (time runs from the prior to the target)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


def _check(T: float, num_steps: int) -> None:
    if not T > 0:
        raise ValueError(f"time horizon T must be > 0, got {T}")
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}")


def uniform_grid(T: float, num_steps: int, *, dtype: Optional[torch.dtype] = None,
                 device=None) -> Tensor:
    """Evenly spaced grid, Tensor[num_steps + 1] from 0 to T."""
    _check(T, num_steps)
    return torch.linspace(0.0, T, int(num_steps) + 1, dtype=dtype or torch.get_default_dtype(),
                          device=device)


def power_grid(T: float, num_steps: int, power: float = 2.0, *, dense_at: str = "end",
               dtype: Optional[torch.dtype] = None, device=None) -> Tensor:
    """Grid t_k = T (k/N)^p (dense near 0) or T (1 - (1 - k/N)^p) (dense near T).

    Returns Tensor[num_steps + 1]. ``dense_at`` is "start" or "end".
    """
    _check(T, num_steps)
    if power <= 0:
        raise ValueError(f"power must be > 0, got {power}")
    u = torch.linspace(0.0, 1.0, int(num_steps) + 1, dtype=torch.float64)
    if dense_at == "start":
        g = u ** power
    elif dense_at == "end":
        g = 1 - (1 - u) ** power
    else:
        raise ValueError(f"dense_at must be 'start' or 'end', got {dense_at!r}")
    return (T * g).to(dtype=dtype or torch.get_default_dtype(), device=device)


def cosine_grid(T: float, num_steps: int, *, dtype: Optional[torch.dtype] = None,
                device=None) -> Tensor:
    """Grid t_k = T (1 - cos(pi k / 2N)): dense near 0, coarse near T. Tensor[num_steps + 1]."""
    _check(T, num_steps)
    u = torch.linspace(0.0, 1.0, int(num_steps) + 1, dtype=torch.float64)
    g = 1 - torch.cos(0.5 * math.pi * u)
    g[-1] = 1.0
    return (T * g).to(dtype=dtype or torch.get_default_dtype(), device=device)


def check_grid(times: Tensor) -> Tensor:
    """Validate a grid: 1-D, at least 2 points, strictly increasing, finite."""
    if not isinstance(times, Tensor) or times.ndim != 1 or times.numel() < 2:
        raise ValueError(f"time grid must be a 1-D tensor with >= 2 points, got "
                         f"{getattr(times, 'shape', type(times))}")
    if not bool(torch.isfinite(times).all()) or not bool((times[1:] > times[:-1]).all()):
        raise ValueError("time grid must be finite and strictly increasing")
    return times
