"""Uniform draws for Metropolis tests, shared by the samplers' kernels and the targets'
reference samplers."""

from __future__ import annotations

import torch
from torch import Tensor


def log_uniform(u: Tensor) -> Tensor:
    """log u of uniform draws u from ``torch.rand`` (in [0, 1), multiples of eps / 2), for
    Metropolis tests ``log_uniform(u) < log_alpha``. A draw of exactly 0 is read as the grid's
    first step eps / 2: its log -inf would accept any proposal, however improbable, and in
    float32 (one draw in 2^24) that happens several times in one SMC run of 2000 particles."""
    return torch.log(u.clamp_min(torch.finfo(u.dtype).eps / 2))


__all__ = ["log_uniform"]
