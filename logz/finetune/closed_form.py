"""Closed forms for diagonal Gaussian mixtures: exact flow-matching velocities and reward tilts.

Linear (rectified) path x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I), x1 ~ p_1. For
p_1 = sum_k w_k N(m_k, diag(s_k^2)) every marginal is a mixture with the same
weights, p_t = sum_k w_k N(t m_k, diag(V_k(t))), V_k(t) = (1 - t)^2 + t^2 s_k^2, and
the flow-matching velocity v(x, t) = E[x1 - x0 | x_t = x] is

    v(x, t) = sum_k gamma_k(x, t) [ m_k + (t s_k^2 - (1 - t)) / V_k(t) (x - t m_k) ],

gamma_k the posterior component probabilities under p_t. These serve as exact
base models (no training) for the exactness tests of the fine-tuners.

Other interpolants x_t = alpha x1 + sigma x0 (``logz.finetune.interpolants``): p_t has
components N(alpha m_k, V_k), V_k = alpha^2 s_k^2 + sigma^2, and
v_k = alpha' m_k + (alpha' alpha s_k^2 + sigma sigma') / V_k (x - alpha m_k) (the linear
path's formula above is the case alpha = t, sigma = 1 - t).

Tilt by the reward r(x) = b^T x - 1/2 sum_i lam_i (x_i - c_i)^2 (lam >= 0, diagonal):
p*(x) ∝ p_1(x) exp(r(x)) is again a diagonal mixture, per component and coordinate
precision 1/s^2 + lam, mean s*^2 (m / s^2 + b + lam c), and weights
w_k* ∝ w_k Z_k with log Z_k = sum_i [-1/2 log(1 + lam s^2) + 1/2 m*^2 / s*^2
- 1/2 m^2 / s^2 - 1/2 lam c^2]. With lam = 0 this is m* = m + s^2 b and
w_k* ∝ w_k exp(b^T m_k + 1/2 b^T S_k b).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn

from logz.finetune.interpolants import Interpolant, make_interpolant

ArrayLike = Union[Tensor, float, list]


def _vec(value: ArrayLike, dim: int, name: str) -> Tensor:
    v = torch.as_tensor(value, dtype=torch.float64)
    if v.ndim == 0:
        v = v.expand(dim)
    if v.shape != (dim,):
        raise ValueError(f"{name} must be a float or Tensor[{dim}], got shape {tuple(v.shape)}")
    return v.clone()


def _time_col(t: Tensor, x: Tensor) -> Tensor:
    """t as a 0-dim or [B] tensor -> broadcastable [B or 1, 1, 1] with x's dtype."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(-1, 1, 1)


class GaussianMixtureVelocity(nn.Module):
    """Exact flow-matching velocity of a diagonal Gaussian mixture p_1 (linear path by default).

    Args:
        weights: Tensor[K] (normalized internally).
        means: Tensor[K, d].
        variances: float, Tensor[K] or Tensor[K, d] (diagonal variances s_k^2).
        interpolant: the path ("linear", "gvp", "vp" or an ``Interpolant``).
    Call ``v(x, t)`` with x: Tensor[B, d], t: 0-dim or Tensor[B] -> Tensor[B, d].
    Parameters are buffers (not trained); they follow ``.to(dtype)``.
    """

    def __init__(self, weights: ArrayLike, means: ArrayLike, variances: ArrayLike,
                 interpolant: "str | Interpolant" = "linear"):
        super().__init__()
        self.interpolant = make_interpolant(interpolant)
        mu = torch.as_tensor(means, dtype=torch.float64)
        if mu.ndim != 2:
            raise ValueError(f"means must be Tensor[K, d], got shape {tuple(mu.shape)}")
        K, d = mu.shape
        w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        if w.shape != (K,) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError(f"weights must be a non-negative Tensor[{K}] with positive sum")
        var = torch.as_tensor(variances, dtype=torch.float64)
        if var.ndim == 0 or var.shape == (K,):
            var = var.reshape(-1, 1).expand(K, d) if var.ndim == 1 else var.expand(K, d)
        if var.shape != (K, d) or bool((var <= 0).any()):
            raise ValueError(f"variances must be positive: a float, Tensor[{K}] or Tensor[{K}, {d}]")
        self.dim, self.num_components = d, K
        self.register_buffer("weights", w / w.sum())
        self.register_buffer("means", mu.clone())
        self.register_buffer("variances", var.clone().contiguous())

    @classmethod
    def gaussian(cls, mean: ArrayLike, variances: ArrayLike,
                 interpolant: "str | Interpolant" = "linear") -> "GaussianMixtureVelocity":
        """Single diagonal Gaussian N(mean, diag(variances))."""
        m = torch.as_tensor(mean, dtype=torch.float64).reshape(1, -1)
        return cls(torch.ones(1), m, _vec(variances, m.shape[1], "variances").reshape(1, -1),
                   interpolant)

    @classmethod
    def from_target(cls, target) -> "GaussianMixtureVelocity":
        """From a ``logz.targets`` GaussianMixture (diagonal covariances) or diagonal Gaussian."""
        if hasattr(target, "weights") and hasattr(target, "means") and hasattr(target, "covs"):
            covs = target.covs
            var = torch.diagonal(covs, dim1=-2, dim2=-1)
            if not torch.allclose(covs, torch.diag_embed(var)):
                raise ValueError("closed-form velocity needs diagonal component covariances")
            return cls(target.weights, target.means, var)
        if hasattr(target, "mean") and hasattr(target, "cov"):
            cov = torch.as_tensor(target.cov, dtype=torch.float64)
            if not torch.allclose(cov, torch.diag(torch.diagonal(cov))):
                raise ValueError("closed-form velocity needs a diagonal covariance")
            return cls.gaussian(target.mean, torch.diagonal(cov))
        raise TypeError(f"cannot build a closed-form velocity from {type(target).__name__}")

    # --- marginals ----------------------------------------------------
    def _path(self, tc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(alpha, sigma^2, alpha', sigma sigma') at the times tc."""
        p = self.interpolant
        return p.alpha(tc), p.sigma(tc) ** 2, p.d_alpha(tc), p.sigma_dsigma(tc)

    def _marginal(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-component (mean [*, K, d], var [*, K, d], log w_k N_k(x) [B, K]) of p_t."""
        tc = _time_col(t, x)
        m, s2 = self.means.to(x), self.variances.to(x)
        a, sig2, _, _ = self._path(tc)
        mean = a * m
        var = sig2 + a ** 2 * s2
        diff = x[:, None, :] - mean
        logn = -0.5 * (diff ** 2 / var + torch.log(var) + math.log(2 * math.pi)).sum(-1)
        return mean, var, logn + torch.log(self.weights.to(x))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        tc = _time_col(t, x)
        m, s2 = self.means.to(x), self.variances.to(x)
        if self.num_components == 1:  # a single Gaussian: no posterior weights needed
            a, sig2, da, sds = self._path(tc[:, 0])
            m, s2 = m[0], s2[0]
            var = sig2 + a ** 2 * s2
            return da * m + (da * a * s2 + sds) / var * (x - a * m)
        a, sig2, da, sds = self._path(tc)
        mean, var, logw = self._marginal(x, t)
        v_k = da * m + (da * a * s2 + sds) / var * (x[:, None, :] - mean)  # [B, K, d]
        gamma = torch.softmax(logw, dim=-1)  # [B, K]
        return (gamma[..., None] * v_k).sum(1)

    def score(self, x: Tensor, t: Tensor) -> Tensor:
        """grad log p_t(x), Tensor[B, d] (closed form: sum_k gamma_k (alpha m_k - x) / V_k)."""
        mean, var, logw = self._marginal(x, t)
        gamma = torch.softmax(logw, dim=-1)
        return (gamma[..., None] * (mean - x[:, None, :]) / var).sum(1)

    def log_prob_t(self, x: Tensor, t: Union[float, Tensor] = 1.0) -> Tensor:
        """log p_t(x), Tensor[B] (t = 1: the data density)."""
        return torch.logsumexp(self._marginal(x, torch.as_tensor(t))[2], dim=-1)

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """Exact samples of p_1, Tensor[n, d]."""
        idx = torch.multinomial(self.weights, int(n), replacement=True, generator=generator)
        eps = torch.randn(int(n), self.dim, generator=generator, dtype=torch.float64)
        return (self.means[idx] + self.variances[idx].sqrt() * eps).to(dtype)

    def mean_and_cov(self) -> tuple[Tensor, Tensor]:
        """Mean Tensor[d] and covariance Tensor[d, d] of p_1 (float64)."""
        w, m, s2 = self.weights, self.means, self.variances
        mean = (w[:, None] * m).sum(0)
        diff = m - mean
        cov = torch.diag((w[:, None] * s2).sum(0)) + (w[:, None, None] * diff[:, :, None] * diff[:, None, :]).sum(0)
        return mean, cov

    # --- reward tilts -------------------------------------------------
    def tilt(self, reward: "QuadraticReward") -> "GaussianMixtureVelocity":
        """The exact tilted law p* ∝ p_1 exp(r) as a new closed-form velocity."""
        b, lam, c = (z.to(torch.float64) for z in (reward.b, reward.lam, reward.c))
        m, s2, w = self.means, self.variances, self.weights
        prec = 1 / s2 + lam
        var_star = 1 / prec
        m_star = var_star * (m / s2 + b + lam * c)
        log_zk = (-0.5 * torch.log1p(lam * s2) + 0.5 * m_star ** 2 * prec - 0.5 * m ** 2 / s2
                  - 0.5 * lam * c ** 2).sum(-1)
        w_star = torch.softmax(torch.log(w) + log_zk, dim=0)
        return GaussianMixtureVelocity(w_star, m_star, var_star, self.interpolant)


class QuadraticReward(nn.Module):
    """r(x) = b^T x - 1/2 sum_i lam_i (x_i - c_i)^2. x: Tensor[B, d] -> Tensor[B].

    ``lam = 0`` gives the linear reward b^T x; ``b = 0`` the quadratic
    -1/2 (x - c)^T diag(lam) (x - c).
    """

    def __init__(self, dim: int, b: ArrayLike = 0.0, lam: ArrayLike = 0.0, c: ArrayLike = 0.0):
        super().__init__()
        lam_t = _vec(lam, dim, "lam")
        if bool((lam_t < 0).any()):
            raise ValueError("lam must be >= 0 (the tilt must stay normalizable)")
        self.dim = int(dim)
        self.register_buffer("b", _vec(b, dim, "b"))
        self.register_buffer("lam", lam_t)
        self.register_buffer("c", _vec(c, dim, "c"))

    def forward(self, x: Tensor) -> Tensor:
        b, lam, c = self.b.to(x), self.lam.to(x), self.c.to(x)
        return x @ b - 0.5 * (lam * (x - c) ** 2).sum(-1)

    def grad(self, x: Tensor) -> Tensor:
        """grad r(x) = b - lam (x - c), Tensor[B, d]."""
        return self.b.to(x) - self.lam.to(x) * (x - self.c.to(x))


def gaussian_w2(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    """Closed-form 2-Wasserstein distance between N(mean1, cov1) and N(mean2, cov2).

    W2^2 = |m1 - m2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2).
    """
    m1, m2 = mean1.double(), mean2.double()
    s1, s2 = cov1.double(), cov2.double()

    def sqrtm(a: Tensor) -> Tensor:
        evals, evecs = torch.linalg.eigh(0.5 * (a + a.T))
        return evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T

    r2 = sqrtm(s2)
    cross = sqrtm(r2 @ s1 @ r2)
    w2sq = ((m1 - m2) ** 2).sum() + torch.trace(s1 + s2 - 2 * cross)
    return float(w2sq.clamp_min(0).sqrt())


def fitted_gaussian_w2(samples: Tensor, mean: Tensor, cov: Tensor) -> float:
    """W2 between the Gaussian fitted to ``samples`` (Tensor[n, d]) and N(mean, cov)."""
    x = samples.detach().double()
    return gaussian_w2(x.mean(0), torch.atleast_2d(torch.cov(x.T)), mean, cov)
