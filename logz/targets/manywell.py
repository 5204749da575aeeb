"""Many-Well: dim/2 independent copies of a 2-D asymmetric double well.

Per pair (x1, x2) = (x[2j], x[2j+1]):
    log p(x1, x2) = -x1⁴ + 6 x1² + ½ x1 - ½ x2².
The x1 factor has wells near ±1.7; the +½ x1 tilt makes the right well
heavier (probability ≈ 0.8443, computed by quadrature, see ``prob_right_well``).

Normalizer (computed once, by scipy quadrature, cached):
    Z_x1 = ∫ exp(-x1⁴ + 6 x1² + ½ x1) dx1 = 11784.50927...,
    log Z = (dim/2) (log Z_x1 + ½ log 2π)  (= 164.6957 for dim = 32).

Exact samples: x2 ~ N(0, 1); x1 by rejection from the two-Gaussian proposal
of FAB (lollcat/fab-torch ``double_well.py``): 0.2·N(-1.7, 0.5²) + 0.8·N(1.7, 0.5²).
FAB uses the envelope constant M = 3 Z_x1; here M is the numerically
computed supremum of p̃/q (≈ 2.591 Z_x1, so ≈ 38.6% of proposals are
accepted), found on a dense grid and refined with a bounded 1-D optimizer,
plus a relative margin of 1e-6.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
import torch
from scipy import integrate, optimize
from torch import Tensor

from logz._random import log_uniform
from logz.targets._tensors import Device, check_num_samples, finish_samples, rng_device
from logz.targets.base import BaseTarget, check_input

#: Proposal for rejection sampling of x1: (weights, means, std).
PROPOSAL_WEIGHTS = (0.2, 0.8)
PROPOSAL_MEANS = (-1.7, 1.7)
PROPOSAL_STD = 0.5
_QUAD_LIMITS = (-10.0, 10.0)  # exp(-x⁴ + ...) < 1e-4000 of its peak outside; the wells sit at ±1.7


def x1_log_density(x):
    """Unnormalized log-density of one x1 coordinate (numpy array or Tensor, elementwise)."""
    return -x ** 4 + 6 * x ** 2 + 0.5 * x


def _np_density(x: float) -> float:
    return math.exp(x1_log_density(x))


@lru_cache(maxsize=None)
def x1_normalizer() -> float:
    """Z_x1 = ∫ exp(-x⁴ + 6x² + ½x) dx by adaptive quadrature on [-10, 10] (≈ 11784.50927)."""
    z, _ = integrate.quad(_np_density, *_QUAD_LIMITS, points=[-1.7, 0.0, 1.7],
                          epsabs=0.0, epsrel=1e-13, limit=200)
    return float(z)


@lru_cache(maxsize=None)
def prob_right_well() -> float:
    """P(x1 > 0) for one pair, by quadrature (≈ 0.8443)."""
    z_right, _ = integrate.quad(_np_density, 0.0, _QUAD_LIMITS[1], points=[1.7],
                                epsabs=0.0, epsrel=1e-13, limit=200)
    return float(z_right / x1_normalizer())


def log_proposal(x):
    """Log-density of the rejection proposal (numpy array or Tensor, elementwise)."""
    comps = [math.log(w) - 0.5 * ((x - m) / PROPOSAL_STD) ** 2
             - math.log(PROPOSAL_STD) - 0.5 * math.log(2 * math.pi)
             for w, m in zip(PROPOSAL_WEIGHTS, PROPOSAL_MEANS)]
    return torch.logaddexp(*comps) if isinstance(x, Tensor) else np.logaddexp(*comps)


@lru_cache(maxsize=None)
def log_envelope() -> float:
    """log M with M ≥ sup_x p̃(x1)/q(x1): grid search on [-10, 10], refined, plus a 1e-6 margin."""
    def neg_log_ratio(x):
        return -(x1_log_density(x) - log_proposal(x))

    grid = np.linspace(*_QUAD_LIMITS, 400_001)  # spacing 5e-5
    vals = -neg_log_ratio(grid)
    i = int(np.argmax(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(neg_log_ratio, bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-12})
    best = max(float(vals[i]), float(-res.fun))
    return best + 1e-6


def sample_x1(n: int, generator: Optional[torch.Generator] = None,
              device: Device = None) -> Tensor:
    """Exact samples of the x1 marginal by vectorized rejection sampling, Tensor[n] (float64).

    Each round proposes enough points to finish in one round on average
    (1.1 × remaining / acceptance rate + 16) and loops only until n are accepted.
    """
    n = check_num_samples(n)
    dev = rng_device(generator) if device is None else torch.device(device)
    log_m = log_envelope()
    accept_rate = math.exp(math.log(x1_normalizer()) - log_m)
    w_right = PROPOSAL_WEIGHTS[1]
    out: list[Tensor] = []
    remaining = n
    while remaining > 0:
        m = int(1.1 * remaining / accept_rate) + 16
        right = torch.rand(m, generator=generator, dtype=torch.float64, device=dev) < w_right
        mean = torch.where(right, PROPOSAL_MEANS[1], PROPOSAL_MEANS[0])
        x = mean + PROPOSAL_STD * torch.randn(m, generator=generator, dtype=torch.float64, device=dev)
        log_u = log_uniform(torch.rand(m, generator=generator, dtype=torch.float64, device=dev))
        acc = x[log_u < x1_log_density(x) - log_proposal(x) - log_m][:remaining]
        out.append(acc)
        remaining -= acc.numel()
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64, device=dev)


class ManyWell(BaseTarget):
    """dim/2 independent double wells (FAB / DGFS "many_well", dim = 32 by default).

    Args:
        dim: even number of coordinates; pairs are (x[0], x[1]), (x[2], x[3]), ...
        init_std: scale hint (default 1).

    Attributes:
        log_Z: exact, (dim/2)(log Z_x1 + ½ log 2π).
        prob_right_well: P(x[2j] > 0) per pair (≈ 0.8443).
        num_modes: 2^(dim/2) (one per choice of well in every pair).
    """

    has_exact_samples = True

    def __init__(self, dim: int = 32, name: Optional[str] = None, init_std: float = 1.0):
        if int(dim) != dim or dim < 2 or int(dim) % 2:
            raise ValueError(f"ManyWell dim must be a positive even integer, got {dim!r}")
        self.num_pairs = int(dim) // 2
        log_z = self.num_pairs * (math.log(x1_normalizer()) + 0.5 * math.log(2 * math.pi))
        super().__init__(int(dim), log_Z=log_z, name=name or "manywell", init_std=init_std)
        self.prob_right_well = prob_right_well()
        self.num_modes = 2 ** self.num_pairs

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density.  x: Tensor[B, dim] -> Tensor[B]."""
        check_input(self, x)
        x1, x2 = x[:, 0::2], x[:, 1::2]
        return (x1_log_density(x1) - 0.5 * x2 ** 2).sum(-1)

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log p, grad log p) in closed form.  x: Tensor[B, dim] -> (Tensor[B], Tensor[B, dim])."""
        check_input(self, x)
        x1, x2 = x[:, 0::2], x[:, 1::2]
        lp = (x1_log_density(x1) - 0.5 * x2 ** 2).sum(-1)
        g1 = -4 * x1 ** 3 + 12 * x1 + 0.5
        return lp, torch.stack([g1, -x2], dim=-1).reshape(x.shape)

    def sample(self, n: int, generator: Optional[torch.Generator] = None, *,
               dtype: Optional[torch.dtype] = None, device: Device = None) -> Tensor:
        """Exact samples, Tensor[n, dim] (float32 unless ``dtype`` is given)."""
        n = check_num_samples(n)
        x1 = sample_x1(n * self.num_pairs, generator).reshape(n, self.num_pairs)
        x2 = torch.randn(n, self.num_pairs, generator=generator, dtype=torch.float64,
                         device=rng_device(generator))
        return finish_samples(torch.stack([x1, x2], dim=-1).reshape(n, self.dim), dtype, device)

    def well_signs(self, x: Tensor) -> Tensor:
        """Which well each pair is in: True = right (x1 > 0).  Tensor[B, dim] -> BoolTensor[B, dim/2]."""
        check_input(self, x)
        return x[:, 0::2] > 0

    def assign_modes(self, x: Tensor) -> Tensor:
        """Mode index Σ_j 2^j [x1_j > 0].  Tensor[B, dim] -> LongTensor[B] (needs dim/2 ≤ 62)."""
        if self.num_pairs > 62:
            raise ValueError(f"{self.num_pairs} pairs do not fit a 64-bit mode index; use well_signs")
        bits = self.well_signs(x).long()
        powers = 2 ** torch.arange(self.num_pairs, device=x.device)
        return (bits * powers).sum(-1)

    def log_mode_prob(self, modes: Tensor) -> Tensor:
        """Exact log-probability of each mode index.  LongTensor[M] -> Tensor[M] (float64)."""
        powers = 2 ** torch.arange(self.num_pairs, device=modes.device)
        k = ((modes[:, None] & powers) != 0).sum(-1).double()
        p = self.prob_right_well
        return k * math.log(p) + (self.num_pairs - k) * math.log1p(-p)
