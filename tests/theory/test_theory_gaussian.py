"""Gaussian data: exact score vs autograd, exact flow vs an ODE solve, L1, bad covariances."""

import math

import pytest
import torch

from logz.theory import GaussianData, make_process, prior_law, solve_pf_ode


@pytest.mark.parametrize("name", ["vp", "vp-linear", "subvp", "ve"])
def test_score_is_the_gradient_of_log_p(name, dtype):
    p = make_process(name)
    data = GaussianData.random(4, seed=1, dtype=dtype)
    x = torch.randn(5, 4, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 2
    for frac in (0.0, 0.1, 0.5, 1.0):
        s = frac * p.horizon
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(data.log_prob(xr, p, s).sum(), xr)
        tol = 1e-10 if dtype == torch.float64 else 2e-4
        assert torch.allclose(data.score(x, p, s), grad, rtol=tol, atol=tol * float(grad.abs().max()))


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_exact_flow_map_against_a_fine_ode_solve(name):
    p = make_process(name)
    T = p.horizon
    data = GaussianData.random(3, seed=2)
    y0 = prior_law(data, p, T).sample(4, torch.Generator().manual_seed(1))
    P, q = data.flow_map(p, T)
    # RK4 on the PF-ODE with the solve-based score (not the eigen form the flow map uses):
    # small, and shrinking at RK4's rate 2^4 when the step halves
    errs = [float((solve_pf_ode(lambda x, s: data.score(x, p, s), p, y0, T, K, "rk4")
                   - (y0 @ P.T + q)).abs().max()) for K in (200, 400)]
    assert errs[1] < 1e-7 and errs[0] / errs[1] > 12, errs
    # and the flow carries p_T exactly to p_0
    assert float(data.flow(data.marginal(p, T), p, T).w2(data.law)) < 1e-12


def test_time_lipschitz_profile_bounds_the_time_derivative():
    p = make_process("vp-linear")
    data = GaussianData.random(3, seed=3)
    prof = data.time_lipschitz_profile(p)
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(200, 3, generator=gen, dtype=torch.float64),
                   1e3 * data.evecs.T])  # far along the eigenvectors the x-part dominates
    worst = 0.0
    for s in torch.linspace(0.01, 0.99, 9, dtype=torch.float64).tolist():
        eps = 1e-6
        ds = (data.score(x, p, s + eps) - data.score(x, p, s - eps)) / (2 * eps)
        ratio = ds.norm(dim=-1) / (1 + x.norm(dim=-1)) / float(prof(s))
        assert float(ratio.max()) <= 1 + 1e-5
        worst = max(worst, float(ratio.max()))
    assert worst > 0.5   # and it is not vacuous
    assert data.time_lipschitz(p, 1.0) >= float(prof(torch.linspace(0, 1, 11, dtype=torch.float64)).max())


def test_constants_of_the_data():
    data = GaussianData.isotropic(5, var=0.5, mean=1.0)
    assert math.isclose(data.m0, 2.0) and math.isclose(data.L0, 2.0)
    assert math.isclose(data.x0_norm, math.sqrt(5 + 2.5))


def test_bad_covariances():
    f64 = torch.float64
    with pytest.raises(ValueError, match="not positive definite"):
        GaussianData(torch.zeros(2, dtype=f64), torch.diag(torch.tensor([1.0, 0.0], dtype=f64)))
    with pytest.raises(ValueError, match="not positive definite"):
        GaussianData(torch.zeros(2, dtype=f64), torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=f64))
    with pytest.raises(ValueError, match="not symmetric"):
        GaussianData(torch.zeros(2, dtype=f64), torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=f64))
    with pytest.raises(ValueError, match="need mean"):
        GaussianData(torch.zeros(3, dtype=f64), torch.eye(2, dtype=f64))
