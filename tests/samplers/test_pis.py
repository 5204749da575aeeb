"""PIS and DDS against closed-form truth: zero control, the Gaussian h-transform, training."""

from __future__ import annotations

import math

import pytest
import torch

from logz import samplers
from logz.samplers.dds import DDS
from logz.samplers.pis import PIS
from logz.sde.reference import gaussian_log_prob

SMALL = dict(hidden=16, layers=1, num_steps=10, batch_size=32)


def _zero_control_sampler(cls, target, dtype, **kw):
    """drift='nn' with a zero-initialised last layer: u = 0 exactly."""
    return cls(target, drift="nn", dtype=dtype, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pis_zero_control_log_weights_are_target_over_terminal_marginal(diag_gaussian, dtype):
    target = diag_gaussian([1.0, -2.0, 0.5], [0.3, 2.0, 1.0], log_Z=0.7)
    g, T = 0.6, 3.0
    s = _zero_control_sampler(PIS, target, dtype, diffusion=g, T=T, num_steps=25)
    x, log_w = s.log_weights(500)
    assert x.dtype == dtype and log_w.shape == (500,)
    # by hand: log p~(x) - log N(x; 0, g^2 T I)
    xd = x.double()
    by_hand = target.log_prob(xd) - (-0.5 * (xd ** 2).sum(-1) / (g * g * T)
                                     - 1.5 * math.log(2 * math.pi * g * g * T))
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(log_w.double(), by_hand, rtol=0, atol=tol * 100 if dtype == torch.float32 else tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("beta", ["cosine", 2.0])
def test_dds_zero_control_log_weights_are_target_over_stationary_law(diag_gaussian, dtype, beta):
    target = diag_gaussian([1.0, -2.0], [0.3, 2.0], log_Z=-0.4)
    sigma = 1.7
    s = _zero_control_sampler(DDS, target, dtype, init_std=sigma, beta=beta, num_steps=20)
    x, log_w = s.log_weights(500)
    xd = x.double()
    by_hand = target.log_prob(xd) - gaussian_log_prob(xd, 0.0, sigma ** 2)
    atol = 1e-2 if dtype == torch.float32 else 1e-8  # float32: sums of 20 steps of O(10) terms
    torch.testing.assert_close(log_w.double(), by_hand, rtol=0, atol=atol)


@pytest.mark.parametrize("cls, kw", [(PIS, {}), (DDS, {"init_std": 1.0, "beta": 10.0})],
                         ids=["pis", "dds"])
def test_optimal_gaussian_control_log_weight_variance_shrinks_with_step_size(
        diag_gaussian, gaussian_optimal_control, cls, kw):
    """Plugging in the h-transform: Var(log w) = O(dt) (Euler–Maruyama), log Z within error.

    DDS: the stationary start makes the h-transform exact only up to exp(-int beta) (= e^-10).
    """
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5], log_Z=1.3)
    n = 4000
    variances = []
    for steps in (20, 40, 80, 160):
        s = cls(target, num_steps=steps, dtype=torch.float64, seed=1, **kw)
        s.control = gaussian_optimal_control(s.reference, s.T, target.mean, target.var)
        est = s.estimate_log_z(n)
        _, log_w = s.log_weights(n)
        variances.append(float(log_w.var()))
        # stderr from the estimator itself + the O(dt) bias bound (ELBO gap ~ Var/2)
        assert abs(est.log_z - target.log_Z) < 4 * est.stderr + variances[-1], (steps, est)
        assert est.elbo <= target.log_Z + 4 * math.sqrt(variances[-1] / n)
    ratios = [a / b for a, b in zip(variances, variances[1:])]
    # O(dt): halving dt halves the variance; allow Monte Carlo noise in the ratio
    assert all(1.5 < r < 2.7 for r in ratios), (variances, ratios)


def test_short_pis_training_on_2d_gaussian_gets_log_z_within_005(diag_gaussian):
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5], log_Z=1.3)
    s = PIS(target, num_steps=25, batch_size=128, hidden=32, lr=3e-3, seed=0)
    before = s.estimate_log_z(2000)
    s.fit(100, progress=False)
    est = s.estimate_log_z(2000)
    assert abs(est.log_z - target.log_Z) < 0.05, (before, est)
    assert est.elbo <= target.log_Z + 4 * est.stderr
    assert est.ess > before.ess  # training improved the proposal


@pytest.mark.parametrize("cls", [PIS, DDS])
def test_kl_and_vargrad_gradients_agree_on_policy(diag_gaussian, cls):
    """E[grad 1/2 Var(log w)] = E[grad KL] on-policy; checked coordinate-wise by z-scores."""
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5])
    grads = {}
    for loss in ("kl", "vargrad"):
        s = cls(target, loss=loss, drift="nn", hidden=8, layers=1, num_steps=8, batch_size=32,
                dtype=torch.float64, seed=3)
        with torch.no_grad():  # a non-trivial control, the same for both losses
            gen = torch.Generator().manual_seed(0)
            for p in s.control.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        rows = []
        for _ in range(150):
            s.control.zero_grad()
            s._step(0)["loss"].backward()
            rows.append(torch.cat([p.grad.flatten() for p in s.control.parameters()]))
        grads[loss] = torch.stack(rows)
    g_kl, g_vg = grads["kl"], grads["vargrad"]
    n = g_kl.shape[0]
    se2 = g_kl.var(0) / n + g_vg.var(0) / n
    keep = se2 > 1e-20
    z2 = ((g_kl.mean(0) - g_vg.mean(0)) ** 2 / se2)[keep]
    assert z2.mean() < 2.0, float(z2.mean())  # ~1 under agreement
    # the check has power: a factor 2 (Var instead of 1/2 Var) is rejected
    z2_wrong = ((g_kl.mean(0) - 2 * g_vg.mean(0)) ** 2 / (g_kl.var(0) / n + 4 * g_vg.var(0) / n))[keep]
    assert z2_wrong.mean() > 4.0, float(z2_wrong.mean())


@pytest.mark.parametrize("loss", ["kl", "vargrad"])
def test_gradient_checkpointing_gives_the_same_gradients(diag_gaussian, loss):
    target = diag_gaussian([1.0, -0.5, 0.2], [0.5, 1.5, 1.0])
    grads, rng_states = [], []
    for chunk in (None, 3):
        s = PIS(target, loss=loss, grad_checkpoint_steps=chunk, dtype=torch.float64, seed=2, **SMALL)
        with torch.no_grad():
            for p in s.control.net.out.parameters():
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(5))
        s.control.zero_grad()
        out = s._step(0)
        if out["loss"].requires_grad:
            out["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in s.control.parameters()]))
        rng_states.append(s.generator.get_state())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-12)
    assert torch.equal(rng_states[0], rng_states[1])  # the same noise was drawn, once


def test_registry_sample_and_estimate_shapes(diag_gaussian):
    target = diag_gaussian([0.0, 1.0], [1.0, 1.0])
    for name in ("pis", "dds"):
        assert name in samplers.names()
        s = samplers.get(name, target, seed=0, **SMALL)
        h = s.fit(2, progress=False)
        assert len(h.loss) == 2 and all(math.isfinite(v) for v in h.loss)
        x = s.sample(7)
        assert x.shape == (7, 2) and x.dtype == torch.float32
        est = s.estimate_log_z(50)
        assert est.num_samples == 50 and 0 < est.ess <= 1
        assert est.elbo <= est.log_z + 1e-9 and est.eubo is not None


def test_estimate_is_reproducible_and_leaves_global_rng_alone(diag_gaussian):
    target = diag_gaussian([0.0, 1.0], [1.0, 1.0])
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = PIS(target, seed=4, **SMALL).estimate_log_z(100)
    b = PIS(target, seed=4, **SMALL).estimate_log_z(100)
    assert a == b
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("bad, match", [
    (dict(diffusion=-1.0), "diffusion"), (dict(T=0), "T"), (dict(num_steps=2.5), "num_steps"),
    (dict(loss="tb"), "loss"), (dict(batch_size=1), "batch_size"), (dict(drift="x"), "drift"),
    (dict(lr=0), "learning rate"), (dict(grad_clip=-1), "grad_clip"), (dict(dtype="float16"), "dtype"),
    (dict(exploration=2.0), "exploration"), (dict(checkpoint_every=5), "checkpoint_path"),
    (dict(grad_checkpoint_steps=0), "grad_checkpoint_steps"), (dict(hidden=0), "hidden"),
    (dict(learned_variance=True), "learned_variance needs loss='vargrad'"),
    (dict(learned_variance=-1.0, loss="vargrad"), "learned_variance"),
    (dict(learned_variance=2.0, loss="vargrad", control=torch.nn.Linear(1, 1)), "custom control"),
])
def test_bad_config_raises_value_error_naming_it(diag_gaussian, bad, match):
    with pytest.raises(ValueError, match=match):
        PIS(diag_gaussian([0.0], [1.0]), **bad)


def test_dds_bad_config(diag_gaussian):
    target = diag_gaussian([0.0], [1.0])
    with pytest.raises(ValueError, match="init_std"):
        DDS(target, init_std=0.0)
    with pytest.raises(ValueError, match="beta"):
        DDS(target, beta="linear")
    with pytest.raises(ValueError, match="diffusion"):
        DDS(target, diffusion=1.0)


def test_nan_target_during_estimate_names_the_target(diag_gaussian):
    target = diag_gaussian([0.0, 0.0], [1.0, 1.0], name="broken")
    target.log_prob = lambda x: torch.full((x.shape[0],), float("nan"), dtype=x.dtype)
    with pytest.raises(ValueError, match="broken"):
        PIS(target, drift="nn", **SMALL).estimate_log_z(10)


@pytest.mark.parametrize("name", ["pis", "dgfs"])
def test_deferred_checks_give_the_same_run_and_still_catch_nan(diag_gaussian, name):
    """defer_checks (the CUDA default: no host sync per step) changes no number, and a target
    that turns NaN is still reported, once per simulation."""
    target = diag_gaussian([0.0, 1.0], [1.0, 2.0])
    small = dict(hidden=8, layers=1, num_steps=6, batch_size=16, seed=1, dtype=torch.float64)
    runs = [samplers.get(name, target, defer_checks=d, **small) for d in (False, True)]
    for s in runs:
        s.fit(2, progress=False)
    assert runs[0].history.loss == runs[1].history.loss
    assert runs[0].estimate_log_z(32).log_z == runs[1].estimate_log_z(32).log_z

    class NaNAway(type(target)):
        def log_prob(self, x):
            lp = super().log_prob(x)
            return torch.where(x[:, 0] > 1.0, lp * float("nan"), lp)

    s = samplers.get(name, NaNAway([0.0, 1.0], [1.0, 2.0]), defer_checks=True, **small)
    with pytest.raises(ValueError, match="during the simulation"):
        s.log_weights(64)


@pytest.mark.slow
def test_compiled_network_trains_like_the_eager_one(diag_gaussian):
    """compile=True (torch.compile of the drift network's per-step part; ~30 s to compile on a
    CPU) gives the eager run's losses up to float rounding and keeps checkpoint keys."""
    target = diag_gaussian([0.0, 1.0], [1.0, 2.0])
    small = dict(hidden=8, layers=1, num_steps=6, batch_size=16, seed=1, dtype=torch.float64)
    eager, compiled = (samplers.get("pis", target, compile=c, **small) for c in (False, True))
    for s in (eager, compiled):
        s.fit(3, progress=False)
    torch.testing.assert_close(torch.tensor(compiled.history.loss), torch.tensor(eager.history.loss),
                               rtol=1e-10, atol=1e-12)
    assert set(compiled.control.state_dict()) == set(eager.control.state_dict())
