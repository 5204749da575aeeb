"""Forward processes: closed forms against their definitions (quadrature, ODEs), bad input."""

import math

import pytest
import torch

from logz.sde.power import PowerSchedule
from logz.sde.schedules import ConstantSchedule, CosineSchedule, LinearSchedule, Schedule
from logz.theory import (ForwardProcess, LinearSDE, VEProcess, VPProcess, make_process,
                         process_names)
from logz.theory.processes import integrate, sigma2_by_quadrature


@pytest.mark.parametrize("name", process_names())
def test_closed_forms_match_the_definitions(name):
    p = make_process(name)
    T = p.horizon
    p.check(T)
    s = torch.tensor([0.0, 0.07, 0.3, 0.61, 1.0], dtype=torch.float64) * T
    # sigma^2 = int_0^s (mu_s/mu_u)^2 g^2 du, computed from the rates alone
    assert torch.allclose(p.sigma2(s), sigma2_by_quadrature(p, s), rtol=1e-7, atol=1e-12)
    # mu = exp(-int f)
    int_f = integrate(p.f, torch.zeros_like(s), s, panels=128)
    assert torch.allclose(p.mu(s), torch.exp(-int_f), rtol=1e-9)
    # psi against its definition (the base-class quadrature)
    lo, hi = s[:-1], s[1:]
    assert torch.allclose(p.psi(lo, hi), ForwardProcess.psi(p, lo, hi), rtol=1e-7, atol=1e-12)
    assert torch.allclose(p.phi(lo, hi), p.mu(lo) / p.mu(hi), rtol=1e-12)


@pytest.mark.parametrize("name", ["vp", "vp-linear", "subvp", "ve", "ve-power"])
def test_variance_solves_its_ode(name):
    # d/ds sigma^2 = g^2 - 2 f sigma^2 (central differences), an independent characterization
    p = make_process(name)
    s = torch.linspace(0.05, 0.95, 7, dtype=torch.float64) * p.horizon
    eps = 1e-5 * p.horizon
    lhs = (p.sigma2(s + eps) - p.sigma2(s - eps)) / (2 * eps)
    rhs = p.g2(s) - 2 * p.f(s) * p.sigma2(s)
    assert torch.allclose(lhs, rhs, rtol=1e-6, atol=1e-6 * float(rhs.abs().max()))


def test_generic_linear_sde_reproduces_vp_and_ve():
    beta = LinearSchedule(0.1, 20.0, 1.0)
    vp, generic = VPProcess(beta), LinearSDE(LinearSchedule(0.05, 10.0, 1.0), beta)
    s = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(vp.sigma2(s), generic.sigma2(s), rtol=1e-9)
    assert torch.allclose(vp.psi(s / 2, s), generic.psi(s / 2, s), rtol=1e-9)
    ve, generic_ve = VEProcess(ConstantSchedule(2.0)), LinearSDE(None, ConstantSchedule(2.0))
    assert torch.allclose(ve.sigma2(s), generic_ve.sigma2(s), rtol=1e-12)
    assert torch.allclose(ve.psi(s / 2, s), generic_ve.psi(s / 2, s), rtol=1e-12)


def test_power_schedule_integral():
    sched = PowerSchedule(a=1.5, b=0.5, rho=2.5)
    t = torch.tensor([0.0, 0.3, 2.0], dtype=torch.float64)
    quad = integrate(sched, torch.zeros_like(t), t, panels=64)
    assert torch.allclose(sched.cumulative(t), quad, rtol=1e-12, atol=1e-14)
    assert torch.allclose(PowerSchedule(a=0.0, b=2.0, rho=3.0).cumulative(t), 8.0 * t)
    with pytest.raises(ValueError, match="PowerSchedule needs"):
        PowerSchedule(a=-1.0)


def test_ve_power_reaches_sigma_max():
    for c in (0.5, 1.0):
        p = make_process("ve-power", T=2.0, sigma_max=30.0, c=c)
        assert math.isclose(float(p.sigma2(2.0)), 900.0, rel_tol=1e-10)


class _Negative(Schedule):
    def __call__(self, t):
        return torch.full_like(torch.as_tensor(t, dtype=torch.float64), -1.0)

    def cumulative(self, t):
        return -torch.as_tensor(t, dtype=torch.float64)


def test_assumption_violations_are_named():
    with pytest.raises(ValueError, match="is the rate clipped"):
        VPProcess(CosineSchedule(T=1.0)).check(1.0)     # clipped at max_beta near T
    with pytest.raises(ValueError, match="need f >= 0"):
        LinearSDE(_Negative(), ConstantSchedule(1.0)).check(1.0)
    with pytest.raises(ValueError, match="T must be finite and > 0"):
        make_process("vp").check(0.0)
    with pytest.raises(ValueError, match="T must be finite and > 0"):
        make_process("vp", T=-1.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_process("nope")
