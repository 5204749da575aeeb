"""Wasserstein-2 distances: closed form between Gaussians, exact OT between samples.

Between Gaussians N(m1, S1), N(m2, S2):

    W2^2 = |m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S2^1/2 S1 S2^1/2)^1/2.

Written this way the covariance part is a difference of nearly equal numbers, so it
loses half the digits (W2 ~ 1e-8 is the float64 floor), too coarse to measure an RK4
error. We use the equivalent Procrustes form instead: with any factors S_i = X_i X_i^T,

    tr S1 + tr S2 - 2 tr(...)^1/2 = min over orthogonal U of |X1 - X2 U|_F^2,

attained at the polar factor U = V W^T of X2^T X1 = V Sigma W^T (Bhatia, Jain & Lim 2019,
"On the Bures-Wasserstein distance"). |X1 - X2 U|_F^2 is a sum of squares: no cancellation.
Diagonal covariances take the fast path sum (sqrt(a) - sqrt(b))^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor


def sqrtm_psd(S: Tensor) -> Tensor:
    """Symmetric square root of a PSD matrix Tensor[d, d] (eigenvalues clamped at 0)."""
    evals, evecs = torch.linalg.eigh(0.5 * (S + S.transpose(-1, -2)))
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.transpose(-1, -2)


def _bures_factors(X1: Tensor, X2: Tensor) -> Tensor:
    """min_U |X1 - X2 U|_F^2 over orthogonal U, for factors X_i: Tensor[d, r_i] (padded to r)."""
    r = max(X1.shape[-1], X2.shape[-1])
    X1 = torch.nn.functional.pad(X1, (0, r - X1.shape[-1]))
    X2 = torch.nn.functional.pad(X2, (0, r - X2.shape[-1]))
    V, _, Wh = torch.linalg.svd(X2.transpose(-1, -2) @ X1)
    return (X1 - X2 @ (V @ Wh)).pow(2).sum()


def gaussian_w2(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """W2(N(mean1, cov1), N(mean2, cov2)), a 0-dim tensor.

    Args:
        mean1, mean2: Tensor[d].
        cov1, cov2: Tensor[d, d] (full, PSD) or Tensor[d] (diagonal variances, fast path).
    """
    if mean1.shape != mean2.shape or mean1.ndim != 1:
        raise ValueError(f"means must be Tensor[d] of equal shape, got {tuple(mean1.shape)} and "
                         f"{tuple(mean2.shape)}")
    d = mean1.shape[0]
    for c in (cov1, cov2):
        if c.shape not in ((d,), (d, d)):
            raise ValueError(f"covariance must be Tensor[{d}] or Tensor[{d}, {d}], got {tuple(c.shape)}")
    mean_part = (mean1 - mean2).pow(2).sum()
    if cov1.ndim == 1 and cov2.ndim == 1:
        if bool((cov1 < 0).any() | (cov2 < 0).any()):
            raise ValueError("diagonal variances must be >= 0")
        return (mean_part + (cov1.sqrt() - cov2.sqrt()).pow(2).sum()).sqrt()
    X1 = sqrtm_psd(torch.diag(cov1) if cov1.ndim == 1 else cov1)
    X2 = sqrtm_psd(torch.diag(cov2) if cov2.ndim == 1 else cov2)
    return (mean_part + _bures_factors(X1, X2)).sqrt()


@dataclass
class GaussianLaw:
    """N(mean, factor factor^T). mean: Tensor[d]; factor: Tensor[d, r] (any square-root factor).

    Carrying a factor instead of the covariance keeps W2 accurate to the last digits and is
    what a linear map acts on: x -> P x + q sends (mean, factor) to (P mean + q, P factor).
    """

    mean: Tensor
    factor: Tensor

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def cov(self) -> Tensor:
        """Tensor[d, d]."""
        return self.factor @ self.factor.transpose(-1, -2)

    def affine(self, P: Tensor, q: Optional[Tensor] = None) -> "GaussianLaw":
        """Law of P x + q. P: Tensor[d, d], q: Tensor[d]."""
        mean = P @ self.mean if q is None else P @ self.mean + q
        return GaussianLaw(mean, P @ self.factor)

    def w2(self, other: "GaussianLaw") -> Tensor:
        """Closed-form W2 to another GaussianLaw (0-dim tensor)."""
        return ((self.mean - other.mean).pow(2).sum() + _bures_factors(self.factor, other.factor)).sqrt()

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """Tensor[n, d]."""
        z = torch.randn(n, self.factor.shape[-1], generator=generator, dtype=self.mean.dtype)
        return self.mean + z @ self.factor.transpose(-1, -2)

    def to(self, dtype: torch.dtype) -> "GaussianLaw":
        return GaussianLaw(self.mean.to(dtype), self.factor.to(dtype))


def empirical_w2(x: Tensor, y: Tensor) -> float:
    """W2 between the empirical measures of samples x: Tensor[n, d] and y: Tensor[m, d].

    Exact optimal transport (POT's network simplex, ``ot.emd2``) on squared Euclidean costs.
    """
    import ot

    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"samples must be Tensor[n, d] and Tensor[m, d], got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    xn, yn = x.detach().double().cpu().numpy(), y.detach().double().cpu().numpy()
    cost = ot.dist(xn, yn, metric="sqeuclidean")
    a = ot.unif(xn.shape[0])
    b = ot.unif(yn.shape[0])
    return float(ot.emd2(a, b, cost, numItermax=10_000_000)) ** 0.5
