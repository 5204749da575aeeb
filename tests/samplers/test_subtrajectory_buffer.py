"""SCLD's replay buffer (``logz.samplers.subtrajectory_buffer``): priorities, capacity,
non-finite rows, and a training run with it resumes bit-identically from a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from logz import samplers
from logz.samplers.sequential import Segment
from logz.samplers.subtrajectory_buffer import SubtrajectoryBuffer


def _segments(n: int, log_g: torch.Tensor, d: int = 2, offset: float = 0.0) -> list:
    """Two segments (lengths 2 and 3) whose row i has states offset + i (to read rows back)."""
    rows = offset + torch.arange(n, dtype=torch.float64)
    out = []
    for k0, k1 in ((0, 2), (2, 5)):
        states = rows[None, :, None].expand(k1 - k0 + 1, n, d).clone()
        out.append(Segment(k0, k1, states, rows.clone(), rows.clone(), log_g.clone()))
    return out


def test_draws_follow_the_softmax_of_the_priorities_without_replacement():
    buf = SubtrajectoryBuffer(capacity=10, temperature=1.0)
    log_g = torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    buf.add(_segments(4, log_g))
    gen = torch.Generator().manual_seed(0)
    counts, n = torch.zeros(4, dtype=torch.float64), 4000
    for _ in range(n):
        drawn, idx = buf.sample(1, gen)
        counts[idx[0]] += 1
        assert drawn[1].states.shape == (4, 1, 2)  # time-first, the segment's length + 1
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    se = torch.sqrt(p * (1 - p) / n)
    assert bool(((counts / n - p).abs() < 4 * se).all()), counts / n
    drawn, idx = buf.sample(4, gen)  # all four, each once
    assert sorted(idx[0].tolist()) == [0, 1, 2, 3]
    assert sorted(drawn[0].start_log_p.tolist()) == [0.0, 1.0, 2.0, 3.0]


def test_capacity_keeps_the_newest_and_non_finite_rows_are_left_out():
    buf = SubtrajectoryBuffer(capacity=5)
    buf.add(_segments(4, torch.zeros(4, dtype=torch.float64)))
    g = torch.tensor([0.0, math.nan, 0.0, -math.inf], dtype=torch.float64)
    buf.add(_segments(4, g, offset=10.0))
    assert len(buf) == 5  # 4 + 2 finite, newest 5 kept
    assert buf.stores[0].start_log_p.tolist() == [1.0, 2.0, 3.0, 10.0, 12.0]
    with pytest.raises(ValueError, match="segments"):
        buf.add(_segments(4, torch.zeros(4, dtype=torch.float64))[:1])
    with pytest.raises(ValueError, match="capacity"):
        SubtrajectoryBuffer(0)


def test_update_sets_the_drawn_rows_priorities():
    buf = SubtrajectoryBuffer(capacity=10, temperature=0.01)  # nearly greedy
    buf.add(_segments(3, torch.tensor([0.0, 5.0, 0.0], dtype=torch.float64)))
    gen = torch.Generator().manual_seed(1)
    _, idx = buf.sample(1, gen)
    assert idx[0].tolist() == [1]
    buf.update(idx, [torch.tensor([-5.0], dtype=torch.float64)] * 2)
    assert buf.stores[0].log_g.tolist() == [0.0, -5.0, 0.0]
    state = buf.state_dict()
    other = SubtrajectoryBuffer(capacity=10, temperature=0.01)
    other.load_state_dict(state)
    torch.testing.assert_close(other.stores[1].states, buf.stores[1].states)


def test_training_with_the_buffer_resumes_bit_identically(diag_gaussian, tmp_path):
    target = diag_gaussian([0.5, -0.5], [1.0, 0.5])
    kw = dict(num_steps=8, segments=4, batch_size=16, hidden=8, layers=1, seed=3, dtype=torch.float64,
              buffer_batches=2)
    a = samplers.get("scld", target, **kw)
    a.fit(4, progress=False)
    a.save(tmp_path / "c.pt")
    a.fit(3, progress=False)
    b = samplers.get("scld", target, **kw)
    b.load(tmp_path / "c.pt")
    assert len(b.buffer) == 32  # 4 iterations x 16, capacity 2 batches
    b.fit(3, progress=False)
    for pa, pb in zip(a.trainer.modules["control"].parameters(), b.trainer.modules["control"].parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    torch.testing.assert_close(a.buffer.stores[0].log_g, b.buffer.stores[0].log_g, rtol=0, atol=0)
