"""Zero-density regions (log p = -inf): the PIS/DDS losses leave such paths out, training and
estimation go on, and a target that is -inf everywhere the sampler looks names init_std."""

from __future__ import annotations

import math

import pytest
import torch

from logz import samplers
from logz import targets as T
from logz.samplers import losses


def half_plane(x):
    """N(0, I) restricted to x_0 > 0 (log Z = log 1/2); -inf on the other half-plane."""
    lp = -0.5 * (x * x).sum(-1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)
    return torch.where(x[:, 0] > 0, lp, torch.full_like(lp, -math.inf))


def test_losses_leave_out_minus_inf_paths_exactly(dtype):
    g = torch.Generator().manual_seed(0)
    cost, log_ref = torch.rand(6, generator=g, dtype=dtype), torch.randn(6, generator=g, dtype=dtype)
    log_r = torch.randn(6, generator=g, dtype=dtype, requires_grad=True)
    keep = torch.tensor([True, False, True, True, False, True])
    masked = torch.where(keep, log_r, torch.full_like(log_r, -math.inf))
    kl = losses.kl_loss(cost, masked, log_ref)
    ref = (cost + log_ref - log_r)[keep].mean()
    torch.testing.assert_close(kl, ref)
    (g_kl,) = torch.autograd.grad(kl, log_r)
    (g_ref,) = torch.autograd.grad(ref, log_r)
    torch.testing.assert_close(g_kl, g_ref)
    assert bool(torch.isfinite(g_kl).all()) and bool((g_kl[~keep] == 0).all())

    masked = torch.where(keep, log_r, torch.full_like(log_r, -math.inf))
    lv = losses.log_variance_loss(masked)
    ref_lv = 0.5 * log_r[keep].var(unbiased=True)
    torch.testing.assert_close(lv, ref_lv)
    (g_lv,) = torch.autograd.grad(lv, log_r)
    (g_lv_ref,) = torch.autograd.grad(ref_lv, log_r)
    torch.testing.assert_close(g_lv, g_lv_ref)
    # the chunked form's coefficients agree with the loss's gradient
    torch.testing.assert_close(losses.vargrad_weights(masked), g_lv_ref)
    assert float(losses.zero_density_fraction(masked)) == pytest.approx(2 / 6)


def test_losses_without_minus_inf_are_unchanged(dtype):
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.randn(9, generator=g, dtype=dtype) for _ in range(3))
    torch.testing.assert_close(losses.kl_loss(a, b, c), (a + c - b).mean())
    torch.testing.assert_close(losses.log_variance_loss(b), 0.5 * b.var(unbiased=True))
    torch.testing.assert_close(losses.vargrad_weights(b), (b - b.mean()) / 8)


@pytest.mark.parametrize("loss", ["kl", "vargrad"])
@pytest.mark.parametrize("name", ["pis", "dds"])
def test_pis_dds_train_and_estimate_on_a_half_plane(name, loss):
    target = T.from_log_prob(half_plane, dim=2, log_Z=math.log(0.5), name="half_plane")
    sampler = samplers.get(name, target, loss=loss, num_steps=8, hidden=16, batch_size=64, seed=0)
    history = sampler.fit(5)
    est = sampler.estimate_log_z(256)
    assert math.isfinite(est.log_z) and math.isfinite(est.stderr)
    # training reports the share of paths that ended on the zero-density half (about half at the start)
    fractions = history.metrics["zero_density"]
    assert len(fractions) == 5 and all(0.0 < f < 1.0 for f in fractions)


def test_target_minus_inf_everywhere_the_sampler_looks_names_init_std():
    far = T.from_log_prob(lambda x: torch.where(x[:, 0] > 50, -(x * x).sum(-1),
                                                torch.full_like(x[:, 0], -math.inf)), dim=2, name="far")
    for name in ["pis", "smc"]:
        config = dict(num_steps=4, hidden=8, batch_size=32) if name == "pis" else {}
        with pytest.raises(ValueError, match="init_std"):
            s = samplers.get(name, far, seed=0, **config)
            s.fit(2)
            s.estimate_log_z(64)
