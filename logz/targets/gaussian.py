"""Multivariate Gaussian target with an exact, optionally non-zero, log Z."""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor

from logz.targets._tensors import Device, ParamCache, check_num_samples, finish_samples, rng_device
from logz.targets.base import BaseTarget, check_input

ArrayLike = Union[Tensor, float, list]


def _as_cov(cov: ArrayLike, dim: int) -> Tensor:
    """A float, a [dim] vector of variances or a [dim, dim] matrix -> Tensor[dim, dim]."""
    c = torch.as_tensor(cov, dtype=torch.float64)
    if c.ndim == 0:
        return c * torch.eye(dim, dtype=torch.float64)
    if c.ndim == 1 and c.shape[0] == dim:
        return torch.diag(c)
    if c.shape == (dim, dim):
        return c
    raise ValueError(f"cov must be a float, a [{dim}] vector or a [{dim}, {dim}] matrix, "
                     f"got shape {tuple(c.shape)}")


class Gaussian(BaseTarget):
    """p(x) = exp(log_Z) · N(x; mean, cov), so Z = exp(log_Z) exactly.

    ``log_prob`` is the normalized Gaussian log-density plus the constant
    ``log_Z`` (default 0), which lets tests exercise estimators on targets with
    a known non-zero log-partition function.

    Args:
        mean: Tensor[dim].
        cov: Tensor[dim, dim] (symmetric positive definite), Tensor[dim]
            (diagonal variances) or a float (isotropic variance).
        log_Z: the exact log normalizing constant of ``exp(log_prob)``.
        name: defaults to ``"gaussian"``.
        init_std: scale hint; defaults to sqrt(max_i (mean_i² + cov_ii)),
            the largest per-coordinate root second moment about the origin.
    """

    has_exact_samples = True

    def __init__(self, mean: ArrayLike, cov: ArrayLike, log_Z: float = 0.0,
                 name: Optional[str] = None, init_std: Optional[float] = None):
        m = torch.as_tensor(mean, dtype=torch.float64)
        if m.ndim != 1:
            raise ValueError(f"mean must be a vector Tensor[dim], got shape {tuple(m.shape)}")
        dim = m.shape[0]
        c = _as_cov(cov, dim)
        if not torch.allclose(c, c.T, rtol=1e-10, atol=1e-12):
            raise ValueError("cov must be symmetric")
        L, info = torch.linalg.cholesky_ex(c)
        if int(info) != 0:
            raise ValueError("cov must be positive definite")
        if init_std is None:
            init_std = float(torch.sqrt((m ** 2 + torch.diagonal(c)).max()))
        super().__init__(dim, log_Z=log_Z, name=name or "gaussian", init_std=init_std)
        log_norm = (-0.5 * dim * math.log(2 * math.pi) - torch.log(torch.diagonal(L)).sum()
                    + float(log_Z))
        self._p = ParamCache(mean=m, cov=c, scale_tril=L, log_norm=log_norm)

    @classmethod
    def isotropic(cls, dim: int, std: float = 1.0, mean: Union[float, ArrayLike] = 0.0,
                  log_Z: float = 0.0, name: Optional[str] = None) -> "Gaussian":
        """N(mean, std² I) in ``dim`` dimensions (``mean`` a float or Tensor[dim])."""
        m = torch.as_tensor(mean, dtype=torch.float64)
        m = m.expand(int(dim)).clone() if m.ndim == 0 else m
        return cls(m, float(std) ** 2, log_Z=log_Z, name=name)

    @property
    def mean(self) -> Tensor:
        """Tensor[dim], float64."""
        return self._p.master["mean"]

    @property
    def cov(self) -> Tensor:
        """Tensor[dim, dim], float64."""
        return self._p.master["cov"]

    def log_prob(self, x: Tensor) -> Tensor:
        """log N(x; mean, cov) + log_Z.  x: Tensor[B, dim] -> Tensor[B]."""
        check_input(self, x)
        p = self._p.like(x)
        diff = (x - p["mean"]).T  # [dim, B]
        z = torch.linalg.solve_triangular(p["scale_tril"], diff, upper=False)
        return -0.5 * (z ** 2).sum(0) + p["log_norm"]

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log p, -cov^-1 (x - mean)) in closed form.  x: Tensor[B, dim] -> (Tensor[B], Tensor[B, dim])."""
        check_input(self, x)
        p = self._p.like(x)
        L = p["scale_tril"]
        z = torch.linalg.solve_triangular(L, (x - p["mean"]).T, upper=False)
        grad = -torch.linalg.solve_triangular(L.T, z, upper=True).T
        return -0.5 * (z ** 2).sum(0) + p["log_norm"], grad

    def sample(self, n: int, generator: Optional[torch.Generator] = None, *,
               dtype: Optional[torch.dtype] = None, device: Device = None) -> Tensor:
        """Exact samples, Tensor[n, dim] (float32 unless ``dtype`` is given)."""
        n = check_num_samples(n)
        p = self._p.get(torch.float64, rng_device(generator))
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=p["mean"].device)
        return finish_samples(p["mean"] + eps @ p["scale_tril"].T, dtype, device)
