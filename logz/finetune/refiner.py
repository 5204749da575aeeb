"""FlowTurbo's velocity refiner (Zhao et al., "FlowTurbo: Towards Real-time Flow-Based Image
Generation with Velocity Refiner", arXiv 2409.18128).

Along a flow-model trajectory the velocity changes little late in sampling, so a tiny network
r(x, v_prev, t) can predict the change v(x, t) - v_prev from the previous step's velocity; the
expensive model is then called only in the first phase. The sampler here:

- steps 0 .. switch-1: Heun with the pseudo-corrector (``logz.sde.ode``) on the model velocity,
  1 model NFE per step (+1);
- steps switch .. N-1: Euler with the refined velocity v_k = v_{k-1} + r(x_k, v_{k-1}, t_k),
  0 model NFE (one refiner call each).

``fit`` trains r with the shared ``Trainer`` to regress the model's own velocity along the
refined trajectories (the model is evaluated during training, not at sampling time).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
from torch import Tensor, nn

from logz.finetune.nets import TimeFeatures
from logz.sde.grids import check_grid
from logz.sde.ode import pseudo_corrector_step
from logz.training import History, Trainer

Velocity = Callable[[Tensor, Tensor], Tensor]

__all__ = ["VelocityRefiner", "RefinedSample"]


class RefinedSample(NamedTuple):
    """x: the final state; model_nfe: calls of the flow model (the cost the refiner saves);
    refiner_calls: calls of the tiny refiner."""

    x: Tensor
    model_nfe: int
    refiner_calls: int


class VelocityRefiner(nn.Module):
    """r(x, v_prev, t): a small MLP on [x, v_prev, t-features], zero-initialised (so at first the
    refined velocity is the previous one)."""

    def __init__(self, dim: int, hidden: int = 32, depth: int = 2, num_freqs: int = 2):
        super().__init__()
        self.dim = int(dim)
        self.time = TimeFeatures(num_freqs)
        width, layers = 2 * self.dim + self.time.out_dim, []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, self.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, v_prev: Tensor, t: Tensor) -> Tensor:
        feats = self.time(torch.as_tensor(t, dtype=x.dtype), x.shape[0]).to(x.dtype)
        return self.out(self.body(torch.cat([x, v_prev, feats], dim=-1)))

    def sample(self, velocity: Velocity, x0: Tensor, times: Tensor, switch: int) -> RefinedSample:
        """Heun + pseudo-corrector for the first ``switch`` steps of ``times``, refined Euler after."""
        x, v, model_nfe, calls = self._run(velocity, x0, times, switch, train=False)
        return RefinedSample(x, model_nfe, calls)

    def _run(self, velocity: Velocity, x0: Tensor, times: Tensor, switch: int, train: bool):
        times = check_grid(times.to(x0.dtype))
        n = times.numel() - 1
        if isinstance(switch, bool) or int(switch) != switch or not 1 <= switch <= n:
            raise ValueError(f"switch must be an integer in [1, {n}] (steps before refining), got {switch!r}")
        x, v, nfe = x0, None, 0
        with torch.no_grad():
            for k in range(int(switch)):
                x, v = pseudo_corrector_step(velocity, x, times[k], times[k + 1] - times[k], v)
                nfe += 1 if k else 2
        losses, calls = [], 0
        for k in range(int(switch), n):
            t, h = times[k], times[k + 1] - times[k]
            v_new = v + self(x, v, t)
            calls += 1
            if train:
                with torch.no_grad():
                    target = velocity(x, t)
                losses.append((v_new - target).pow(2).sum(-1).mean())
            x, v = (x + h * v_new).detach(), v_new.detach()
        return x, (torch.stack(losses).mean() if train else v), nfe, calls

    def fit(self, velocity: Velocity, times: Tensor, switch: int, *, iterations: int = 300,
            batch_size: int = 256, lr: float = 2e-3, seed: int = 0, dtype: torch.dtype = torch.float32,
            progress: bool = False) -> History:
        """Train on ``velocity`` (frozen) for the grid ``times`` and ``switch``; returns ``History``."""
        if int(switch) >= times.numel() - 1:
            raise ValueError("switch leaves no step to refine")
        gen = torch.Generator().manual_seed(int(seed))
        self.to(dtype)

        def step(it: int):
            x0 = torch.randn(int(batch_size), self.dim, generator=gen, dtype=dtype)
            _, loss, _, _ = self._run(velocity, x0, times, switch, train=True)
            return {"loss": loss}

        return Trainer({"refiner": self}, step, lr=lr, grad_clip=1.0, generators={"data": gen},
                       lr_schedule={"kind": "cosine", "total": max(int(iterations), 1)},
                       name="refiner").fit(iterations, progress=progress)
