"""EGNN: equivariance to rotations / reflections / permutations, translation invariance of the
displacement, zero start, and its use as Adjoint Sampling's network (float64 where exact)."""

import math

import pytest
import torch

from logz.samplers.adjoint_sampling import AdjointSampling
from logz.samplers.egnn import EGNN
from logz.targets.gaussian import Gaussian
from logz.targets.particles import dw4, lj13


def _random_net(n, d, dtype=torch.float64):
    torch.manual_seed(0)
    net = EGNN(n, d, hidden=16, layers=3).to(dtype)
    with torch.no_grad():  # away from the zero start, so the checks see a non-trivial field
        for p in net.parameters():
            p.normal_(0.0, 0.3)
    return net


def _orthogonal(d, gen):
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    q[:, 0] = -q[:, 0]  # a reflection too
    return q


@pytest.mark.parametrize("n,d", [(4, 2), (5, 3)])
def test_equivariance(n, d):
    gen = torch.Generator().manual_seed(1)
    net = _random_net(n, d)
    B = 6
    x = torch.randn(B, n * d, generator=gen, dtype=torch.float64)
    t = torch.rand(B, generator=gen, dtype=torch.float64)
    v = net(x, t).reshape(B, n, d)
    assert v.abs().max() > 1e-3
    R = _orthogonal(d, gen)
    xr = (x.reshape(B, n, d) @ R.T).reshape(B, -1)
    torch.testing.assert_close(net(xr, t).reshape(B, n, d), v @ R.T, rtol=0, atol=1e-10)
    perm = torch.randperm(n, generator=gen)
    xp = x.reshape(B, n, d)[:, perm].reshape(B, -1)
    torch.testing.assert_close(net(xp, t).reshape(B, n, d), v[:, perm], rtol=0, atol=1e-10)
    # a translation changes the field only through b(t) * centre of mass: the same for every particle
    shift = torch.randn(d, generator=gen, dtype=torch.float64)
    dv = net((x.reshape(B, n, d) + shift).reshape(B, -1), t).reshape(B, n, d) - v
    torch.testing.assert_close(dv, dv[:, :1].expand_as(dv), rtol=0, atol=1e-10)
    with torch.no_grad():
        net.com_scale.net[-1].weight.zero_()
        net.com_scale.net[-1].bias.zero_()
    dv = net((x.reshape(B, n, d) + shift).reshape(B, -1), t) - net(x, t)
    assert dv.abs().max() < 1e-10


def test_zero_start_scalar_time_and_gradients():
    net = EGNN(4, 2, hidden=8, layers=2)
    x = torch.randn(3, 8)
    assert net(x, torch.tensor(0.5)).abs().max() == 0
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((3,), 0.3)))
    net(x, torch.rand(3)).sum().backward()  # the zero last layers still get gradients
    assert all(layer.phi_x[-1].weight.grad.abs().sum() > 0 for layer in net.layers)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="at least 2 particles"):
        EGNN(1, 3)
    with pytest.raises(ValueError, match="hidden"):
        EGNN(4, 2, hidden=0)
    with pytest.raises(ValueError, match=r"4 particles x 2 dims"):
        EGNN(4, 2)(torch.randn(3, 6), torch.tensor(0.1))
    with pytest.raises(ValueError, match="particle target"):
        AdjointSampling(Gaussian([0.0, 0.0], 1.0), network="egnn")
    with pytest.raises(ValueError, match="network"):
        AdjointSampling(dw4(), network="gnn")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adjoint_sampling_with_egnn_trains_and_keeps_the_symmetry(dtype):
    target = lj13() if dtype == torch.float64 else dw4()
    s = AdjointSampling(target, network="egnn", hidden=8, layers=2, batch_size=16, paths_per_refresh=16,
                        buffer_size=64, num_steps=8, sigma_max=2.0, dtype=dtype, seed=0)
    h = s.fit(3, progress=False)
    assert len(h.loss) == 3 and all(math.isfinite(v) for v in h.loss)
    assert any(g > 0 for g in h.grad_norm)
    n, d = target.n_particles, target.spatial_dim
    x = torch.randn(4, n * d, dtype=dtype)
    t = torch.full((4,), 0.5, dtype=dtype)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    u = s._u(x, t).reshape(4, n, d)
    u_perm = s._u(x.reshape(4, n, d)[:, perm].reshape(4, -1), t).reshape(4, n, d)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(u_perm, u[:, perm], rtol=0, atol=tol)


def test_adjoint_sampling_default_network_follows_the_target():
    s = AdjointSampling(dw4(), num_steps=4, batch_size=8)
    assert s.network == "egnn" and isinstance(s.control.net, EGNN) and len(s.control.net.layers) == 3
    g = AdjointSampling(Gaussian([0.0, 0.0], 1.0), num_steps=4, batch_size=8)
    assert g.network == "mlp" and not isinstance(g.control.net, EGNN)
