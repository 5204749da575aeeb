"""Adjoint Matching (Domingo-Enrich, Drozdzal, Karrer, Chen 2024, arXiv 2409.08861).

Fine-tunes a flow-matching velocity so that its samples follow
p*(x) ∝ p_base(x) exp(lambda r(x)). Each iteration:

1. simulate K Euler–Maruyama steps of the fine-tuned memoryless SDE from
   X_0 ~ N(0, I), without gradients (``FineTuner.simulate``);
2. integrate the lean adjoint backward from a_K = -lambda grad r(X_K):
   a_k = a_{k+1} + h a_{k+1}^T grad_x b_base(X_k, t_k)  (one VJP of the BASE
   drift per step, ``logz.sde.adjoint.lean_adjoint``);
3. regress the control on it:
   L = mean_batch sum_k | kappa_k / sigma_k (v_ft - v_base)(X_k, t_k) + sigma_k a_{k+1} |^2,
   kappa = 2 for the exactly memoryless schedule (the paper's 2/sigma; see ``noise.py``).

u_k acts on the step X_k -> X_{k+1}, so it is paired with a_{k+1}, the gradient of the
terminal cost with respect to X_{k+1}; this makes the regression target exact for
the discretized problem when the base is linear and the reward linear, and avoids
evaluating grad b at t = 0. Options follow the paper: time-step subsampling (the
last ``n_last`` steps plus ``n_random`` random earlier ones) and loss clipping.

Memorylessness matters: with another sigma the optimum is biased by the initial
value function. A non-memoryless ``noise`` triggers a warning here; the baseline
``NonMemorylessAdjointMatching`` (``baselines.py``) runs it on purpose.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from logz.finetune.base import FineTuner
from logz.finetune.noise import warn_if_not_memoryless
from logz.sde.adjoint import lean_adjoint


class AdjointMatching(FineTuner):
    """Adjoint Matching fine-tuner. See ``FineTuner`` for the shared arguments.

    Args:
        time_subsample: None (all K steps) or (n_last, n_random): the paper uses
            (10, 10) with K = 40 (last 10 steps + 10 random of the first 30).
        loss_clip: None or a bound on each per-(sample, step) squared residual;
            residuals above it contribute no gradient (robust to outlier paths).
    """

    name = "adjoint_matching"

    def __init__(self, base, reward, *, time_subsample: Optional[tuple] = None,
                 loss_clip: Optional[float] = None, **kwargs):
        super().__init__(base, reward, **kwargs)
        if type(self) is AdjointMatching:
            warn_if_not_memoryless(self.noise)
        if time_subsample is not None:
            n_last, n_random = (int(v) for v in time_subsample)
            if n_last < 0 or n_random < 0 or n_last + n_random == 0 or n_last > self.num_steps:
                raise ValueError(f"time_subsample=(n_last, n_random) must be >= 0, not both 0, "
                                 f"n_last <= num_steps={self.num_steps}; got {time_subsample}")
            time_subsample = (n_last, min(n_random, self.num_steps - n_last))
        self.time_subsample = time_subsample
        if loss_clip is not None and not loss_clip > 0:
            raise ValueError(f"loss_clip must be > 0, got {loss_clip}")
        self.loss_clip = loss_clip

    def select_steps(self) -> Tensor:
        """Step indices k in [0, K) whose residuals enter the loss. LongTensor[n]."""
        K = self.num_steps
        if self.time_subsample is None:
            return torch.arange(K, device=self.device)
        n_last, n_random = self.time_subsample
        last = torch.arange(K - n_last, K)
        early = torch.randperm(K - n_last, generator=self.generator)[:n_random]
        return torch.cat([early.sort().values, last]).to(self.device)

    def lean_adjoint(self, states: Tensor, terminal_grad: Tensor) -> Tensor:
        """a_0..a_K for paths Tensor[K+1, B, d] and lambda grad r(X_K) Tensor[B, d] -> Tensor[K+1, B, d].
        a_0 is set to a_1 (never used: u_k pairs with a_{k+1})."""
        return lean_adjoint(self.base_sde.f, states, self.times, -terminal_grad, skip_first=True)

    def residuals(self, states: Tensor, adjoint: Tensor, steps: Tensor) -> Tensor:
        """kappa/sigma (v_ft - v_base) + sigma a_{k+1} at (X_k, t_k) for k in ``steps``: Tensor[n, B, d].
        Differentiable in the fine-tuned model's parameters."""
        n, B, d = steps.numel(), states.shape[1], states.shape[2]
        t = self.times[steps]
        x = states[steps].reshape(n * B, d)
        t_flat = t.repeat_interleave(B)
        with torch.no_grad():
            v_base = self.base_velocity(x, t_flat)
        v_ft = self.model(x, t_flat)
        sigma = self.noise(t).to(x).view(n, 1, 1)
        kappa = self.sde.kappa(t).to(x).view(n, 1, 1)
        return kappa / sigma * (v_ft - v_base).view(n, B, d) + sigma * adjoint[steps + 1]

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "time_subsample": None if self.time_subsample is None
                else list(self.time_subsample), "loss_clip": self.loss_clip}

    def _loss(self) -> dict[str, Tensor]:
        traj = self.simulate(self.batch_size)
        states = traj.states
        r, grad = self.reward_and_grad(states[-1])
        adjoint = self.lean_adjoint(states, grad)
        per = self.residuals(states, adjoint, self.select_steps()).pow(2).sum(-1)  # [n, B]
        if self.loss_clip is not None:
            per = per.clamp(max=self.loss_clip)
        return {"loss": per.sum(0).mean(), "reward": r.mean()}
