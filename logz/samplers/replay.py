"""Off-policy pieces for path samplers: a reward-prioritised replay buffer and MALA local search.

- ``ReplayBuffer``: terminal states x_N with their log-rewards, first-in first-out beyond
  ``capacity``; ``sample`` draws with replacement, rank-prioritised by reward as in
  gfn-diffusion (weight 1 / (rank_weight * size + rank), rank 0 = highest reward), or
  uniformly. Training turns buffer states into whole paths by sampling backwards through
  the reference bridge (``DGFS._bridge_paths``).
- ``mala``: Metropolis-adjusted Langevin on log p~, batched over independent chains, with
  the step size adapted on the log scale towards a target acceptance rate (0.574, the
  optimal MALA rate; Roberts & Rosenthal 1998). gfn-diffusion refines buffer samples
  this way ("local search") before training on them.

Everything random takes an explicit ``torch.Generator``; the buffer's contents and the
adapted step size travel in ``state_dict`` so a checkpointed run resumes bit-identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from logz._random import log_uniform

LogProbAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]


class ReplayBuffer:
    """FIFO store of (x Tensor[n, dim], log_reward Tensor[n]) with prioritised sampling.

    Args:
        capacity: most states kept (older ones are dropped first).
        dim: state dimension.
        prioritized: "rank" (gfn-diffusion's rank-based priority) or "uniform".
        rank_weight: k in 1 / (k * size + rank); smaller is greedier.
        dtype, device: of the stored tensors.
    """

    def __init__(self, capacity: int, dim: int, *, prioritized: str = "rank", rank_weight: float = 1e-2,
                 dtype: torch.dtype = torch.float32, device=None):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"replay capacity must be a positive integer, got {capacity!r}")
        if prioritized not in ("rank", "uniform"):
            raise ValueError(f"prioritized must be 'rank' or 'uniform', got {prioritized!r}")
        if not (isinstance(rank_weight, (int, float)) and rank_weight > 0):
            raise ValueError(f"rank_weight must be > 0, got {rank_weight!r}")
        self.capacity, self.dim = capacity, int(dim)
        self.prioritized, self.rank_weight = prioritized, float(rank_weight)
        self.x = torch.empty(0, self.dim, dtype=dtype, device=device)
        self.log_reward = torch.empty(0, dtype=dtype, device=device)

    def __len__(self) -> int:
        return self.x.shape[0]

    def add(self, x: Tensor, log_reward: Tensor) -> None:
        """Append x Tensor[n, dim] and log_reward Tensor[n] (detached); drop the oldest beyond capacity."""
        if x.ndim != 2 or x.shape[1] != self.dim or log_reward.shape != (x.shape[0],):
            raise ValueError(f"add needs x [n, {self.dim}] and log_reward [n], got "
                             f"{tuple(x.shape)} and {tuple(log_reward.shape)}")
        keep = torch.isfinite(log_reward) & torch.isfinite(x).all(-1)  # -inf rewards teach nothing
        self.x = torch.cat([self.x, x.detach()[keep].to(self.x)])[-self.capacity:]
        self.log_reward = torch.cat([self.log_reward, log_reward.detach()[keep].to(self.log_reward)])[-self.capacity:]

    def priorities(self) -> Tensor:
        """Unnormalised sampling weights, Tensor[size] (float64)."""
        n = len(self)
        if self.prioritized == "uniform":
            return torch.ones(n, dtype=torch.float64, device=self.x.device)
        order = torch.argsort(self.log_reward.double(), descending=True, stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(n, device=order.device)
        return 1.0 / (self.rank_weight * n + rank.double())

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n draws with replacement: (x Tensor[n, dim], log_reward Tensor[n])."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.multinomial(self.priorities(), n, replacement=True, generator=generator)
        return self.x[idx], self.log_reward[idx]

    def state_dict(self) -> dict:
        return {"x": self.x.clone(), "log_reward": self.log_reward.clone()}

    def load_state_dict(self, state: dict) -> None:
        x, r = state["x"], state["log_reward"]
        if x.ndim != 2 or x.shape[1] != self.dim or r.shape != (x.shape[0],):
            raise ValueError(f"replay buffer state of shape {tuple(x.shape)} does not fit dim {self.dim}")
        self.x, self.log_reward = x.to(self.x), r.to(self.log_reward)


@dataclass
class MALAResult:
    """Output of ``mala``.

    Attributes:
        x: Tensor[B, dim] final states. log_prob: Tensor[B], log p~ there.
        step_size: the adapted step size after the last step.
        acceptance: Tensor[steps], fraction of chains accepted at each step.
    """

    x: Tensor
    log_prob: Tensor
    step_size: float
    acceptance: Tensor


def mala(log_prob_and_grad: LogProbAndGrad, x: Tensor, *, steps: int, step_size: float,
         generator: torch.Generator, target_acceptance: float = 0.574, adapt_rate: float = 0.5,
         adapt: bool = True) -> MALAResult:
    """B independent MALA chains on log p~, started at x Tensor[B, dim].

    Proposal y = x + h grad log p~(x) + sqrt(2h) eps, accepted with probability
    min(1, p~(y) q(x | y) / (p~(x) q(y | x))). With ``adapt``, after each step
    log h += adapt_rate * (batch acceptance - target_acceptance): a Robbins–Monro
    recursion whose fixed point is the step size with the target acceptance rate
    (acceptance decreases in h). The chains are exact MCMC only with ``adapt=False``;
    for local search (proposals to train on, re-weighted by the loss) adaptation is fine.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")
    if not 0 < target_acceptance < 1:
        raise ValueError(f"target_acceptance must be in (0, 1), got {target_acceptance!r}")
    x = x.detach()
    lp, grad = log_prob_and_grad(x)
    log_h = math.log(step_size)
    acc = []
    for _ in range(steps):
        h = math.exp(log_h)
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        y = x + h * grad + math.sqrt(2 * h) * eps
        lp_y, grad_y = log_prob_and_grad(y)
        log_q_fwd = -(y - x - h * grad).pow(2).sum(-1) / (4 * h)
        log_q_bwd = -(x - y - h * grad_y).pow(2).sum(-1) / (4 * h)
        log_alpha = (lp_y - lp + log_q_bwd - log_q_fwd).nan_to_num(nan=-math.inf)
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
        accept = log_uniform(u) < log_alpha
        x = torch.where(accept[:, None], y, x)
        lp = torch.where(accept, lp_y, lp)
        grad = torch.where(accept[:, None], grad_y, grad)
        rate = accept.to(x.dtype).mean()
        acc.append(rate)
        if adapt:
            log_h += adapt_rate * (float(rate) - target_acceptance)
    return MALAResult(x, lp, math.exp(log_h), torch.stack(acc))
