"""GFlowNet path losses (TB, VarGrad, DB, SubTB): exact zeros at the closed-form optimum of a
Gaussian target, O(dt) shrinkage with the Euler policy, and SubTB's vectorised form."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from logz.samplers import losses
from logz.samplers.dgfs import DGFS
from logz.sde import BrownianReference, path_log_densities, uniform_grid
from logz.sde.reference import gaussian_log_prob

MEAN, VAR, LOG_Z = [1.0, -0.5], [0.5, 1.5], 0.7


def _log_normal_diag(x: Tensor, mean, var) -> Tensor:
    """log N(x; mean, diag(var)), Tensor[B] (var: a per-coordinate Tensor[dim])."""
    return (-0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)


class GaussianH:
    """Closed forms for p~ = Z N(m, diag v) and the Brownian reference X_0 = 0, X_t ~ N(0, s_t),
    s_t = sigma^2 t, per coordinate. With s = s_T, A = 1/v - 1/s, b = m/v and q = sigma^2 (T - t),

        h_t(x) = E_ref[R(X_T) / p_ref,T(X_T) | X_t = x]
               = Z sqrt(s/v) exp(-m^2/2v) (1 + qA)^(-1/2) exp(-x^2/2q + (b + x/q)^2 / 2P),  P = A + 1/q,

    so log h_t(x) = -1/2 alpha_t x^2 + beta_t x + const, alpha_t = A / (1 + qA), beta_t = b / (1 + qA)
    (also at q = 0, where h_T = R / p_ref,T). The optimal log-flow is log F_t = log p_ref,t + log h_t
    (log F_0 := log h_0(0) = log Z at the point mass), and the discrete-time optimal kernel on a
    step of variance delta = sigma^2 dt is the reference's tilted by h_{k+1}:
    N(x'; (x/delta + beta) / L, 1/L), L = 1/delta + alpha_{k+1}.
    """

    def __init__(self, sigma: float, T: float):
        self.sigma, self.T = sigma, T
        self.m, self.v = torch.tensor(MEAN, dtype=torch.float64), torch.tensor(VAR, dtype=torch.float64)
        self.s = sigma ** 2 * T
        self.A, self.b = 1 / self.v - 1 / self.s, self.m / self.v

    def log_reward(self, x: Tensor) -> Tensor:
        return _log_normal_diag(x, self.m.to(x), self.v.to(x)) + LOG_Z

    def log_h(self, x: Tensor, t: float) -> Tensor:
        q = self.sigma ** 2 * (self.T - t)
        if q <= 0:
            return self.log_reward(x) - gaussian_log_prob(x, 0.0, self.s)
        m, v, A, b = (z.to(x) for z in (self.m, self.v, self.A, self.b))
        P = A + 1 / q
        per = (0.5 * math.log(self.s) - 0.5 * torch.log(v) - m ** 2 / (2 * v) - 0.5 * torch.log(1 + q * A)
               - x ** 2 / (2 * q) + (b + x / q) ** 2 / (2 * P))
        return per.sum(-1) + LOG_Z

    def log_flow(self, x: Tensor, t: float) -> Tensor:
        if t <= 0:
            return self.log_h(x, 0.0)
        return gaussian_log_prob(x, 0.0, self.sigma ** 2 * t) + self.log_h(x, t)

    def optimal_kernel(self, t_next: float, dt: float) -> tuple:
        q = self.sigma ** 2 * (self.T - t_next)
        alpha, beta = self.A / (1 + q * self.A), self.b / (1 + q * self.A)
        delta = self.sigma ** 2 * dt
        L = 1 / delta + alpha
        return (lambda x: (x / delta + beta.to(x)) / L.to(x)), (1 / L)


def _optimal_paths(h: GaussianH, N: int, B: int, dtype, seed: int = 0):
    """Paths from the optimal discrete kernel with their per-step log P_F, log P_B, log F."""
    times = uniform_grid(h.T, N, dtype=torch.float64)
    dt = h.T / N
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(B, 2, dtype=torch.float64)
    states, log_pf = [x], []
    for k in range(N):
        mean_fn, var = h.optimal_kernel(float(times[k + 1]), dt)
        mean = mean_fn(x)
        x = mean + var.sqrt() * torch.randn(B, 2, generator=gen, dtype=torch.float64)
        log_pf.append(_log_normal_diag(x, mean, var))
        states.append(x)
    states = torch.stack(states)
    ref = BrownianReference(h.sigma)
    _, log_pb = path_log_densities(ref, states, times)  # the bridge, log P_B := 0 on step 0
    log_f = torch.stack([h.log_flow(states[k], float(times[k])) for k in range(N + 1)])
    log_r = h.log_reward(states[-1])
    return (torch.stack(log_pf).to(dtype), log_pb.to(dtype), log_f.to(dtype), log_r.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_form_optimum_gives_zero_tb_db_subtb_vargrad(dtype):
    h = GaussianH(sigma=1.0, T=1.0)
    log_pf, log_pb, log_f, log_r = _optimal_paths(h, N=12, B=64, dtype=dtype)
    # the flow is pinned to the reward at t = T, as DGFS pins it
    torch.testing.assert_close(log_f[-1], log_r, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    torch.testing.assert_close(float(log_f[0, 0]), LOG_Z, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)
    # float error: residuals are sums of ~N terms of size ~10, each with relative error eps
    tol = (10 * 12 * 10 * torch.finfo(dtype).eps) ** 2
    values = {
        "tb": losses.trajectory_balance_loss(log_pf, log_pb, log_r, torch.tensor(LOG_Z, dtype=dtype)),
        "vargrad": losses.vargrad_path_loss(log_pf, log_pb, log_r),
        "db": losses.detailed_balance_loss(log_pf, log_pb, log_f),
        "subtb": losses.subtb_loss(log_pf, log_pb, log_f, lam=2.0),
    }
    for name, v in values.items():
        assert 0 <= float(v) < tol, (name, float(v), tol)
    # ... while a wrong log Z or a perturbed flow is detected
    assert float(losses.trajectory_balance_loss(log_pf, log_pb, log_r, torch.tensor(LOG_Z + 0.1, dtype=dtype))) \
        == pytest.approx(0.01, rel=1e-3)
    bumped = log_f.clone()
    bumped[3] += 0.1
    assert float(losses.detailed_balance_loss(log_pf, log_pb, bumped)) > 1e3 * tol


class _OptimalFlow(nn.Module):
    """The continuous-time optimal log F(x, t) as a DGFS ``flow`` module (t: Tensor[M], one grid time per row block)."""

    def __init__(self, h: GaussianH):
        super().__init__()
        self.h = h
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = torch.empty(x.shape[0], dtype=x.dtype)
        for tv in t.unique():
            rows = t == tv
            out[rows] = self.h.log_flow(x[rows].double(), float(tv)).to(x.dtype)
        return out + 0 * self.dummy


def test_euler_policy_with_continuous_optimal_drift_losses_shrink_with_step_size(diag_gaussian,
                                                                                 gaussian_optimal_control):
    target = diag_gaussian(MEAN, VAR, log_Z=LOG_Z)
    h = GaussianH(sigma=1.0, T=1.0)
    values = {k: [] for k in ("subtb", "db", "tb")}
    steps = (8, 16, 32, 64)
    for N in steps:
        for loss in values:
            s = DGFS(target, loss=loss, num_steps=N, dt=1.0 / N, batch_size=512, dtype=torch.float64, seed=1,
                     flow=_OptimalFlow(h) if loss != "tb" else None)
            s.control = gaussian_optimal_control(s.reference, s.T, target.mean, target.var)
            if loss == "tb":
                with torch.no_grad():
                    s.log_z_param.value.fill_(LOG_Z)
            values[loss].append(float(s._step(0)["loss"].detach()))
    for loss, v in values.items():
        ratios = [a / b for a, b in zip(v, v[1:])]
        # halving dt halves TB / SubTB (Var log w = O(dt)) and quarters DB (per-step residual
        # O(dt), averaged over steps); bands leave room for the Monte Carlo noise of 512 paths
        low, high = (3.0, 5.5) if loss == "db" else (1.4, 2.8)
        assert all(low < r < high for r in ratios), (loss, v, ratios)


def _naive_subtb(log_pf, log_pb, log_f, lam):
    N, B = log_pf.shape
    total, norm = 0.0, 0.0
    for i in range(N + 1):
        for j in range(i + 1, N + 1):
            norm += lam ** (j - i)
    for b in range(B):
        for i in range(N + 1):
            for j in range(i + 1, N + 1):
                r = log_f[i, b] - log_f[j, b] + (log_pf[i:j, b] - log_pb[i:j, b]).sum()
                total += lam ** (j - i) / norm * r ** 2
    return total / B


@pytest.mark.parametrize("lam", [0.5, 1.0, 2.0])
def test_subtb_vectorised_equals_naive_double_loop(lam):
    gen = torch.Generator().manual_seed(3)
    N, B = 9, 4
    log_pf = 3 * torch.randn(N, B, generator=gen, dtype=torch.float64)
    log_pb = 3 * torch.randn(N, B, generator=gen, dtype=torch.float64)
    log_f = 10 * torch.randn(N + 1, B, generator=gen, dtype=torch.float64)
    expected = float(_naive_subtb(log_pf, log_pb, log_f, lam))
    assert float(losses.subtb_loss(log_pf, log_pb, log_f, lam=lam)) == pytest.approx(expected, rel=1e-12)
    got32 = float(losses.subtb_loss(log_pf.float(), log_pb.float(), log_f.float(), lam=lam))
    assert got32 == pytest.approx(expected, rel=1e-5)
    # one step: SubTB is DB (the only pair is a transition)
    one = [t[:1] for t in (log_pf, log_pb)] + [log_f[:2]]
    assert float(losses.subtb_loss(*one, lam=lam)) == pytest.approx(float(losses.detailed_balance_loss(*one)), rel=1e-12)


def test_subtb_pair_sampling_is_unbiased_and_weights_are_normalised():
    gen = torch.Generator().manual_seed(4)
    N, B = 30, 8
    log_pf, log_pb = torch.randn(N, B, generator=gen, dtype=torch.float64), torch.randn(N, B, generator=gen, dtype=torch.float64)
    log_f = torch.randn(N + 1, B, generator=gen, dtype=torch.float64)
    full = float(losses.subtb_loss(log_pf, log_pb, log_f))
    draws = torch.stack([losses.subtb_loss(log_pf, log_pb, log_f, num_pairs=16, generator=gen) for _ in range(2000)])
    se = float(draws.std() / math.sqrt(len(draws)))
    assert abs(float(draws.mean()) - full) < 4 * se, (float(draws.mean()), full, se)
    W = losses.subtb_weights(2000, 2.0)  # lambda^2000 overflows float64: computed in log space
    assert torch.isfinite(W).all() and float(W.sum()) == pytest.approx(1.0, rel=1e-9)
    assert float(W.triu(1).sum()) == pytest.approx(1.0, rel=1e-9)


def test_loss_shape_errors_are_value_errors():
    x = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="log_flow"):
        losses.subtb_loss(x, x, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="log_pf"):
        losses.detailed_balance_loss(x, torch.zeros(2, 4), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="lambda"):
        losses.subtb_weights(3, -1.0)
    assert "kl" not in losses.GFN_LOSSES and "tb" not in losses.LOSSES  # PIS's options unchanged
