"""Registry, input validation, dtype handling and gradients for every registered target."""

from __future__ import annotations

import math

import pytest
import torch

import logz.targets as T

REQUIRED = ["gaussian", "gmm9", "gmm25", "gmm40", "funnel", "manywell"]
SMALL = {"funnel": {"dim": 4}, "manywell": {"dim": 6}, "gaussian": {"dim": 3}}


def test_names_and_get():
    assert set(REQUIRED) <= set(T.names())
    assert T.names() == sorted(T.names())
    for name in REQUIRED:
        t = T.get(name)
        assert isinstance(t, T.Target) and isinstance(t, T.BaseTarget)
        assert t.name == name and t.log_Z is not None and t.init_std > 0
    assert (T.get("gmm9").dim, T.get("funnel").dim, T.get("manywell").dim, T.get("gaussian").dim) == (2, 10, 32, 2)
    assert T.get("funnel", dim=5).dim == 5 and T.get("manywell", dim=8).dim == 8
    g = T.get("gaussian", dim=5, std=2.0, log_Z=1.5)
    assert g.dim == 5 and g.log_Z == 1.5 and torch.allclose(g.cov, 4.0 * torch.eye(5, dtype=torch.float64))
    full = T.get("gaussian", mean=1.0, cov=torch.tensor([[1.0, 0.5], [0.5, 2.0]]))
    assert full.dim == 2 and torch.equal(full.mean, torch.ones(2, dtype=torch.float64))
    assert T.get("gmm40", scale=1.0).covs[0, 0, 0] == 1.0


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        T.get("no-such-target")
    msg = str(err.value)
    assert "no-such-target" in msg and all(n in msg for n in T.names())


def test_register():
    name = "test-registry-quadratic"
    T.register(name, lambda dim=2: T.from_log_prob(lambda x: -x.pow(2).sum(-1), dim, name=name))
    try:
        assert name in T.names() and T.get(name, dim=4).dim == 4
        with pytest.raises(ValueError, match="already registered"):
            T.register(name, lambda: None)
        T.register(name, lambda: T.Funnel(dim=3), overwrite=True)
        assert T.get(name).dim == 3
    finally:
        T._REGISTRY.pop(name, None)


@pytest.mark.parametrize("name", REQUIRED)
def test_bad_shapes_raise_value_error_naming_target_and_shape(name):
    t = T.get(name)
    for bad in (torch.zeros(t.dim), torch.zeros(3, t.dim + 1), torch.zeros(2, 3, t.dim)):
        with pytest.raises(ValueError) as err:
            t.log_prob(bad)
        assert name in str(err.value) and str(tuple(bad.shape)) in str(err.value)


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError):
        T.ManyWell(dim=5)
    with pytest.raises(ValueError):
        T.Funnel(dim=1)
    with pytest.raises(ValueError):
        T.Gaussian(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))  # not positive definite
    with pytest.raises(ValueError):
        T.GaussianMixture([1.0, 1.0], torch.zeros(2, 2), torch.ones(3))  # wrong covs shape


@pytest.mark.parametrize("name", REQUIRED)
def test_float32_and_float64_agree(name):
    t = T.get(name)
    x32 = t.sample(32, torch.Generator().manual_seed(0))  # float32 points, exact in float64 too
    lp32, lp64 = t.log_prob(x32), t.log_prob(x32.double())
    assert lp32.dtype == torch.float32 and lp64.dtype == torch.float64 and lp32.shape == (32,)
    # Relative agreement to half the float32 digits (sqrt(eps)), the usual single-precision budget.
    tol = math.sqrt(torch.finfo(torch.float32).eps)
    assert bool(((lp32.double() - lp64).abs() <= tol * (1 + lp64.abs())).all())
    out = T.checked_log_prob(t, x32)
    assert torch.equal(out, lp32)


@pytest.mark.parametrize("name", REQUIRED)
def test_gradient_matches_finite_differences(name):
    t = T.get(name, **SMALL.get(name, {}))
    x = t.sample(3, torch.Generator().manual_seed(1), dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(t.log_prob, (x,))
    lp, grad = T.log_prob_and_grad(t, x.detach().float())
    assert lp.shape == (3,) and grad.shape == (3, t.dim) and grad.dtype == torch.float32


def test_gaussian_gradient_is_the_score():
    cov = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    mean = torch.tensor([1.0, -1.0], dtype=torch.float64)
    t = T.Gaussian(mean, cov, log_Z=-3.0)
    x = torch.randn(5, 2, dtype=torch.float64)
    _, grad = T.log_prob_and_grad(t, x)
    torch.testing.assert_close(grad, -(x - mean) @ torch.linalg.inv(cov))


def test_manywell_well_probabilities():
    t = T.ManyWell(dim=4)
    assert t.num_modes == 4 and 0.5 < t.prob_right_well < 1
    x = torch.tensor([[1.7, 0.0, -1.7, 0.0], [-1.7, 0.0, 1.7, 0.0]])
    assert t.well_signs(x).tolist() == [[True, False], [False, True]]
    assert t.assign_modes(x).tolist() == [1, 2]
    total = torch.logsumexp(t.log_mode_prob(torch.arange(4)), 0)
    assert abs(float(total)) <= 4 * torch.finfo(torch.float64).eps


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", REQUIRED)
def test_cuda_inputs_and_samples(name):
    t = T.get(name)
    x = t.sample(16, torch.Generator().manual_seed(2))
    lp_cpu = t.log_prob(x.double())
    lp_gpu = t.log_prob(x.double().cuda())
    assert lp_gpu.device.type == "cuda"
    torch.testing.assert_close(lp_gpu.cpu(), lp_cpu)
    s = t.sample(16, torch.Generator(device="cuda").manual_seed(3), device="cuda")
    assert s.device.type == "cuda" and s.shape == (16, t.dim)
    assert t.sample(16, device="cuda").device.type == "cuda"
