"""DW-4 and LJ-13 energies, center-of-mass handling and metrics."""

import itertools
import math

import pytest
import torch

from logz.targets.particles import (LennardJones, MultiDoubleWell, dw4, lj13, mala_reference,
                                    pair_distances, remove_com, sample_w2)


def _dw_reference(x, n, d):
    """Literal double loop over unordered pairs (a=0, b=-4, c=0.9, d0=4, tau=1)."""
    xs = x.reshape(n, d)
    e = 0.0
    for i, j in itertools.combinations(range(n), 2):
        r = float((xs[i] - xs[j]).norm()) - 4.0
        e += -4 * r ** 2 + 0.9 * r ** 4
    return 0.5 * e


def _lj_reference(x, n, d):
    """Ordered pairs (iDEM energy_factor 1) plus 1/2 sum |x_i - x_bar|^2."""
    xs = x.reshape(n, d)
    e = 0.0
    for i, j in itertools.permutations(range(n), 2):
        r = float((xs[i] - xs[j]).norm())
        e += r ** -12 - 2 * r ** -6
    return e + 0.5 * float(((xs - xs.mean(0)) ** 2).sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_energies_match_literal_definitions(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64) * 2
    t = dw4()
    e = t.potential(x.to(dtype))
    ref = torch.tensor([_dw_reference(xi, 4, 2) for xi in x], dtype=torch.float64)
    torch.testing.assert_close(e.double(), ref, rtol=1e-5, atol=1e-4)
    y = torch.randn(3, 39, generator=g, dtype=torch.float64) * 1.5
    lj = lj13()
    ref = torch.tensor([_lj_reference(yi, 13, 3) for yi in y], dtype=torch.float64)
    torch.testing.assert_close(lj.potential(y.to(dtype)).double(), ref, rtol=1e-4, atol=1e-3)
    # the unordered-pair (EACF) convention halves the pair term
    half = LennardJones(energy_factor=0.5)
    osc = 0.5 * (remove_com(y, 13, 3) ** 2).sum(-1)
    torch.testing.assert_close(half.potential(y) - osc, 0.5 * (lj.potential(y) - osc))


def test_two_particle_lj_at_minimum():
    t = LennardJones(n_particles=2, spatial_dim=3)
    x = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    # one unordered pair at r_m: -eps, counted twice (ordered pairs); oscillator 1/2 * 2 * 0.5^2
    torch.testing.assert_close(t.potential(x), torch.tensor([-2.0 + 0.25], dtype=torch.float64))


def test_translation_invariance_and_com_restraint():
    t = dw4()
    x = torch.randn(6, 8, dtype=torch.float64)
    shift = torch.tensor([1.5, -0.7], dtype=torch.float64).repeat(4)
    torch.testing.assert_close(t.potential(x + shift), t.potential(x))
    # restraint: -n |com|^2 / (2 com_std^2); its log-normalizer is d/2 log(2 pi com_std^2)
    xc = remove_com(x, 4, 2)
    diff = t.log_prob(xc + shift) - t.log_prob(xc)
    torch.testing.assert_close(diff, torch.full_like(diff, -0.5 * 4 * float((shift[:2] ** 2).sum())))
    assert math.isclose(t.com_log_z, math.log(2 * math.pi))
    free = MultiDoubleWell(com_std=None)
    torch.testing.assert_close(free.log_prob(x + shift), free.log_prob(x))
    assert pair_distances(x, 4, 2).shape == (6, 6)
    with pytest.raises(ValueError):
        t.log_prob(torch.zeros(3, 7))


def test_metrics():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 8, generator=g, dtype=torch.float64)
    assert sample_w2(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([3.0, 0.0], dtype=torch.float64).repeat(4)
    assert sample_w2(x, x + shift, 4, 2) == pytest.approx(0.0, abs=1e-6)  # CoM removed


def test_mala_reference_runs_and_accepts():
    t = dw4()
    x, acc = mala_reference(t, 64, steps=50, step_size=1e-2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (64, 8) and 0.3 < acc <= 1.0
    torch.testing.assert_close(x.reshape(64, 4, 2).mean(1), torch.zeros(64, 2, dtype=torch.float64))


@pytest.mark.parametrize("make", [dw4, lj13])
def test_random_symmetry_keeps_log_prob_and_carries_gradients(make):
    """A random rotation/reflection + particle permutation leaves log p unchanged, and the
    same map applied to grad log p(x) gives grad log p at the moved point (float64 autograd)."""
    t = make()
    g = torch.Generator().manual_seed(3)
    x = 1.5 * torch.randn(16, t.dim, generator=g, dtype=torch.float64)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(t.log_prob(x).sum(), x)
    x2, grad2 = t.random_symmetry(x.detach(), grad, generator=g)
    assert not torch.allclose(x2, x.detach())
    torch.testing.assert_close(t.log_prob(x2), t.log_prob(x.detach()), rtol=1e-10, atol=1e-9)
    x2.requires_grad_(True)
    (ref,) = torch.autograd.grad(t.log_prob(x2).sum(), x2)
    torch.testing.assert_close(grad2, ref, rtol=1e-9, atol=1e-8)


def test_mala_reference_frees_a_chain_started_far_out():
    """One chain starts with its particles 10 apart (energy in the thousands): a common step
    size would reject every proposal there; per-chain adaptation lets it come down."""
    t = dw4()
    g = torch.Generator().manual_seed(0)
    init = 1.0 * torch.randn(32, t.dim, generator=g, dtype=torch.float64)
    init[0] = torch.tensor([-10.0, 0.0, 10.0, 0.0, 0.0, -10.0, 0.0, 10.0], dtype=torch.float64)
    assert float(t.potential(init[:1])) > 1000
    x, acc = mala_reference(t, 32, steps=600, step_size=1e-2, init=init, generator=g)
    e = t.potential(x)
    assert float(e[0]) < 0.0, e[0]  # the minima of DW-4 lie near -12; the stuck start at > 1000
    assert 0.3 < acc < 0.95
    with pytest.raises(ValueError, match="burn_in"):
        mala_reference(t, 4, steps=10, burn_in=10)
