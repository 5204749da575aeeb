"""Fine-tuning speed: Adjoint Matching iterations per second, and the lean adjoint's cost.

Run: ``pytest benchmarks/bench_finetune.py --benchmark-only`` (pytest-benchmark).
Each benchmark reports seconds per call; iterations/s = 1 / mean. The lean-adjoint benchmark
compares against one backward pass of the base drift per step (its theoretical cost).
"""

import pytest
import torch

from logz.finetune import AdjointMatching, ContinuousAdjoint, DRaFT, FlowMatching, QuadraticReward
from logz.finetune.nets import VelocityMLP


def _base(dim: int) -> FlowMatching:
    torch.manual_seed(0)
    fm = FlowMatching(dim, VelocityMLP(dim, 128, 3))
    fm.dim = dim
    return fm


@pytest.mark.parametrize("dim", [2, 32])
@pytest.mark.parametrize("cls", [AdjointMatching, ContinuousAdjoint, DRaFT])
def test_finetune_iteration(benchmark, cls, dim):
    ft = cls(_base(dim), QuadraticReward(dim, b=0.5), num_steps=40, batch_size=128, lr=1e-4)
    ft.fit(1)  # build the optimizer outside the timing
    benchmark.extra_info["unit"] = "one optimizer iteration (K=40, batch 128)"
    benchmark(ft.fit, 1)


@pytest.mark.parametrize("dim", [2, 32])
def test_lean_adjoint_cost(benchmark, dim):
    am = AdjointMatching(_base(dim), QuadraticReward(dim, b=0.5), num_steps=40, batch_size=128)
    traj = am.simulate(128)
    _, grad = am.reward_and_grad(traj.states[-1])
    benchmark.extra_info["unit"] = "lean adjoint over K=40 steps, batch 128 (one VJP per step)"
    benchmark(am.lean_adjoint, traj.states, grad)
