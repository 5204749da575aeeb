"""Small time-conditioned networks for velocities and controls (private to finetune).

``VelocityMLP(x, t)``: x Tensor[B, d], t a 0-dim tensor or Tensor[B] -> Tensor[B, d].
``ResidualVelocity``: v_base + net, with net zero-initialized so fine-tuning starts
exactly at the base model (used when the base has no trainable parameters, e.g.
the closed-form velocities).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn


class TimeFeatures(nn.Module):
    """t -> [t, sin(2 pi k t), cos(2 pi k t)] for k = 1..num_freqs, Tensor[B, 1 + 2 num_freqs]."""

    def __init__(self, num_freqs: int = 4):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.arange(1, num_freqs + 1, dtype=torch.float32))
        self.out_dim = 1 + 2 * num_freqs

    def forward(self, t: Tensor, batch: int) -> Tensor:
        t = torch.as_tensor(t, dtype=self.freqs.dtype, device=self.freqs.device).reshape(-1, 1)
        t = t.expand(batch, 1)
        ang = t * self.freqs
        return torch.cat([t, torch.sin(ang), torch.cos(ang)], dim=-1)


class VelocityMLP(nn.Module):
    """MLP v(x, t) with SiLU activations and Fourier time features.

    Args:
        dim: data dimension d.
        hidden: width; depth: number of hidden layers.
        zero_init: zero the last layer (output 0 at initialization).
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, num_freqs: int = 4,
                 zero_init: bool = False):
        super().__init__()
        self.dim = int(dim)
        self.time = TimeFeatures(num_freqs)
        layers: list[nn.Module] = []
        width = self.dim + self.time.out_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, self.dim)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        feats = self.time(t.to(x.dtype) if isinstance(t, Tensor) else t, x.shape[0]).to(x.dtype)
        return self.out(self.body(torch.cat([x, feats], dim=-1)))


class ResidualVelocity(nn.Module):
    """v(x, t) = base(x, t) + net(x, t); the base is frozen (no gradient to its parameters)."""

    def __init__(self, base: Callable[[Tensor, Tensor], Tensor], net: nn.Module):
        super().__init__()
        self.net = net
        # keep the base out of .parameters() so optimizers never touch it
        object.__setattr__(self, "_base", base)

    @property
    def base(self):
        return self._base

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self._base(x, t) + self.net(x, t)
