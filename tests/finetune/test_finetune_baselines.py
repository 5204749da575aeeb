"""Baselines: the non-memoryless bias predicted by theory, continuous adjoint, DRaFT-K.

For a Gaussian base N(m, diag(s^2)) the Euler scheme of the base SDE is affine,
X_{k+1} = (1 + h beta_k) X_k + const + sigma_k sqrt(h) eps, and with a linear reward b^T x
the SOC optimum shifts the terminal mean by C b, C = Var(X_K | X_0) =
sum_k h sigma_k^2 prod_{j>k} (1 + h beta_j)^2. Memoryless: C = S (X_K independent of X_0),
so the shift is S b, the exact tilt. Otherwise C != S: the bias the paper proves.
"""

import math

import pytest
import torch

from logz.finetune.baselines import (DRaFT, ContinuousAdjoint, NonMemorylessAdjointMatching,
                                     make_finetuner)
from logz.finetune.closed_form import GaussianMixtureVelocity, QuadraticReward, fitted_gaussian_w2
from logz.finetune.noise import ConstantNoise, MemorylessNoise
from logz.sde import uniform_grid



M, S2, B = [1.0, -0.5], [0.5, 2.0], [1.0, -0.5]


def _conditional_var(noise, K):
    """Var(X_K | X_0) per coordinate for the Euler scheme of the Gaussian base SDE."""
    s2 = torch.tensor(S2, dtype=torch.float64)
    t = uniform_grid(1.0, K, dtype=torch.float64)[:-1]
    h = 1.0 / K
    V = (1 - t[:, None]) ** 2 + t[:, None] ** 2 * s2
    dv = (t[:, None] * s2 - (1 - t[:, None])) / V
    sig = noise(t)[:, None]
    beta = dv + sig ** 2 / (2 * (1 - t[:, None])) * (t[:, None] * dv - 1)
    c = torch.zeros(2, dtype=torch.float64)
    for k in range(K):  # forward recursion: C_{k+1} = (1 + h beta_k)^2 C_k + h sigma_k^2
        c = (1 + h * beta[k]) ** 2 * c + h * sig[k] ** 2
    return c


def test_memoryless_schedule_makes_x1_independent_of_x0():
    s2 = torch.tensor(S2, dtype=torch.float64)
    errs = [float((_conditional_var(MemorylessNoise(1.0 / K), K) - s2).abs().max()) for K in (40, 80)]
    assert errs[1] < 0.6 * errs[0]  # C -> S at first order in h
    c = _conditional_var(ConstantNoise(0.5), 40)
    assert bool((c < 0.5 * s2).all())  # a constant small sigma keeps X_1 strongly tied to X_0


def test_non_memoryless_is_biased_as_predicted():
    base = GaussianMixtureVelocity.gaussian(M, S2)
    rew = QuadraticReward(2, b=B)
    K, n = 20, 10_000
    with pytest.warns(UserWarning, match="not memoryless"):
        from logz.finetune.adjoint_matching import AdjointMatching
        AdjointMatching(base, rew, num_steps=K, noise=ConstantNoise(0.5))
    ft = NonMemorylessAdjointMatching(base, rew, num_steps=K, batch_size=64, lr=2e-3, seed=0)
    ft.fit(200)
    x = ft.sample(n, method="sde", generator=torch.Generator().manual_seed(5)).double()
    m, b, s2 = (torch.tensor(v, dtype=torch.float64) for v in (M, B, S2))
    m_exact = m + s2 * b
    m_biased = m + _conditional_var(ft.noise, K) * b
    se = (x.var(0) / n).sqrt()
    allowance = 0.1 * (m_exact - m).abs()  # optimization/discretization allowance, as for AM
    assert bool(((x.mean(0) - m_biased).abs() < 4 * se + allowance).all()), (x.mean(0), m_biased)
    assert bool(((x.mean(0) - m_exact).abs() > 4 * se + 3 * allowance).all()), (x.mean(0), m_exact)


def test_continuous_adjoint_reaches_tilted_gaussian():
    base = GaussianMixtureVelocity.gaussian(M, S2)
    rew = QuadraticReward(2, b=B)
    star = base.tilt(rew)
    ft = ContinuousAdjoint(base, rew, num_steps=20, batch_size=64, lr=2e-3, seed=0)
    ft.fit(150)
    n = 10_000
    x = ft.sample(n, method="sde", generator=torch.Generator().manual_seed(5))
    mu, cov = star.mean_and_cov()
    tol = 3 * math.sqrt(float(torch.trace(cov)) / n) + 0.1 * float((star.means - base.means).norm())
    assert fitted_gaussian_w2(x, mu, cov) < tol
    # the recorded SOC objective decreases
    assert sum(ft.history.metrics["soc_objective"][-20:]) < sum(ft.history.metrics["soc_objective"][:20])


def test_draft_maximizes_reward_and_collapses_variance():
    """DRaFT has no KL term: the reward rises past that of p*, and the variance falls below S*."""
    base = GaussianMixtureVelocity.gaussian(M, S2)
    rew = QuadraticReward(2, lam=[2.0, 0.5], c=[0.0, 1.0])
    star = base.tilt(rew)
    ft = DRaFT(base, rew, num_steps=10, backprop_steps=2, batch_size=64, lr=5e-3, seed=0)
    ft.fit(150)
    n = 4000
    x = ft.sample(n, generator=torch.Generator().manual_seed(5)).double()
    xs = star.sample(n, generator=torch.Generator().manual_seed(6)).double()
    r_ft, r_star = rew(x), rew(xs)
    se = math.sqrt(float(r_ft.var() + r_star.var()) / n)
    assert float(r_ft.mean() - r_star.mean()) > 4 * se
    assert bool((x.var(0) < star.variances[0]).all())


def test_make_finetuner_and_bad_inputs():
    base = GaussianMixtureVelocity.gaussian(M, S2)
    rew = QuadraticReward(2, b=B)
    assert isinstance(make_finetuner("draft", base, rew, num_steps=4), DRaFT)
    with pytest.raises(ValueError, match="unknown fine-tuner"):
        make_finetuner("nope", base, rew)
    with pytest.raises(ValueError, match="backprop_steps"):
        DRaFT(base, rew, num_steps=4, backprop_steps=5)
