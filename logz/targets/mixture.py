"""Gaussian mixtures, with the standard 9-, 25- and 40-mode benchmark builders.

Conventions of the builders (see ``docs`` in each):
- ``gmm9``:  2-D, equal weights, means {-5, 0, 5}², covariance 0.3·I (DGFS "MoG").
- ``gmm25``: 2-D, equal weights, means {-10, -5, 0, 5, 10}², covariance 0.3·I
  (gfn-diffusion "25gmm").
- ``gmm40``: FAB's GMM (lollcat/fab-torch ``fab/target_distributions/gmm.py`` with
  ``experiments/config/gmm.yaml``: n_mixes=40, loc_scaling=40,
  log_var_scaling=1.0, ``torch.manual_seed(0)``), reproduced bit for bit: means
  ``(torch.rand(40, 2) - 0.5) * 2 * 40`` from a CPU generator seeded 0, and per
  coordinate standard deviation softplus(1) ≈ 1.3133 (FAB passes
  ``diag(softplus(log_var))`` as ``scale_tril``, so softplus(1) is a standard
  deviation, not a variance). iDEM (jarridrb/DEM) uses the same target.
  Blessing et al.'s ``GMM40`` (DenisBless/variational_sampling_methods) uses
  std 1.0 and means from ``jax.random.PRNGKey(0)``, which torch cannot
  reproduce; pass ``scale=1.0`` for that variant of the scale.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional, Union

import torch
from torch import Tensor

from logz.targets._tensors import Device, ParamCache, check_num_samples, finish_samples, rng_device
from logz.targets.base import BaseTarget, check_input

ArrayLike = Union[Tensor, float, list]

#: FAB's per-coordinate standard deviation for gmm40: softplus(log_var_scaling=1.0).
FAB_GMM40_STD = math.log1p(math.e)


class GaussianMixture(BaseTarget):
    """p(x) = exp(log_Z) · Σ_k w_k N(x; mean_k, cov_k).

    Args:
        weights: Tensor[K], non-negative, normalized internally.
        means: Tensor[K, dim].
        covs: a float (shared isotropic variance), Tensor[K] (per-component
            isotropic variance), Tensor[K, dim] (diagonal variances) or
            Tensor[K, dim, dim] (full covariances).
        log_Z: exact log normalizing constant of ``exp(log_prob)`` (default 0).
        name: defaults to ``"gmm{K}"``.
        init_std: scale hint; defaults to the largest per-coordinate root
            second moment about the origin, sqrt(max_i Σ_k w_k (μ_ki² + Σ_k,ii)).
    """

    has_exact_samples = True

    def __init__(self, weights: ArrayLike, means: ArrayLike, covs: ArrayLike, log_Z: float = 0.0,
                 name: Optional[str] = None, init_std: Optional[float] = None):
        mu = torch.as_tensor(means, dtype=torch.float64)
        if mu.ndim != 2:
            raise ValueError(f"means must be Tensor[K, dim], got shape {tuple(mu.shape)}")
        K, dim = mu.shape
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (K,) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError(f"weights must be a non-negative Tensor[{K}] with positive sum, "
                             f"got shape {tuple(w.shape)}")
        w = w / w.sum()
        c = torch.as_tensor(covs, dtype=torch.float64)
        self.diagonal = c.ndim <= 2
        if c.ndim == 0 or c.shape == (K,):
            var = (c.reshape(-1, 1) if c.ndim == 1 else c).expand(K, dim).clone()
        elif c.shape == (K, dim):
            var = c
        elif c.shape == (K, dim, dim):
            var = torch.diagonal(c, dim1=-2, dim2=-1)
        else:
            raise ValueError(f"covs must be a float, Tensor[{K}], Tensor[{K}, {dim}] or "
                             f"Tensor[{K}, {dim}, {dim}], got shape {tuple(c.shape)}")
        if bool((var <= 0).any()):
            raise ValueError("mixture variances must be positive")
        if self.diagonal:
            scale = var.sqrt()  # [K, dim]
            log_det_half = torch.log(scale).sum(-1)
        else:
            scale, info = torch.linalg.cholesky_ex(c)  # [K, dim, dim]
            if bool((info != 0).any()):
                raise ValueError("every component covariance must be positive definite")
            log_det_half = torch.log(torch.diagonal(scale, dim1=-2, dim2=-1)).sum(-1)
        if init_std is None:
            init_std = float(torch.sqrt((w[:, None] * (mu ** 2 + var)).sum(0).max()))
        super().__init__(dim, log_Z=log_Z, name=name or f"gmm{K}", init_std=init_std)
        self.num_modes = K
        log_norm = torch.log(w) - 0.5 * dim * math.log(2 * math.pi) - log_det_half  # [K]
        self._p = ParamCache(weights=w, means=mu, scale=scale, log_norm=log_norm,
                             log_Z=float(log_Z))

    @property
    def weights(self) -> Tensor:
        """Tensor[K], float64, summing to 1."""
        return self._p.master["weights"]

    @property
    def means(self) -> Tensor:
        """Tensor[K, dim], float64."""
        return self._p.master["means"]

    @property
    def covs(self) -> Tensor:
        """Tensor[K, dim, dim], float64 (full covariance of every component)."""
        s = self._p.master["scale"]
        return torch.diag_embed(s ** 2) if self.diagonal else s @ s.transpose(-1, -2)

    def weighted_component_log_prob(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; mean_k, cov_k).  x: Tensor[B, dim] -> Tensor[B, K]."""
        check_input(self, x)
        p = self._p.like(x)
        diff = x[:, None, :] - p["means"]  # [B, K, dim]
        if self.diagonal:
            z = diff / p["scale"]
        else:
            z = torch.linalg.solve_triangular(p["scale"], diff.unsqueeze(-1), upper=False).squeeze(-1)
        return -0.5 * (z ** 2).sum(-1) + p["log_norm"]

    def log_prob(self, x: Tensor) -> Tensor:
        """log Σ_k w_k N(x; mean_k, cov_k) + log_Z.  x: Tensor[B, dim] -> Tensor[B]."""
        return torch.logsumexp(self.weighted_component_log_prob(x), dim=-1) + self._p.like(x)["log_Z"]

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log p, grad log p) in closed form: grad = -sum_k r_k(x) cov_k^-1 (x - mean_k), r the
        responsibilities.  x: Tensor[B, dim] -> (Tensor[B], Tensor[B, dim])."""
        check_input(self, x)
        p = self._p.like(x)
        diff = x[:, None, :] - p["means"]  # [B, K, dim]
        scale = p["scale"]
        if self.diagonal:
            z = diff / scale
            prec_diff = z / scale  # cov^-1 (x - mean)
        else:
            z = torch.linalg.solve_triangular(scale, diff.unsqueeze(-1), upper=False)
            prec_diff = torch.linalg.solve_triangular(scale.transpose(-1, -2), z, upper=True).squeeze(-1)
            z = z.squeeze(-1)
        comp = -0.5 * (z ** 2).sum(-1) + p["log_norm"]  # [B, K]
        lp = torch.logsumexp(comp, dim=-1)
        resp = torch.exp(comp - lp[:, None])
        return lp + p["log_Z"], -(resp[..., None] * prec_diff).sum(1)

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior component probabilities.  x: Tensor[B, dim] -> Tensor[B, K]."""
        return torch.softmax(self.weighted_component_log_prob(x), dim=-1)

    def assign_modes(self, x: Tensor) -> Tensor:
        """Index of the most responsible component (max w_k N_k(x)).  Tensor[B, dim] -> LongTensor[B]."""
        with torch.no_grad():
            return self.weighted_component_log_prob(x).argmax(-1)

    def sample_with_modes(self, n: int, generator: Optional[torch.Generator] = None, *,
                          dtype: Optional[torch.dtype] = None,
                          device: Device = None) -> tuple[Tensor, Tensor]:
        """Exact samples and the component each came from: (Tensor[n, dim], LongTensor[n]).

        Components are drawn i.i.d. from Categorical(weights), so mode counts
        are multinomial, not equal per mode.
        """
        n = check_num_samples(n)
        p = self._p.get(torch.float64, rng_device(generator))
        dev = p["means"].device
        if n == 0:
            return finish_samples(torch.empty(0, self.dim, dtype=torch.float64, device=dev), dtype,
                                  device), torch.empty(0, dtype=torch.long, device=dev)
        idx = torch.multinomial(p["weights"], n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=dev)
        if self.diagonal:
            noise = p["scale"][idx] * eps
        else:
            noise = (p["scale"][idx] @ eps.unsqueeze(-1)).squeeze(-1)
        x = p["means"][idx] + noise
        return finish_samples(x, dtype, device), idx.to(device if device is not None else dev)

    def sample(self, n: int, generator: Optional[torch.Generator] = None, *,
               dtype: Optional[torch.dtype] = None, device: Device = None) -> Tensor:
        """Exact samples, Tensor[n, dim] (float32 unless ``dtype`` is given)."""
        return self.sample_with_modes(n, generator, dtype=dtype, device=device)[0]


def grid_mixture(levels: list[float], dim: int = 2, variance: float = 0.3, log_Z: float = 0.0,
                 name: Optional[str] = None, init_std: Optional[float] = None) -> GaussianMixture:
    """Equal-weight mixture with means on the grid ``levels``^dim and covariance variance·I."""
    means = torch.tensor(list(itertools.product(levels, repeat=int(dim))), dtype=torch.float64)
    k = means.shape[0]
    return GaussianMixture(torch.ones(k), means, float(variance), log_Z=log_Z,
                           name=name or f"gmm{k}", init_std=init_std)


def gmm9(variance: float = 0.3, log_Z: float = 0.0, init_std: Optional[float] = None) -> GaussianMixture:
    """9 equal modes at {-5, 0, 5}², covariance 0.3·I, log Z = 0 (DGFS "MoG")."""
    return grid_mixture([-5.0, 0.0, 5.0], 2, variance, log_Z=log_Z, name="gmm9", init_std=init_std)


def gmm25(variance: float = 0.3, log_Z: float = 0.0, init_std: Optional[float] = None) -> GaussianMixture:
    """25 equal modes at {-10, -5, 0, 5, 10}², covariance 0.3·I, log Z = 0 (gfn-diffusion "25gmm")."""
    return grid_mixture([-10.0, -5.0, 0.0, 5.0, 10.0], 2, variance, log_Z=log_Z, name="gmm25",
                        init_std=init_std)


def gmm40(dim: int = 2, num_components: int = 40, loc_scaling: float = 40.0,
          scale: float = FAB_GMM40_STD, seed: int = 0, log_Z: float = 0.0,
          init_std: Optional[float] = None) -> GaussianMixture:
    """FAB's 40-mode mixture: means uniform in [-loc_scaling, loc_scaling]^dim, std ``scale``.

    Means are ``(torch.rand(K, dim) - 0.5) * 2 * loc_scaling`` computed in
    float32 from a CPU generator seeded ``seed`` (identical to FAB's
    ``torch.manual_seed(0)`` then ``torch.rand``); every component is
    N(mean_k, scale² I) with equal weights. Default ``scale`` = softplus(1)
    ≈ 1.3133, FAB's; ``scale=1.0`` gives Blessing et al.'s unit std.
    """
    g = torch.Generator().manual_seed(int(seed))
    means = (torch.rand((int(num_components), int(dim)), generator=g) - 0.5) * 2 * loc_scaling
    return GaussianMixture(torch.ones(int(num_components)), means.double(), float(scale) ** 2,
                           log_Z=log_Z, name="gmm40" if num_components == 40 else f"gmm{num_components}",
                           init_std=init_std)
