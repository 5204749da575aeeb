"""Gaussian data N(m, Sigma0): closed-form marginals, score and PF-ODE flow.

Under dx = -f x ds + g dB, x_s = mu_s x_0 + sigma_s Z, so

    p_s = N(mu_s m, Sigma_s),    Sigma_s = mu_s^2 Sigma0 + sigma_s^2 I,
    grad log p_s(x) = -Sigma_s^{-1} (x - mu_s m).

Every Sigma_s shares the eigenvectors U of Sigma0 = U diag(lam) U^T, with eigenvalues
v_i(s) = mu_s^2 lam_i + sigma_s^2. The PF-ODE is linear and, in that basis, one scalar
linear ODE per coordinate with a positive slope; it carries N(mu_T m_i, v_i(T)) to
N(m_i, lam_i), so its time-T flow map is the monotone affine map

    y -> m + U diag(sqrt(lam_i / v_i(T))) U^T (y - mu_T m),

exact with no ODE solve. Strong log-concavity and smoothness of N(m, Sigma0) are
m0 = 1 / lam_max and L0 = 1 / lam_min.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from logz.theory.processes import ForwardProcess, _f64
from logz.theory.w2 import GaussianLaw


class GaussianData:
    """Data distribution N(mean, cov) in dimension d.

    Args:
        mean: Tensor[d].
        cov: Tensor[d, d], symmetric positive definite (ValueError otherwise).
    """

    def __init__(self, mean: Tensor, cov: Tensor, name: Optional[str] = None):
        mean = torch.as_tensor(mean)
        cov = torch.as_tensor(cov, dtype=mean.dtype)
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(f"need mean Tensor[d] and cov Tensor[d, d], got {tuple(mean.shape)} and "
                             f"{tuple(cov.shape)}")
        if not bool(torch.isfinite(cov).all() & torch.isfinite(mean).all()):
            raise ValueError("mean and covariance must be finite")
        scale = float(cov.abs().max()) or 1.0
        if float((cov - cov.T).abs().max()) > 1e-6 * scale:
            raise ValueError("covariance not symmetric")
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        if not float(evals.min()) > 0:
            raise ValueError(f"covariance not positive definite: smallest eigenvalue "
                             f"{float(evals.min()):.3g} <= 0, so the data is not strongly log-concave")
        self.mean, self.cov, self.evals, self.evecs = mean, 0.5 * (cov + cov.T), evals, evecs
        self.name = name or f"gaussian{self.dim}"

    # --- constructors -------------------------------------------------------
    @classmethod
    def isotropic(cls, dim: int, var: float = 1.0, mean: float = 0.0,
                  dtype: torch.dtype = torch.float64) -> "GaussianData":
        """N(mean 1, var I)."""
        return cls(torch.full((dim,), float(mean), dtype=dtype), var * torch.eye(dim, dtype=dtype))

    @classmethod
    def random(cls, dim: int, eig_range: tuple[float, float] = (0.25, 1.0), mean_scale: float = 0.5,
               seed: int = 0, dtype: torch.dtype = torch.float64) -> "GaussianData":
        """Random full covariance with eigenvalues log-spaced in ``eig_range`` (so m0 = 1/max,
        L0 = 1/min) and a random orientation; mean ~ mean_scale N(0, I). Seeded."""
        lo, hi = eig_range
        if not 0 < lo <= hi:
            raise ValueError(f"eig_range must satisfy 0 < lo <= hi, got {eig_range}")
        gen = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))
        lam = torch.logspace(math.log10(lo), math.log10(hi), dim, dtype=torch.float64) if dim > 1 \
            else torch.tensor([hi], dtype=torch.float64)
        mean = mean_scale * torch.randn(dim, generator=gen, dtype=torch.float64)
        cov = (q * lam) @ q.T
        return cls(mean.to(dtype), cov.to(dtype))

    # --- constants of the theorem -------------------------------------------
    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.mean.dtype

    @property
    def m0(self) -> float:
        """Strong log-concavity constant 1 / lam_max."""
        return 1.0 / float(self.evals.max())

    @property
    def L0(self) -> float:
        """Lipschitz constant of the score, 1 / lam_min."""
        return 1.0 / float(self.evals.min())

    @property
    def x0_norm(self) -> float:
        """||x_0||_{L2} = sqrt(|m|^2 + tr Sigma0)."""
        return math.sqrt(float(self.mean.pow(2).sum() + self.evals.sum()))

    @property
    def law(self) -> GaussianLaw:
        """The data law with factor U diag(sqrt(lam))."""
        return GaussianLaw(self.mean, self.evecs * self.evals.sqrt())

    # --- marginals and score --------------------------------------------------
    def _coeffs(self, process: ForwardProcess, s) -> tuple[Tensor, Tensor]:
        s = _f64(s)
        return process.mu(s).to(self.dtype), process.sigma2(s).to(self.dtype)

    def marginal_vars(self, process: ForwardProcess, s) -> Tensor:
        """Eigenvalues v_i(s) = mu_s^2 lam_i + sigma_s^2 of Sigma_s: Tensor[..., d] for s of shape [...]."""
        mu, sig2 = self._coeffs(process, s)
        return mu[..., None] ** 2 * self.evals + sig2[..., None]

    def marginal(self, process: ForwardProcess, s) -> GaussianLaw:
        """p_s as a GaussianLaw (factor U diag(sqrt(v)))."""
        mu, _ = self._coeffs(process, s)
        return GaussianLaw(mu * self.mean, self.evecs * self.marginal_vars(process, s).sqrt())

    def precision(self, process: ForwardProcess, s) -> Tensor:
        """Sigma_s^{-1} = U diag(1/v) U^T: Tensor[d, d]."""
        return (self.evecs / self.marginal_vars(process, s)) @ self.evecs.T

    def score(self, x: Tensor, process: ForwardProcess, s) -> Tensor:
        """grad log p_s(x): Tensor[B, d] for x: Tensor[B, d].

        Solves with the assembled Sigma_s (not the eigen form used by the propagation), so
        tests comparing the two are not comparing a computation with itself.
        """
        mu, sig2 = self._coeffs(process, s)
        cov_s = mu ** 2 * self.cov + sig2 * torch.eye(self.dim, dtype=self.dtype)
        return -torch.linalg.solve(cov_s, (x - mu * self.mean).T).T

    def log_prob(self, x: Tensor, process: ForwardProcess, s) -> Tensor:
        """log p_s(x): Tensor[B]."""
        mu, sig2 = self._coeffs(process, s)
        cov_s = mu ** 2 * self.cov + sig2 * torch.eye(self.dim, dtype=self.dtype)
        return torch.distributions.MultivariateNormal(mu * self.mean, cov_s).log_prob(x)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """Exact samples Tensor[n, d]."""
        return self.law.sample(n, generator)

    # --- the exact PF-ODE -----------------------------------------------------
    def flow_map(self, process: ForwardProcess, T: float) -> tuple[Tensor, Tensor]:
        """Exact PF-ODE map from forward time T to 0: y -> P y + q. Returns (P [d, d], q [d])."""
        mu_T, _ = self._coeffs(process, T)
        gain = (self.evals / self.marginal_vars(process, T)).sqrt()
        P = (self.evecs * gain) @ self.evecs.T
        return P, self.mean - P @ (mu_T * self.mean)

    def flow(self, law: GaussianLaw, process: ForwardProcess, T: float) -> GaussianLaw:
        """Push a Gaussian law at forward time T through the exact PF-ODE to time 0."""
        P, q = self.flow_map(process, T)
        return law.affine(P, q)

    def time_lipschitz_profile(self, process: ForwardProcess):
        """Local time-Lipschitz modulus: a function s -> L1(s) (float64, any shape) with
        |d/ds grad log p_s(x)| <= L1(s) (1 + |x|).

        d/ds grad log p_s(x) = -(d/ds Sigma_s^{-1}) x + d/ds(Sigma_s^{-1} mu_s m); in the eigenbasis
        d/ds (1/v_i) = 2f/v_i - g^2/v_i^2 and d/ds (mu/v_i) = mu (f - g^2/v_i)/v_i, so
        L1(s) = max(max_i |2f/v_i - g^2/v_i^2|, |(mu (f - g^2/v_i)/v_i m_i)_i|).
        """
        lam = self.evals.double()
        m_eig = self.evecs.double().T @ self.mean.double()    # mean in the eigenbasis

        def profile(s) -> Tensor:
            s = _f64(s)
            mu, sig2, f, g2 = (c[..., None] for c in (process.mu(s), process.sigma2(s), process.f(s),
                                                       process.g2(s)))
            v = mu ** 2 * lam + sig2
            dprec = (2 * f / v - g2 / v ** 2).abs().max(-1).values
            dshift = (mu * (f - g2 / v) / v * m_eig).norm(dim=-1)
            return torch.maximum(dprec, dshift)

        return profile

    def time_lipschitz(self, process: ForwardProcess, T: float, num: int = 2049) -> float:
        """Global L1 = max over s in [0, T] of ``time_lipschitz_profile`` (the paper's constant):
        a grid of ``num`` points, then a dense grid around the best one (the profile is smooth,
        so this finds the maximum to ~1e-9 relative)."""
        profile = self.time_lipschitz_profile(process)
        grid = torch.linspace(0.0, float(T), num, dtype=torch.float64)
        i = int(profile(grid).argmax())
        fine = torch.linspace(float(grid[max(i - 1, 0)]), float(grid[min(i + 1, num - 1)]), 2001,
                              dtype=torch.float64)
        return float(profile(fine).max())
