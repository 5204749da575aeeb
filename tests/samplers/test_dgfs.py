"""DGFS / TB / DB / VarGrad sampler: API, parameterisation, exploration, replay, resume, training."""

from __future__ import annotations

import math

import pytest
import torch

from logz import samplers
from logz.samplers.dgfs import DGFS
from logz.samplers.objectives.gfn import GFNBatch
from logz.samplers.training import TrainingError
from logz.sde.reference import gaussian_log_prob
from logz.targets import GaussianMixture

SMALL = dict(hidden=16, layers=1, num_steps=10, dt=0.1, batch_size=32)
OFF_POLICY = dict(exploration=0.2, exploration_decay_iterations=6, replay=200, local_search=True,
                  local_search_every=3, local_search_steps=5)


@pytest.mark.parametrize("loss", ["subtb", "tb", "db", "vargrad"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_loss_trains_samples_and_estimates(diag_gaussian, loss, dtype):
    target = diag_gaussian([0.0, 1.0], [1.0, 1.0])
    s = samplers.get("dgfs", target, loss=loss, dtype=dtype, seed=0, **SMALL)
    h = s.fit(3, progress=False)
    assert len(h.loss) == 3 and all(math.isfinite(v) for v in h.loss)
    assert all(math.isfinite(v) for v in h.log_z) and all(0 < v <= 1 for v in h.metrics["ess"])
    x = s.sample(7)
    assert x.shape == (7, 2) and x.dtype == dtype
    est = s.estimate_log_z(64)
    assert est.num_samples == 64 and 0 < est.ess <= 1 and est.eubo is not None
    assert est.elbo <= est.log_z + 1e-9
    if loss == "vargrad":
        assert s.learned_log_z is None
    else:
        assert math.isfinite(s.learned_log_z) and len(h.metrics["learned_log_z"]) == 3
    assert "tb" in samplers.names() and samplers.get("tb", target, **SMALL).loss == "tb"
    lv = samplers.get("dgfs_lv", target, **SMALL)
    assert lv.loss == "subtb" and lv.control.log_var_range == 4.0


def test_flow_parameterisation_at_initialisation(diag_gaussian):
    """NN_flow = 0 at init: log F = (t/T) log R + (1 - t/T) log N(0, sigma^2 max(0.01 T, t)), = log R at T."""
    target = diag_gaussian([1.0, -1.0], [0.5, 2.0])
    s = DGFS(target, sigma=1.5, dtype=torch.float64, **SMALL)
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(11, 5, 2, generator=gen, dtype=torch.float64)
    log_r = torch.stack([target.log_prob(x) for x in states])
    got = s.log_flow(states, log_r)
    t, T = s.times, s.T
    for k in (0, 4, 10):
        ref = gaussian_log_prob(states[k], 0.0, 1.5 ** 2 * max(0.01 * T, float(t[k])))
        expected = (float(t[k]) / T) * log_r[k] + (1 - float(t[k]) / T) * ref
        torch.testing.assert_close(got[k], expected, rtol=0, atol=1e-10)
    # learned log Z of the untrained flow: log N(0; 0, sigma^2 0.01 T) in 2 dimensions
    assert s.learned_log_z == pytest.approx(-math.log(2 * math.pi * 1.5 ** 2 * 0.01 * T), abs=1e-10)


def test_exploration_noise_decays_and_inflates_the_behaviour_variance(diag_gaussian):
    target = diag_gaussian([0.0, 0.0], [1.0, 1.0])
    s = DGFS(target, drift="nn", exploration=0.3, exploration_decay_iterations=10, dtype=torch.float64, **SMALL)
    assert s.noise_scale(0) == pytest.approx(math.sqrt(1 + 0.09 / 0.1))
    assert s.noise_scale(5) == pytest.approx(math.sqrt(1 + 0.15 ** 2 / 0.1)) and s.noise_scale(10) == 1.0
    s.batch_size = s.local_batch_size = 4000
    with torch.no_grad():
        states, n_fwd = s._behaviour_paths(0)  # zero drift: x_N ~ N(0, (sigma^2 dt + e^2) N)
    var, expected = float(states[-1].var()), (0.1 + 0.09) * 10
    assert n_fwd == 4000 and abs(var - expected) < 5 * expected * math.sqrt(2 / 8000)


def test_bridge_paths_start_at_zero_end_at_the_state_and_have_bridge_marginals(diag_gaussian):
    s = DGFS(diag_gaussian([0.0], [1.0]), dtype=torch.float64, **SMALL)
    y = torch.full((20000, 1), 2.0, dtype=torch.float64)
    paths = s.bridge_paths(y, torch.Generator().manual_seed(0))
    assert paths.shape == (11, 20000, 1) and torch.equal(paths[-1], y) and torch.all(paths[0] == 0)
    # Brownian bridge from 0 to y: X_t ~ N(y t / T, sigma^2 t (T - t) / T)
    t, T, k = float(s.times[4]), s.T, 4
    mean, var = 2.0 * t / T, t * (T - t) / T
    assert abs(float(paths[k].mean()) - mean) < 5 * math.sqrt(var / 20000)
    assert abs(float(paths[k].var()) - var) < 5 * var * math.sqrt(2 / 20000)


def test_off_policy_training_is_seeded_and_resumes_bit_identically(diag_gaussian, tmp_path):
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5])
    torch.manual_seed(123)
    state = torch.get_rng_state()
    full = DGFS(target, seed=3, **SMALL, **OFF_POLICY)
    full.fit(8, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # only the sampler's own generators
    assert len(full.buffer) > 0 and full.behaviour.step_size != 1e-3  # local search ran and adapted
    assert 0 <= full.behaviour.acceptance <= 1
    assert math.isnan(full.history.log_z[0]) and math.isfinite(full.history.log_z[-1])  # off- then on-policy
    again = DGFS(target, seed=3, **SMALL, **OFF_POLICY)
    again.fit(8, progress=False)
    assert again.history.loss == full.history.loss
    part = DGFS(target, seed=3, **SMALL, **OFF_POLICY)
    part.fit(4, progress=False)
    part.save(tmp_path / "ck.pt")
    resumed = DGFS(target, seed=3, **SMALL, **OFF_POLICY)
    resumed.load(tmp_path / "ck.pt")
    resumed.fit(4, progress=False)
    assert resumed.history.loss == full.history.loss
    assert torch.equal(resumed.buffer.x, full.buffer.x)
    for a, b in zip(resumed.trainer.params, full.trainer.params):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="loss"):
        DGFS(target, seed=3, loss="tb", **SMALL).load(tmp_path / "ck.pt")


@pytest.mark.parametrize("bad, match", [
    (dict(loss="kl"), "loss"), (dict(dt=0), "dt"), (dict(num_steps=0), "num_steps"),
    (dict(subtb_lambda=0), "subtb_lambda"), (dict(exploration=-1), "exploration"),
    (dict(local_search=True), "local_search"), (dict(replay=True, replay_fraction=1.0), "replay_fraction"),
    (dict(lr_flow=0), "lr_flow"), (dict(lr_policy=-1), "learning rate"), (dict(T=2.0), "T"),
    (dict(diffusion=1.0), "diffusion"), (dict(minibatches=0), "minibatches"), (dict(minibatches=300), "minibatches"), (dict(loss="tb", flow=torch.nn.Linear(1, 1)), "flow"), (dict(subtb_pairs=0), "subtb_pairs"), (dict(batch_size=1), "batch_size"),
])
def test_bad_config_raises_value_error_naming_it(diag_gaussian, bad, match):
    with pytest.raises(ValueError, match=match):
        DGFS(diag_gaussian([0.0], [1.0]), **bad)


def test_nan_target_mid_training_is_a_clear_training_error(diag_gaussian):
    target = diag_gaussian([0.0, 0.0], [1.0, 1.0], name="broken")
    s = DGFS(target, **SMALL)
    s.fit(1, progress=False)
    target.log_prob = lambda x: torch.full((x.shape[0],), float("nan"), dtype=x.dtype)
    with pytest.raises(TrainingError, match="broken"):
        s.fit(1, progress=False)


def test_plot_writes_png_for_2d_and_higher_dimensional_targets(diag_gaussian, tmp_path):
    from matplotlib.figure import Figure

    for mean in ([0.0, 1.0], [0.0, 1.0, 2.0]):
        s = DGFS(diag_gaussian(mean, [1.0] * len(mean)), eval_every=2, eval_samples=50, **SMALL)
        s.fit(2, progress=False)
        path = tmp_path / f"diag{len(mean)}.png"
        fig = s.plot(path, num_samples=100)
        assert isinstance(fig, Figure) and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(fig.axes) == 3 + (len(mean) == 2)


def _check_training(s, target, iterations):
    before = s.estimate_log_z(2000)
    s.fit(iterations, progress=False)
    est = s.estimate_log_z(2000)
    # 3 standard errors plus the delta-method bias of the IS estimate (about stderr^2 / 2)
    assert abs(est.log_z - target.log_Z) < 3 * est.stderr + est.stderr ** 2 / 2, (before, est)
    assert est.ess > before.ess
    # the bounds bracket the truth (each up to its own Monte Carlo error)
    assert est.elbo < target.log_Z + 4 * est.stderr and est.eubo > target.log_Z - 4 * est.stderr
    return est


@pytest.mark.parametrize("loss", ["subtb", "tb"])
def test_short_training_on_2d_gaussian_reaches_log_z_within_its_error(diag_gaussian, loss):
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5], log_Z=1.3)
    s = DGFS(target, loss=loss, num_steps=20, dt=0.05, batch_size=64, lr_policy=1e-3, lr_flow=1e-2,
             hidden=32, seed=0)
    _check_training(s, target, 200)
    assert abs(s.learned_log_z - target.log_Z) < 0.3  # the loss's own estimate is in the right place


def test_short_training_on_2d_gmm_reaches_log_z_within_its_error():
    target = GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], 0.5, log_Z=-0.3)
    s = DGFS(target, num_steps=20, dt=0.05, batch_size=64, lr_policy=1e-3, lr_flow=1e-2, hidden=32, seed=0)
    _check_training(s, target, 200)
    modes = target.assign_modes(s.sample(2000))
    frac = float((modes == 0).double().mean())
    assert abs(frac - 0.5) < 0.15  # both modes found (a collapsed sampler gives 0 or 1)


def test_minibatches_make_that_many_updates_on_interleaved_paths(diag_gaussian):
    """minibatches=K: K Adam updates per iteration, update k on paths k, k+K, ...; the first
    update equals the one-update step on those paths alone (same simulation, same seed)."""
    target = diag_gaussian([0.0, 1.0], [1.0, 1.0])
    K = 4
    s = DGFS(target, minibatches=K, seed=0, replay=64, **SMALL)
    s.fit(2, progress=False)
    steps = {int(st["step"]) for st in s.trainer.optimizer.state.values()}
    assert steps == {2 * K}
    # first update of a minibatch run == loss of the same paths' columns, before any update
    a = DGFS(target, minibatches=K, seed=5, **SMALL)
    b = DGFS(target, seed=5, **SMALL)
    states, _ = b._behaviour_paths(0)
    cols = torch.arange(0, SMALL["batch_size"], K)
    with torch.no_grad():
        log_r_all = b.objective.log_reward(b, states.reshape(-1, 2)).view(states.shape[:2])
    loss_cols, _, _ = b.objective._loss(b, GFNBatch(states[:, cols], 0, None, log_r_all[:, cols], log_r_all[-1, cols]))
    losses_seen = []
    orig_apply = a.trainer.apply
    a.trainer.apply = lambda loss: (losses_seen.append(float(loss.detach())), orig_apply(loss))[1]
    a.fit(1, progress=False)
    assert len(losses_seen) == K - 1
    assert losses_seen[0] == pytest.approx(float(loss_cols.detach()), rel=1e-5)


def test_minibatch_training_reaches_log_z_within_its_error(diag_gaussian):
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5], log_Z=1.3)
    s = DGFS(target, num_steps=20, dt=0.05, batch_size=64, minibatches=4, lr_policy=3e-4, lr_flow=3e-3,
             hidden=32, seed=0)
    _check_training(s, target, 100)


@pytest.mark.parametrize("loss", ["subtb", "tb"])
def test_learned_variance_trains_off_policy_and_checks_its_checkpoint(diag_gaussian, loss, tmp_path):
    """learned_variance: the noise head gets gradients (on- and off-policy, with replayed
    paths), the log-weights stay finite, and a fixed-noise checkpoint does not load into it."""
    target = diag_gaussian([0.0, 1.0], [1.0, 0.3])
    s = DGFS(target, loss=loss, learned_variance=True, seed=1, **SMALL, **OFF_POLICY)
    s.fit(4, progress=False)
    assert all(math.isfinite(v) for v in s.history.loss)
    head = s.control.net.out.weight
    assert head.shape[0] == 4 and bool(head[2:].abs().sum() > 0)  # the log-scale rows moved
    est = s.estimate_log_z(64)
    assert math.isfinite(est.log_z) and est.eubo is not None and math.isfinite(est.eubo)
    DGFS(target, loss=loss, seed=1, **SMALL).save(tmp_path / "fixed.pt")
    with pytest.raises(ValueError, match="learned_variance"):
        s.load(tmp_path / "fixed.pt")


def test_learned_variance_shrinks_the_noise_of_a_narrow_dimension_and_reaches_log_z(diag_gaussian):
    """On N(0, diag(1, 0.01)) the fixed last-step noise (std 0.22) is wider than the second
    dimension itself (std 0.1); the learned noise scale at the last steps must fall below 1
    there (and stay near 1 in the first), and log Z lands within its own error."""
    target = diag_gaussian([0.0, 0.0], [1.0, 0.01], log_Z=0.7)
    s = DGFS(target, learned_variance=True, num_steps=20, dt=0.05, batch_size=64, lr_policy=1e-3,
             lr_flow=1e-2, hidden=32, seed=0)
    before = s.estimate_log_z(2000)
    s.fit(200, progress=False)
    est = s.estimate_log_z(2000)
    assert abs(est.log_z - target.log_Z) < 3 * est.stderr + est.stderr ** 2 / 2, est
    assert est.elbo > before.elbo and est.elbo < target.log_Z + 4 * est.stderr
    with torch.no_grad():
        x = s.sample(500)
        _, log_scale = s.control(x, s.times[-2])
    mean_scale = log_scale.exp().mean(0)
    assert mean_scale[1] < 0.8 and mean_scale[1] < mean_scale[0], mean_scale
