"""Bespoke solver: exactly the base solver at initialisation; trained on the exact Gaussian
velocity it beats RK2 (midpoint) at equal NFE in exact W2."""

import pytest
import torch

from logz.finetune.bespoke import BespokeSolver
from logz.training import History
from logz.theory.flows import GaussianFlow, ode_solve, propagate_law
from logz.theory.gaussian import GaussianData


def flow(name="linear"):
    return GaussianFlow(GaussianData.random(3, eig_range=(0.05, 1.0), seed=1), name)


@pytest.mark.parametrize("base,method", [("midpoint", "midpoint"), ("euler", "euler")])
def test_initial_bespoke_solver_is_the_base_solver(base, method, dtype):
    f = flow()
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=dtype)
    field = lambda x, t: f(x.double(), t).to(x.dtype)
    solver = BespokeSolver(3, base).to(dtype)
    a = solver.solve(field, x0)
    b = ode_solve(method, 3)(field, x0)
    assert a.dtype == dtype
    assert torch.allclose(a, b, atol=50 * torch.finfo(dtype).eps)
    assert solver.nfe == (6 if base == "midpoint" else 3)
    assert sum(p.numel() for p in solver.parameters()) == 4 * solver.nfe


@pytest.mark.parametrize("name", ["linear", "vp"])
def test_trained_bespoke_beats_rk2_at_equal_nfe(name):
    f = flow(name)
    data_law = f.data.law
    P, q = f.flow_map(0.0, 1.0)
    solver = BespokeSolver(2)                                      # 4 NFE
    history = solver.fit(f, 3, iterations=150, batch_size=128, pool=1024,
                         reference=lambda x: x @ P.T + q, dtype=torch.float64, seed=0)
    assert isinstance(history, History) and history.loss[-1] < history.loss[0]
    with torch.no_grad():
        w2_bespoke = float(propagate_law(solver.solve, f, f.prior()).w2(data_law))
    w2_rk2 = float(propagate_law(ode_solve("midpoint", 2), f, f.prior()).w2(data_law))
    w2_rk4 = float(propagate_law(ode_solve("rk4", 1), f, f.prior()).w2(data_law))
    assert w2_bespoke < 0.5 * min(w2_rk2, w2_rk4), (name, w2_bespoke, w2_rk2, w2_rk4)


def test_fit_with_rk4_reference_and_bad_input():
    f = flow("gvp")
    solver = BespokeSolver(2)
    solver.fit(f, 3, iterations=5, pool=64, batch_size=32, reference_steps=20, dtype=torch.float64)
    assert all(p.grad is not None for p in solver.parameters())
    with pytest.raises(ValueError, match="num_steps"):
        BespokeSolver(0)
    with pytest.raises(ValueError, match="base"):
        BespokeSolver(2, "rk4")
    with pytest.raises(ValueError, match="reference"):
        solver.fit(f, 3, iterations=1, pool=8, reference=lambda x: x[:, :2])


def test_exact_propagation_of_a_bespoke_solver_equals_monte_carlo():
    # any parameters (here random) keep the step affine for an affine field: the propagated law
    # must match n runs of the same solver (mean 5 SE per coordinate, covariance 5 SE per entry)
    f = flow("gvp")
    solver = BespokeSolver(2).double()
    with torch.no_grad():
        for p in solver.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()),
                                      dtype=torch.float64))
        law = propagate_law(solver.solve, f, f.prior())
        n = 20000
        x1 = solver.solve(f, torch.randn(n, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64))
    cov = law.cov
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert bool(((x1.mean(0) - law.mean).abs() < 5 * se_mean).all())
    se_cov = ((cov ** 2 + torch.outer(torch.diagonal(cov), torch.diagonal(cov))) / n).sqrt()
    assert bool(((torch.cov(x1.T) - cov).abs() < 5 * se_cov).all())
