"""RF-Solver and the pseudo-corrector: orders on a linear ODE with a known flow, NFE counts."""

import numpy as np
import pytest
import torch

from logz.sde import uniform_grid
from logz.sde.ode import ORDERS, CountingField, methods, nfe, odeint

A = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=torch.float64)
B = torch.tensor([1.0, 0.5], dtype=torch.float64)
X0 = torch.tensor([[1.0, -1.0]], dtype=torch.float64)


def field(x, t):
    return x @ A.T + torch.sin(t) * B


def exact_solution(T=1.0):
    # x(T) = e^{AT} x0 + int_0^T e^{A(T-s)} b sin(s) ds (Gauss–Legendre, 60 nodes)
    nodes, weights = np.polynomial.legendre.leggauss(60)
    s = torch.tensor(0.5 * T * (nodes + 1), dtype=torch.float64)
    w = torch.tensor(0.5 * T * weights, dtype=torch.float64)
    expm = torch.linalg.matrix_exp
    integral = sum(wi * torch.sin(si) * (expm(A * (T - si)) @ B) for si, wi in zip(s, w))
    return expm(A * T) @ X0[0] + integral


@pytest.mark.parametrize("method", ["rf2", "heun_pc"])
def test_new_solvers_are_second_order(method):
    exact = exact_solution()
    steps = [8, 16, 32, 64]
    errors = [float((odeint(field, X0, uniform_grid(1.0, n, dtype=torch.float64), method)[0] - exact).norm())
              for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert ORDERS[method] == 2
    assert abs(slope - 2) < 0.25, (method, slope, errors)


def test_rf_solver_is_the_midpoint_rule_in_exact_arithmetic(dtype):
    # x + h v + h^2/2 (v_mid - v)/(h/2) = x + h v_mid: equal to rounding, not by construction
    x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    grid = uniform_grid(1.0, 7, dtype=dtype)
    f = lambda x, t: x @ A.T.to(dtype) + torch.sin(t) * B.to(dtype) + 0.3 * x ** 2
    a, b = odeint(f, x0, grid, "rf2"), odeint(f, x0, grid, "midpoint")
    eps = torch.finfo(dtype).eps
    assert a.dtype == dtype and float((a - b).abs().max()) < 200 * eps


@pytest.mark.parametrize("method", methods())
def test_nfe_formula_matches_counted_calls(method):
    for n in (1, 3, 8):
        f = CountingField(field)
        odeint(f, X0, uniform_grid(1.0, n, dtype=torch.float64), method)
        assert f.calls == nfe(method, n)
    assert nfe("heun_pc", 10) == 11 and nfe("rf2", 10) == 20


def test_pseudo_corrector_with_2n_plus_1_nfe_beats_heun_with_2n():
    # 2N+1 NFE with the pseudo-corrector (2N steps) against 2N NFE of Heun (N steps)
    exact = exact_solution()
    for n in (8, 16):
        heun = float((odeint(field, X0, uniform_grid(1.0, n, dtype=torch.float64), "heun")[0] - exact).norm())
        pc = float((odeint(field, X0, uniform_grid(1.0, 2 * n, dtype=torch.float64), "heun_pc")[0]
                    - exact).norm())
        assert pc < heun, (n, pc, heun)


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="heun_pc"):
        odeint(field, X0, uniform_grid(1.0, 2, dtype=torch.float64), "rf3")
    with pytest.raises(ValueError, match="unknown ODE method"):
        nfe("dopri5", 4)
