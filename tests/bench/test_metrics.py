"""Benchmark metrics against closed forms, with tolerances from their own error bars."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import logz.targets as T
from logz.bench import metrics as M
from logz.samplers.estimators import estimate_from_log_weights


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _normal(n, mean, std, seed, dtype=torch.float64):
    mean = torch.as_tensor(mean, dtype=torch.float64)
    std = torch.as_tensor(std, dtype=torch.float64)
    return (mean + std * torch.randn(n, mean.numel(), generator=_gen(seed), dtype=torch.float64)).to(dtype)


def _gauss_w2(m1, s1, m2, s2):
    """Closed-form W2 between N(m1, diag s1²) and N(m2, diag s2²) (commuting covariances)."""
    m1, s1, m2, s2 = (torch.as_tensor(v, dtype=torch.float64) for v in (m1, s1, m2, s2))
    return float(torch.sqrt(((m1 - m2) ** 2).sum() + ((s1 - s2) ** 2).sum()))


# -- log Z metrics ----------------------------------------------------------------------------
def test_log_z_elbo_eubo_ess_against_closed_forms(dtype):
    d, s, n = 2, 1.3, 4000
    p = T.get("gaussian", dim=d)  # N(0, I), log Z = 0
    q = torch.distributions.Normal(torch.zeros(d, dtype=torch.float64), s)
    xq = _normal(n, torch.zeros(d), s, 0, dtype)
    log_w = p.log_prob(xq).double() - q.log_prob(xq.double()).sum(-1)
    est = estimate_from_log_weights(log_w)

    err = M.log_z_error(est, p.log_Z)
    assert abs(err.value) < 4 * err.stderr and err.stderr > 0

    kl_qp = 0.5 * d * (s ** 2 - 1 - math.log(s ** 2))
    el = M.elbo_error(log_w, p.log_Z)
    assert abs(el.value - (-kl_qp)) < 4 * el.stderr
    el_est = M.elbo_error(est, p.log_Z)
    assert el_est.value == pytest.approx(el.value) and math.isnan(el_est.stderr)

    xp = p.sample(n, _gen(1), dtype=dtype)
    log_w_p = p.log_prob(xp).double() - q.log_prob(xp.double()).sum(-1)
    kl_pq = 0.5 * d * (1 / s ** 2 - 1 + math.log(s ** 2))
    eu = M.eubo_metric(log_w_p, exact=p.log_Z)
    assert abs(eu.value - kl_pq) < 4 * eu.stderr

    # normalized ESS -> 1 / E_q[w²] with E_q[w²] = (s² / sqrt(2 s² - 1))^d
    ess_limit = (math.sqrt(2 * s ** 2 - 1) / s ** 2) ** d
    ess = M.ess_metric(log_w, seed=0)
    assert ess.value == pytest.approx(est.ess) and 0 < ess.stderr < 0.1
    assert abs(ess.value - ess_limit) < 4 * ess.stderr


# -- Wasserstein ------------------------------------------------------------------------------
def test_w2_1d_exact_against_quantile_grids_and_pot():
    import ot

    n, m = 400, 300
    a = torch.as_tensor(stats.norm.ppf((torch.arange(n) + 0.5).numpy() / n))
    b = 1.0 + 2.0 * torch.as_tensor(stats.norm.ppf((torch.arange(m) + 0.5).numpy() / m))
    got = float(M.w2_1d_squared(a, b))
    assert got == pytest.approx(float(ot.wasserstein_1d(a.numpy(), b.numpy(), p=2)), rel=1e-10)
    # quantile grids of N(0, 1) and N(1, 2²): W2² = 1 + 1 up to the grid's tail truncation
    assert got == pytest.approx(2.0, abs=0.03)
    cols = torch.stack([a, a + 1], 1)
    assert torch.allclose(M.w2_1d_squared(cols, cols), torch.zeros(2, dtype=torch.float64))


def test_w2_exact_between_gaussians_within_bias_and_error(dtype):
    m2, s2 = torch.tensor([1.0, -0.5]), torch.tensor([2.0, 0.5])
    true = _gauss_w2([0, 0], [1, 1], m2, s2)
    x, y = _normal(800, [0, 0], [1, 1], 10, dtype), _normal(800, m2, s2, 20, dtype)
    est = M.w2_exact(x, y)
    assert est.info["method"] == "exact" and est.stderr > 0
    # |W2(x_n, y_n) - W2(p, q)| <= W2(x_n, p) + W2(y_n, q), each bounded by the W2 to an independent sample
    bias_x = M.w2_exact(_normal(800, [0, 0], [1, 1], 1), _normal(800, [0, 0], [1, 1], 2)).value
    bias_y = M.w2_exact(_normal(800, m2, s2, 3), _normal(800, m2, s2, 4)).value
    assert abs(est.value - true) < bias_x + bias_y + 3 * est.stderr
    # the empirical-measure error behind that bias shrinks with n
    small = M.w2_exact(_normal(100, [0, 0], [1, 1], 1), _normal(100, [0, 0], [1, 1], 2)).value
    assert small > bias_x


def test_sliced_w2_against_closed_form():
    d, n, s = 3, 2000, 1.5
    mean = torch.tensor([1.0, 0.0, -1.0])
    true = math.sqrt(float((mean ** 2).sum()) / d + (1 - s) ** 2)  # isotropic covariances
    x, y = _normal(n, torch.zeros(d), torch.ones(d), 0), _normal(n, mean, s * torch.ones(d), 1)
    est = M.sliced_w2(x, y, num_projections=256, seed=0)
    bias = (M.sliced_w2(x, _normal(n, torch.zeros(d), torch.ones(d), 2)).value
            + M.sliced_w2(y, _normal(n, mean, s * torch.ones(d), 3)).value)
    assert est.info["method"] == "sliced" and est.stderr > 0
    assert abs(est.value - true) < bias + 3 * est.stderr
    # dispatch: exact for small n, sliced beyond max_exact
    assert M.w2(x[:50], y[:50]).info["method"] == "exact"
    assert M.w2(x, y, max_exact=1000).info["method"] == "sliced"


# -- kernel statistics ------------------------------------------------------------------------
def _expected_gauss_kernel(m1, v1, m2, v2, h, d):
    """E exp(-|X - Y|² / (2h²)) for independent X ~ N(m1, v1 I), Y ~ N(m2, v2 I) in d dims."""
    v = v1 + v2
    return (h * h / (h * h + v)) ** (d / 2) * math.exp(-0.5 * float(((m1 - m2) ** 2).sum()) / (h * h + v))


def test_mmd_identical_distributions_near_zero(dtype):
    x, y = _normal(600, [0, 0], [1, 1], 0, dtype), _normal(600, [0, 0], [1, 1], 1, dtype)
    r = M.mmd(x, y)
    assert r.stderr > 0 and abs(r.value) < 3 * r.stderr
    # median heuristic: median distance between N(0, I₂) points is sqrt(2) * sqrt(2 ln 2)
    assert r.info["bandwidth"] == pytest.approx(math.sqrt(2) * math.sqrt(2 * math.log(2)), rel=0.05)


def test_mmd_between_gaussians_closed_form():
    d, h, n = 2, 1.5, 600
    m1, m2 = torch.zeros(d), torch.tensor([1.0, 0.5])
    v1, v2 = 1.0, 0.5 ** 2
    x, y = _normal(n, m1, math.sqrt(v1) * torch.ones(d), 5), _normal(n, m2, math.sqrt(v2) * torch.ones(d), 6)
    closed = (_expected_gauss_kernel(m1, v1, m1, v1, h, d) + _expected_gauss_kernel(m2, v2, m2, v2, h, d)
              - 2 * _expected_gauss_kernel(m1, v1, m2, v2, h, d))
    r = M.mmd(x, y, bandwidth=h)
    assert closed > 10 * r.stderr  # the test has power
    assert abs(r.value - closed) < 4 * r.stderr


def _mean_abs_normal(mu, s):
    """E|Z| for Z ~ N(mu, s²)."""
    return s * math.sqrt(2 / math.pi) * math.exp(-mu * mu / (2 * s * s)) + mu * (1 - 2 * stats.norm.cdf(-mu / s))


def test_energy_distance_1d_closed_form(dtype):
    n, (mu1, s1), (mu2, s2) = 800, (0.0, 1.0), (0.7, 1.5)
    x, y = _normal(n, [mu1], [s1], 7, dtype), _normal(n, [mu2], [s2], 8, dtype)
    closed = (2 * _mean_abs_normal(mu1 - mu2, math.hypot(s1, s2))
              - _mean_abs_normal(0, math.sqrt(2) * s1) - _mean_abs_normal(0, math.sqrt(2) * s2))
    r = M.energy_distance(x, y)
    assert closed > 5 * r.stderr and abs(r.value - closed) < 4 * r.stderr
    same = M.energy_distance(x, _normal(n, [mu1], [s1], 9, dtype))
    assert abs(same.value) < 3 * same.stderr


# -- modes ------------------------------------------------------------------------------------
def test_mode_coverage_mixture():
    t = T.get("gmm9")
    x = t.sample(3000, _gen(0))
    cov = M.mode_coverage(x, t)
    assert cov.coverage.value == 1.0 and cov.fractions.shape == (9,) and cov.kind == "mixture"
    assert cov.z_scores().abs().max() < 4.5
    assert cov.tv.value < 0.5 * float(cov.stderr.sum()) * 3  # TV of an exact sampler: multinomial noise only
    collapsed = t.means[0] + 0.1 * torch.randn(500, 2, generator=_gen(1), dtype=torch.float64)
    c2 = M.mode_coverage(collapsed, t)
    assert c2.coverage.value == pytest.approx(1 / 9) and c2.tv.value == pytest.approx(8 / 9)


def test_mode_coverage_manywell():
    t = T.get("manywell", dim=8)
    x = t.sample(3000, _gen(0))
    cov = M.mode_coverage(x, t)
    assert cov.fractions.shape == (4,) and cov.coverage.value == 1.0 and cov.kind == "wells"
    assert cov.z_scores().abs().max() < 4.5
    right_only = x.clone()
    right_only[:, 0::2] = right_only[:, 0::2].abs()
    c2 = M.mode_coverage(right_only, t)
    assert torch.equal(c2.fractions, torch.ones(4, dtype=torch.float64)) and c2.coverage.value == 0.0
    assert c2.tv.value == pytest.approx(1 - t.prob_right_well)
    with pytest.raises(ValueError, match="assign_modes"):  # a target with no mode structure
        M.mode_coverage(x, T.get("gaussian", dim=x.shape[1]))


# -- energies ---------------------------------------------------------------------------------
def test_energy_histogram_w2_closed_form():
    d, s, n = 4, 1.2, 3000
    t = T.get("gaussian", dim=d)  # energy ½|x|² + c: ½ χ²_d under N(0, I), scaled by s² under N(0, s² I)
    x, y = t.sample(n, _gen(0)), s * t.sample(n, _gen(1))
    true = (s ** 2 - 1) * math.sqrt(0.25 * (2 * d + d * d))  # W2(aQ, bQ) = |a - b| sqrt(E Q²)
    r = M.energy_histogram_w2(x, y, t)
    bias = (M.energy_histogram_w2(x, t.sample(n, _gen(2)), t).value
            + M.energy_histogram_w2(y, s * t.sample(n, _gen(3)), t).value)
    assert r.stderr > 0 and abs(r.value - true) < bias + 3 * r.stderr
    # a plain callable works too (1-D W2 between N(0, 1) and N(1, 2²) = sqrt(2))
    a, b = _normal(n, [0.0], [1.0], 4), _normal(n, [1.0], [2.0], 5)
    r1 = M.energy_histogram_w2(a, b, lambda z: z[:, 0])
    bias1 = (M.energy_histogram_w2(a, _normal(n, [0.0], [1.0], 6), lambda z: z[:, 0]).value
             + M.energy_histogram_w2(b, _normal(n, [1.0], [2.0], 7), lambda z: z[:, 0]).value)
    assert abs(r1.value - math.sqrt(2)) < bias1 + 3 * r1.stderr


def test_metric_is_a_value_stderr_pair():
    m = M.Metric(1.5, 0.25)
    value, stderr = m
    assert (value, stderr) == (1.5, 0.25) and "±" in str(m)
