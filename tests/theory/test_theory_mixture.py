"""Gaussian mixtures: exact score, closed-form log-concavity, W2 by exact OT with error bars."""

import math

import pytest
import torch

from logz.theory import GaussianMixtureData, check_mixture, make_process, mixture_table


def test_mixture_score_is_the_gradient_of_log_p():
    p = make_process("vp-linear")
    mix = GaussianMixtureData.two_modes(3, separation=2.0, std=0.7)
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    for s in (0.0, 0.2, 1.0):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(mix.log_prob(xr, p, s).sum(), xr)
        assert torch.allclose(mix.score(x, p, s), grad, rtol=1e-10, atol=1e-12)


def test_log_concavity_constant_is_the_minimal_curvature():
    # m0 = min over x of the smallest eigenvalue of -Hess log p_0: along e_1 through the origin
    p = make_process("vp")
    for a in (0.5, 1.5):
        mix = GaussianMixtureData.two_modes(2, separation=a, std=1.0)
        xs = torch.linspace(-4, 4, 161, dtype=torch.float64)
        curv = []
        for x1 in xs.tolist():
            x = torch.tensor([x1, 0.3], dtype=torch.float64)
            H = torch.autograd.functional.hessian(lambda z: -mix.log_prob(z[None], p, 0.0)[0], x)
            curv.append(float(torch.linalg.eigvalsh(H).min()))
        m0, L0 = mix.log_concavity
        assert math.isclose(min(curv), m0, rel_tol=1e-8, abs_tol=1e-10)
        assert max(curv) <= L0 + 1e-10


def test_samples_have_the_mixture_moments():
    mix = GaussianMixtureData.two_modes(2, separation=1.5, std=0.5)
    n = 40_000
    x = mix.sample(n, torch.Generator().manual_seed(1))
    var1 = 1.5 ** 2 + 0.25   # per-coordinate variances of the mixture
    assert abs(float(x[:, 0].mean())) < 4.5 * math.sqrt(var1 / n)
    emp = float(x[:, 0].var())
    # var of the sample variance ~ (E x^4 - var^2)/n; E x1^4 = a^4 + 6 a^2 s^2 + 3 s^4
    m4 = 1.5 ** 4 + 6 * 1.5 ** 2 * 0.25 + 3 * 0.25 ** 2
    assert abs(emp - var1) < 4.5 * math.sqrt((m4 - var1 ** 2) / n)
    assert math.isclose(mix.x0_norm, math.sqrt(var1 + 0.25))


def test_check_mixture_marks_where_the_bound_stops_applying():
    rows = check_mixture("vp", dim=1, separations=(0.5, 2.0), K=4, num_samples=300, repeats=3)
    log_concave, beyond = rows
    assert log_concave.m0 > 0 and log_concave.bound is not None
    assert beyond.m0 < 0 and beyond.bound is None
    assert "data not strongly log-concave" in beyond.note
    for r in rows:
        assert r.w2_stderr > 0 and r.floor_stderr > 0 and r.w2 > 0
    # the sample estimate is biased up by about the sampling floor of each side (docs/theory.md)
    r = log_concave
    assert r.w2 <= r.bound + 2 * r.floor + 4.5 * (r.w2_stderr + r.floor_stderr)
    assert "not strongly log-concave" in mixture_table(rows)


def test_mixture_bad_input():
    with pytest.raises(ValueError, match="std > 0"):
        GaussianMixtureData.two_modes(2, separation=1.0, std=0.0)
    with pytest.raises(ValueError, match="not positive definite"):
        GaussianMixtureData(torch.ones(1), torch.zeros(1, 2), torch.zeros(1, 2, 2))
