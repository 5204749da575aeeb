"""SMC, the baseline every learned sampler is compared with, against exact log Z."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from logz import samplers, targets
from logz.samplers.smc import SMC, systematic_resample

# Many-Well-32 at the defaults (160 HMC moves per unit beta) takes minutes: slow suite.
EXACT_TARGETS = [("gaussian", {"dim": 5, "std": 2.0, "log_Z": 1.7}), ("gmm9", {}), ("funnel", {}),
                 pytest.param("manywell", {}, marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,kwargs", EXACT_TARGETS, ids=["gaussian", "gmm9", "funnel", "manywell"])
def test_smc_defaults_within_three_standard_errors(name, kwargs):
    """A smoke check of one seed (the README demo's); whether the error bar is calibrated is
    measured over 50 seeds in test_smc_calibration.py and results/calibration/."""
    target = targets.get(name, **kwargs)
    est = samplers.get("smc", target, seed=0).estimate_log_z(2000)
    assert est.num_samples == 2000 and 0 < est.ess <= 1
    assert est.stderr > 0
    assert abs(est.log_z - target.log_Z) < 3 * est.stderr, (name, est)
    assert est.elbo <= est.log_z + 1e-12  # mean of log Z^_r <= log of mean Z^_r


def test_smc_float32_and_ais():
    target = targets.get("gaussian", dim=3, std=0.5)
    for name, cfg in [("smc", {"dtype": torch.float32}), ("ais", {})]:
        est = samplers.get(name, target, seed=1, **cfg).estimate_log_z(800)
        assert abs(est.log_z - target.log_Z) < 3 * est.stderr + 1e-3, (name, est)


def test_smc_evidence_of_conjugate_pyro_model():
    """z ~ N(0, 1), x_i | z ~ N(z, 1): the evidence is N(x; 0, I + 11^T), known exactly."""
    data = torch.tensor([0.3, -0.5, 1.2, 0.8, 0.1], dtype=torch.float64)

    def model(x):
        z = pyro.sample("z", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    n = len(data)
    cov = torch.eye(n, dtype=torch.float64) + torch.ones(n, n, dtype=torch.float64)
    exact = float(torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), cov).log_prob(data))
    target = targets.from_pyro(model, data)
    est = SMC(target, seed=0).estimate_log_z(1000)
    assert abs(est.log_z - exact) < 3 * est.stderr, (est, exact)


def test_sample_returns_target_draws():
    target = targets.get("gaussian", dim=2, std=1.5, mean=1.0)
    x = SMC(target, seed=2).sample(2000)
    assert x.shape == (2000, 2)
    # approximate samples: mean within 4 standard errors (sd 1.5 / sqrt(n); resampling inflates a bit)
    assert (x.mean(0) - 1.0).abs().max() < 4 * 1.5 / math.sqrt(2000) * 2


def test_systematic_resampling_is_unbiased():
    gen = torch.Generator().manual_seed(0)
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).log()
    counts = torch.zeros(4)
    for _ in range(500):
        idx = systematic_resample(w, gen)
        counts += torch.bincount(idx[0], minlength=4)
    freq = counts / counts.sum()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.01)


class _NaNTarget(targets.BaseTarget):
    def __init__(self):
        super().__init__(2, name="nan-at-origin")

    def log_prob(self, x):
        return torch.where(x[:, 0] > 0, torch.full_like(x[:, 0], float("nan")), -0.5 * (x ** 2).sum(-1))


def test_bad_targets_name_the_problem():
    with pytest.raises(ValueError, match="nan-at-origin.*NaN"):
        SMC(_NaNTarget(), seed=0).estimate_log_z(100)
    wrong_shape = targets.from_log_prob(lambda x: -0.5 * (x ** 2), dim=2, name="wrong-shape")
    with pytest.raises(ValueError, match="wrong-shape.*shape"):
        SMC(wrong_shape).estimate_log_z(100)
    no_grad = targets.from_log_prob(lambda x: torch.as_tensor((-0.5 * (x ** 2).sum(-1)).detach().numpy()),
                                    dim=2, name="numpy-target")
    with pytest.raises(ValueError, match="numpy-target.*not differentiable"):
        SMC(no_grad).estimate_log_z(100)
    with pytest.raises(ValueError, match="cess"):
        SMC(targets.get("gaussian"), cess=1.5)
    with pytest.raises(ValueError, match="at least 2 particles"):
        SMC(targets.get("gaussian"), num_replicates=8).estimate_log_z(10)
    with pytest.raises(ValueError, match="unknown sampler 'nope'.*smc"):
        samplers.get("nope", targets.get("gaussian"))
