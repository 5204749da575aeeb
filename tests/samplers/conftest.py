"""Shared helpers for the sampler tests: small targets and the closed-form optimal control."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from logz.targets.base import BaseTarget


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


class DiagGaussian(BaseTarget):
    """p~(x) = exp(log_Z) N(x; mean, diag(var)), defined here so the tests need no other room."""

    has_exact_samples = True

    def __init__(self, mean, var, log_Z: float = 0.0, name: str = "diag_gaussian"):
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.var = torch.as_tensor(var, dtype=torch.float64)
        super().__init__(self.mean.numel(), log_Z=log_Z, name=name,
                         init_std=float((self.mean ** 2 + self.var).max().sqrt()))

    def log_prob(self, x: Tensor) -> Tensor:
        m, v = self.mean.to(x), self.var.to(x)
        return (-0.5 * ((x - m) ** 2 / v).sum(-1) - 0.5 * torch.log(2 * math.pi * v).sum()
                + self.log_Z)

    def sample(self, n: int, generator=None) -> Tensor:
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.mean + self.var.sqrt() * eps).float()


class GaussianOptimalControl(nn.Module):
    """u*(x, t) = g(t) grad_x log E_ref[p(X_T) / p_ref,T(X_T) | X_t = x] for p = N(mean, diag(var)).

    The reference (Brownian or VP, X_T | X_t = x ~ N(a x, q I)) conditioned to end at the
    Gaussian target: a Gaussian h-transform. With nu(y) = p(y) / N(y; 0, v_T I)
    proportional to exp(-1/2 y'Ay + b'y), A = 1/var - 1/v_T, b = mean/var, per coordinate
        grad log phi(x) = a [ (b + a x / q) / (P q) - a x / q ],   P = A + 1/q.
    t is 0-dim (``integrate``) or Tensor[B] (``path_log_densities``).
    """

    def __init__(self, reference, T: float, mean: Tensor, var: Tensor):
        super().__init__()
        self.reference, self.T = reference, float(T)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64))
        self.register_buffer("var", torch.as_tensor(var, dtype=torch.float64))
        self.dummy = nn.Parameter(torch.zeros(()))  # so an optimizer can be built

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = t.double().reshape(-1, 1) if t.ndim else t.double()
        T = torch.as_tensor(self.T, dtype=torch.float64)
        a = self.reference.mean_coeff(t, T).double()
        q = self.reference.transition_var(t, T).double()
        v_T = self.reference.marginal_var(T).double()
        g = self.reference.g(t).double()
        A = 1 / self.var - 1 / v_T
        b = self.mean / self.var
        m = a * x.double()
        P = A + 1 / q
        grad = a * ((b + m / q) / (P * q) - m / q)
        return (g * grad).to(x.dtype) + 0 * self.dummy


@pytest.fixture
def diag_gaussian():
    return DiagGaussian


@pytest.fixture
def gaussian_optimal_control():
    return GaussianOptimalControl

