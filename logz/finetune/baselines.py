"""Baselines of the Adjoint Matching paper (arXiv 2409.08861), same interface as ``AdjointMatching``.

- ``NonMemorylessAdjointMatching``: Adjoint Matching with a sigma that is not
  memoryless (default constant 0.5). It converges to the SOC optimum for that sigma,
  whose terminal law is NOT p_base exp(r) / Z: X_0 is not tilted, so for a Gaussian base
  and linear reward the mean moves by Cov(X_1 | X_0) b instead of Cov(X_1) b.
- ``ContinuousAdjoint``: the full adjoint of the SOC objective
  J(u) = E[ int 1/2 |u|^2 dt - lambda r(X_1) ] integrated backward on the simulation
  grid (``logz.sde.adjoint.adjoint_backward`` with the fine-tuned drift and running cost
  1/2 |u|^2), then the surrogate sum_k h [1/2 |u_k|^2 + a_{k+1} . sigma_k u_k], whose
  parameter gradient is dJ/dtheta; memory O(B d) per step, no graph through the path.
- ``DRaFT``: reward backpropagation through the last ``backprop_steps`` steps of the
  deterministic sampler (DRaFT-K, Clark et al. 2023), loss -lambda r(X_1). No KL term:
  it maximizes reward rather than sampling p* (the paper's point of comparison).
"""

from __future__ import annotations

import torch
from torch import Tensor

from logz.finetune.adjoint_matching import AdjointMatching
from logz.finetune.base import FineTuner
from logz.finetune.noise import ConstantNoise
from logz.sde import odeint
from logz.sde.adjoint import adjoint_backward


class NonMemorylessAdjointMatching(AdjointMatching):
    """Adjoint Matching with a non-memoryless ``noise`` (default ``ConstantNoise(0.5)``): biased on purpose."""

    name = "non_memoryless_adjoint_matching"

    def __init__(self, base, reward, *, noise=None, **kwargs):
        super().__init__(base, reward, noise=ConstantNoise(0.5) if noise is None else noise, **kwargs)


class ContinuousAdjoint(FineTuner):
    """Full-adjoint SOC fine-tuning (memoryless noise by default). ``History.loss`` records the
    surrogate that is backpropagated, ``History.metrics["soc_objective"]`` the SOC objective
    estimate mean(sum_k h 1/2 |u_k|^2 - lambda r(X_K))."""

    name = "continuous_adjoint"

    def _running_cost(self, x: Tensor, t: Tensor) -> Tensor:
        return 0.5 * self.control(x, t).pow(2).sum(-1)

    def _loss(self) -> dict[str, Tensor]:
        traj = self.simulate(self.batch_size)
        states = traj.states  # [K+1, B, d]
        r, grad = self.reward_and_grad(states[-1])
        adj = adjoint_backward(self.sde.f, states, self.times, -grad, self._running_cost, skip_first=True)
        K, B, d = self.num_steps, states.shape[1], states.shape[2]
        t = self.times[:-1]
        h = (self.times[1:] - self.times[:-1]).view(K, 1)
        x = states[:-1].reshape(K * B, d)
        u = self.control(x, t.repeat_interleave(B)).view(K, B, d)
        sigma = self.noise(t).to(x).view(K, 1, 1)
        cost = (h * 0.5 * u.pow(2).sum(-1))  # [K, B]
        surrogate = (cost + h * (adj[1:] * sigma * u).sum(-1)).sum(0).mean()
        return {"loss": surrogate, "soc_objective": (cost.detach().sum(0) - r).mean(), "reward": r.mean()}


class DRaFT(FineTuner):
    """DRaFT-K: backpropagate -lambda r(X_1) through the last ``backprop_steps`` Euler steps of
    the ODE dx = v_ft dt (the earlier steps run without gradients)."""

    name = "draft"

    def __init__(self, base, reward, *, backprop_steps: int = 1, **kwargs):
        super().__init__(base, reward, **kwargs)
        if not 1 <= int(backprop_steps) <= self.num_steps:
            raise ValueError(f"backprop_steps must be in [1, num_steps={self.num_steps}], got {backprop_steps}")
        self.backprop_steps = int(backprop_steps)

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "backprop_steps": self.backprop_steps}

    def _loss(self) -> dict[str, Tensor]:
        split = self.num_steps - self.backprop_steps
        x = self._x0(self.batch_size, None)
        if split > 0:
            with torch.no_grad():
                x = odeint(self.model, x, self.times[: split + 1], method="euler")
        x = odeint(self.model, x.detach(), self.times[split:], method="euler")
        r = self.reward(x)
        if r.shape != (x.shape[0],) or not bool(torch.isfinite(r).all()):
            self.reward_and_grad(x.detach())  # raises the validated error
        return {"loss": -self.reward_scale * r.mean(), "reward": self.reward_scale * r.detach().mean()}


def finetuner_names() -> list[str]:
    return ["adjoint_matching", "non_memoryless_adjoint_matching", "continuous_adjoint", "draft"]


def make_finetuner(name: str, base, reward, **config) -> FineTuner:
    """Build a fine-tuner by name (see ``finetuner_names``)."""
    classes = {"adjoint_matching": AdjointMatching, "non_memoryless_adjoint_matching": NonMemorylessAdjointMatching,
               "continuous_adjoint": ContinuousAdjoint, "draft": DRaFT}
    if name not in classes:
        raise ValueError(f"unknown fine-tuner {name!r}; choose one of {sorted(classes)}")
    return classes[name](base, reward, **config)

