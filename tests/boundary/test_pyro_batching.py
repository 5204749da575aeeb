"""Pyro models are batched (vmap, else a particle plate) and SMC on a Bayesian linear
regression agrees with its closed-form evidence."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from logz import samplers
from logz import targets as T

DATA = torch.tensor([0.3, -1.2, 0.8, 2.1, 0.4], dtype=torch.float64)


def guarded(data):
    """Broadcasts over a particle plate, but its sanity check is data-dependent control flow,
    which torch.func.vmap cannot run."""
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0), 1.0))
    s = pyro.sample("s", dist.HalfNormal(torch.tensor(1.0)))
    if bool(torch.isnan(mu).any()):
        raise ValueError("NaN mean")
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(mu, s), obs=data)


def blr(X, y, noise):
    w = pyro.sample("w", dist.Normal(torch.zeros(X.shape[1]), 1.0).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ w, noise), obs=y)


def blr_problem(num_weights: int, num_points: int, dtype=torch.float64, seed: int = 0):
    """Data for ``blr`` and its exact evidence: y ~ N(0, X X^T + noise^2 I)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(num_points, num_weights, generator=g, dtype=torch.float64)
    noise = 0.5
    y = X @ torch.randn(num_weights, generator=g, dtype=torch.float64) \
        + noise * torch.randn(num_points, generator=g, dtype=torch.float64)
    cov = X @ X.T + noise ** 2 * torch.eye(num_points, dtype=torch.float64)
    evidence = torch.distributions.MultivariateNormal(torch.zeros(num_points, dtype=torch.float64), cov).log_prob(y)
    return X.to(dtype), y.to(dtype), noise, float(evidence)


def test_particle_plate_when_vmap_cannot_run(dtype):
    t = T.from_pyro(guarded, DATA.to(dtype))
    assert t.modes[dtype] == "plate" and t.vectorized
    loop = T.from_pyro(guarded, DATA.to(dtype), vectorize=False)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=dtype)
    tol = math.sqrt(torch.finfo(dtype).eps)
    torch.testing.assert_close(t.log_prob(x), loop.log_prob(x), rtol=tol, atol=tol)
    lp, grad = T.log_prob_and_grad(t, x)
    _, grad_loop = T.log_prob_and_grad(loop, x)
    torch.testing.assert_close(grad, grad_loop, rtol=tol, atol=tol)


def test_row_loop_warns_with_its_measured_cost():
    def branching(x):
        z = pyro.sample("z", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        scale = 1.0 if z > 0 else 2.0  # data-dependent: neither vmap nor a plate can batch it
        pyro.sample("x", dist.Normal(z, scale).expand([len(x)]).to_event(1), obs=x)

    with pytest.warns(RuntimeWarning, match=r"row by row at a measured [0-9.]+ ms per row"):
        t = T.from_pyro(branching, DATA)
    assert t.modes[torch.float64] == "loop" and not t.vectorized


@pytest.mark.parametrize("model_dtype", [torch.float32, torch.float64], ids=["model32", "model64"])
def test_model_data_follow_the_requested_dtype(model_dtype, dtype):
    X, y, noise, _ = blr_problem(3, 10, model_dtype)
    t = T.from_pyro(blr, X, y, noise)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(2), dtype=dtype)
    lp = t.log_prob(x)
    assert lp.dtype == dtype and t.modes[dtype] == "vmap"
    Xd, yd = X.double(), y.double()
    ref = (torch.distributions.Normal(0.0, 1.0).log_prob(x.double()).sum(-1)
           + torch.distributions.Normal(x.double() @ Xd.T, noise).log_prob(yd).sum(-1))
    tol = 1e-4 if torch.float32 in (dtype, model_dtype) else 1e-10
    torch.testing.assert_close(lp.double(), ref, rtol=tol, atol=tol)


def test_smc_on_pyro_regression_matches_closed_form_evidence():
    X, y, noise, exact = blr_problem(3, 10)
    t = T.from_pyro(blr, X, y, noise)
    est = samplers.get("smc", t, seed=0).estimate_log_z(800)
    assert est.stderr > 0
    assert abs(est.log_z - exact) < 4 * est.stderr, (est.log_z, est.stderr, exact)
