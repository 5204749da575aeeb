"""Adaptive importance sampling (``logz.samplers.importance``): exact log Z on targets with a
closed-form normalizer, calibration over seeds, the Laplace start, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from logz import samplers, targets
from logz.samplers.importance import Proposal, laplace, student_t_draw

SLOPES = [3.0, -2.0, 1.0, 5.0, 0.5]


def skewed(dim: int = 5):
    """p~(x) = N(x; 0, I) (2 pi)^(d/2) prod_i sigmoid(a_i x_i): skewed, log-concave, and since
    sigmoid(t) + sigmoid(-t) = 1 with N symmetric, Z = (2 pi)^(d/2) / 2^d exactly."""
    a = torch.tensor(SLOPES[:dim], dtype=torch.float64)

    def log_prob(x):
        return -0.5 * (x * x).sum(-1) + torch.nn.functional.logsigmoid(x * a.to(x)).sum(-1)

    return targets.from_log_prob(log_prob, dim, log_Z=0.5 * dim * math.log(2 * math.pi) - dim * math.log(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_log_z_is_exact_to_its_error_bar(diag_gaussian, dtype):
    target = diag_gaussian([0.5, -1.0, 2.0], [1.0, 0.3, 2.0], log_Z=1.7)
    est = samplers.get("importance", target, seed=0, adapt_samples=2000, dtype=dtype).estimate_log_z(4000)
    assert est.reliable and est.ess > 0.8  # a t fitted to a Gaussian: near-uniform weights
    assert abs(est.log_z - 1.7) <= 4 * est.stderr + (1e-4 if dtype == torch.float32 else 0.0)


def test_estimates_on_a_skewed_target_are_calibrated_over_seeds():
    target = skewed()
    z = []
    for seed in range(30):
        est = samplers.get("importance", target, seed=seed, adapt_samples=2000, adapt_rounds=4).estimate_log_z(2000)
        assert est.reliable
        z.append((est.log_z - target.log_Z) / est.stderr)
    z = torch.tensor(z)
    assert float((z.abs() <= 3).double().mean()) >= 0.9
    assert abs(float(z.mean())) <= 3 / math.sqrt(len(z)) + 0.3  # unbiased to the spread of 30 z-scores


def test_laplace_finds_mode_and_covariance_of_a_gaussian(diag_gaussian):
    target = diag_gaussian([0.5, -1.0], [1.0, 0.3], log_Z=0.0)
    mode, cov = laplace(target, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(mode, torch.tensor([0.5, -1.0], dtype=torch.float64))
    torch.testing.assert_close(cov, torch.diag(torch.tensor([1.0, 0.3], dtype=torch.float64)))


def test_laplace_gives_up_where_the_hessian_is_not_negative_definite():
    bimodal = targets.from_log_prob(lambda x: torch.logsumexp(torch.stack([-2 * (x - 2).pow(2).sum(-1),
                                                                           -2 * (x + 2).pow(2).sum(-1)]), 0), 1)
    assert laplace(bimodal, torch.zeros(1, dtype=torch.float64)) is None
    with pytest.warns(UserWarning, match="no Laplace fit"):
        est = samplers.get("importance", bimodal, seed=0, adapt_samples=2000).estimate_log_z(2000)
    assert math.isfinite(est.log_z)


def test_student_t_log_density_matches_torch():
    p = Proposal(torch.tensor([1.0, -2.0], dtype=torch.float64),
                 torch.tensor([[2.0, 0.0], [0.5, 0.7]], dtype=torch.float64), 5.0, None)
    x, log_q = student_t_draw(p, 7, torch.Generator().manual_seed(0))
    ref = torch.distributions.MultivariateNormal(p.mean, scale_tril=p.scale_tril)  # df = inf check below
    y = torch.linalg.solve_triangular(p.scale_tril, (x - p.mean).T, upper=False).T
    d = 2
    expected = (math.lgamma((5 + d) / 2) - math.lgamma(5 / 2) - 0.5 * d * math.log(5 * math.pi)
                - 0.5 * (5 + d) * torch.log1p(y.pow(2).sum(-1) / 5) - torch.log(torch.diagonal(p.scale_tril)).sum())
    torch.testing.assert_close(log_q, expected)
    x, log_q = student_t_draw(p._replace(df=math.inf), 7, torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_q, ref.log_prob(x))


def test_samples_follow_the_target(diag_gaussian):
    target = diag_gaussian([0.5, -1.0], [1.0, 0.3], log_Z=0.0)
    x = samplers.get("importance", target, seed=0, adapt_samples=2000).sample(4000)
    assert x.shape == (4000, 2)
    torch.testing.assert_close(x.mean(0), torch.tensor([0.5, -1.0], dtype=x.dtype), atol=0.06, rtol=0)
    torch.testing.assert_close(x.var(0), torch.tensor([1.0, 0.3], dtype=x.dtype), atol=0.08, rtol=0)


@pytest.mark.parametrize("bad, match", [(dict(df=2), "df must be"), (dict(adapt_rounds=-1), "adapt_rounds"),
                                        (dict(adapt_samples=3), "adapt_samples must be an integer >= dim \\+ 2 = 4"),
                                        (dict(chunk=0), "chunk"), (dict(dtype=torch.int64), "dtype")])
def test_bad_configuration_is_named(diag_gaussian, bad, match):
    with pytest.raises(ValueError, match=match):
        samplers.get("importance", diag_gaussian([0.0, 0.0], [1.0, 1.0], log_Z=0.0), **bad)


def test_nan_log_density_is_named():
    target = targets.from_log_prob(lambda x: torch.where(x[:, 0] > 0.5, torch.nan, -0.5 * (x * x).sum(-1)), 2,
                                   name="half-nan")
    with pytest.raises(ValueError, match="half-nan"):
        samplers.get("importance", target, seed=0, adapt_samples=1000).estimate_log_z(1000)


def test_reference_tool_runs_it(tmp_path):
    from logz.bench.reference import compute_reference_log_z

    rec = compute_reference_log_z("gaussian", tmp_path / "ref.json", num_samples=5000, sampler="importance",
                                  sampler_config={"adapt_samples": 1000}, target_kwargs={"dim": 3})
    assert rec["sampler"] == "importance" and abs(rec["log_z"]) <= 4 * rec["stderr"] + 1e-12
