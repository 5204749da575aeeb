"""FlowTurbo velocity refiner: model-NFE accounting, zero-initialised start, training, bad input."""

import pytest
import torch

from logz.finetune.refiner import VelocityRefiner
from logz.sde import uniform_grid
from logz.sde.ode import CountingField, nfe, odeint, pseudo_corrector_step
from logz.theory.flows import GaussianFlow
from logz.theory.gaussian import GaussianData


def flow():
    return GaussianFlow(GaussianData.random(3, eig_range=(0.1, 1.0), seed=5), "gvp")


def test_model_nfe_counted_and_untrained_refiner_reuses_the_last_velocity(dtype):
    f = flow()
    field = CountingField(lambda x, t: f(x.double(), t).to(x.dtype))
    x0 = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    times = uniform_grid(1.0, 8, dtype=dtype)
    out = VelocityRefiner(3).to(dtype).sample(field, x0, times, switch=3)
    assert out.model_nfe == field.calls == nfe("heun_pc", 3) and out.refiner_calls == 5
    # zero-initialised: the refine phase moves with the last carried velocity, unchanged
    g = lambda x, t: f(x.double(), t).to(x.dtype)
    x, v = x0, None
    for k in range(3):
        x, v = pseudo_corrector_step(g, x, times[k], times[k + 1] - times[k], v)
    assert torch.allclose(x, odeint(g, x0, times[:4], "heun_pc"))
    expected = x + (times[-1] - times[3]) * v
    assert out.x.dtype == dtype
    assert torch.allclose(out.x, expected, atol=20 * torch.finfo(dtype).eps)


def test_training_lowers_the_loss_and_checks_switch():
    f = flow()
    times = uniform_grid(1.0, 8, dtype=torch.float64)
    r = VelocityRefiner(3, hidden=16)
    h = r.fit(f, times, 3, iterations=60, batch_size=64, dtype=torch.float64)
    assert sum(h.loss[-10:]) < sum(h.loss[:10])
    with pytest.raises(ValueError, match="switch"):
        r.sample(f, torch.zeros(2, 3, dtype=torch.float64), times, 0)
    with pytest.raises(ValueError, match="refine"):
        r.fit(f, times, 8, iterations=1)
