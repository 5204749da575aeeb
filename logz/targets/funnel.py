"""Neal's funnel: x0 ~ N(0, scale²), x_i | x0 ~ N(0, exp(x0)) for i = 1..dim-1."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from logz.targets._tensors import Device, check_num_samples, finish_samples, rng_device
from logz.targets.base import BaseTarget, check_input

_LOG_2PI = math.log(2 * math.pi)


class Funnel(BaseTarget):
    """Neal's funnel in ``dim`` dimensions (DGFS / gfn-diffusion "hard_funnel", Blessing "funnel").

    log p(x) = log N(x0; 0, scale²) + Σ_{i≥1} log N(x_i; 0, exp(x0)) + log_Z,
    normalized, so Z = exp(log_Z) exactly (log_Z = 0 by default).

    Args:
        dim: total dimension (>= 2); the default 10 is the standard benchmark.
        scale: standard deviation of x0 (3 in the benchmark).
        log_Z: constant added to ``log_prob`` (its exact log normalizer).
        init_std: scale hint, default ``scale`` (the x0 spread; the neck and
            mouth of the funnel cannot both be covered by one isotropic scale).
    """

    has_exact_samples = True

    def __init__(self, dim: int = 10, scale: float = 3.0, log_Z: float = 0.0,
                 name: Optional[str] = None, init_std: Optional[float] = None):
        if int(dim) != dim or dim < 2:
            raise ValueError(f"funnel dim must be an integer >= 2, got {dim!r}")
        if not scale > 0:
            raise ValueError(f"funnel scale must be > 0, got {scale!r}")
        super().__init__(int(dim), log_Z=log_Z, name=name or "funnel",
                         init_std=float(scale) if init_std is None else init_std)
        self.scale = float(scale)
        # Constant part: -log(scale) - ½ log 2π for x0, -½ log 2π for each of the dim-1 others.
        self._const = -math.log(self.scale) - 0.5 * self.dim * _LOG_2PI + float(log_Z)

    def log_prob(self, x: Tensor) -> Tensor:
        """x: Tensor[B, dim] -> Tensor[B]."""
        check_input(self, x)
        x0, rest = x[:, 0], x[:, 1:]
        n_rest = self.dim - 1
        lp0 = -0.5 * (x0 / self.scale) ** 2
        lp_rest = -0.5 * (rest ** 2).sum(-1) * torch.exp(-x0) - 0.5 * n_rest * x0
        return lp0 + lp_rest + self._const

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log p, grad log p) in closed form.  x: Tensor[B, dim] -> (Tensor[B], Tensor[B, dim])."""
        check_input(self, x)
        x0, rest = x[:, :1], x[:, 1:]
        inv_var = torch.exp(-x0)  # 1 / exp(x0), the variance of the other coordinates
        half_sq = 0.5 * (rest ** 2).sum(-1, keepdim=True)
        n_rest = self.dim - 1
        lp = -0.5 * (x0 / self.scale) ** 2 - half_sq * inv_var - 0.5 * n_rest * x0
        g0 = -x0 / self.scale ** 2 + half_sq * inv_var - 0.5 * n_rest
        return lp.squeeze(-1) + self._const, torch.cat([g0, -rest * inv_var], dim=-1)

    def sample(self, n: int, generator: Optional[torch.Generator] = None, *,
               dtype: Optional[torch.dtype] = None, device: Device = None) -> Tensor:
        """Exact samples, Tensor[n, dim] (float32 unless ``dtype`` is given)."""
        n = check_num_samples(n)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64,
                          device=rng_device(generator))
        x0 = self.scale * eps[:, :1]
        x = torch.cat([x0, torch.exp(0.5 * x0) * eps[:, 1:]], dim=1)
        return finish_samples(x, dtype, device)

    # --- x0 bands: the funnel's "modes" for mode_coverage ------------------------------------
    #: band edges of x0 in units of ``scale``: the neck (x0 < -2 scale, where the other
    #: coordinates have std < exp(-scale) ~ 0.05 at scale 3) and the mouth (x0 > 2 scale) are
    #: where path samplers trained by the reverse KL lose mass, which biases log Z low
    band_edges = (-2.0, -1.0, 0.0, 1.0, 2.0)

    @property
    def weights(self) -> Tensor:
        """Exact probability of each x0 band (``band_edges``), Tensor[len(band_edges) + 1], float64."""
        z = torch.tensor((-math.inf, *self.band_edges, math.inf), dtype=torch.float64)
        return torch.special.ndtr(z).diff()

    def assign_modes(self, x: Tensor) -> Tensor:
        """Index of the x0 band of each sample.  x: Tensor[B, dim] -> LongTensor[B]."""
        check_input(self, x)
        edges = torch.tensor(self.band_edges, dtype=x.dtype, device=x.device) * self.scale
        return torch.bucketize(x[:, 0].contiguous(), edges, right=True)

    def mode_labels(self) -> list[str]:
        """One label per x0 band, for tables and plots (e.g. ``"x0 < -6"``, ``"[-6, -3)"``)."""
        e = [f"{b * self.scale:g}" for b in self.band_edges]
        return [f"x0 < {e[0]}", *(f"[{a}, {b})" for a, b in zip(e, e[1:])), f"x0 >= {e[-1]}"]
