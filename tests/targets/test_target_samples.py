"""Exact samplers: moments, mode frequencies and marginals match the targets.

Every comparison uses the estimator's own standard error (sample standard
deviation / √n, or the binomial SE) and a critical value from a Bonferroni-
corrected normal quantile, so each test's false-alarm rate is ALPHA.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import logz.targets as T
from logz.targets.manywell import x1_log_density

ALPHA = 1e-3


def z_crit(num_comparisons: int) -> float:
    return float(stats.norm.isf(ALPHA / (2 * num_comparisons)))


def assert_means_match(values: torch.Tensor, expected: torch.Tensor) -> None:
    """values: Tensor[n, m] of per-sample statistics; expected: Tensor[m] of their exact means."""
    values = values.double()
    n, m = values.shape
    mean = values.mean(0)
    se = values.std(0) / math.sqrt(n)
    z = ((mean - expected.double()) / se).abs()
    assert bool((z <= z_crit(m)).all()), f"z-scores {z.tolist()} exceed {z_crit(m):.2f}"


def moment_statistics(x: torch.Tensor) -> torch.Tensor:
    """Per-sample first and (upper-triangular) second moments: Tensor[n, d + d(d+1)/2]."""
    i, j = torch.triu_indices(x.shape[1], x.shape[1])
    return torch.cat([x, x[:, i] * x[:, j]], dim=1)


def exact_moments(mean: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    i, j = torch.triu_indices(mean.shape[0], mean.shape[0])
    return torch.cat([mean, second[i, j]])


def assert_frequencies_match(counts: np.ndarray, probs: np.ndarray) -> None:
    """Two-sided chi-square test: rejects biased frequencies and suspiciously equal counts."""
    n = counts.sum()
    res = stats.chisquare(counts, n * probs)
    assert ALPHA / 2 < res.pvalue < 1 - ALPHA / 2, (counts, res)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_moments(dtype):
    a = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 1.2]], dtype=torch.float64)
    cov, mean = a @ a.T, torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    t = T.Gaussian(mean, cov)
    x = t.sample(20_000, torch.Generator().manual_seed(0), dtype=dtype)
    assert x.dtype == dtype and x.shape == (20_000, 3)
    assert_means_match(moment_statistics(x), exact_moments(mean, cov + torch.outer(mean, mean)))


def test_isotropic_gaussian_default_float32():
    t = T.Gaussian.isotropic(4, std=2.0, mean=1.0)
    x = t.sample(10_000, torch.Generator().manual_seed(1))
    assert x.dtype == torch.float32
    second = 4.0 * torch.eye(4, dtype=torch.float64) + 1.0
    assert_means_match(moment_statistics(x), exact_moments(torch.ones(4, dtype=torch.float64), second))


def _mixture_second_moment(t: T.GaussianMixture) -> torch.Tensor:
    w, mu = t.weights, t.means
    return (w[:, None, None] * (t.covs + mu[:, :, None] * mu[:, None, :])).sum(0)


@pytest.mark.parametrize("target", [T.gmm9(), T.gmm25(), T.gmm40(),
                                    T.GaussianMixture([0.2, 0.5, 0.3], [[-3.0, 0.0], [2.0, 2.0], [0.0, -3.0]],
                                                      torch.tensor([[[1.0, 0.6], [0.6, 0.8]],
                                                                    [[0.3, -0.1], [-0.1, 0.5]],
                                                                    [[2.0, 0.0], [0.0, 0.4]]]))],
                         ids=["gmm9", "gmm25", "gmm40", "weighted-full-cov"])
def test_mixture_samples(target):
    n = 400 * target.num_modes
    x, idx = target.sample_with_modes(n, torch.Generator().manual_seed(3))
    mean = (target.weights[:, None] * target.means).sum(0)
    assert_means_match(moment_statistics(x), exact_moments(mean, _mixture_second_moment(target)))
    counts = np.bincount(idx.numpy(), minlength=target.num_modes)
    assert_frequencies_match(counts, target.weights.numpy())
    # Per-component conditional means: the sample of each component centres on its mean.
    k = int(torch.argmax(target.weights))
    assert_means_match(x[idx == k], target.means[k])


def test_mixture_mode_assignment():
    t = T.gmm9()
    assert torch.equal(t.assign_modes(t.means), torch.arange(9))
    shifted = t.means + torch.tensor([1.0, -1.0], dtype=torch.float64)  # 1 < 2.5 = half the spacing
    assert torch.equal(t.assign_modes(shifted.float()), torch.arange(9))
    r = t.responsibilities(t.means)
    torch.testing.assert_close(r.sum(-1), torch.ones(9, dtype=torch.float64))
    x = t.sample(9_000, torch.Generator().manual_seed(4))
    assert_frequencies_match(np.bincount(t.assign_modes(x).numpy(), minlength=9), np.full(9, 1 / 9))


def test_funnel_moments():
    t = T.Funnel(dim=10)
    x = t.sample(20_000, torch.Generator().manual_seed(5), dtype=torch.float64)
    x0 = x[:, :1]
    stats_ = torch.cat([x0, x0 ** 2, x[:, 1:] ** 2 * torch.exp(-x0), x[:, 1:] * torch.exp(-0.5 * x0)], 1)
    expected = torch.cat([torch.tensor([0.0, 9.0]), torch.ones(9), torch.zeros(9)]).double()
    assert_means_match(stats_, expected)


def _x1_cdf_and_moments():
    grid = np.linspace(-5.0, 5.0, 200_001)
    dens = np.exp(x1_log_density(grid) - x1_log_density(1.7))
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0.0)
    z = cdf[-1]
    m1 = integrate.trapezoid(grid * dens, grid) / z
    m2 = integrate.trapezoid(grid ** 2 * dens, grid) / z
    return (lambda v: np.interp(v, grid, cdf / z)), m1, m2


def test_manywell_samples():
    t = T.ManyWell(dim=32)
    n = 20_000
    x = t.sample(n, torch.Generator().manual_seed(6), dtype=torch.float64)
    assert x.shape == (n, 32)
    x1, x2 = x[:, 0::2], x[:, 1::2]
    # Right-well fraction per pair vs the exact quadrature probability (binomial SE).
    p = t.prob_right_well
    frac = (x1 > 0).double().mean(0)
    z = (frac - p).abs() / math.sqrt(p * (1 - p) / n)
    assert bool((z <= z_crit(16)).all()), z
    # Pooled x1 marginal: Kolmogorov-Smirnov against the CDF from quadrature, plus moments.
    cdf, m1, m2 = _x1_cdf_and_moments()
    pooled = x1.reshape(-1).numpy()
    assert stats.kstest(pooled, cdf).pvalue > ALPHA
    assert_means_match(torch.cat([x1, x1 ** 2, x2, x2 ** 2], 1),
                       torch.tensor([m1] * 16 + [m2] * 16 + [0.0] * 16 + [1.0] * 16))
    # Mode indices and their exact probabilities.
    modes = t.assign_modes(x)
    k = (x1 > 0).sum(-1).double()
    torch.testing.assert_close(t.log_mode_prob(modes), k * math.log(p) + (16 - k) * math.log1p(-p))


@pytest.mark.parametrize("name", ["gaussian", "gmm9", "gmm25", "gmm40", "funnel", "manywell"])
def test_sampling_is_reproducible_and_typed(name):
    t = T.get(name)
    a = t.sample(64, torch.Generator().manual_seed(7))
    b = t.sample(64, torch.Generator().manual_seed(7))
    c = t.sample(64, torch.Generator().manual_seed(8))
    assert a.dtype == torch.float32 and a.shape == (64, t.dim)
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = t.sample(64, torch.Generator().manual_seed(7), dtype=torch.float64, device="cpu")
    assert d.dtype == torch.float64 and torch.equal(d.float(), a)
    assert t.sample(0).shape == (0, t.dim)
    assert bool(torch.isfinite(t.log_prob(a)).all())
