"""Interpolants: closed-form mixture velocities against autograd of the closed-form marginal,
velocity/score conversions, the SDE with free w(t), FlowMatching on each path."""

import math

import pytest
import torch

from logz.finetune import FlowMatching, GaussianMixtureVelocity
from logz.finetune.interpolants import (DIFFUSIONS, INTERPOLANTS, InterpolantSDE, make_diffusion,
                                        make_interpolant)

PATHS = sorted(INTERPOLANTS)


def mixture(interpolant, dtype=torch.float64):
    return GaussianMixtureVelocity([0.3, 0.7], [[1.0, -0.5], [-1.0, 1.5]], [[0.2, 0.5], [0.4, 0.1]],
                                   interpolant=interpolant).to(dtype)


@pytest.mark.parametrize("name", PATHS)
def test_path_derivatives_against_autograd(name):
    path = make_interpolant(name)
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64, requires_grad=True)
    for f, df in ((path.alpha, path.d_alpha), (path.sigma, path.d_sigma)):
        (g,) = torch.autograd.grad(f(t).sum(), t)
        assert torch.allclose(g, df(t.detach()), rtol=1e-10, atol=1e-12)
    # boundary values: noise at t = 0 (alpha(0) = 0 except VP's 6.6e-3), data at t = 1
    one = torch.tensor(1.0, dtype=torch.float64)
    assert float(path.alpha(one)) == pytest.approx(1.0) and float(path.sigma(one)) == pytest.approx(0.0)


@pytest.mark.parametrize("name", PATHS)
def test_mixture_velocity_solves_the_continuity_equation(name):
    # d/dt log p_t + div v + v . grad log p_t = 0 with p_t the closed-form marginal, all by autograd
    vel = mixture(name)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for t0 in (0.1, 0.45, 0.9):
        t = torch.tensor(t0, dtype=torch.float64, requires_grad=True)
        xs = x.clone().requires_grad_(True)
        logp = vel.log_prob_t(xs, t)
        (dt_logp,) = torch.autograd.grad(logp.sum(), t, retain_graph=True)
        # d/dt of a sum over the batch: per-sample time derivative needs one grad per row
        dt_rows = torch.stack([torch.autograd.grad(lp, t, retain_graph=True)[0] for lp in logp])
        (score,) = torch.autograd.grad(logp.sum(), xs)
        xs2 = x.clone().requires_grad_(True)
        v = vel(xs2, torch.tensor(t0, dtype=torch.float64))
        div = sum(torch.autograd.grad(v[:, i].sum(), xs2, retain_graph=True)[0][:, i] for i in range(2))
        residual = dt_rows + div + (v * score).sum(-1)
        assert float(residual.detach().abs().max()) < 1e-9, (name, t0, residual)
        assert torch.allclose(dt_rows.sum(), dt_logp)


@pytest.mark.parametrize("name", PATHS)
def test_velocity_score_conversions_against_autograd_score(name):
    vel, path = mixture(name), make_interpolant(name)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for t0 in (0.2, 0.7):
        t = torch.tensor(t0, dtype=torch.float64)
        xs = x.clone().requires_grad_(True)
        (score,) = torch.autograd.grad(vel.log_prob_t(xs, t).sum(), xs)
        assert torch.allclose(vel.score(x, t), score, atol=1e-10)
        assert torch.allclose(path.velocity_from_score(score, x, t), vel(x, t), atol=1e-10)
        assert torch.allclose(path.score_from_velocity(vel(x, t), x, t), score, atol=1e-9)
        eps = -path.sigma(t) * score   # E[x0 | x_t]
        assert torch.allclose(path.velocity_from_noise(eps, x, t), vel(x, t), atol=1e-10)


def test_linear_is_the_default_and_score_at_t0_is_exact():
    base = GaussianMixtureVelocity([1.0], [[0.5, -1.0]], [[0.3, 2.0]])
    assert base.interpolant.name == "linear"
    path = make_interpolant("linear")
    x = torch.randn(4, 2, dtype=torch.float64)
    zero = torch.tensor(0.0, dtype=torch.float64)
    assert torch.allclose(path.score_from_velocity(base.double()(x, zero), x, zero), -x)


def test_training_pairs_and_bad_names():
    path = make_interpolant("gvp")
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    t = path.sample_time(4, g)
    xt, target = path.pair(x0, x1, t)
    tc = t[:, None]
    assert torch.allclose(xt, torch.sin(math.pi * tc / 2) * x1 + torch.cos(math.pi * tc / 2) * x0)
    assert torch.allclose(target, math.pi / 2 * (torch.cos(math.pi * tc / 2) * x1 - torch.sin(math.pi * tc / 2) * x0))
    assert torch.equal(path.pair(x0, x1, t, "noise")[1], x0)
    with pytest.raises(ValueError, match="prediction"):
        path.pair(x0, x1, t, "x1")
    with pytest.raises(ValueError, match="unknown interpolant"):
        make_interpolant("cosine")
    with pytest.raises(ValueError, match="unknown diffusion"):
        make_diffusion("huge", path)
    assert make_interpolant("vp").t_max < 1.0
    # SiT's forms: norm multiplies, except "decreasing" = 0.25 (norm cos(pi t) + 1)^2
    tt = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    assert torch.allclose(make_diffusion("decreasing", path, 2.0)(tt), 0.25 * (2 * torch.cos(math.pi * tt) + 1) ** 2)
    assert torch.allclose(make_diffusion("sigma", path, 2.0)(tt), 2 * path.sigma(tt))
    assert torch.allclose(make_diffusion("sbdm", make_interpolant("linear"))(tt[1:2]), (1 - tt[1:2]) / tt[1:2])


def test_sde_rejects_infinite_diffusion_and_ode_form_is_the_ode():
    vel = GaussianMixtureVelocity.gaussian([1.0, -1.0], [0.5, 0.2])
    with pytest.raises(ValueError, match="t_min"):
        InterpolantSDE(vel, "linear", diffusion="sbdm").sample(torch.zeros(3, 2), 4)
    x0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    from logz.sde import odeint, uniform_grid
    ode = odeint(vel, x0, uniform_grid(1.0, 5), "euler")
    sde = InterpolantSDE(vel, "linear", diffusion="ode").sample(x0, 5)
    assert torch.allclose(ode, sde, atol=1e-6)
    assert set(DIFFUSIONS) >= {"ode", "sigma", "sbdm", "linear", "constant"}


@pytest.mark.parametrize("name", PATHS)
def test_flow_matching_trains_on_each_path(name):
    # 2-D Gaussian data: a short fit must cut the fitted-Gaussian W2 to the data of the
    # untrained net (same seed, same sampler) at least fourfold
    from logz.finetune import fitted_gaussian_w2
    data = GaussianMixtureVelocity.gaussian([1.0, -0.5], [0.3, 0.6])
    mean, cov = data.mean_and_cov()
    w2 = {}
    for iters in (0, 300):
        model = FlowMatching(2, hidden=32, depth=2, batch_size=128, seed=0, interpolant=name)
        model.fit(data, iterations=iters)
        gen = torch.Generator().manual_seed(1)
        w2[iters] = fitted_gaussian_w2(model.sample(4000, num_steps=32, method="midpoint", generator=gen),
                                       mean, cov)
    assert model.interpolant.name == name
    assert w2[300] < 0.25 * w2[0], (name, w2)
