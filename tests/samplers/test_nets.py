"""Networks: time conventions, zero initialisation, clipping, the grid wrapper, losses."""

from __future__ import annotations

import pytest
import torch

from logz.samplers import losses
from logz.samplers.nets import FourierMLP, GradientDrift, GridControl, TimeScale


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_time_as_scalar_or_batch_gives_the_same_output(dtype):
    torch.manual_seed(0)
    net = FourierMLP(3, hidden=16, layers=2, T=5.0, zero_init=False).to(dtype)
    x = torch.randn(4, 3, dtype=dtype)
    out_scalar = net(x, torch.tensor(1.5, dtype=dtype))
    out_batch = net(x, torch.full((4,), 1.5, dtype=dtype))
    assert out_scalar.shape == (4, 3) and out_scalar.dtype == dtype
    torch.testing.assert_close(out_scalar, out_batch)
    with pytest.raises(ValueError, match="time"):
        net(x, torch.zeros(4, 2, dtype=dtype))


def test_zero_init_and_score_term():
    torch.manual_seed(0)
    x = torch.randn(5, 2)
    assert torch.equal(FourierMLP(2, hidden=8)(x, torch.tensor(0.3)), torch.zeros(5, 2))
    drift = GradientDrift(2, lambda x: -x, hidden=8, scale_init=0.25)
    torch.testing.assert_close(drift(x, torch.tensor(0.3)), -0.25 * x)  # NN = 0, c(t) = 0.25
    assert TimeScale(3, hidden=8, init=0.5)(torch.rand(7)).shape == (7, 3)


def test_clipping_of_score_and_output():
    drift = GradientDrift(2, lambda x: torch.full_like(x, float("nan")), hidden=8, scale_init=1.0)
    assert torch.equal(drift(torch.ones(3, 2), torch.tensor(0.0)), torch.zeros(3, 2))  # NaN -> 0
    drift = GradientDrift(2, lambda x: 1e6 * x, hidden=8, scale_init=1.0, grad_clip=10.0, out_clip=3.0)
    out = drift(torch.tensor([[1.0, -0.001]]), torch.tensor(0.0))
    torch.testing.assert_close(out, torch.tensor([[3.0, -3.0]]))
    with pytest.raises(ValueError):
        GradientDrift(2, None, grad_clip=0.0)
    with pytest.raises(ValueError, match="hidden"):
        FourierMLP(2, hidden=0)


def test_grid_control_matches_direct_calls_in_both_modes():
    torch.manual_seed(1)
    drift = GradientDrift(3, lambda x: -x, hidden=8, zero_init=False)
    times = torch.linspace(0, 1, 5)[:-1]
    x = torch.randn(6, 3)
    grid = GridControl(drift, times)
    for t in times:
        torch.testing.assert_close(grid(x, t), drift(x, t))
    with pytest.raises(RuntimeError):
        grid(x, times[0])
    xs = torch.randn(4 * 6, 3)
    t_flat = times.repeat_interleave(6)
    torch.testing.assert_close(GridControl(drift, times)(xs, t_flat), drift(xs, t_flat))


def test_losses_by_hand_and_vargrad_weights():
    log_w = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    loss = losses.log_variance_loss(log_w)
    mean = log_w.detach().mean()
    assert float(loss.detach()) == pytest.approx(0.5 * float(((log_w.detach() - mean) ** 2).sum()) / 2)
    loss.backward()
    torch.testing.assert_close(log_w.grad, losses.vargrad_weights(log_w))
    kl = losses.kl_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, -2.0]))
    assert float(kl) == pytest.approx(((1 - 1 - 0) + (2 - 2 - 1)) / 2)
    with pytest.raises(ValueError):
        losses.log_variance_loss(torch.zeros(1))
    with pytest.raises(ValueError):
        losses.kl_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2))


def test_learned_noise_head_starts_at_one_and_is_bounded():
    """log_var_range=r: the drift returns (u, log_scale), log_scale = 0 at initialisation (the
    fixed-noise policy) and within [-r/2, r/2] always; u is the fixed-noise drift's."""
    torch.manual_seed(2)
    x, t = torch.randn(5, 3), torch.tensor(0.4)
    drift = GradientDrift(3, lambda x: -x, hidden=8, scale_init=0.25, log_var_range=2.0)
    u, log_scale = drift(x, t)
    torch.testing.assert_close(u, -0.25 * x)
    assert torch.equal(log_scale, torch.zeros(5, 3))
    with torch.no_grad():
        drift.net.out.weight.normal_(0, 100.0)
    u, log_scale = drift(x, t)
    assert log_scale.abs().max() <= 1.0 and log_scale.abs().max() > 0.9  # saturates at r/2
    grid = GridControl(drift, torch.linspace(0, 1, 3)[:-1], record_controls=True)
    outs = [grid(x, tt) for tt in torch.linspace(0, 1, 3)[:-1]]
    assert all(isinstance(o, tuple) and not o[1].requires_grad for o in outs)
    u_rec, s_rec = grid.controls
    assert u_rec.shape == s_rec.shape == (2, 5, 3) and s_rec.requires_grad
    with pytest.raises(ValueError, match="log_var_range"):
        GradientDrift(3, None, log_var_range=0.0)
