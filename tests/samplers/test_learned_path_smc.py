"""SMC along DGFS's learned path (``logz.samplers.learned_path_smc``): Z^ is unbiased on Gaussian
targets (closed-form Z) for a fixed random (untrained) control and log-flow, with resampling
never, always and ESS-triggered; without resampling the product of the incremental weights is
the plain path weight; the error bar comes from independent replicates."""

from __future__ import annotations

import math

import pytest
import torch

from logz import samplers
from logz.samplers.learned_path_smc import learned_path_log_z
from logz.samplers.sequential import segment_ends

TARGETS = {1: ([1.0], [0.5], 0.3), 5: ([0.5, -0.5, 1.0, 0.0, 0.3], [1.0, 0.5, 0.8, 2.0, 0.6], -0.4)}


def random_dgfs(target, dtype, scale=0.1, seed=3, **kw):
    """An untrained DGFS whose control and log-flow nets are perturbed at random (fixed seed):
    a log-flow far from the true one, so the intermediate densities are neither exact nor flat."""
    s = samplers.get("dgfs", target, num_steps=8, dt=0.125, hidden=16, layers=2, dtype=dtype, **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in list(s.control.parameters()) + list(s.flow.parameters()):
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p))
    return s


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dim", [1, 5])
@pytest.mark.parametrize("threshold,mcmc", [(0.0, 0), (1.0, 0), (0.6, 0), (0.6, 2)])
def test_the_smc_corrected_estimate_of_z_is_unbiased(diag_gaussian, dim, threshold, mcmc, dtype):
    mean, var, log_Z = TARGETS[dim]
    s = random_dgfs(diag_gaussian(mean, var, log_Z=log_Z), dtype)
    R, P = 4000, 8  # 4000 independent replicates, vectorised in one run
    result = learned_path_log_z(s, R, P, segment_ends(8, 4), resample_threshold=threshold, mcmc_steps=mcmc,
                                generator=torch.Generator().manual_seed(11))
    ratio = torch.exp(result.log_z.double() - log_Z)  # Z^_r / Z
    ess = float(ratio.sum() ** 2 / (ratio.square().sum() * R))
    assert ess > 0.2, f"Z^_r too heavy-tailed for a meaningful check (ESS {ess:.3f})"
    se = float(ratio.std() / math.sqrt(R))
    assert abs(float(ratio.mean()) - 1.0) < 4 * se, (float(ratio.mean()), se)
    assert se < 0.03  # the check has power: a bias of a few percent fails it
    resampled = result.resampled
    assert resampled.shape == (4, R) and result.ess.shape == (4, R)
    if threshold == 0.0:
        assert not bool(resampled.any())
    elif threshold == 1.0:
        assert bool(resampled.all())
    else:  # ESS-triggered: some replicates resample, others carry their weights on
        assert 0.05 < float(resampled.double().mean()) < 0.95
    torch.testing.assert_close(torch.logsumexp(result.log_weights.double(), -1), torch.zeros(R, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    acc = result.acceptance
    if mcmc:  # moves at the 3 inner segment ends, none after the last
        assert bool(((acc[:-1] > 0) & (acc[:-1] <= 1)).all()) and bool(acc[-1].isnan().all())
    else:
        assert bool(acc.isnan().all())


@pytest.mark.parametrize("dim", [1, 5])
def test_without_resampling_the_increments_telescope_to_the_path_weight(diag_gaussian, dim):
    mean, var, log_Z = TARGETS[dim]
    s = random_dgfs(diag_gaussian(mean, var, log_Z=log_Z), torch.float64, eval_batch_size=400)
    R, P = 50, 8
    result = learned_path_log_z(s, R, P, segment_ends(8, 3), resample_threshold=0.0,
                                generator=torch.Generator().manual_seed(5))
    # per particle: sum_s log G_s = log W^(S) + log Z^ + log P (no resampling: W^(0) uniform)
    product = (result.log_weights + result.log_z[:, None] + math.log(P)).reshape(-1)
    x, log_w = s.log_weights(R * P, generator=torch.Generator().manual_seed(5))  # the same paths
    torch.testing.assert_close(result.particles.reshape(-1, dim), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(product, log_w, rtol=0, atol=1e-10)


def test_the_log_flow_at_one_grid_time_is_the_log_flows_row(diag_gaussian):
    s = random_dgfs(diag_gaussian([0.5, -0.5], [1.0, 0.5]), torch.float64)
    states = torch.randn(9, 6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    log_r = s.objective.log_reward(s, states.reshape(-1, 2)).view(9, 6)
    rows = s.log_flow(states, log_r)
    for k in (1, 4, 7):
        torch.testing.assert_close(s.intermediate_log_density(states[k], k), rows[k], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_estimate_has_a_replicate_error_bar(diag_gaussian, dtype):
    s = random_dgfs(diag_gaussian([0.5, -0.5], [1.0, 0.5], log_Z=0.3), dtype)
    est = s.estimate_log_z(640, resample=True, replicates=16, segments=4)
    assert est.num_samples == 640 and est.stderr > 0 and 0 < est.ess <= 1
    assert est.eubo is not None and est.reliable, est.reason  # the same path's EUBO, from exact samples
    assert abs(est.log_z - 0.3) < 4 * est.stderr + 0.02
    result = learned_path_log_z(s, 16, 40, segment_ends(8, 4), resample_threshold=0.3,
                                generator=torch.Generator().manual_seed(1))
    assert result.log_z.shape == (16,) and result.particles.shape == (16, 40, 2)
    assert result.log_weights.shape == (16, 40) and result.resampled.shape == (4, 16)
    assert result.log_z.unique().numel() == 16  # independent systems, not copies
    plain = s.estimate_log_z(640)  # resample=False: the importance-weighted estimate, as before
    assert plain.eubo is not None and plain.pareto_k is not None


def test_mass_the_learned_path_misses_flags_the_estimate():
    """Without MCMC the particles go only where the learned kernels take them: an untrained DGFS
    on gmm9 reaches few of the nine modes, and the same path's EUBO says so."""
    from logz import targets

    s = samplers.get("dgfs", targets.get("gmm9"), num_steps=8, hidden=8, layers=1)
    est = s.estimate_log_z(400, resample=True)
    assert not est.reliable and "EUBO" in est.reason and est.eubo > est.log_z + 3


@pytest.mark.parametrize("kw,match", [
    (dict(resample="yes"), "resample must be"), (dict(resample=True, segments=0), "segments must be"),
    (dict(resample=True, segments=9), "segments must be"), (dict(resample=True, replicates=1), "replicates must be"),
    (dict(resample=True, resample_threshold=1.5), "resample_threshold must be"),
    (dict(resample=True, replicates=400), "num_samples must be"), (dict(segments=4), "segments= and mcmc_steps="),
    (dict(mcmc_steps=1), "segments= and mcmc_steps="), (dict(resample=True, mcmc_steps=-1), "mcmc_steps must be"),
])
def test_bad_options_raise_naming_the_option(diag_gaussian, kw, match):
    s = random_dgfs(diag_gaussian([0.5], [1.0]), torch.float64)
    with pytest.raises(ValueError, match=match):
        s.estimate_log_z(640, **kw)


@pytest.mark.parametrize("name,kw", [("dgfs", dict(loss="tb")), ("tb", {}), ("pis", {})])
def test_a_sampler_without_a_log_flow_refuses_resample(diag_gaussian, name, kw):
    s = samplers.get(name, diag_gaussian([0.5], [1.0]), num_steps=4, hidden=8, layers=1, **kw)
    assert not s.intermediate_log_densities
    with pytest.raises(ValueError, match="resample=True needs intermediate log-densities"):
        s.estimate_log_z(100, resample=True)
