"""Closed-form W2 between Gaussians against independent computations; exact OT on samples."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats
import torch

from logz.theory import GaussianLaw, empirical_w2, gaussian_w2, sqrtm_psd


def _spd(d, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return (a @ a.T / d + 0.2 * torch.eye(d, dtype=torch.float64)).to(dtype)


def test_one_dimensional_quantile_formula():
    # W2^2 = int_0^1 (F1^{-1}(u) - F2^{-1}(u))^2 du, adaptive quadrature on the normal ppf
    m1, s1, m2, s2 = 0.3, 0.7, -1.1, 1.9
    def integrand(u):
        return (scipy.stats.norm.ppf(u, m1, s1) - scipy.stats.norm.ppf(u, m2, s2)) ** 2

    quantile = math.sqrt(scipy.integrate.quad(integrand, 0.0, 1.0, limit=200, epsabs=1e-13)[0])
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    full = gaussian_w2(t(m1), t(s1 ** 2)[None], t(m2), t(s2 ** 2)[None])
    diag = gaussian_w2(t(m1), t(s1 ** 2), t(m2), t(s2 ** 2))
    assert math.isclose(float(full), quantile, rel_tol=1e-6)
    assert math.isclose(float(diag), quantile, rel_tol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_full_covariance_against_scipy_sqrtm(dtype):
    d = 6
    S1, S2 = _spd(d, 1), _spd(d, 2)
    m1, m2 = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    r2 = scipy.linalg.sqrtm(S2.numpy())
    cross = scipy.linalg.sqrtm(r2 @ S1.numpy() @ r2).real
    textbook = float((m1 - m2).pow(2).sum()) + float(np.trace(S1.numpy() + S2.numpy() - 2 * cross))
    ours = gaussian_w2(m1.to(dtype), S1.to(dtype), m2.to(dtype), S2.to(dtype))
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert ours.dtype == dtype
    assert math.isclose(float(ours), math.sqrt(textbook), rel_tol=tol)


def test_tiny_distances_keep_their_digits():
    # N(0, S) vs N(0, (1 + delta) S): W2 = (sqrt(1 + delta) - 1) sqrt(tr S); the textbook
    # difference of traces would lose everything below ~1e-8
    S = _spd(5, 3)
    delta = 1e-12
    exact = (math.sqrt(1 + delta) - 1) * math.sqrt(float(torch.trace(S)))
    zero = torch.zeros(5, dtype=torch.float64)
    assert math.isclose(float(gaussian_w2(zero, S, zero, (1 + delta) * S)), exact, rel_tol=1e-3)


def test_diagonal_fast_path_and_law_agree_with_full():
    gen = torch.Generator().manual_seed(4)
    v1 = torch.rand(4, generator=gen, dtype=torch.float64) + 0.1
    v2 = torch.rand(4, generator=gen, dtype=torch.float64)
    m1, m2 = torch.randn(4, generator=gen, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    fast = gaussian_w2(m1, v1, m2, v2)
    full = gaussian_w2(m1, torch.diag(v1), m2, torch.diag(v2))
    assert math.isclose(float(fast), float(full), rel_tol=1e-12)
    S = _spd(4, 5)
    law1, law2 = GaussianLaw(m1, sqrtm_psd(S)), GaussianLaw(m2, torch.linalg.cholesky(torch.diag(v2)))
    assert math.isclose(float(law1.w2(law2)), float(gaussian_w2(m1, S, m2, torch.diag(v2))), rel_tol=1e-10)


def test_pot_on_samples_matches_closed_form():
    # x ~ N(m1, S1), y = T(x) with the Monge map T (gradient of a convex function): the
    # pairing x_i <-> T(x_i) is cyclically monotone, so it is the exact OT plan between the two
    # empirical measures -> emd2 must equal mean |x - T x|^2, an unbiased estimate of W2^2.
    d, n = 3, 1500
    S1, S2 = _spd(d, 6), _spd(d, 7)
    m1, m2 = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
    r1 = sqrtm_psd(S1)
    r1_inv = torch.linalg.inv(r1)
    A = r1_inv @ sqrtm_psd(r1 @ S2 @ r1) @ r1_inv
    gen = torch.Generator().manual_seed(0)
    x = m1 + torch.randn(n, d, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(S1).T
    y = m2 + (x - m1) @ A.T
    sq = (x - y).pow(2).sum(-1)
    assert math.isclose(empirical_w2(x, y) ** 2, float(sq.mean()), rel_tol=1e-8)
    stderr = float(sq.std()) / math.sqrt(n)
    assert abs(float(sq.mean()) - float(gaussian_w2(m1, S1, m2, S2)) ** 2) < 4 * stderr


def test_bad_shapes():
    with pytest.raises(ValueError, match="covariance must be"):
        gaussian_w2(torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="means must be"):
        gaussian_w2(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match="samples must be"):
        empirical_w2(torch.zeros(3, 2), torch.zeros(3, 3))
