"""The shared core against closed forms and torch.distributions."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from logz.sde import (BrownianReference, ConstantSchedule, CosineSchedule, GeometricSchedule,
                      LinearSchedule, VPReference, cosine_grid, integrate, path_log_densities,
                      power_grid, uniform_grid)


def _se_var(var, n):
    # standard error of a sample variance of Gaussian data: var * sqrt(2 / (n - 1))
    return var * math.sqrt(2.0 / (n - 1))


@pytest.mark.parametrize("schedule", [ConstantSchedule(2.0), LinearSchedule(0.1, 5.0, 1.0),
                                      CosineSchedule(1.0), GeometricSchedule(0.1, 3.0, 1.0)])
def test_schedule_integral_matches_quadrature(schedule):
    t = torch.linspace(0, 0.95, 2001, dtype=torch.float64)
    rate = schedule(t)
    numeric = torch.trapezoid(rate, t)
    assert torch.allclose(schedule.integral(0.0, 0.95), numeric, rtol=1e-5)


def test_ou_euler_maruyama_matches_exact_moments(dtype):
    """EM on dX = -theta X dt + g dW from x0: mean x0 e^{-theta t}, var g^2 (1 - e^{-2 theta t}) / 2 theta."""
    theta, g_val, T, n, N = 1.5, 0.8, 1.0, 20000, 400

    class OU:
        def f(self, x, t):
            return -theta * x

        def g(self, t):
            return torch.as_tensor(g_val)

    x0 = torch.full((n, 2), 2.0, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    traj = integrate(OU(), x0, uniform_grid(T, N, dtype=dtype), generator=gen, keep_path=False)
    mean = 2.0 * math.exp(-theta * T)
    var = g_val ** 2 * (1 - math.exp(-2 * theta * T)) / (2 * theta)
    # EM bias is O(dt) = 2.5e-3 relative; sampling error 4 standard errors
    tol_mean = 4 * math.sqrt(var / n) + 5 * mean * theta * T / N
    tol_var = 4 * _se_var(var, n) + 5 * var * theta * T / N
    assert (traj.final.mean(0).double() - mean).abs().max() < tol_mean
    assert (traj.final.var(0).double() - var).abs().max() < tol_var
    assert traj.states is None and traj.final.dtype == dtype


@pytest.mark.parametrize("ref", [BrownianReference(math.sqrt(0.2)), BrownianReference(1.0, init_std=0.5),
                                 VPReference(LinearSchedule(0.1, 10.0, 1.0), std=2.0)],
                         ids=["brownian0", "brownian-gauss", "vp"])
def test_reference_marginal_and_step_densities(ref, dtype):
    times = uniform_grid(1.0, 20, dtype=dtype)
    n, d = 4000, 3
    gen = torch.Generator().manual_seed(1)
    x0 = ref.sample_initial(n, d, generator=gen, dtype=dtype)
    scheme = "exact"
    traj = integrate(ref, x0, times, generator=gen, scheme=scheme)
    # per-step forward log-density equals torch.distributions on the exact kernel
    a, std = ref.forward_coefficients(times)
    b, r = ref.backward_coefficients(times)
    for k in [0, 7, 19]:
        x, y = traj.states[k].double(), traj.states[k + 1].double()
        lf = Normal(a[k].double() * x, std[k].double()).log_prob(y).sum(-1)
        torch.testing.assert_close(traj.log_forward[k].double(), lf, rtol=1e-4, atol=1e-3)
        if r[k] > 0:
            lb = Normal(b[k].double() * y, r[k].double()).log_prob(x).sum(-1)
            torch.testing.assert_close(traj.log_backward[k].double(), lb, rtol=1e-4, atol=1e-3)
    # terminal variance matches the closed-form marginal
    v = float(ref.marginal_var(1.0))
    assert abs(traj.final.double().var(0).mean() - v) < 4 * _se_var(v, n * d)


@pytest.mark.parametrize("ref", [BrownianReference(math.sqrt(0.2)), BrownianReference(1.0, init_std=0.5),
                                 VPReference(ConstantSchedule(3.0), std=1.5)],
                         ids=["brownian0", "brownian-gauss", "vp"])
def test_uncontrolled_path_ratio_is_terminal_marginal(ref):
    """For the reference itself, log P_B-path / P_F-path = -log p_T(x_T) exactly (bridge identity)."""
    times = power_grid(2.0, 30, 2.0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    x0 = ref.sample_initial(500, 4, generator=gen, dtype=torch.float64)
    log_p0 = torch.zeros(500, dtype=torch.float64) if ref.init_std == 0 else ref.log_marginal(x0, 0.0)
    traj = integrate(ref, x0, times, generator=gen, scheme="exact", log_initial=log_p0,
                     keep_path=False, keep_steps=False)
    torch.testing.assert_close(traj.log_path_ratio, -ref.log_marginal(traj.final, 2.0), rtol=1e-9, atol=1e-9)


def test_bridge_against_joint_gaussian():
    """The backward kernel equals the conditional of the joint Gaussian (X_s, X_t)."""
    ref = BrownianReference(0.7, init_std=0.3)
    s, t = 0.4, 0.9
    vs, vt = float(ref.marginal_var(s)), float(ref.marginal_var(t))
    cov = torch.tensor([[vs, vs], [vs, vt]], dtype=torch.float64)  # Brownian: Cov(X_s, X_t) = v_s
    b, r = ref.backward_coefficients(torch.tensor([s, t], dtype=torch.float64))
    assert math.isclose(float(b[0]), cov[0, 1] / cov[1, 1], rel_tol=1e-12)
    assert math.isclose(float(r[0]) ** 2, cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1], rel_tol=1e-12)
    joint = MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov)
    assert torch.isfinite(joint.log_prob(torch.zeros(2, dtype=torch.float64)))


def test_controlled_step_density_and_rescoring(dtype):
    """log P_F of a controlled step is N(x + g u dt, g^2 dt); re-scoring a stored path reproduces it."""
    ref = BrownianReference(1.0)
    W = torch.tensor([[0.3, -0.2], [0.1, 0.5]], dtype=dtype)

    def control(x, t):
        t = torch.as_tensor(t, dtype=x.dtype)
        tt = t if t.ndim == 0 else t[:, None]
        return x @ W + tt

    times = uniform_grid(1.0, 10, dtype=dtype)
    gen = torch.Generator().manual_seed(3)
    traj = integrate(ref, torch.zeros(64, 2, dtype=dtype), times, control, generator=gen)
    k, dt = 4, 0.1
    x, y = traj.states[k], traj.states[k + 1]
    mean = x + control(x, times[k]) * dt
    lf = Normal(mean.double(), math.sqrt(dt)).log_prob(y.double()).sum(-1)
    torch.testing.assert_close(traj.log_forward[k].double(), lf, rtol=1e-4, atol=1e-3)
    lf_all, lb_all = path_log_densities(ref, traj.states, times, control)
    torch.testing.assert_close(lf_all, traj.log_forward, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(lb_all, traj.log_backward, rtol=1e-5, atol=1e-5)
    assert torch.all(lb_all[0] == 0)  # point-mass start: log P_B := 0 on the first step


def test_exploration_noise_keeps_nominal_density():
    ref = BrownianReference(1.0)
    times = uniform_grid(1.0, 8, dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    traj = integrate(ref, torch.zeros(32, 3, dtype=torch.float64), times, generator=gen, noise_scale=2.0)
    lf, _ = path_log_densities(ref, traj.states, times)
    torch.testing.assert_close(lf, traj.log_forward)
    assert traj.final.var() > 2.0  # inflated behaviour noise (var ~ 4 vs 1)


def test_grids_and_bad_input():
    for grid in [uniform_grid(2.0, 5), power_grid(2.0, 5, 3.0), power_grid(2.0, 5, 2.0, dense_at="start"),
                 cosine_grid(2.0, 5)]:
        assert grid.shape == (6,) and grid[0] == 0 and math.isclose(float(grid[-1]), 2.0, rel_tol=1e-6)
        assert torch.all(grid[1:] > grid[:-1])
    with pytest.raises(ValueError, match="T must be > 0"):
        uniform_grid(0.0, 5)
    with pytest.raises(ValueError, match="num_steps"):
        uniform_grid(1.0, 0)
    with pytest.raises(ValueError, match="strictly increasing"):
        integrate(BrownianReference(1.0), torch.zeros(2, 2), torch.tensor([0.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"\[B, dim\]"):
        integrate(BrownianReference(1.0), torch.zeros(2), uniform_grid(1.0, 3))
    with pytest.raises(ValueError, match="control: u has shape"):
        integrate(BrownianReference(1.0), torch.zeros(2, 2), uniform_grid(1.0, 3), lambda x, t: x[:, :1])
    with pytest.raises(ValueError, match="scheme"):
        integrate(BrownianReference(1.0), torch.zeros(2, 2), uniform_grid(1.0, 3), scheme="rk4")
    with pytest.raises(ValueError, match="diffusion"):
        BrownianReference(-1.0)


def _noise_control(W, V):
    """u = x W + t, log_scale = tanh(x V) / 2: a state- and dimension-dependent learned noise."""

    def control(x, t):
        t = torch.as_tensor(t, dtype=x.dtype)
        tt = t if t.ndim == 0 else t[:, None]
        return x @ W + tt, 0.5 * torch.tanh(x @ V)

    return control


def test_learned_noise_step_density_and_rescoring(dtype):
    """A control returning (u, log_scale): each step is N(x + g u dt, g^2 dt exp(2 log_scale))
    per dimension (checked against torch.distributions.Normal on the stored states), per-step
    and summed log-densities agree, and re-scoring (by the control or by recorded values) too."""
    ref = BrownianReference(0.7)
    W = torch.tensor([[0.3, -0.2, 0.0], [0.1, 0.5, 0.2], [0.0, 0.1, -0.3]], dtype=dtype)
    V = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0], [0.5, 0.0, 0.4]], dtype=dtype)
    control = _noise_control(W, V)
    times = uniform_grid(1.0, 10, dtype=dtype)
    x0 = torch.full((64, 3), 0.5, dtype=dtype)
    traj = integrate(ref, x0, times, control, generator=torch.Generator().manual_seed(5))
    dt, g = 0.1, 0.7
    for k in (0, 4, 9):
        x, y = traj.states[k], traj.states[k + 1]
        u, log_scale = control(x, times[k])
        step = Normal((x + g * u * dt).double(), (g * math.sqrt(dt) * log_scale.exp()).double())
        torch.testing.assert_close(traj.log_forward[k].double(), step.log_prob(y.double()).sum(-1),
                                   rtol=1e-4, atol=1e-3)
    sums = integrate(ref, x0, times, control, generator=torch.Generator().manual_seed(5), keep_steps=False)
    torch.testing.assert_close(sums.final, traj.final)
    torch.testing.assert_close(sums.log_forward_sum, traj.log_forward.sum(0), rtol=1e-5, atol=1e-3)
    lf, lb = path_log_densities(ref, traj.states, times, control)
    torch.testing.assert_close(lf, traj.log_forward, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(lb, traj.log_backward, rtol=1e-5, atol=1e-5)
    recorded = [control(traj.states[k], times[k]) for k in range(10)]
    controls = tuple(torch.stack(v) for v in zip(*recorded))
    lf_rec, _ = path_log_densities(ref, traj.states, times, controls=controls)
    torch.testing.assert_close(lf_rec, lf)


def test_learned_noise_scales_the_terminal_variance():
    """A constant log_scale c and no drift: X_T ~ N(0, g^2 T e^{2c}); sample variance within
    4 of its own standard errors."""
    c, g, T, n = math.log(1.5), 0.8, 2.0, 20000
    times = uniform_grid(T, 8, dtype=torch.float64)

    def control(x, t):
        return torch.zeros_like(x), torch.full_like(x, c)

    traj = integrate(BrownianReference(g), torch.zeros(n, 2, dtype=torch.float64), times, control,
                     generator=torch.Generator().manual_seed(6), keep_path=False)
    var = g * g * T * math.exp(2 * c)
    assert abs(traj.final.var(0) - var).max() < 4 * _se_var(var, n)


def test_learned_noise_bad_shape_is_named():
    times = uniform_grid(1.0, 4, dtype=torch.float64)

    def control(x, t):
        return torch.zeros_like(x), torch.zeros(x.shape[0], 1, dtype=x.dtype)

    with pytest.raises(ValueError, match="control: log_scale has shape"):
        integrate(BrownianReference(1.0), torch.zeros(8, 3, dtype=torch.float64), times, control)


def test_recorded_controls_bad_shape_is_named():
    times = uniform_grid(1.0, 4, dtype=torch.float64)
    states = torch.zeros(5, 8, 3, dtype=torch.float64)
    ok = torch.zeros(4, 8, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"recorded controls \[N, B, d\]: u has shape \(4, 8, 1\)"):
        path_log_densities(BrownianReference(1.0), states, times, controls=ok[..., :1])
    with pytest.raises(ValueError, match=r"recorded controls \[N, B, d\]: log_scale has shape"):
        path_log_densities(BrownianReference(1.0), states, times, controls=(ok, ok[:, :2]))
