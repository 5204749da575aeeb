"""Closed-form ``log_prob_and_grad`` of the built-in targets against log_prob and autograd (float64),
and the samplers' use of it (same values as the autograd path, validity checks kept)."""

import pytest
import torch

from logz import targets
from logz.targets import GaussianMixture, Gaussian
from logz.targets.base import log_prob_and_grad

CASES = {
    "funnel": lambda: targets.get("funnel"),
    "manywell": lambda: targets.get("manywell", dim=8),
    "gmm9": lambda: targets.get("gmm9"),
    "gmm40": lambda: targets.get("gmm40"),
    "gaussian_full": lambda: Gaussian([0.5, -1.0, 2.0], [[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]]),
    "mixture_full": lambda: GaussianMixture([0.3, 0.7], [[0.0, 1.0], [2.0, -1.0]],
                                            [[[1.0, 0.4], [0.4, 0.8]], [[0.5, -0.1], [-0.1, 2.0]]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_closed_form_gradient_matches_autograd(name):
    t = CASES[name]()
    g = torch.Generator().manual_seed(0)
    x = 2.0 * torch.randn(64, t.dim, generator=g, dtype=torch.float64)
    lp, grad = t.log_prob_and_grad(x)
    xg = x.clone().requires_grad_(True)
    ref = t.log_prob(xg)
    (ref_grad,) = torch.autograd.grad(ref.sum(), xg)
    torch.testing.assert_close(lp, ref.detach(), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-10)
    # the samplers' entry point uses it, and its output stays differentiable for create_graph
    lp2, grad2 = log_prob_and_grad(t, xg, create_graph=True)
    assert grad2.requires_grad
    torch.testing.assert_close(grad2.detach(), ref_grad, rtol=1e-10, atol=1e-10)


def test_closed_form_path_keeps_validity_checks():
    t = targets.get("funnel")
    x = torch.zeros(3, 10, dtype=torch.float64)
    x[1, 0] = float("nan")
    with pytest.raises(ValueError, match="funnel"):
        log_prob_and_grad(t, x)
