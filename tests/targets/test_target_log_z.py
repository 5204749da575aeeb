"""Each target's exact log Z, checked independently of how the target computes it.

Methods: closed form (torch.distributions), midpoint-rule quadrature on a 2-D
grid using only ``log_prob`` (its error estimated by halving the spacing), an
importance-sampling estimate with its own standard error, and a separability
argument (log_prob of the d-D target is a sum of 2-D ones) for Many-Well.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

import logz.targets as T

ALPHA = 1e-4  # false-alarm probability of each statistical check
Z_CRIT = float(norm.isf(ALPHA / 2))
EPS64 = torch.finfo(torch.float64).eps


def grid_log_z(log_prob, lo: tuple[float, float], hi: tuple[float, float], n: int,
               jacobian=None) -> float:
    """log of the midpoint rule ∫∫ exp(log_prob) over the box [lo, hi] with n points per axis.

    ``jacobian(u) -> (x, log|det|)`` optionally maps grid points u to x (change of variables).
    """
    axes = [torch.linspace(a, b, n + 1, dtype=torch.float64) for a, b in zip(lo, hi)]
    mids = [0.5 * (g[1:] + g[:-1]) for g in axes]
    log_cell = sum(math.log((b - a) / n) for a, b in zip(lo, hi))
    u = torch.cartesian_prod(*mids)
    parts = []
    for chunk in torch.split(u, 200_000):
        x, log_det = jacobian(chunk) if jacobian is not None else (chunk, 0.0)
        parts.append(torch.logsumexp(log_prob(x) + log_det, 0))
    return float(torch.logsumexp(torch.stack(parts), 0)) + log_cell


def assert_quadrature(log_prob, lo, hi, n, expected: float, jacobian=None) -> None:
    """Compare grid quadrature to ``expected``; the tolerance is the observed change when the
    grid spacing halves (×10) plus a float64 summation allowance (√N·eps per point)."""
    q1 = grid_log_z(log_prob, lo, hi, n, jacobian)
    q2 = grid_log_z(log_prob, lo, hi, 2 * n, jacobian)
    tol = 10 * abs(q1 - q2) + 2 * n * EPS64 * 10
    assert abs(q2 - expected) <= tol, (q1, q2, expected, tol)


def test_gaussian_normalizer_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.5 * torch.eye(4, dtype=torch.float64)
    mean = torch.randn(4, generator=g, dtype=torch.float64)
    t = T.Gaussian(mean, cov, log_Z=2.5)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64) * 3
    ref = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)
    torch.testing.assert_close(t.log_prob(x) - t.log_Z, ref)
    assert t.log_Z == 2.5


def test_correlated_gaussian_log_z_by_quadrature():
    cov = torch.tensor([[2.0, 1.2], [1.2, 1.0]], dtype=torch.float64)
    t = T.Gaussian(torch.tensor([1.0, -0.5]), cov, log_Z=1.3)
    # Box ±14 around the mean: > 9.9 marginal std in every direction, tail mass < 1e-20.
    assert_quadrature(t.log_prob, (-13.0, -14.5), (15.0, 13.5), 300, 1.3)


@pytest.mark.parametrize("name, half_width", [("gmm9", 12.0), ("gmm25", 17.0)])
def test_grid_mixtures_log_z_by_quadrature(name, half_width):
    t = T.get(name)
    # Outermost modes at 5 / 10; box reaches 7 / 7 away, i.e. > 12 std (std √0.3).
    assert_quadrature(t.log_prob, (-half_width,) * 2, (half_width,) * 2, 100, t.log_Z)
    assert t.log_Z == 0.0


def test_gmm40_log_z_by_quadrature():
    t = T.gmm40()
    reach = float(t.means.abs().max()) + 10 * math.sqrt(float(t.covs[:, 0, 0].max()))
    assert_quadrature(t.log_prob, (-reach,) * 2, (reach,) * 2, 150, 0.0)


def test_full_covariance_weighted_mixture_log_z_by_quadrature():
    covs = torch.tensor([[[1.0, 0.6], [0.6, 0.8]], [[0.3, -0.1], [-0.1, 0.5]], [[2.0, 0.0], [0.0, 0.4]]])
    t = T.GaussianMixture([0.2, 0.5, 0.3], [[-3.0, 0.0], [2.0, 2.0], [0.0, -3.0]], covs, log_Z=-0.7)
    assert_quadrature(t.log_prob, (-17.0, -15.0), (16.0, 15.0), 300, -0.7)


def test_funnel_2d_log_z_by_quadrature():
    t = T.Funnel(dim=2, log_Z=0.4)

    def change_of_variables(u):
        # x0 = u0, x1 = exp(u0 / 2) u1: the neck of the funnel becomes a strip.
        x = torch.stack([u[:, 0], torch.exp(0.5 * u[:, 0]) * u[:, 1]], dim=1)
        return x, 0.5 * u[:, 0]

    # x0 over ±11 std of N(0, 9); u1 over ±12.
    assert_quadrature(t.log_prob, (-33.0, -12.0), (33.0, 12.0), 400, 0.4, jacobian=change_of_variables)


def test_funnel_10d_log_z_by_importance_sampling():
    t = T.Funnel(dim=10)
    g = torch.Generator().manual_seed(1)
    n, s0, c = 20_000, 3.5, 1.3  # proposal wider than the target: bounded weights
    x0 = s0 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    rest = c * torch.exp(0.5 * x0) * torch.randn(n, 9, generator=g, dtype=torch.float64)
    log_q = (torch.distributions.Normal(0.0, s0).log_prob(x0[:, 0])
             + torch.distributions.Normal(0.0, c * torch.exp(0.5 * x0)).log_prob(rest).sum(-1))
    log_w = t.log_prob(torch.cat([x0, rest], 1)) - log_q
    log_z_hat = float(torch.logsumexp(log_w, 0) - math.log(n))
    w = torch.exp(log_w - log_w.max())
    stderr = float(w.std() / (w.mean() * math.sqrt(n)))  # delta method
    assert abs(log_z_hat - t.log_Z) <= Z_CRIT * stderr, (log_z_hat, stderr)


def test_manywell_pair_log_z_by_quadrature():
    t = T.ManyWell(dim=2)
    # x1 over [-5, 5] (log density at ±5 is < -470 vs a peak of 9.4), x2 over ±12.
    assert_quadrature(t.log_prob, (-5.0, -12.0), (5.0, 12.0), 500, t.log_Z)
    # The published x1 normalizer 11784.50927 (FAB, DGFS), to its last printed digit.
    z_x1 = math.exp(t.log_Z - 0.5 * math.log(2 * math.pi))
    assert abs(z_x1 - 11784.50927) <= 0.5e-5


def test_manywell_32_log_z_from_separability():
    big, pair = T.ManyWell(dim=32), T.ManyWell(dim=2)
    x = 2.5 * torch.randn(64, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    by_pairs = sum(pair.log_prob(x[:, 2 * j:2 * j + 2]) for j in range(16))
    lp = big.log_prob(x)
    tol = 64 * EPS64 * float(lp.abs().max() + by_pairs.abs().max())
    assert float((lp - by_pairs).abs().max()) <= tol
    # log Z is additive over independent factors; the pair's log Z is checked by quadrature above.
    assert abs(big.log_Z - 16 * pair.log_Z) <= 16 * abs(pair.log_Z) * EPS64 * 4
    assert abs(big.log_Z - 164.6957) <= 0.5e-4  # REFERENCE.md, 4 decimals
