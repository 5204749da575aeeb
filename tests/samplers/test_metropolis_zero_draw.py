"""A Metropolis test whose uniform draw is exactly 0 must still reject a hopeless proposal.

``torch.rand`` returns 0 with probability 2^-24 in float32; ``log 0 = -inf < log_alpha``
accepted any proposal, and an SMC run of 2000 float32 particles makes millions of such tests
(an SCLD run on Funnel-10 moved a particle from log p~ = -48 to -1e8 this way and returned
log Z^ = 4.4e7)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from logz._random import log_uniform
from logz.distributed import Shard
from logz.samplers.replay import mala
from logz.samplers.smc_kernels import gibbs_sweep, hmc_move


@dataclasses.dataclass(frozen=True)
class ZeroUniforms(Shard):
    """One process whose uniform draws are all exactly 0 (normal draws as usual)."""

    def rand(self, shape, *, generator=None, dtype=None, device=None, dim=0):
        return torch.zeros(list(shape), dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_uniform_reads_a_zero_draw_as_the_first_grid_step(dtype):
    u = torch.rand(1000, generator=torch.Generator().manual_seed(0), dtype=dtype)
    assert torch.equal(log_uniform(u), torch.log(u))  # every positive draw untouched
    zero = log_uniform(torch.zeros(2, dtype=dtype))
    assert torch.isfinite(zero).all()
    assert float(zero[0]) == pytest.approx(torch.log(torch.tensor(torch.finfo(dtype).eps / 2, dtype=torch.float64)).item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_gibbs_sweep_with_zero_draws_rejects_moves_out_of_the_support(dtype):
    """A box target (log p~ = 0 on [-1, 1], -1e6 outside): flat, so every coordinate falls
    back to a random walk of the particles' scale, and a third of the proposals leave the box."""
    def log_box(x):
        return torch.where(x.abs().amax(-1) <= 1, torch.zeros_like(x[..., 0]), torch.full_like(x[..., 0], -1e6))

    R, N, d = 2, 500, 3
    x = torch.zeros(R, N, d, dtype=dtype)
    out, lp, _ = gibbs_sweep(x, log_box(x), torch.ones(R, dtype=dtype), torch.ones(R, 1, d, dtype=dtype),
                             torch.ones(R, dtype=torch.bool), log_prob=log_box, log_ref_q=lambda q: -0.5 * q,
                             generator=torch.Generator().manual_seed(1), shard=ZeroUniforms())
    assert float(out.abs().max()) <= 1 and bool((lp == 0).all())
    assert float(out.abs().max()) > 0  # the moves inside the box were accepted


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hmc_with_zero_draws_rejects_diverging_proposals(dtype):
    """Standard normal, leapfrog steps of 50 standard deviations: every trajectory diverges."""
    def terms(y):
        return -0.5 * (y * y).sum(-1), -y

    R, N, d = 2, 200, 4
    x = torch.full((R, N, d), 0.5, dtype=dtype)
    lp, grad = terms(x)
    out, *_ = hmc_move(x, lp, grad, torch.ones(R, dtype=dtype), torch.full((R,), 50.0, dtype=dtype),
                       torch.ones(R, 1, d, dtype=dtype), torch.ones(R, dtype=torch.bool), terms=terms,
                       log_ref=lambda y: -0.5 * (y * y).sum(-1), grad_ref=lambda y: -y, leapfrog_steps=3,
                       step_jitter=1.0, generator=torch.Generator().manual_seed(2), shard=ZeroUniforms())
    assert torch.equal(out, x)


def test_mala_local_search_with_zero_draws_rejects_diverging_proposals(monkeypatch):
    def terms(y):
        return -0.5 * (y * y).sum(-1), -y

    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.zeros(*shape, dtype=kw.get("dtype"),
                                                                       device=kw.get("device")))
    x = torch.full((100, 3), 0.5)
    res = mala(terms, x, steps=3, step_size=500.0, adapt=False, generator=torch.Generator().manual_seed(4))
    assert torch.equal(res.x, x)
