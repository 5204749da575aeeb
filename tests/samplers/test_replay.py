"""Replay buffer and MALA local search: FIFO, rank priorities, seeded reproducibility,
acceptance-rate adaptation and invariance of the target."""

from __future__ import annotations

import math

import pytest
import torch

from logz.samplers.replay import ReplayBuffer, mala


def _gauss_lp_grad(x):
    return -0.5 * (x ** 2).sum(-1), -x


def test_buffer_is_fifo_drops_invalid_rows_and_round_trips():
    buf = ReplayBuffer(5, 2)
    buf.add(torch.arange(8.0).view(4, 2), torch.tensor([0.0, 1.0, -math.inf, 3.0]))
    assert len(buf) == 3  # the -inf row is dropped
    buf.add(torch.full((4, 2), 9.0), torch.zeros(4))
    assert len(buf) == 5 and torch.equal(buf.x[0], torch.tensor([6.0, 7.0]))  # oldest gone first
    other = ReplayBuffer(5, 2)
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.x, buf.x) and torch.equal(other.log_reward, buf.log_reward)
    with pytest.raises(ValueError, match="add needs"):
        buf.add(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, 2)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2).sample(1, torch.Generator())


def test_rank_priorities_match_sampling_frequencies_and_are_reproducible():
    n = 50
    buf = ReplayBuffer(n, 1, rank_weight=0.1)
    log_r = torch.randperm(n, generator=torch.Generator().manual_seed(0)).float()
    buf.add(log_r[:, None], log_r)
    p = buf.priorities()
    # weight 1 / (k n + rank), rank 0 = the highest reward
    best, worst = int(log_r.argmax()), int(log_r.argmin())
    assert float(p[best]) == pytest.approx(1 / (0.1 * n)) and float(p[worst]) == pytest.approx(1 / (0.1 * n + n - 1))
    draws = 20000
    x, r = buf.sample(draws, torch.Generator().manual_seed(1))
    assert torch.equal(x[:, 0], r)
    counts = torch.bincount(r.long(), minlength=n).double()
    expected = draws * p[torch.argsort(log_r)] / p.sum()  # by reward value = index of log_r sorted
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < n - 1 + 5 * math.sqrt(2 * (n - 1)), chi2  # chi^2_{n-1}: mean n-1, sd sqrt(2(n-1))
    x2, _ = buf.sample(draws, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2)


@pytest.mark.parametrize("start", [1e-4, 5.0])
def test_mala_step_size_adapts_to_the_target_acceptance(start):
    x = torch.randn(256, 5, generator=torch.Generator().manual_seed(0))
    res = mala(_gauss_lp_grad, x, steps=400, step_size=start, generator=torch.Generator().manual_seed(1),
               target_acceptance=0.574)
    late = res.acceptance[-150:]
    # per-step rates of 256 chains: sd about sqrt(p(1-p)/256) = 0.03, plus the recursion's jitter
    assert abs(float(late.mean()) - 0.574) < 0.05, (float(late.mean()), res.step_size)
    # the standard-Gaussian optimum h for d = 5 is O(1) (scaling h ~ d^(-1/3))
    assert 0.1 < res.step_size < 5.0


def test_mala_without_adaptation_leaves_the_target_invariant_and_is_seeded():
    n, d = 4000, 2
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = mala(_gauss_lp_grad, x, steps=20, step_size=0.8, adapt=False, generator=torch.Generator().manual_seed(3))
    b = mala(_gauss_lp_grad, x, steps=20, step_size=0.8, adapt=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.x, b.x) and a.step_size == 0.8
    # chains started in N(0, I) stay in N(0, I): mean 0 and variance 1 within sampling error
    se_mean, se_var = 1 / math.sqrt(n), math.sqrt(2 / n)
    assert (a.x.mean(0).abs() < 4 * se_mean).all() and ((a.x.var(0) - 1).abs() < 4 * se_var).all()
    assert torch.equal(a.log_prob, _gauss_lp_grad(a.x)[0])
    assert 0 < float(a.acceptance.mean()) < 1
