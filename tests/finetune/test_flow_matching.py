"""Flow-matching base models: closed-form velocity, PF-ODE likelihood, training, sampling."""

import math

import pytest
import torch

from logz.finetune.closed_form import GaussianMixtureVelocity, fitted_gaussian_w2
from logz.finetune.flow_matching import FlowMatching, log_prob_ode, sample_ode



def _mixture():
    return GaussianMixtureVelocity([0.6, 0.4], [[-2.0, 0.0], [2.0, 1.0]], [[0.3, 0.5], [0.4, 0.2]])


def test_closed_form_velocity_is_conditional_expectation():
    """v(x, t) = E[x1 - x0 | x_t = x]: check by Monte Carlo in a narrow bin around a point."""
    v = GaussianMixtureVelocity.gaussian([1.0], [0.5])
    g = torch.Generator().manual_seed(0)
    n, t = 400_000, 0.6
    x1 = v.sample(n, generator=g, dtype=torch.float64)
    x0 = torch.randn(n, 1, generator=g, dtype=torch.float64)
    xt = (1 - t) * x0 + t * x1
    sel = (xt - 0.7).abs()[:, 0] < 0.02
    target = (x1 - x0)[sel]
    est, se = float(target.mean()), float(target.std() / math.sqrt(sel.sum()))
    exact = float(v(torch.tensor([[0.7]], dtype=torch.float64), torch.tensor(t, dtype=torch.float64)))
    # bin half-width 0.02 adds a bias of at most |dv/dx| * 0.02 (|dv/dx| <= 1.5 here)
    assert abs(est - exact) < 4 * se + 0.03


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ode_pushes_noise_to_the_mixture(dtype):
    v = _mixture()
    x = sample_ode(v, 8000, 2, num_steps=50, generator=torch.Generator().manual_seed(0), dtype=dtype)
    mu, cov = v.mean_and_cov()
    se = (torch.diagonal(cov) / 8000).sqrt()
    assert bool(((x.double().mean(0) - mu).abs() < 4 * se).all())


def test_pf_ode_log_prob_exact_and_hutchinson():
    v = _mixture()
    x = v.sample(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = v.log_prob_t(x, 1.0)
    lp = log_prob_ode(v, x, num_steps=50, divergence="exact")
    torch.testing.assert_close(lp, exact, atol=5e-3, rtol=0)  # RK4, 50 steps: error ~ h^4
    # Hutchinson is unbiased: the batch-mean error of each independent probe draw averages to ~0
    errs = torch.stack([(log_prob_ode(v, x, num_steps=20, divergence="hutchinson",
                                      generator=torch.Generator().manual_seed(s)) - exact).mean()
                        for s in range(8)])
    assert float(errs.abs().max()) > 0  # the estimator is actually random
    assert abs(float(errs.mean())) < 4 * float(errs.std()) / math.sqrt(8) + 1e-3  # + RK4 error
    with pytest.raises(ValueError, match="divergence"):
        log_prob_ode(v, x, divergence="magic")


def test_flow_matching_fit_on_target_samples():
    v = GaussianMixtureVelocity.gaussian([1.0, -1.0], [0.5, 1.5])
    fm = FlowMatching(hidden=64, depth=2, batch_size=256, lr=3e-3, seed=0)
    hist = fm.fit(v, iterations=400)  # anything with .sample(n, generator=) and .dim
    assert sum(hist.loss[-50:]) < sum(hist.loss[:50])
    x = fm.sample(5000, num_steps=40, generator=torch.Generator().manual_seed(0))
    mu, cov = v.mean_and_cov()
    # a 400-step fit: W2 within sampling error + 25% of W2(N(0, I), data)
    w2_prior = fitted_gaussian_w2(torch.randn(5000, 2, generator=torch.Generator().manual_seed(2)), mu, cov)
    assert fitted_gaussian_w2(x, mu, cov) < 3 * math.sqrt(2.0 / 5000) + 0.25 * w2_prior
    lp = fm.log_prob(x[:32], num_steps=20)
    assert lp.shape == (32,) and bool(torch.isfinite(lp).all())


def test_flow_matching_bad_input():
    fm = FlowMatching()
    with pytest.raises(RuntimeError, match="fit"):
        fm.sample(3)
    with pytest.raises(ValueError, match="Tensor"):
        fm.fit(torch.zeros(5), iterations=1)
    with pytest.raises(TypeError):
        fm.fit([1, 2, 3], iterations=1)
