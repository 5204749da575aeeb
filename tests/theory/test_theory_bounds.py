"""The W2 bound: never below the exact measurement, its pieces, its complexity, bad input."""

import math

import pytest
import torch

from logz.theory import (GaussianData, contraction_integral, contraction_rate, fit_slope,
                         iteration_complexity, make_perturbation, make_process, process_names,
                         propagate, w2_bound)
from logz.theory.processes import integrate


@pytest.mark.parametrize("name", process_names())
def test_measured_never_exceeds_the_bound(name):
    p = make_process(name)
    T = p.horizon
    worst = 0.0
    for d in (1, 4, 16):
        data = GaussianData.random(d, seed=d)
        profile, L1 = data.time_lipschitz_profile(p), data.time_lipschitz(p, T)
        consts = dict(dim=d, m0=data.m0, L0=data.L0, x0_norm=data.x0_norm)
        for M, kind in ((0.0, "bias"), (0.05, "bias"), (0.5, "bias"),
                        (0.05, "lipschitz"), (0.5, "lipschitz")):
            pert = make_perturbation(kind, M, data, p, seed=d)
            for K in (1, 3, 16, 128):
                out = propagate(data, p, T, K, "exp", pert)
                w2 = float(out.law.w2(data.law))
                M_used = max(M, out.score_error)   # assumption A5 along the iterates
                local = w2_bound(p, T, K=K, L1=profile, M=M_used, **consts).total
                paper = w2_bound(p, T, K=K, L1=L1, M=M_used, **consts).total
                assert w2 <= local <= paper * (1 + 1e-8), (d, M, kind, K, w2, local, paper)
                worst = max(worst, w2 / local)
    assert worst > 0.05   # the bound is an upper bound, but not a vacuous one


def test_stationary_prior_bound_holds():
    p = make_process("vp")
    data = GaussianData.random(6, seed=1)
    for K in (4, 64):
        out = propagate(data, p, p.horizon, K, "exp", prior="stationary")
        b = w2_bound(p, p.horizon, K=K, dim=6, m0=data.m0, L0=data.L0,
                     L1=data.time_lipschitz_profile(p), x0_norm=data.x0_norm, prior="stationary")
        assert float(out.law.w2(data.law)) <= b.total


@pytest.mark.parametrize("name", ["vp", "vp-linear", "ve", "subvp"])
def test_contraction_integral_closed_form(name):
    p = make_process(name)
    T, m0 = p.horizon, 0.7
    quad = float(integrate(lambda t: contraction_rate(p, T, t, m0), 0.0, T, panels=256))
    assert math.isclose(contraction_integral(p, T, m0), quad, rel_tol=1e-8, abs_tol=1e-10)


def test_contraction_is_the_exact_flow_gain_for_isotropic_data():
    # for N(m, I/m0) the PF-ODE flow map is exp(-int c) I: an independent check of c(t)
    p = make_process("vp-linear")
    for m0 in (0.5, 1.0, 3.0):
        data = GaussianData.isotropic(3, var=1 / m0, mean=0.4)
        P, _ = data.flow_map(p, 1.0)
        gain = math.exp(-contraction_integral(p, 1.0, m0))
        assert torch.allclose(P, gain * torch.eye(3, dtype=torch.float64), rtol=1e-10)


def test_per_step_factor_is_exact_for_isotropic_data():
    # with exact prior and score, one EI step's contraction of the coupling is rho_k exactly
    p = make_process("ve")
    data = GaussianData.isotropic(2, var=0.5)
    b = w2_bound(p, 1.0, K=5, dim=2, m0=2.0, L0=2.0, L1=0.0, x0_norm=data.x0_norm)
    out = propagate(data, p, 1.0, 5, "exp", prior="exact")
    slope = float(out.law.factor.norm() / data.marginal(p, 1.0).factor.norm())
    assert math.isclose(slope, float(torch.prod(b.rho)), rel_tol=1e-10)


def test_discretization_term_is_order_h():
    p = make_process("vp-linear")
    data = GaussianData.random(5, seed=2)
    Ks = [256, 512, 1024, 2048]
    disc = [w2_bound(p, 1.0, K=K, dim=5, m0=data.m0, L0=data.L0, L1=data.time_lipschitz(p, 1.0),
                     x0_norm=data.x0_norm).disc for K in Ks]
    assert abs(fit_slope(Ks, disc) + 1) < 0.15
    b = w2_bound(p, 1.0, h=1 / 256, dim=5, m0=data.m0, L0=data.L0, L1=1.0, x0_norm=data.x0_norm)
    assert b.K == 256


def test_iteration_complexity_is_minimal_and_reports_infeasible():
    consts = dict(dim=4, m0=1.0, L0=4.0, L1=2.0, x0_norm=2.0)
    c = iteration_complexity("vp", 0.3, rtol=0.0, horizons=[4.0], **consts)
    p = make_process("vp", T=c.T)
    assert w2_bound(p, c.T, K=c.K, **consts).total <= 0.3 < w2_bound(p, c.T, K=c.K - 1, **consts).total
    assert c.bound.total <= 0.3
    # the score term alone exceeds eps: no K helps
    assert iteration_complexity("vp", 0.05, M=1.0, horizons=[4.0], **consts).K is None
    with pytest.raises(ValueError, match="eps must be > 0"):
        iteration_complexity("vp", 0.0, **consts)


def test_vp_complexity_scales_like_sqrt_d_over_eps():
    # K ~ sqrt(d)/eps up to log factors: K eps / (sqrt(d) log^2(sqrt(d)/eps)) stays in a band
    vals = []
    for d in (1, 16):
        for eps in (0.3, 0.1):
            c = iteration_complexity("vp", eps, dim=d, m0=1.0, L0=4.0, L1=4.0, x0_norm=math.sqrt(d))
            vals.append(c.K * eps / (math.sqrt(d) * math.log(2 * math.sqrt(d) / eps) ** 2))
    assert max(vals) / min(vals) < 3, vals


def test_broken_assumptions_are_named():
    p = make_process("vp")
    ok = dict(K=4, dim=2, m0=1.0, L0=2.0, L1=1.0, M=0.0, x0_norm=1.0)
    with pytest.raises(ValueError, match="data not strongly log-concave: m0 = 0"):
        w2_bound(p, 1.0, **{**ok, "m0": 0})
    with pytest.raises(ValueError, match="L0 = 0.5 < m0"):
        w2_bound(p, 1.0, **{**ok, "L0": 0.5})
    with pytest.raises(ValueError, match="L1 must be >= 0"):
        w2_bound(p, 1.0, **{**ok, "L1": -1.0})
    with pytest.raises(ValueError, match="M must be >= 0"):
        w2_bound(p, 1.0, **{**ok, "M": -0.1})
    with pytest.raises(ValueError, match="K must be an integer >= 1"):
        w2_bound(p, 1.0, **{**ok, "K": 0})
    with pytest.raises(ValueError, match="h must be > 0"):
        w2_bound(p, 1.0, **{**ok, "K": None, "h": 0.0})
    with pytest.raises(ValueError, match="must divide T"):
        w2_bound(p, 1.0, **{**ok, "K": None, "h": 0.3})
    with pytest.raises(ValueError, match="exactly one of K"):
        w2_bound(p, 1.0, **{**ok, "h": 0.25})
    with pytest.raises(ValueError, match="T must be finite and > 0"):
        w2_bound(p, -1.0, **ok)
    with pytest.raises(ValueError, match="dimension d must be"):
        w2_bound(p, 1.0, **{**ok, "dim": 0})
    with pytest.raises(ValueError, match="stationary law"):
        w2_bound(make_process("ve"), 1.0, prior="stationary", **ok)
    from logz.sde.schedules import CosineSchedule
    from logz.theory import VPProcess
    with pytest.raises(ValueError, match="outside the theorem's assumptions"):
        w2_bound(VPProcess(CosineSchedule(T=1.0)), 1.0, **ok)
