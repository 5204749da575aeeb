"""Exact Gaussian laboratory for flow models: closed forms against autograd, exact propagation
against Monte Carlo runs of the same discretisation, the W2-vs-NFE study."""

import pytest
import torch

from logz.finetune.interpolants import INTERPOLANTS, InterpolantSDE
from logz.sde.ode import nfe
from logz.theory.flows import (SOLVERS, GaussianFlow, ode_solve, propagate_law, propagate_sde,
                               solver_study)
from logz.theory.gaussian import GaussianData

PATHS = sorted(INTERPOLANTS)


def data(dim=3, dtype=torch.float64):
    return GaussianData.random(dim, eig_range=(0.1, 1.0), seed=3, dtype=dtype)


@pytest.mark.parametrize("name", PATHS)
def test_affine_velocity_and_score_against_autograd_of_the_marginal(name):
    flow = GaussianFlow(data(), name)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for t0 in (0.15, 0.6, 0.95):
        t = torch.tensor(t0, dtype=torch.float64, requires_grad=True)
        xs = x.clone().requires_grad_(True)
        logp = flow.log_prob(xs, t)
        (score,) = torch.autograd.grad(logp.sum(), xs, retain_graph=True)
        dt = torch.stack([torch.autograd.grad(lp, t, retain_graph=True)[0] for lp in logp])
        v = flow(x, torch.tensor(t0, dtype=torch.float64))
        div = torch.trace(flow.matrix(t0))
        assert torch.allclose(flow.score(x, t0), score, atol=1e-10)
        assert float((dt + div + (v * score).sum(-1)).abs().max()) < 1e-9
        assert torch.allclose(flow.path.velocity_from_score(score, x, t0), v, atol=1e-9)


def test_flow_map_solves_the_ode_and_average_velocity_obeys_the_meanflow_identity():
    # u(x, s, t) = v(x, s) + (t - s) (v . d_x u + d_s u), the MeanFlow identity (arXiv 2505.13447)
    flow = GaussianFlow(data(), "linear")
    x = torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    P, q = flow.flow_map(0.2, 0.9)
    fine = ode_solve("rk4", 400, 0.2, 0.9)(flow, x)
    assert torch.allclose(x @ P.T + q, fine, atol=1e-10)
    for s0, t0 in ((0.1, 0.8), (0.4, 0.45), (0.0, 1.0)):
        s, t = torch.tensor(s0, dtype=torch.float64), torch.tensor(t0, dtype=torch.float64)
        v = flow(x, s)
        u, du = torch.func.jvp(lambda xx, ss: flow.average_velocity(xx, ss, t), (x, s),
                               (v, torch.ones_like(s)))
        assert torch.allclose(u, v + (t - s) * du, atol=1e-9), (s0, t0)
    assert torch.allclose(flow.average_velocity(x, 0.3, 0.3), flow(x, 0.3))


@pytest.mark.parametrize("solver", SOLVERS)
def test_exact_propagation_equals_monte_carlo_of_the_same_discretisation(solver, dtype):
    # mean and covariance of n solver runs from N(0, I) against the propagated law: the mean
    # within 5 standard errors per coordinate, the covariance within 5 standard errors per entry
    flow = GaussianFlow(data(dtype=torch.float64), "gvp")
    solve = ode_solve(solver, 3)
    law = propagate_law(solve, flow, flow.prior())
    n = 20000
    x0 = torch.randn(n, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x1 = solve(flow, x0.to(dtype)).double() if dtype == torch.float64 else \
        solve(lambda x, t: flow(x.double(), t).to(dtype), x0.to(dtype)).double()
    cov = law.cov
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert bool(((x1.mean(0) - law.mean).abs() < 5 * se_mean).all())
    se_cov = ((cov ** 2 + torch.outer(torch.diagonal(cov), torch.diagonal(cov))) / n).sqrt()
    assert bool(((torch.cov(x1.T) - cov).abs() < 5 * se_cov).all())


def test_sde_propagation_equals_monte_carlo():
    flow = GaussianFlow(data(dim=2), "linear")
    mean, cov = propagate_sde(flow, "sigma", 6)
    n = 20000
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    x1 = InterpolantSDE(flow, "linear", "sigma", score=flow.score).sample(x0, 6, generator=gen)
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert bool(((x1.mean(0) - mean).abs() < 5 * se_mean).all())
    se_cov = ((cov ** 2 + torch.outer(torch.diagonal(cov), torch.diagonal(cov))) / n).sqrt()
    assert bool(((torch.cov(x1.T) - cov).abs() < 5 * se_cov).all())
    # the score-from-velocity route is the same sampler (no score passed)
    gen2 = torch.Generator().manual_seed(3)
    x0b = torch.randn(n, 2, generator=gen2, dtype=torch.float64)
    x1b = InterpolantSDE(flow, "linear", "sigma").sample(x0b, 6, generator=gen2)
    assert torch.allclose(x1, x1b, atol=1e-9)


def test_solver_study_orders_and_ranking():
    study = solver_study(data(dim=4), interpolants=("linear", "vp"), steps=(8, 16, 32))
    for (ip, solver), order in study.orders.items():
        expected = {"euler": 1, "heun": 2, "midpoint": 2, "rf2": 2, "heun_pc": 2, "rk4": 4}[solver]
        # at least the classical order; the midpoint rule (and RF-Solver) measure 3 on the
        # linear path: the leading error constant of that Gaussian velocity cancels
        assert order > expected - 0.35, (ip, solver, order)
        assert order < expected + 1.35, (ip, solver, order)
    rows = {(r.interpolant, r.solver, r.steps): r for r in study.rows}
    # RF-Solver-2 and midpoint give the same law; the pseudo-corrector costs steps + 1
    assert rows[("linear", "rf2", 8)].w2 == pytest.approx(rows[("linear", "midpoint", 8)].w2, rel=1e-9)
    assert rows[("linear", "heun_pc", 16)].nfe == nfe("heun_pc", 16) == 17
    # W2 <= pathwise RMSE (any coupling bounds W2), and VP carries an initialisation floor
    assert all(r.w2_disc <= r.rmse * (1 + 1e-9) + 1e-12 for r in study.rows)
    assert rows[("vp", "rk4", 32)].init > 1e-3 > rows[("linear", "rk4", 32)].init
    assert "heun_pc" in study.table() and study.best("linear", 16) is not None


def test_bad_study_inputs():
    with pytest.raises(ValueError, match="unknown ODE method"):
        solver_study(data(dim=2), solvers=("dopri",), steps=(2,))
    with pytest.raises(ValueError, match="steps"):
        solver_study(data(dim=2), steps=(0,))


def test_cli_solvers_table_json_and_plot(tmp_path, capsys):
    import json

    from logz.cli import main
    rc = main(["theory", "--solvers", "--dim", "2", "--steps", "2", "4", "--interpolants", "gvp",
               "--out", str(tmp_path), "--json"])
    assert rc in (0, None)
    doc = json.loads(capsys.readouterr().out)
    assert {r["solver"] for r in doc["rows"]} == set(SOLVERS)
    assert (tmp_path / "w2_vs_nfe.png").exists()
    main(["theory", "--solvers", "--dim", "2", "--steps", "2", "--interpolants", "linear", "--no-plots"])
    assert "RMSE(path)" in capsys.readouterr().out


def test_mixture_study_resolves_euler_from_rk4_against_the_ot_floor():
    from logz.theory.flows import mixture_solver_study
    rows = mixture_solver_study(interpolants=("linear",), solvers=("euler", "rk4"), steps=(2,), n=300,
                                repeats=3)
    by = {r.solver: r for r in rows}
    # 2-step Euler is resolved from 2-step RK4 (same seeds) by more than 3 standard errors
    gap_se = (by["euler"].w2_se ** 2 + by["rk4"].w2_se ** 2) ** 0.5
    assert by["euler"].w2 - by["rk4"].w2 > 3 * gap_se, (by, gap_se)
    assert rows[0].floor > 0 and rows[0].floor_se > 0
    with pytest.raises(ValueError, match="repeats"):
        mixture_solver_study(repeats=1)


def test_cli_solvers_bad_eig_min_is_a_usage_error(capsys):
    from logz.cli import main
    with pytest.raises(SystemExit) as err:
        main(["theory", "--solvers", "--eig-min", "2", "--no-plots"])
    assert err.value.code == 2 and "eig-min" in capsys.readouterr().err
