"""Exact Gaussian propagation against Monte Carlo of the same discretization."""

import math

import pytest
import torch

from logz.theory import (GaussianData, LipschitzPerturbation, make_perturbation, make_process,
                         prior_law, propagate, solve_pf_ode)

N = 20_000   # Monte Carlo paths; tolerances are 4.5 standard errors of each estimate


def _monte_carlo(data, p, T, K, method, pert, n=N, seed=0, keep_path=False):
    y0 = prior_law(data, p, T).sample(n, torch.Generator().manual_seed(seed))

    def score(x, s):   # the solve-based score on samples, not the propagation's matrices
        out = data.score(x, p, s)
        return out if pert is None else out + pert(x, s)

    return solve_pf_ode(score, p, y0, T, K, method, keep_path=keep_path)


@pytest.mark.parametrize("method", ["exp", "euler", "heun", "rk4"])
@pytest.mark.parametrize("kind", [None, "bias", "lipschitz"])
def test_propagated_law_matches_monte_carlo(method, kind):
    p = make_process("vp-linear")
    T, K = 1.0, 6
    data = GaussianData.random(3, seed=4)
    pert = None if kind is None else make_perturbation(kind, 0.5, data, p)
    law = propagate(data, p, T, K, method, pert).law
    y = _monte_carlo(data, p, T, K, method, pert)
    mean, cov = law.mean, law.cov
    se_mean = (torch.diagonal(cov) / N).sqrt()
    assert bool(((y.mean(0) - mean).abs() <= 4.5 * se_mean).all()), (y.mean(0), mean)
    emp = torch.cov(y.T)
    var = torch.diagonal(cov)
    se_cov = ((var[:, None] * var[None, :] + cov ** 2) / N).sqrt()   # Gaussian sample-covariance s.e.
    assert bool(((emp - cov).abs() <= 4.5 * se_cov).all()), (emp, cov)


def test_score_error_along_the_iterates_matches_monte_carlo():
    p = make_process("vp")
    T, K = p.horizon, 5
    data = GaussianData.random(2, seed=5)
    pert = make_perturbation("lipschitz", 0.3, data, p)
    out = propagate(data, p, T, K, "exp", pert)
    path = _monte_carlo(data, p, T, K, "exp", pert, keep_path=True)
    s_grid = T - torch.linspace(0.0, T, K + 1, dtype=torch.float64)
    sq = torch.stack([pert(path[k], s_grid[k]).pow(2).sum(-1) for k in range(K)])   # [K, N]
    k = int(sq.mean(-1).argmax())
    se = float(sq[k].std()) / math.sqrt(N)
    assert abs(float(sq[k].mean()) - out.score_error ** 2) < 4.5 * se


def test_lipschitz_perturbation_has_norm_m_under_the_true_marginal():
    p = make_process("ve")
    data = GaussianData.random(4, seed=6)
    pert = LipschitzPerturbation(0.7, data, p)
    for s in (0.0, 0.3, 1.0):
        x = data.marginal(p, s).sample(N, torch.Generator().manual_seed(1))
        sq = pert(x, s).pow(2).sum(-1)
        assert abs(float(sq.mean()) - 0.49) < 4.5 * float(sq.std()) / math.sqrt(N)
    bias = make_perturbation("bias", 0.7, data, p)
    assert math.isclose(float(bias(torch.zeros(1, 4, dtype=torch.float64), 0.5).norm()), 0.7)
    assert propagate(data, p, 1.0, 4, "exp", bias).score_error == pytest.approx(0.7)
    assert make_perturbation("bias", 0.0, data, p) is None
    with pytest.raises(ValueError, match="unknown perturbation"):
        make_perturbation("wiggle", 0.1, data, p)
    with pytest.raises(ValueError, match="M must be >= 0"):
        make_perturbation("bias", -0.1, data, p)


def test_float32_propagation_tracks_float64():
    p = make_process("vp-linear")
    d64 = GaussianData.random(5, seed=7)
    d32 = GaussianData(d64.mean.float(), d64.cov.float())
    for method in ("exp", "rk4"):
        w64 = float(propagate(d64, p, 1.0, 32, method).law.w2(d64.law))
        w32 = float(propagate(d32, p, 1.0, 32, method).law.w2(d32.law))
        assert w32 == pytest.approx(w64, rel=1e-3)


def test_exact_prior_and_fine_steps_recover_the_data():
    p = make_process("vp")
    data = GaussianData.random(4, seed=8)
    out = propagate(data, p, p.horizon, 256, "rk4", prior="exact")
    assert float(out.law.w2(data.law)) < 1e-6
    with pytest.raises(ValueError, match="stationary law"):
        propagate(data, make_process("ve"), 1.0, 4, prior="stationary")
    with pytest.raises(ValueError, match="K must be an integer >= 1"):
        propagate(data, p, 1.0, 0)
    with pytest.raises(ValueError, match="unknown PF-ODE method"):
        propagate(data, p, 1.0, 4, "leapfrog")
