"""MeanFlow: the training loss vanishes exactly at the closed-form Gaussian average velocity
(the MeanFlow identity through the library's loss), sampling and bad input."""

import pytest
import torch

from logz.finetune.meanflow import AverageVelocityMLP, MeanFlow
from logz.training import History
from logz.theory.flows import GaussianFlow
from logz.theory.gaussian import GaussianData


class ExactAverage(torch.nn.Module):
    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, x, s, t):
        return self.flow.average_velocity(x, s, t)


@pytest.mark.parametrize("name", ["linear", "gvp", "vp"])
def test_loss_is_zero_at_the_closed_form_average_velocity(name):
    flow = GaussianFlow(GaussianData.random(3, eig_range=(0.1, 1.0), seed=2), name)
    teacher = lambda x, s: flow.average_velocity(x, s, s)
    mf = MeanFlow(3, net=ExactAverage(flow), teacher=teacher, interpolant=name, dtype=torch.float64,
                  adaptive_p=0.0)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(32, 3, generator=g, dtype=torch.float64), flow.data.sample(32, g)
    s, t = mf._times(32, g)
    assert bool((s <= t).all()) and bool((s < t).any())
    assert float(mf.loss(x0, x1, s, t)) < 1e-20
    # a wrong average velocity (the instantaneous one) violates the identity
    mf.net = lambda x, s_, t_: flow.average_velocity(x, s_, s_)
    assert float(mf.loss(x0, x1, s, t)) > 1e-3


def test_exact_flow_map_sampled_in_one_step_is_exact():
    flow = GaussianFlow(GaussianData.random(2, seed=4), "linear")
    mf = MeanFlow(2, net=ExactAverage(flow), dtype=torch.float64)
    x0 = torch.randn(5, 2, dtype=torch.float64)
    P, q = flow.flow_map(0.0, 1.0)
    for k in (1, 3):
        assert torch.allclose(mf.sample(5, k, x0=x0), x0 @ P.T + q, atol=1e-10)


def test_fit_returns_history_and_checks_input():
    data = torch.randn(256, 2) * 0.5 + 1.0
    mf = MeanFlow(hidden=16, depth=1, batch_size=32, seed=0)
    h = mf.fit(data, 3)
    assert isinstance(h, History) and len(h.loss) == 3 and mf.sample(4, 2).shape == (4, 2)
    assert isinstance(mf.net, AverageVelocityMLP)
    with pytest.raises(ValueError, match="flow_fraction"):
        MeanFlow(flow_fraction=1.5)
    with pytest.raises(ValueError, match="num_steps"):
        mf.sample(3, 0)
    with pytest.raises(ValueError, match="dim"):
        MeanFlow(3).fit(data, 1)
    with pytest.raises(TypeError, match="data"):
        MeanFlow().fit([1, 2, 3], 1)
