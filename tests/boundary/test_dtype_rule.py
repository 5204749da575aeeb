"""The dtype rule at the target boundary, for every sampler in float32 and float64.

The sampler's dtype is the working dtype: a callable computing in the other dtype is either
used (its output cast) or refused with a message naming both dtypes and ``dtype=``; a Pyro
model in either dtype runs in the sampler's dtype (its data cast once).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from logz import samplers
from logz import targets as T

SAMPLERS = ["smc", "ais", "pis", "dds", "dgfs", "tb", "dgfs_lv", "adjoint_sampling"]
TINY = {"smc": dict(num_replicates=2, cess=0.5, num_mcmc_steps=1, moves_per_beta=0),
        "ais": dict(num_replicates=2, cess=0.5, num_mcmc_steps=1, moves_per_beta=0),
        "pis": dict(num_steps=4, hidden=8, batch_size=16),
        "dds": dict(num_steps=4, hidden=8, batch_size=16),
        "dgfs": dict(num_steps=4, hidden=8, batch_size=16),
        "tb": dict(num_steps=4, hidden=8, batch_size=16),
        "dgfs_lv": dict(num_steps=4, hidden=8, batch_size=16),
        "adjoint_sampling": dict(num_steps=4, hidden=8, batch_size=16, paths_per_refresh=16,
                                 refresh_every=1, buffer_size=64)}
OTHER = {torch.float32: torch.float64, torch.float64: torch.float32}
PREC = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)


def run(name: str, target, dtype: torch.dtype) -> samplers.LogZEstimate:
    sampler = samplers.get(name, target, dtype=dtype, seed=0, **TINY[name])
    sampler.fit(2)
    return sampler.estimate_log_z(32)


def gaussian_casting(other: torch.dtype):
    """Computes in ``other`` (x cast in), returns ``other``: usable from either dtype."""
    P = PREC.to(other)
    return T.from_log_prob(lambda x: -0.5 * ((x.to(other) @ P) * x.to(other)).sum(-1), dim=2,
                           name="casting")


def gaussian_strict(other: torch.dtype):
    """Computes in ``other`` without casting x: a matmul with x in another dtype fails."""
    P = PREC.to(other)
    return T.from_log_prob(lambda x: -0.5 * ((x @ P) * x).sum(-1), dim=2, name="strict")


def normal_model(data):
    mu = pyro.sample("mu", dist.Normal(torch.zeros(2, dtype=data.dtype), 1.0).to_event(1))
    with pyro.plate("data", data.shape[0]):
        pyro.sample("obs", dist.Normal(mu, 1.0).to_event(1), obs=data)


@pytest.mark.parametrize("name", SAMPLERS)
def test_callable_in_the_other_dtype_is_cast(name, dtype):
    est = run(name, gaussian_casting(OTHER[dtype]), dtype)
    assert math.isfinite(est.log_z)


@pytest.mark.parametrize("name", SAMPLERS)
def test_callable_that_cannot_take_the_sampler_dtype_is_refused_naming_both(name, dtype):
    other = OTHER[dtype]
    with pytest.raises(ValueError) as info:
        run(name, gaussian_strict(other), dtype)
    msg = str(info.value)
    assert "'strict'" in msg and str(dtype) in msg and str(other) in msg and f"dtype={other}" in msg


@pytest.mark.parametrize("model_dtype", [torch.float32, torch.float64], ids=["model32", "model64"])
@pytest.mark.parametrize("name", SAMPLERS)
def test_pyro_model_in_either_dtype(name, dtype, model_dtype):
    data = torch.tensor([[0.5, -0.2], [1.0, 0.3], [0.1, 0.0]], dtype=model_dtype)
    target = T.from_pyro(normal_model, data)
    assert target.model_dtype == model_dtype and target.vectorized
    est = run(name, target, dtype)
    assert math.isfinite(est.log_z)
    assert target.modes[dtype] == "vmap"  # batched in the sampler's dtype too, no row loop


def test_output_is_cast_to_the_working_dtype(dtype):
    other = OTHER[dtype]
    t = gaussian_casting(other)
    x = torch.randn(5, 2, dtype=dtype)
    assert t.log_prob(x).dtype == dtype
    lp = T.checked_log_prob(t, x)
    lp2, grad = T.log_prob_and_grad(t, x)
    assert lp.dtype == lp2.dtype == grad.dtype == dtype
    ref = -0.5 * ((x.double() @ PREC) * x.double()).sum(-1)
    tol = math.sqrt(torch.finfo(torch.float32).eps)
    torch.testing.assert_close(lp.double(), ref, rtol=tol, atol=tol)
    torch.testing.assert_close(grad.double(), -(x.double() @ PREC), rtol=tol, atol=tol)
