"""Adjoint Sampling on targets with known log Z, plus the sampler contract."""

import pytest
import torch

from logz import samplers
from logz.samplers.adjoint_sampling import AdjointSampling
from logz.targets.gaussian import Gaussian



def test_registered_and_contract(tmp_path):
    tg = Gaussian([0.0, 0.0], 1.0)
    s = samplers.get("adjoint_sampling", tg, num_steps=10, batch_size=16, paths_per_refresh=16, seed=1)
    assert isinstance(s, AdjointSampling)
    hist = s.fit(3, progress=False)
    assert len(hist.loss) == 3
    assert s.sample(5).shape == (5, 2)
    est = s.estimate_log_z(num_samples=8)
    assert est.num_samples == 8
    path = tmp_path / "as.pt"
    s.save(str(path))
    s2 = AdjointSampling(tg, num_steps=10, batch_size=16, paths_per_refresh=16, seed=1)
    s2.load(str(path))
    for p, q in zip(s.control.parameters(), s2.control.parameters()):
        torch.testing.assert_close(p, q)


def test_untrained_sampler_is_the_base_and_its_log_z_is_exact_for_base_shaped_target():
    """With u = 0 the sampler is the base, X_T ~ N(0, nu_T I); for a target equal to that
    Gaussian times exp(c), every importance weight equals c exactly (up to float error)."""
    s0 = AdjointSampling(Gaussian([0.0, 0.0], 1.0), num_steps=20, sigma_max=3.0, dtype=torch.float64)
    tg = Gaussian([0.0, 0.0], s0.var_T, log_Z=1.3)
    s = AdjointSampling(tg, num_steps=20, sigma_max=3.0, dtype=torch.float64)
    _, log_w = s.log_weights(64)
    torch.testing.assert_close(log_w, torch.full_like(log_w, 1.3), atol=1e-8, rtol=0)


def test_bad_config():
    tg = Gaussian([0.0], 1.0)
    with pytest.raises(ValueError, match="sigma_min"):
        AdjointSampling(tg, sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        AdjointSampling(tg, batch_size=0)


def test_log_z_of_a_shifted_gaussian():
    tg = Gaussian([1.0, -1.0], [0.5, 1.5], log_Z=0.7)
    s = AdjointSampling(tg, num_steps=50, batch_size=256, refresh_every=10, sigma_max=3.0, lr=2e-3, seed=0)
    s.fit(600, progress=False)
    est = s.estimate_log_z(2000)
    # importance-weighted log Z: within 5 standard errors plus its O(1/(n ESS)) low bias
    assert abs(est.log_z - 0.7) < 5 * est.stderr + 1.0 / (2000 * est.ess), est
    assert est.elbo <= est.log_z + 1e-9
    assert est.ess > 0.1


def test_variance_time_sampling_inverts_the_schedule():
    """time_sampling='variance' draws t with nu_t = frac * nu_T exactly."""
    s = AdjointSampling(Gaussian([0.0, 0.0], 1.0), sigma_max=3.0, dtype=torch.float64)
    frac = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    t = s._time_at_variance_fraction(frac)
    torch.testing.assert_close(s.schedule.cumulative(t), frac * s.var_T, rtol=1e-10, atol=1e-12)


def test_parameterizations_agree_on_the_control():
    """'adjoint' computes u = -sigma(t) A(x, t) from the same network that 'control' reads as u."""
    tg = Gaussian([0.0, 0.0], 1.0)
    a = AdjointSampling(tg, num_steps=10, seed=2, dtype=torch.float64, grad_feature=False)
    c = AdjointSampling(tg, num_steps=10, seed=2, dtype=torch.float64, parameterization="control")
    for p in a.control.parameters():  # a non-zero network (the output layer starts at 0)
        p.data.normal_(0, 0.3, generator=torch.Generator().manual_seed(p.numel()))
    c.control.load_state_dict(a.control.state_dict())
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.full((5,), 0.7, dtype=torch.float64)
    sigma = a.schedule.sqrt(t)[:, None]
    torch.testing.assert_close(a._u(x, t), -sigma * c._u(x, t))
    torch.testing.assert_close(a._u(x, t[0]), -sigma * c._u(x, t[0]))


def test_bad_options_name_the_problem():
    tg = Gaussian([0.0], 1.0)
    with pytest.raises(ValueError, match="parameterization"):
        AdjointSampling(tg, parameterization="drift")
    with pytest.raises(ValueError, match="time_sampling"):
        AdjointSampling(tg, time_sampling="log")
    with pytest.raises(ValueError, match="random_symmetry"):
        AdjointSampling(tg, symmetrize=True)


def test_log_z_of_a_shifted_gaussian_with_the_papers_parameterization():
    """The 'control' parameterization with uniform t (the paper's loss) reaches the same log Z."""
    tg = Gaussian([1.0, -1.0], [0.5, 1.5], log_Z=0.7)
    s = AdjointSampling(tg, num_steps=50, batch_size=256, refresh_every=10, sigma_max=3.0, lr=2e-3, seed=0,
                        parameterization="control", time_sampling="uniform")
    s.fit(600, progress=False)
    est = s.estimate_log_z(2000)
    assert abs(est.log_z - 0.7) < 5 * est.stderr + 1.0 / (2000 * est.ess), est


def test_grad_feature_network_is_exact_at_the_terminal_adjoint():
    """With the gradient feature, A(x, t) = NN(x, t) + c(t) grad g(x): NN = 0 (its zero-initialised
    output) and c = 1 give A = grad g(x) exactly, the lean adjoint at t = T; at initialisation
    c = 0, so the untrained sampler is the base."""
    tg = Gaussian([1.0, -1.0], [0.5, 1.5])
    s = AdjointSampling(tg, num_steps=10, dtype=torch.float64)
    x = torch.randn(6, 2, dtype=torch.float64)
    t = torch.full((6,), 0.9, dtype=torch.float64)
    torch.testing.assert_close(s._u(x, t), torch.zeros_like(x))
    s.control.scale.net[-1].bias.data.fill_(1.0)
    torch.testing.assert_close(s.control(x, t), s.terminal_cost_grad(x))
    with pytest.raises(ValueError, match="grad_feature"):
        AdjointSampling(tg, parameterization="control", grad_feature=True)


@pytest.mark.slow
def test_log_z_of_the_nine_mode_mixture():
    """Multimodal: on gmm9 (modes 5 apart, std 0.55) the sampler covers the modes well enough
    for the importance-weighted log Z to land within its error (about 2 minutes on a CPU)."""
    from logz import targets

    tg = targets.get("gmm9")
    s = AdjointSampling(tg, sigma_max=8.0, seed=0)
    s.fit(4000, progress=False)
    est = s.estimate_log_z(2000)
    assert abs(est.log_z - tg.log_Z) < 4 * est.stderr + 1.0 / (2000 * est.ess), est
    modes = tg.assign_modes(s.sample(2000))
    assert len(torch.unique(modes)) == 9
