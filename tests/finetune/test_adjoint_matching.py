"""Exactness checks of Adjoint Matching on diagonal Gaussian bases (closed-form velocities).

Base p_base = N(m, diag(s^2)); reward r = b^T x - 1/2 sum lam (x - c)^2; p* = N(m*, diag(s*^2)).
For a Gaussian base the base drift b(x, t) = v + w(t)(t v - x) is linear in x with slope
beta(t) = dv/dx + w (t dv/dx - 1), dv/dx = (t s^2 - (1 - t)) / V(t), V = (1-t)^2 + t^2 s^2,
so the lean adjoint is a_k = prod_{j>=k} (1 + h beta(t_j)) a_K exactly, and for the exactly
memoryless sigma its continuous limit is a(t) = (s^2 t / V(t)) a(1).
"""

import math

import pytest
import torch

from logz.finetune.adjoint_matching import AdjointMatching
from logz.finetune.closed_form import (GaussianMixtureVelocity, QuadraticReward, fitted_gaussian_w2,
                                       gaussian_w2)
from logz.finetune.noise import FlowSDE, MemorylessNoise
from logz.sde import uniform_grid
from logz.sde.adjoint import lean_adjoint



M, S2 = [1.0, -0.5], [0.5, 2.0]


def _slope(t, s2, noise):
    t = torch.as_tensor(t, dtype=torch.float64)
    V = (1 - t) ** 2 + t ** 2 * s2
    dv = (t * s2 - (1 - t)) / V
    w = noise(t) ** 2 / (2 * (1 - t))
    return dv + w * (t * dv - 1)


def _am(reward, num_steps, dtype=torch.float64, noise=None, **kw):
    base = GaussianMixtureVelocity.gaussian(M, S2)
    return AdjointMatching(base, reward, num_steps=num_steps, dtype=dtype, noise=noise, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["linear", "quadratic"])
def test_lean_adjoint_matches_discrete_closed_form_per_step(kind, dtype):
    kw = dict(b=[1.0, -0.5]) if kind == "linear" else dict(lam=[2.0, 0.5], c=[0.0, 1.0])
    rew = QuadraticReward(2, **kw)
    am = _am(rew, 16, dtype=dtype, batch_size=32)
    traj = am.simulate(32, generator=torch.Generator().manual_seed(1))
    _, grad = am.reward_and_grad(traj.states[-1])
    a = am.lean_adjoint(traj.states, grad)
    t = am.times.double()
    s2 = torch.tensor(S2, dtype=torch.float64)
    h = 1.0 / 16
    factors = 1 + h * torch.stack([_slope(t[k], s2, am.noise) for k in range(16)])  # [K, d]
    phi = torch.ones(17, 2, dtype=torch.float64)
    for k in range(15, 0, -1):
        phi[k] = phi[k + 1] * factors[k]
    phi[0] = phi[1]  # a_0 is not integrated (u_k pairs with a_{k+1})
    expected = phi[:, None, :] * (-grad.double())[None]
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(a.double(), expected, rtol=tol, atol=tol)


def test_lean_adjoint_converges_to_continuous_first_order():
    """Exactly memoryless sigma (offset 0): a(t)/a(1) -> s^2 t / V(t); error halves with h.
    (The Gaussian base's Jacobian does not depend on x, so any states will do.)"""
    s2 = torch.tensor(S2, dtype=torch.float64)
    base = GaussianMixtureVelocity.gaussian(M, S2)
    sde = FlowSDE(base, MemorylessNoise(0.0))
    a1 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    errors = []
    for K in (20, 40, 80):
        t = uniform_grid(1.0, K, dtype=torch.float64)
        states = torch.randn(K + 1, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(K))
        a = lean_adjoint(sde.f, states, t, a1, skip_first=True)
        V = (1 - t[:, None]) ** 2 + t[:, None] ** 2 * s2
        cont = (s2 * t[:, None] / V)[:, None, :] * a1[None]
        mid = t >= 0.2
        errors.append(float((a - cont)[mid].abs().max()))
    assert errors[1] < 0.6 * errors[0] and errors[2] < 0.6 * errors[1], errors


def test_regression_target_is_optimal_velocity_for_linear_reward():
    """Linear reward: the lean adjoint is deterministic and the regression target
    -sigma^2 a_{k+1} / kappa equals v*_ft - v_base = S b (1 - t) / V(t) up to O(h)."""
    b = torch.tensor([1.0, -0.5], dtype=torch.float64)
    s2 = torch.tensor(S2, dtype=torch.float64)
    rew = QuadraticReward(2, b=b)
    base = GaussianMixtureVelocity.gaussian(M, S2)
    star = base.tilt(rew)
    torch.testing.assert_close(star.means[0], torch.tensor(M, dtype=torch.float64) + s2 * b)
    errors = []
    for K in (20, 40, 80):
        am = _am(rew, K, batch_size=8)
        traj = am.simulate(8)
        _, grad = am.reward_and_grad(traj.states[-1])
        a = am.lean_adjoint(traj.states, grad)
        t = am.times[:-1]
        sig, kap = am.noise(t).view(-1, 1, 1), am.sde.kappa(t).view(-1, 1, 1)
        target = -sig ** 2 * a[1:] / kap  # [K, B, d]
        x = traj.states[:-1]
        exact = torch.stack([star(x[k], t[k]) - base(x[k], t[k]) for k in range(K)])
        closed = (s2 * b * (1 - t[:, None]) / ((1 - t[:, None]) ** 2 + t[:, None] ** 2 * s2))
        torch.testing.assert_close(exact, closed[:, None, :].expand_as(exact))
        mid = (t >= 0.2) & (t <= 0.8)
        errors.append(float((target - exact)[mid].abs().max()))
    assert errors[2] < 0.6 * errors[1] < 0.36 * errors[0], errors


def test_exact_finetuned_velocity_zeroes_the_conditional_residual_quadratic():
    """With v_ft = exact velocity of p* (quadratic reward), paths follow p* and the
    Adjoint Matching residual has zero conditional mean given X_k (OLS on [1, X_k]);
    with v_ft = v_base it does not. Tolerance: 4 OLS standard errors + O(h) drift,
    the latter bounded by 10% of the base model's residual slope."""
    rew = QuadraticReward(2, lam=[2.0, 0.5], c=[0.0, 1.0])
    base = GaussianMixtureVelocity.gaussian(M, S2)
    star = base.tilt(rew)
    g = torch.Generator().manual_seed(3)
    n, K = 4000, 40
    coefs = {}
    for name, model in (("exact", star), ("base", base)):
        am = AdjointMatching(base, rew, model=model, num_steps=K, dtype=torch.float64)
        traj = am.simulate(n, generator=g)
        _, grad = am.reward_and_grad(traj.states[-1])
        a = am.lean_adjoint(traj.states, grad)
        steps = torch.tensor([K // 4, K // 2, 3 * K // 4])
        with torch.no_grad():
            res = am.residuals(traj.states, a, steps)  # [3, n, d]
        X = torch.cat([torch.ones(3, n, 1, dtype=torch.float64), traj.states[steps]], -1)
        out = []
        for j in range(3):
            sol = torch.linalg.lstsq(X[j], res[j]).solution  # [3, d]
            resid = res[j] - X[j] @ sol
            cov = torch.linalg.inv(X[j].T @ X[j])
            se = (resid.var(0)[None, :] * torch.diagonal(cov)[:, None]).sqrt()
            out.append((sol, se))
        coefs[name] = out
        if name == "exact":  # terminal law is p* within sampling error (+ Euler bias)
            x1 = traj.states[-1]
            mu, var = star.means[0], star.variances[0]
            z = (x1.mean(0) - mu) / (var / n).sqrt()
            assert bool((z.abs() < 4 + 0.05 * math.sqrt(n)).all()), z
    for (sol, se), (sol_b, _) in zip(coefs["exact"], coefs["base"]):
        assert bool((sol.abs() <= 4 * se + 0.1 * sol_b.abs().max()).all()), (sol, se, sol_b)
        assert float(sol_b.abs().max()) > 10 * float(se.max())  # the base is clearly not optimal


def test_memoryless_base_sde_preserves_base_law():
    """Uncontrolled memoryless SDE (K = 40, offset h) reproduces p_base: mean within sampling error."""
    rew = QuadraticReward(2, b=[1.0, -0.5])
    base = GaussianMixtureVelocity.gaussian(M, S2)
    am = AdjointMatching(base, rew, model=base, num_steps=40, dtype=torch.float64)
    x = am.sample(8000, method="sde", generator=torch.Generator().manual_seed(0))
    se = (torch.tensor(S2, dtype=torch.float64) / 8000).sqrt()
    assert bool(((x.mean(0) - torch.tensor(M, dtype=torch.float64)).abs() < 4 * se).all())
    # variance: relative sampling sd sqrt(2/n) ~ 0.016; allow 4 sd + an Euler O(h) = 0.025 term
    rel = x.var(0) / torch.tensor(S2, dtype=torch.float64) - 1
    assert bool((rel.abs() < 4 * math.sqrt(2 / 8000) + 1.0 / 40).all()), rel


def _w2_tolerance(star, base, n):
    """3 sd of the fitted-Gaussian W2 under exact sampling (mean part sqrt(tr S*/n)) plus
    10% of the distance from base to p* (the optimization/discretization allowance)."""
    mu_s, cov_s = star.mean_and_cov()
    mu_b, cov_b = base.mean_and_cov()
    return 3 * math.sqrt(float(torch.trace(cov_s)) / n) + 0.1 * gaussian_w2(mu_b, cov_b, mu_s, cov_s)


@pytest.mark.parametrize("kind", ["linear", "quadratic"])
def test_short_finetune_reaches_tilted_gaussian(kind):
    kw = dict(b=[1.0, -0.5]) if kind == "linear" else dict(lam=[2.0, 0.5], c=[0.0, 1.0])
    rew = QuadraticReward(2, **kw)
    base = GaussianMixtureVelocity.gaussian(M, S2)
    star = base.tilt(rew)
    am = AdjointMatching(base, rew, num_steps=20, batch_size=64, lr=2e-3, seed=0)
    am.fit(200)
    n = 10_000
    x = am.sample(n, method="sde", generator=torch.Generator().manual_seed(5))
    mu, cov = star.mean_and_cov()
    w2 = fitted_gaussian_w2(x, mu, cov)
    assert w2 < _w2_tolerance(star, base, n), w2
    assert am.history.loss[-1] < am.history.loss[0]
