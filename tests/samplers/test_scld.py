"""SCLD's sequential estimator (``logz.samplers.sequential``): Z^ is unbiased on Gaussian
targets (closed-form Z) with and without resampling and MCMC, for the untrained (u = 0) and a
fixed random control; the error bar comes from independent replicates."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from logz import samplers
from logz.samplers.sequential import normalised_ess, segment_ends, sequential_log_z
from logz.samplers.smc_moves import DEFAULT_MOVES_PER_BETA


class LinearControl(nn.Module):
    """A fixed random control u(x, t) = A x + t c."""

    def __init__(self, dim: int, seed: int = 1, scale: float = 0.2):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(scale * torch.randn(dim, dim, generator=g, dtype=torch.float64))
        self.c = nn.Parameter(scale * torch.randn(dim, generator=g, dtype=torch.float64))

    def forward(self, x, t):
        t = t.reshape(-1, 1) if t.ndim else t
        return x @ self.A.T + t * self.c


TARGETS = {1: ([1.0], [0.5], 0.3), 5: ([0.5, -0.5, 1.0, 0.0, 0.3], [1.0, 0.5, 0.8, 2.0, 0.6], -0.4)}


@pytest.mark.parametrize("dim", [1, 5])
@pytest.mark.parametrize("threshold,mcmc,controlled,clip", [(0.0, None, False, 1e3), (1.0, None, False, 1e3),
                                                            (0.5, "hmc", True, 1e3), (0.5, "gibbs", True, 1e3),
                                                            (0.5, None, False, 0.5)])
def test_the_sequential_estimate_of_z_is_unbiased(diag_gaussian, dim, threshold, mcmc, controlled, clip):
    """clip = 0.5: the kernels' score clip is active (the weights stay exact). mcmc: SMC's
    move phase at the segment ends (one move plus 8 per unit of beta)."""
    mean, var, log_Z = TARGETS[dim]
    target = diag_gaussian(mean, var, log_Z=log_Z)
    s = samplers.get("scld", target, num_steps=8, segments=4, step_size=0.1, dtype=torch.float64, hidden=8,
                     layers=1, control=LinearControl(dim) if controlled else None,
                     resample_threshold=threshold, mcmc_steps=1 if mcmc else 0, moves_per_beta=8.0 if mcmc else 0,
                     mcmc_kernel=mcmc or "auto", score_clip=clip)
    if clip < 1:
        x0, _ = s.initial(100, torch.Generator().manual_seed(0))
        assert float(s.score(x0).abs().max()) > clip
    R, P = 3000, 8  # 3000 independent replicates, vectorised in one run
    gen = torch.Generator().manual_seed(11)
    result = sequential_log_z(s, R, P, s.ends, resample_threshold=threshold, moves=s.moves(gen, training=False),
                              generator=gen)
    ratio = torch.exp(result.log_z - log_Z)  # Z^_r / Z
    ess = float(ratio.sum() ** 2 / (ratio.square().sum() * R))
    assert ess > 0.3, f"Z^_r too heavy-tailed for a meaningful check (ESS {ess:.3f})"
    se = float(ratio.std() / math.sqrt(R))
    assert abs(float(ratio.mean()) - 1.0) < 4 * se, (float(ratio.mean()), se)
    if threshold == 0.0:
        assert not bool(result.resampled.any())
    if threshold == 1.0:
        assert bool(result.resampled.all())
    if mcmc:
        acc = result.acceptance[:-1]
        assert bool(((acc > 0) & (acc <= 1)).all()) and bool((result.moves[:-1] >= 1).all())
    else:
        assert bool(result.acceptance.isnan().all()) and not bool(result.moves.any())
    torch.testing.assert_close(torch.logsumexp(result.log_weights, -1), torch.zeros(R, dtype=torch.float64))


def test_the_estimate_has_a_replicate_error_bar(diag_gaussian):
    target = diag_gaussian([0.5, -0.5], [1.0, 0.5], log_Z=0.3)
    s = samplers.get("scld", target, num_steps=8, segments=4, step_size=0.1, hidden=8, layers=1,
                     dtype=torch.float64, replicates=16)
    est = s.estimate_log_z(640)
    assert est.num_samples == 640 and est.stderr > 0 and est.ess is not None
    assert abs(est.log_z - 0.3) < 4 * est.stderr + 0.02
    with pytest.raises(ValueError, match="num_samples must be"):
        s.estimate_log_z(20)


def test_segments_and_ess_helpers():
    assert segment_ends(10, 4) == [0, 2, 5, 8, 10]
    assert segment_ends(3, 3) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="segments must be"):
        segment_ends(3, 4)
    uniform = torch.full((2, 5), -math.log(5))
    torch.testing.assert_close(normalised_ess(uniform), torch.ones(2))
    one = torch.tensor([[0.0, -math.inf, -math.inf]])
    torch.testing.assert_close(normalised_ess(one), torch.tensor([1 / 3]))


def test_a_checkpoint_names_its_segments(diag_gaussian, tmp_path):
    target = diag_gaussian([0.0, 0.0], [1.0, 1.0])
    kw = dict(num_steps=4, batch_size=8, hidden=8, layers=1)
    s = samplers.get("scld", target, segments=4, **kw)
    s.fit(1, progress=False)
    s.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="segments"):
        samplers.get("scld", target, segments=2, **kw).load(tmp_path / "c.pt")


def test_short_training_on_gmm9_reaches_log_z_within_its_standard_error():
    from logz import targets
    from logz.samplers.cmcd import CMCD

    target = targets.get("gmm9")
    s = samplers.get("scld", target, num_steps=32, batch_size=64, hidden=32, layers=2, seed=0, lr=3e-3,
                     eval_batch_size=1000, moves_per_beta=DEFAULT_MOVES_PER_BETA["gibbs"])  # SMC's: the default 8x is slow here
    before = CMCD.estimate_log_z(s, 2000)
    s.fit(100, progress=False)
    after, seq = CMCD.estimate_log_z(s, 2000), s.estimate_log_z(2000)
    assert after.elbo > before.elbo + 0.1, (before.elbo, after.elbo)  # ~5 x the ELBOs' SE (sd(log w) / sqrt(2000))
    for est in (after, seq):  # importance sampling and the sequential estimate
        assert abs(est.log_z - target.log_Z) < 4 * est.stderr, (est.log_z, est.stderr)


@pytest.mark.parametrize("df,mix", [(math.inf, 0.0), (3.0, 0.0), (3.0, 0.3), (3.0, 1.0)])
def test_the_reference_gradient_matches_autograd(df, mix):
    """SCLD's refresh uses SMC's reference with no t component (df = inf): its gradient was
    0 * inf = NaN there, so every HMC proposal was rejected."""
    from logz.samplers.smc_reference import DefensiveReference

    ref = DefensiveReference(3, 1.7, df, mix)
    x = torch.randn(4, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    (auto,) = torch.autograd.grad(ref.log_prob(x).sum(), x)
    torch.testing.assert_close(ref.grad(x.detach()), auto)


@pytest.mark.parametrize("num_steps,segments", [(7, 3), (6, 6)])
def test_the_loss_rescores_segments_as_the_run_scored_them(diag_gaussian, num_steps, segments):
    """The training loss re-scores the recorded segments in batched groups of equal length;
    under unchanged parameters it must give each row the increment the run itself computed
    (segments of lengths 2, 3, 2 and of length 1)."""
    from logz.samplers.objectives.sub_log_variance import increments

    target = diag_gaussian([0.5, -0.5], [1.0, 0.5], log_Z=0.3)
    s = samplers.get("scld", target, num_steps=num_steps, segments=segments, batch_size=16, step_size=0.1,
                     control=LinearControl(2), dtype=torch.float64, learn_schedule=True, resample_threshold=0.9,
                     train_moves_per_beta=4.0)
    record: list = []
    s.run_particles(2, 16, torch.Generator().manual_seed(0), training=True, record=record)
    assert [seg.k1 - seg.k0 for seg in record] == [s.ends[i + 1] - s.ends[i] for i in range(segments)]
    for seg, inc in zip(record, increments(s, record)):
        torch.testing.assert_close(inc.detach(), seg.log_g)


class HalfLineGaussian:
    """N(0, 1) restricted to x < 1 (log p~ = -inf beyond): Z = sqrt(2 pi) Phi(1)."""

    dim, init_std = 1, 1.0
    log_Z = 0.5 * math.log(2 * math.pi) + math.log(0.5 * (1 + math.erf(1 / math.sqrt(2))))

    def log_prob(self, x):
        lp = -0.5 * x[:, 0] ** 2
        return torch.where(x[:, 0] < 1.0, lp, torch.full_like(lp, -math.inf))


def test_particles_thrown_out_of_the_domain_get_zero_weight_and_the_run_goes_on():
    """Langevin steps cross into a zero-density region: those particles get weight 0 and their
    replicate resamples, and training runs on instead of stopping. The whole-path estimate
    (one segment) stays unbiased: its weight needs pi0 > 0 only. With inner segment ends it is
    biased low on a target of bounded support, because a backward kernel can reach states
    where gamma_k = 0, whose mass the segment's identity then loses (measured 0.53-0.64 of Z
    here); on a target positive everywhere (a funnel, whose neck only overflows float32) the
    states dropped carry negligible mass. docs/sequential_samplers.md says so."""
    gen = torch.Generator().manual_seed(5)
    s = samplers.get("scld", HalfLineGaussian(), num_steps=8, segments=1, step_size=0.3, hidden=8, layers=1,
                     dtype=torch.float64, control=LinearControl(1), moves_per_beta=0.0, batch_size=64)
    result = sequential_log_z(s, 3000, 8, s.ends, resample_threshold=0.3, moves=None, generator=gen)
    assert bool(result.resampled.any())  # replicates with particles that ended outside resampled them away
    assert bool((result.particles < 1.0).all())
    ratio = torch.exp(result.log_z - HalfLineGaussian.log_Z)
    se = float(ratio.std() / math.sqrt(ratio.numel()))
    assert abs(float(ratio.mean()) - 1.0) < 4 * se, (float(ratio.mean()), se)
    s = samplers.get("scld", HalfLineGaussian(), num_steps=8, segments=4, step_size=0.3, hidden=8, layers=1,
                     dtype=torch.float64, control=LinearControl(1), moves_per_beta=4.0, mcmc_kernel="hmc",
                     batch_size=64)
    result = sequential_log_z(s, 200, 8, s.ends, resample_threshold=0.0, moves=s.moves(gen, training=False),
                              generator=gen)
    assert bool(result.resampled.any())  # forced by the dead particles (threshold 0 never asks)
    assert bool((result.particles < 1.0).all())
    s.fit(3, progress=False)
    assert math.isfinite(s.estimate_log_z(400).log_z)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_winsorizing_clamps_only_outlying_increments_and_stops_their_gradient(dtype):
    """A normal sample is (almost) unchanged at 5 robust SDs; a row thousands of nats off is
    clamped to the bound and gets no gradient, the others keep theirs; inf or a zero MAD
    leave the increments as they are."""
    from logz.samplers.objectives.sub_log_variance import MAD_TO_SD, winsorized

    inc = torch.randn(400, dtype=dtype, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(winsorized(inc, 5.0), inc)
    bad = torch.cat([inc, torch.tensor([-5000.0], dtype=dtype)]).requires_grad_(True)
    out = winsorized(bad, 5.0)
    ref = bad.detach()
    med = ref.median()
    bound = med - 5.0 * MAD_TO_SD * (ref - med).abs().median()
    torch.testing.assert_close(out[-1], bound)
    (grad,) = torch.autograd.grad(out.var(), bad)
    assert grad[-1] == 0 and bool((grad[:-1] != 0).all())
    assert out.detach().var() < 2.0 < bad.detach().var()
    torch.testing.assert_close(winsorized(bad, math.inf), bad)
    flat = torch.tensor([1.0, 1.0, 1.0, 7.0], dtype=dtype)
    torch.testing.assert_close(winsorized(flat, 5.0), flat)


def test_winsorize_is_validated_and_checkpointed(diag_gaussian):
    target = diag_gaussian([0.0], [1.0])
    for bad in (0, -1.0, True, "5"):
        with pytest.raises(ValueError, match="winsorize"):
            samplers.get("scld", target, winsorize=bad)
    s = samplers.get("scld", target, winsorize=math.inf, num_steps=4, batch_size=8)
    assert s.fingerprint["winsorize"] == math.inf and "winsorize=inf" in repr(s.objective)
