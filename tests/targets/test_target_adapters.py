"""from_log_prob and from_pyro: values, log-Jacobians, batching and gradients."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import HalfNormal, LogNormal, MultivariateNormal, Normal

import logz.targets as T

DATA = torch.tensor([0.3, -1.2, 0.8, 2.1, 0.4], dtype=torch.float64)
EPS64 = torch.finfo(torch.float64).eps


def normal_normal(x):
    z = pyro.sample("z", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def half_normal_scale(x):
    s = pyro.sample("s", dist.HalfNormal(torch.tensor(2.0, dtype=torch.float64)))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(0.0, s), obs=x)


def log_normal_prior():
    pyro.sample("s", dist.LogNormal(torch.tensor(0.3, dtype=torch.float64), 0.7))


def multi_site(x, offset=0.0):
    z = pyro.sample("z", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
    s = pyro.sample("s", dist.HalfNormal(torch.tensor(1.0, dtype=torch.float64)))
    w = pyro.sample("w", dist.Normal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1))
    p = pyro.sample("p", dist.Dirichlet(torch.ones(3, dtype=torch.float64)))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(z + w.sum() + p[0] + offset, s), obs=x)


def branching(x):
    z = pyro.sample("z", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
    scale = 1.0 if z > 0 else 2.0  # data-dependent Python control flow: no vmap
    pyro.sample("x", dist.Normal(z, scale).expand([len(x)]).to_event(1), obs=x)


def grid_log_integral(log_prob, lo: float, hi: float, n: int = 4000) -> float:
    u = torch.linspace(lo, hi, n + 1, dtype=torch.float64)
    mid = (0.5 * (u[1:] + u[:-1]))[:, None]
    return float(torch.logsumexp(log_prob(mid), 0)) + math.log((hi - lo) / n)


def test_from_log_prob_wraps_a_callable():
    def banana(x):
        return -0.5 * x[:, 0] ** 2 - 0.5 * (x[:, 1] - x[:, 0] ** 2) ** 2

    t = T.from_log_prob(banana, 2, log_Z=math.log(2 * math.pi))
    assert isinstance(t, T.BaseTarget) and isinstance(t, T.Target)
    assert t.name == "banana" and t.dim == 2 and t.log_Z == math.log(2 * math.pi) and t.init_std == 1.0
    x = torch.randn(8, 2, dtype=torch.float64)
    torch.testing.assert_close(t.log_prob(x), banana(x))
    lp, grad = T.log_prob_and_grad(t, x)
    torch.testing.assert_close(grad[:, 1], -(x[:, 1] - x[:, 0] ** 2))
    assert T.from_log_prob(lambda x: -x.pow(2).sum(-1), 3, name="q").name == "q"
    assert T.from_log_prob(lambda x: -x.pow(2).sum(-1), 3).log_Z is None
    with pytest.raises(NotImplementedError):
        t.sample(3)
    s = T.from_log_prob(banana, 2, sample_fn=lambda n, g: torch.zeros(n, 2, dtype=torch.float64))
    assert s.sample(4).dtype == torch.float32 and s.has_exact_samples


def test_from_log_prob_rejects_bad_shapes_and_outputs():
    t = T.from_log_prob(lambda x: x.sum(-1, keepdim=True), 3, name="bad")
    with pytest.raises(ValueError, match=r"bad.*\(4, 2\)"):
        t.log_prob(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="bad"):
        T.checked_log_prob(t, torch.zeros(4, 3))  # returns [4, 1]


def test_pyro_normal_normal_matches_hand_written_joint():
    t = T.from_pyro(normal_normal, DATA)
    assert t.dim == 1 and t.site_names == ["z"] and t.vectorized and t.log_Z is None
    z = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    ref = Normal(0.0, 1.0).log_prob(z[:, 0]) + Normal(z, 1.0).log_prob(DATA).sum(-1)
    torch.testing.assert_close(t.log_prob(z), ref)
    # Normalizer = marginal likelihood N(x; 0, I + 11ᵀ), checked by quadrature over z.
    n = len(DATA)
    evidence = MultivariateNormal(torch.zeros(n, dtype=torch.float64),
                                  torch.eye(n, dtype=torch.float64) + 1.0).log_prob(DATA)
    q1, q2 = (grid_log_integral(t.log_prob, -12.0, 12.0, m) for m in (2000, 4000))
    assert abs(q2 - float(evidence)) <= 10 * abs(q1 - q2) + 4000 * EPS64
    assert T.from_pyro(normal_normal, DATA, log_Z=float(evidence)).log_Z == float(evidence)


def test_pyro_half_normal_scale_includes_log_jacobian():
    t = T.from_pyro(half_normal_scale, DATA)
    u = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]  # u = log s
    s = u.exp()
    ref = HalfNormal(2.0).log_prob(s[:, 0]) + u[:, 0] + Normal(0.0, s).log_prob(DATA).sum(-1)
    torch.testing.assert_close(t.log_prob(u), ref)
    torch.testing.assert_close(t.to_constrained(u)["s"], s[:, 0])


def test_pyro_log_normal_latent_is_normal_in_log_space():
    t = T.from_pyro(log_normal_prior)
    u = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]
    torch.testing.assert_close(t.log_prob(u), Normal(0.3, 0.7).log_prob(u[:, 0]))
    # Without the Jacobian term this would be LogNormal.log_prob(exp(u)), which differs by u.
    assert not torch.allclose(t.log_prob(u), LogNormal(0.3, 0.7).log_prob(u[:, 0].exp()))
    assert abs(grid_log_integral(t.log_prob, -6.0, 6.6)) <= 4000 * EPS64 * 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pyro_multi_site_batched_equals_rows_and_loop(dtype):
    t = T.from_pyro(multi_site, DATA, offset=0.5)
    assert t.site_names == ["z", "s", "w", "p"] and t.dim == 6 and t.vectorized
    assert t.site_shapes == {"z": (), "s": (), "w": (2,), "p": (2,)}
    assert t.constrained_shapes["p"] == (3,)
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(0), dtype=dtype)
    batched = t.log_prob(x)
    assert batched.dtype == dtype and batched.shape == (16,)
    rows = torch.cat([t.log_prob(x[i:i + 1]) for i in range(16)])
    loop = T.from_pyro(multi_site, DATA, offset=0.5, vectorize=False)
    assert not loop.vectorized
    tol = math.sqrt(torch.finfo(dtype).eps)
    torch.testing.assert_close(batched, rows, rtol=tol, atol=tol)
    torch.testing.assert_close(batched, loop.log_prob(x), rtol=tol, atol=tol)
    c = t.to_constrained(x.double())
    assert c["w"].shape == (16, 2) and c["p"].shape == (16, 3)
    torch.testing.assert_close(c["p"].sum(-1), torch.ones(16, dtype=torch.float64))
    assert bool((c["s"] > 0).all())
    # Hand-written joint for the first row: priors, likelihood, and log-Jacobians of s and p.
    u = x[0].double()
    s, w, p = c["s"][0], c["w"][0], c["p"][0]
    stick = torch.distributions.biject_to(torch.distributions.constraints.simplex)
    ref = (Normal(0.0, 1.0).log_prob(u[0]) + HalfNormal(1.0).log_prob(s) + u[1]
           + Normal(0.0, 1.0).log_prob(w).sum() + torch.distributions.Dirichlet(torch.ones(3)).log_prob(p)
           + stick.log_abs_det_jacobian(u[4:6], p)
           + Normal(u[0] + w.sum() + p[0] + 0.5, s).log_prob(DATA).sum())
    torch.testing.assert_close(batched[0].double(), ref, rtol=tol, atol=tol)


def test_pyro_falls_back_to_loop_without_vmap():
    with pytest.warns(RuntimeWarning, match="row by row"):
        t = T.from_pyro(branching, DATA)
    assert not t.vectorized
    z = torch.tensor([[-0.7], [0.9]], dtype=torch.float64)
    ref = torch.stack([Normal(0.0, 1.0).log_prob(zi) + Normal(zi, 1.0 if zi > 0 else 2.0).log_prob(DATA).sum()
                       for zi in z[:, 0]])
    torch.testing.assert_close(t.log_prob(z), ref)


def test_pyro_gradients_and_rng_isolation():
    state = torch.get_rng_state()
    t = T.from_pyro(multi_site, DATA)
    assert torch.equal(state, torch.get_rng_state())  # construction leaves the global RNG alone
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(t.log_prob, (x,))
    lp, grad = T.log_prob_and_grad(t, x.detach())
    assert grad.shape == (4, 6)


def test_pyro_errors():
    with pytest.raises(ValueError, match=r"normal_normal.*\(3,\)"):
        T.from_pyro(normal_normal, DATA).log_prob(torch.zeros(3))
    with pytest.raises(ValueError, match="no continuous latent"):
        T.from_pyro(lambda: pyro.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0)))
