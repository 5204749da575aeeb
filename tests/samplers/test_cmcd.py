"""CMCD's annealed controlled Langevin kernels (``logz.samplers.annealed_langevin``, ``cmcd``):
per-step log-densities against ``torch.distributions.Normal``, the u = 0 weights against the
Langevin kernel pair by hand, the schedule's shape and its gradients, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from logz import samplers
from logz.samplers import annealed_langevin as al
from logz.sde import gaussian_noise
from logz.samplers.cmcd import CMCD
from logz.targets.base import log_prob_and_grad


class LinearControl(nn.Module):
    """A fixed random control u(x, t) = A x + t c (t 0-dim or [B])."""

    def __init__(self, dim: int, seed: int = 1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(0.3 * torch.randn(dim, dim, generator=g))
        self.c = nn.Parameter(torch.randn(dim, generator=g))

    def forward(self, x, t):
        t = t.reshape(-1, 1) if t.ndim else t
        return x @ self.A.T + t * self.c


def _langevin(s, x, beta):
    return (1 - beta) * s.pi0.grad(x) + beta * log_prob_and_grad(s.target, x)[1].clamp(-s.score_clip, s.score_clip)


@pytest.mark.parametrize("dtype,mix", [(torch.float32, 0.0), (torch.float64, 0.0), (torch.float64, 0.3)])
def test_step_log_densities_are_normal_log_probs(diag_gaussian, dtype, mix):
    """mix > 0: pi0 is the defensive Gaussian / Student-t mixture, its score in the drift."""
    target = diag_gaussian([0.5, -1.0, 0.2], [1.0, 0.3, 2.0], log_Z=0.7)
    s = samplers.get("cmcd", target, num_steps=5, batch_size=8, control=LinearControl(3), dtype=dtype,
                     schedule="cosine", learn_schedule=True, learn_step_size=True, step_size=0.05,
                     reference_mix=mix)
    with torch.no_grad():
        s.annealing.b.copy_(0.3 * torch.randn(5, generator=torch.Generator().manual_seed(0)))
        x0, _ = s.initial(16, s.generator)
        tr = s.simulate(x0, s.times, s.generator)[0]
        log_f, log_b = s.step_log_densities(tr.states)
    betas, eps, X, u = s.annealing.betas(), s.annealing.step_sizes(), tr.states, s.control
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for k in range(5):
        std = torch.sqrt(2 * eps[k])
        with torch.no_grad():
            mean_f = X[k] + eps[k] * (_langevin(s, X[k], betas[k + 1]) + u(X[k], s.times[k]))
            mean_b = X[k + 1] + eps[k] * (_langevin(s, X[k + 1], betas[k + 1]) - u(X[k + 1], s.times[k + 1]))
        expected_f = Normal(mean_f, std).log_prob(X[k + 1]).sum(-1)
        expected_b = Normal(mean_b, std).log_prob(X[k]).sum(-1)
        for got in (tr.log_forward[k], log_f[k]):
            torch.testing.assert_close(got, expected_f, **tol)
        for got in (tr.log_backward[k], log_b[k]):
            torch.testing.assert_close(got, expected_b, **tol)


def test_uncontrolled_weights_with_pi0_the_target_are_the_langevin_pairs(diag_gaussian):
    """p~ = Z pi0: every gamma_beta is Z^beta pi0, both kernels are the ULA step x' ~ N(a x,
    2 eps), a = 1 - eps / s0^2, and log B - log F = (1 - a^2)(|x'|^2 - |x|^2) / (4 eps)."""
    s0, log_Z = 1.5, 0.4
    target = diag_gaussian([0.0, 0.0], [s0 ** 2, s0 ** 2], log_Z=log_Z)
    s = samplers.get("cmcd", target, num_steps=6, batch_size=8, dtype=torch.float64, step_size=0.1)
    assert s.pi0.scale == pytest.approx(s0)
    x, log_w = s.log_weights(64)
    gen = torch.Generator().manual_seed(5)
    x0, log_p0 = s.initial(64, gen)
    tr = s.simulate(x0, s.times, gen)[0]
    eps = 0.1 * s0 ** 2
    a = 1 - eps / s0 ** 2
    sq = tr.states.square().sum(-1)  # [N+1, B]
    by_hand = (1 - a ** 2) * (sq[1:] - sq[:-1]) / (4 * eps)
    torch.testing.assert_close(tr.log_backward - tr.log_forward, by_hand, rtol=1e-10, atol=1e-10)
    # the whole weight: log p~(x_N) - log pi0(x_0) + sum of the pairs
    log_w_hand = target.log_prob(tr.final) - log_p0 + by_hand.sum(0)
    torch.testing.assert_close(s.log_reward(tr.final) + tr.log_path_ratio - log_p0, log_w_hand)
    assert log_w.shape == (64,) and bool(torch.isfinite(log_w).all())


def test_learned_schedule_is_monotone_and_trained(diag_gaussian):
    target = diag_gaussian([1.0, -1.0], [0.5, 0.5])
    for loss in ("vargrad", "kl"):
        s = samplers.get("cmcd", target, num_steps=6, batch_size=16, hidden=8, layers=1, loss=loss,
                         schedule="cosine", learn_schedule=True, learn_step_size=True, dtype=torch.float64)
        betas = s.annealing.betas().detach()
        assert float(betas[0]) == 0.0 and float(betas[-1]) == pytest.approx(1.0)
        assert bool((betas[1:] > betas[:-1]).all())
        expected = 0.5 * (1 - torch.cos(math.pi * torch.linspace(0, 1, 7, dtype=torch.float64)))
        torch.testing.assert_close(betas, expected, atol=1e-5, rtol=0)  # starts at the fixed schedule
        a0, b0 = s.annealing.a.detach().clone(), s.annealing.b.detach().clone()
        s.fit(2, progress=False)
        assert not torch.equal(a0, s.annealing.a) and not torch.equal(b0, s.annealing.b)


def test_fixed_schedule_is_not_trained_and_bad_input_is_named(diag_gaussian):
    target = diag_gaussian([0.0], [1.0])
    s = samplers.get("cmcd", target, num_steps=4, batch_size=8, hidden=8, layers=1)
    assert list(s.annealing.parameters()) == []
    torch.testing.assert_close(s.annealing.betas(), torch.linspace(0, 1, 5), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        samplers.get("cmcd", target, schedule="exp")
    with pytest.raises(ValueError, match="loss must be"):
        samplers.get("cmcd", target, loss="tb")
    with pytest.raises(ValueError, match="step_size must be"):
        samplers.get("cmcd", target, step_size=-1.0)
    with pytest.raises(ValueError, match="learned_variance is not defined"):
        samplers.get("cmcd", target, learned_variance=True)
    with pytest.raises(ValueError, match="exploration"):
        samplers.get("cmcd", target, loss="kl", exploration=2.0)
    with pytest.raises(ValueError, match=r"reference_mix must be in \[0, 1\]"):
        samplers.get("cmcd", target, reference_mix=1.5)
    with pytest.raises(ValueError, match="reference_df must be a number > 0"):
        samplers.get("scld", target, reference_df=0.0)
    for bad in ({"reference_mix": float("nan")}, {"reference_df": -3.0}, {"init_std": float("inf")}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be"):  # one check for SMC and CMCD
            samplers.get("smc", target, **bad)
    assert samplers.get("smc", target, reference_df=math.inf).reference.mix == 0.0


@pytest.mark.parametrize("name", ["cmcd", "scld"])
def test_the_defensive_pi0_gives_unbiased_weights(diag_gaussian, name):
    """pi0 = 0.7 N(0, s0^2) + 0.3 t_3(0, s0^2): x_0 is drawn from it and scored by it (log pi0
    against the mixture's density by hand), and E[w] = Z along the path with a fixed random
    control (CMCD's importance weights; SCLD's Z^_r, 2000 replicates of 8 particles)."""
    from logz.samplers.sequential import sequential_log_z

    target = diag_gaussian([0.5, -0.5], [1.0, 0.5], log_Z=0.3)
    s = samplers.get(name, target, num_steps=6, step_size=0.1, dtype=torch.float64, control=LinearControl(2),
                     reference_mix=0.3, **({"segments": 3, "resample_threshold": 0.5} if name == "scld" else {}))
    gen = torch.Generator().manual_seed(4)
    x0, log_p0 = s.initial(4000, gen)
    s0, d, nu = target.init_std, 2, 3.0
    q = x0.square().sum(-1) / s0 ** 2
    log_t = (math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - 0.5 * d * math.log(nu * math.pi * s0 ** 2)
             - 0.5 * (nu + d) * torch.log1p(q / nu))
    log_n = -0.5 * q - 0.5 * d * math.log(2 * math.pi * s0 ** 2)
    torch.testing.assert_close(log_p0, torch.logaddexp(math.log(0.7) + log_n, math.log(0.3) + log_t))
    assert float((q > 25).float().mean()) > 0.01  # the t part's tails (Gaussian: P(chi2_2 > 25) = 4e-6)
    if name == "cmcd":
        with torch.no_grad():
            log_w = s.log_weights(20000)[1]
    else:
        log_w = sequential_log_z(s, 2000, 8, s.ends, resample_threshold=0.5, generator=gen).log_z
    ratio = torch.exp(log_w - 0.3)
    se = float(ratio.std() / math.sqrt(len(ratio)))
    assert abs(float(ratio.mean()) - 1.0) < 4 * se, (float(ratio.mean()), se)


def test_short_training_reaches_log_z_within_its_standard_error(diag_gaussian):
    """CMCD / SCLD training (log-variance) on a 2-D Gaussian: the ELBO gap shrinks and both the
    importance-sampling and the sequential estimate are within 4 of their own standard errors."""
    target = diag_gaussian([1.0, -1.0], [0.5, 2.0], log_Z=0.3)
    s = samplers.get("scld", target, num_steps=16, batch_size=128, hidden=32, layers=2, step_size=0.05,
                     lr=3e-3, seed=0)
    before = CMCD.estimate_log_z(s, 2000)
    s.fit(100, progress=False)
    after = CMCD.estimate_log_z(s, 2000)
    assert 0.3 - after.elbo < 0.5 * (0.3 - before.elbo), (before.elbo, after.elbo)
    assert abs(after.log_z - 0.3) < 4 * after.stderr, (after.log_z, after.stderr)
    seq = s.estimate_log_z(2000)
    assert abs(seq.log_z - 0.3) < 4 * seq.stderr, (seq.log_z, seq.stderr)


def test_checkpoint_resume_is_bit_identical(diag_gaussian, tmp_path):
    target = diag_gaussian([0.5, -0.5], [1.0, 0.5])
    kw = dict(num_steps=4, batch_size=16, hidden=8, layers=1, learn_schedule=True, learn_step_size=True, seed=3)
    a = samplers.get("cmcd", target, **kw)
    a.fit(2, progress=False)
    a.save(tmp_path / "c.pt")
    a.fit(2, progress=False)
    b = samplers.get("cmcd", target, **kw)
    b.load(tmp_path / "c.pt")
    b.fit(2, progress=False)
    assert a.history.loss == b.history.loss
    for p, q in zip(list(a.control.parameters()) + list(a.annealing.parameters()),
                    list(b.control.parameters()) + list(b.annealing.parameters())):
        assert torch.equal(p, q)


def test_simulated_steps_are_drawn_from_the_scored_kernels(diag_gaussian):
    """One step of the forward (F_k) and of the backward (B_k, the EUBO's paths) simulation from
    a fixed point: the sample mean and variance are those of the kernels the weights score
    (the control's sign, its time, beta_{k+1}), within 4 standard errors."""
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5], log_Z=0.3)
    s = samplers.get("cmcd", target, num_steps=6, batch_size=8, control=LinearControl(2), step_size=0.2,
                     dtype=torch.float64, schedule="cosine")
    args = s._kernel_args()
    betas, eps, k, n = args["betas"], args["eps"], 2, 40000
    point = torch.tensor([[0.7, -1.2]], dtype=torch.float64).expand(n, 2)
    gen = torch.Generator().manual_seed(0)
    for backward in (False, True):
        with torch.no_grad():
            terms = al.simulate(point, k, k + 1, draw=gaussian_noise(gen), backward=backward, **args)
            t = s.times[k + 1] if backward else s.times[k]
            u = s.control(point[:1], t)
        drawn = terms.states[0] if backward else terms.states[-1]
        sign = -1.0 if backward else 1.0
        mean = point[0] + eps[k] * (_langevin(s, point[:1], betas[k + 1])[0] + sign * u[0])
        se = float(torch.sqrt(2 * eps[k] / n))
        assert bool(((drawn.mean(0) - mean).abs() < 4 * se).all()), (backward, drawn.mean(0), mean)
        torch.testing.assert_close(drawn.var(0), (2 * eps[k]).expand(2), rtol=0.05, atol=0)
    for backward in (False, True):  # the controls kept along a path are u(x_k, t_k)
        with torch.no_grad():
            terms = al.simulate(point[:64], 1, 5, draw=gaussian_noise(gen), backward=backward, **args)
            again = s.path_terms(terms.states, 1)
        torch.testing.assert_close(terms.controls, again.controls)
        torch.testing.assert_close(terms.scores, again.scores)
    log_w = s.target_log_weights(256)  # backward paths from exact samples: the EUBO's integrand
    assert log_w.shape == (256,) and bool(torch.isfinite(log_w).all())


@pytest.mark.parametrize("name,loss", [("cmcd", "vargrad"), ("cmcd", "kl"), ("scld", "subtraj")])
def test_loss_gradients_match_finite_differences(diag_gaussian, name, loss):
    """float64: d loss / d (control, schedule, step sizes) against central differences: the
    log-variances (whole paths, SCLD's segments) on one fixed batch of detached paths
    (off-policy), the KL on paths re-simulated with the same noise (reparameterised). SCLD's
    loss unwinsorized: the clamp's bounds (median, MAD) are held fixed in the gradient on
    purpose, so a row clamped in the batch would differ from the differences."""
    target = diag_gaussian([1.0, -0.5], [0.5, 1.5], log_Z=0.3)
    extra = {"winsorize": math.inf} if name == "scld" else {}
    s = samplers.get(name, target, num_steps=4, batch_size=32, control=LinearControl(2), step_size=0.1,
                     dtype=torch.float64, learn_schedule=True, learn_step_size=True, loss=loss, **extra)
    state = s.generator.get_state()

    fixed = s.objective.simulate(s, 0) if loss != "kl" else None

    def value():
        s.generator.set_state(state)
        return s.objective.loss(s, fixed if fixed is not None else s.objective.simulate(s, 0))[0]

    params = [s.control.A, s.annealing.a, s.annealing.b]
    grads = torch.autograd.grad(value(), params)
    h = 1e-6
    for p, g in zip(params, grads):
        for i in range(min(p.numel(), 3)):
            with torch.no_grad():
                p.view(-1)[i] += h
                up = float(value())
                p.view(-1)[i] -= 2 * h
                down = float(value())
                p.view(-1)[i] += h
            assert (up - down) / (2 * h) == pytest.approx(float(g.view(-1)[i]), rel=1e-5, abs=1e-7)


def _train_cmcd(shard):
    from logz.targets import GaussianMixture

    target = GaussianMixture(weights=[0.4, 0.6], means=[[-1.0, 0.5], [1.5, -0.5]], covs=[[0.6, 0.8], [0.7, 0.5]])
    out = []
    for loss, mix in (("vargrad", 0.0), ("kl", 0.0), ("vargrad", 0.3)):  # mix: the t part of pi0
        s = samplers.get("cmcd", target, shard=shard, hidden=8, layers=1, num_steps=5, batch_size=8,
                         eval_samples=16, eval_batch_size=8, dtype=torch.float64, seed=3, loss=loss,
                         learn_schedule=True, learn_step_size=True, reference_mix=mix)
        h = s.fit(3, progress=False)
        est = s.estimate_log_z(16)
        out.append((torch.tensor(h.loss), torch.cat([p.detach().flatten() for p in s.trainer.params]),
                    (est.log_z, est.stderr, est.elbo, est.eubo)))
    return out


def test_two_ranks_train_cmcd_like_one_process():
    from logz.distributed import Shard, run_local

    single = _train_cmcd(Shard())
    for rank in run_local(_train_cmcd, 2):
        for (loss, params, est), (loss1, params1, est1) in zip(rank, single):
            torch.testing.assert_close(loss, loss1, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(params, params1, rtol=1e-8, atol=1e-10)
            assert est == pytest.approx(est1, rel=1e-9, abs=1e-9)


def test_eubo_is_dropped_with_a_warning_when_backward_paths_leave_the_domain(diag_gaussian):
    class Boxed(diag_gaussian):
        def log_prob(self, x):  # NaN outside a box: the backward kernels' big steps leave it
            return torch.where(x.abs().amax(-1) < 3.0, super().log_prob(x), torch.full_like(x[:, 0], math.nan))

    target = Boxed([0.0, 0.0], [1.0, 1.0])
    s = samplers.get("cmcd", target, num_steps=4, batch_size=8, hidden=8, layers=1, step_size=50.0)
    with pytest.warns(RuntimeWarning, match="no EUBO"):
        assert s.target_log_weights(64) is None
