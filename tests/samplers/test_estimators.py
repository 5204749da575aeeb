"""Estimators on a Gaussian proposal vs a Gaussian target, where everything is closed form."""

import math

import pytest
import torch
from torch.distributions import Normal

from logz.samplers.estimators import (LogZEstimate, combine_independent_log_z, effective_sample_size,
                                      estimate_from_log_weights, log_z_stderr)


def _setup(n, seed, dtype=torch.float64):
    # target p~(x) = Z N(x; 0.5, 1) per dim with log Z = 1.3; proposal q = N(0, 1.2^2)
    d, log_z = 2, 1.3
    gen = torch.Generator().manual_seed(seed)
    p, q = Normal(torch.tensor(0.5, dtype=dtype), 1.0), Normal(torch.tensor(0.0, dtype=dtype), 1.2)
    xq = 1.2 * torch.randn(n, d, generator=gen, dtype=dtype)
    xp = 0.5 + torch.randn(n, d, generator=gen, dtype=dtype)

    def log_w(x):
        return p.log_prob(x).sum(-1) + log_z - q.log_prob(x).sum(-1)

    return log_z, log_w(xq), log_w(xp)


def test_bounds_and_error_bar(dtype):
    log_z, lw, lw_target = _setup(4000, 0, dtype)
    est = estimate_from_log_weights(lw, lw_target)
    assert isinstance(est, LogZEstimate) and est.num_samples == 4000
    assert est.elbo <= log_z <= est.eubo
    assert abs(est.log_z - log_z) < 3 * est.stderr
    assert 0 < est.ess <= 1


def test_stderr_is_calibrated():
    """Across independent repeats, the spread of log Z^ matches the reported standard error."""
    estimates = [estimate_from_log_weights(_setup(1000, seed)[1]) for seed in range(200)]
    log_zs = torch.tensor([e.log_z for e in estimates])
    mean_se = sum(e.stderr for e in estimates) / len(estimates)
    # the sd of a sample sd from 200 repeats is about sd / sqrt(2 * 199) (5%); allow 4 of those
    assert abs(float(log_zs.std()) / mean_se - 1) < 4 / math.sqrt(2 * 199)


def test_ess_limits_and_combination():
    assert math.isclose(effective_sample_size(torch.zeros(10)), 1.0)
    lw = torch.tensor([0.0] + [-1e3] * 9)
    assert math.isclose(effective_sample_size(lw), 0.1, rel_tol=1e-9)
    assert log_z_stderr(torch.zeros(10)) == 0.0
    log_z, se = combine_independent_log_z(torch.tensor([0.0, 0.0, 0.0]))
    assert log_z == 0.0 and se == 0.0


@pytest.mark.parametrize("bad", [torch.tensor([0.0, float("nan")]), torch.tensor([float("inf"), 0.0]),
                                 torch.zeros(2, 2), torch.tensor([])])
def test_bad_log_weights(bad):
    with pytest.raises(ValueError):
        estimate_from_log_weights(bad)
