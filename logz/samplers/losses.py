"""Path-space losses for samplers that learn a controlled SDE (PIS, DDS; DGFS/TB/SubTB later).

Notation, per path i of a batch of B (all Tensor[B]):
    log_w = log R(x_N) + sum_k log P_B - sum_k log P_F - log p_0(x_0)
is the path-space log importance weight of the target path measure (unnormalized
terminal density R = p~) against the sampler's path measure. E_Q[log_w] <= log Z,
with equality iff the sampler's paths have the target's law.

- ``kl_loss``: the reparameterised KL(Q || P~) of PIS, written with the control cost
  sum_k 1/2 |u_k|^2 dt_k instead of the (mean-zero) stochastic integral:
      KL = E[ control_cost + log p_ref,T(x_N) - log R(x_N) ] + log Z.
  Gradients flow through the whole trajectory (pathwise / reparameterisation).
- ``log_variance_loss`` (VarGrad): 1/2 of the unbiased sample variance of log_w over the
  batch. It needs no gradient through the trajectory: paths can come from any
  behaviour process and be re-scored (``logz.sde.path_log_densities``). On-policy, its
  expected gradient equals the KL gradient exactly (the factor 1/2 makes it so):
      grad 1/2 Var = E[(l - E l) grad l] = E[l grad l] = grad KL,  l = -log_w.
- ``vargrad_weights``: the per-path coefficients of that gradient, for computing it in
  time chunks (accumulate sum_i c_i * grad(-log_w_i) chunk by chunk, no full graph).

Zero-density regions: a path that ends where log p~ = -inf has importance weight 0 (the
estimators give it zero weight), an infinite KL term and an infinite log-weight. These three
losses average over the other paths (a -inf log-weight or reward is left out, and its
gradient is exactly zero: the mask is applied before any arithmetic). The sampler then
learns from the paths that reached the target's support; ``zero_density_fraction`` is
the share that did not, to report. A batch with no such path gives a zero loss (nothing to
learn from); a sampler never gets there silently, as the target boundary refuses a batch
whose log-densities are all -inf with an error naming ``init_std``
(``logz.targets.base.checked_log_prob``). No host reads: the loops stay sync-free.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor


def _check_batch(*tensors: Tensor) -> None:
    shape = tensors[0].shape
    for t in tensors:
        if t.ndim != 1 or t.shape != shape:
            raise ValueError(f"loss inputs must be Tensor[B] of one shape, got "
                             f"{[tuple(x.shape) for x in tensors]}")


def zero_density_fraction(log_reward: Tensor) -> Tensor:
    """Share of paths whose log-reward (or log-weight) is -inf, a 0-dim tensor (no host read)."""
    return torch.isneginf(log_reward.detach()).to(log_reward.dtype).mean()


def _finite(log_reward: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(mask of paths with log-reward > -inf, their count (at least 1, to divide by), the
    log-reward with 0 where masked). No host read: the training loop stays sync-free."""
    mask = ~torch.isneginf(log_reward.detach())
    safe = torch.where(mask, log_reward, torch.zeros_like(log_reward))
    return mask, mask.sum().clamp_min(1).to(log_reward.dtype), safe


def kl_loss(control_cost: Tensor, log_reward: Tensor, log_reference_terminal: Tensor) -> Tensor:
    """Reparameterised KL loss (up to the constant log Z), a scalar.

    Args:
        control_cost: Tensor[B], sum_k 1/2 |u(x_k, t_k)|^2 dt_k.
        log_reward: Tensor[B], log p~(x_N).
        log_reference_terminal: Tensor[B], log-density of x_N under the reference's
            terminal marginal (the uncontrolled process's law at T).
    """
    _check_batch(control_cost, log_reward, log_reference_terminal)
    mask, n, safe = _finite(log_reward)  # paths in zero-density regions are left out
    return torch.where(mask, control_cost + log_reference_terminal - safe,
                       torch.zeros_like(safe)).sum() / n


def log_variance_loss(log_w: Tensor) -> Tensor:
    """VarGrad / log-variance loss 1/2 Var_batch(log_w) (unbiased, B-1), a scalar.

    Args:
        log_w: Tensor[B], log-weights of the paths as a differentiable function of the
            parameters (paths themselves detached), B >= 2.
    """
    _check_batch(log_w)
    if log_w.shape[0] < 2:
        raise ValueError("log-variance loss needs a batch of at least 2 paths")
    mask, n, safe = _finite(log_w)
    dev = torch.where(mask, safe - safe.sum() / n, torch.zeros_like(safe))
    return 0.5 * (dev * dev).sum() / (n - 1).clamp_min(1)


def vargrad_weights(log_w: Tensor) -> Tensor:
    """c_i with grad(1/2 Var(log_w)) = sum_i c_i grad(log_w_i); Tensor[B], detached.

    c_i = (log_w_i - mean(log_w)) / (B - 1); over the finite log-weights only (c_i = 0
    where log_w_i = -inf).
    """
    _check_batch(log_w)
    log_w = log_w.detach()
    mask, n, safe = _finite(log_w)
    return torch.where(mask, safe - safe.sum() / n, torch.zeros_like(safe)) / (n - 1).clamp_min(1)


LOSSES: dict[str, Callable[..., Tensor]] = {"kl": kl_loss, "vargrad": log_variance_loss}
"""Loss functions by name (the samplers' ``loss=`` option)."""


# --- GFlowNet-style path losses (DGFS, TB, DB, SubTB; Zhang et al. 2023, Malkin et al. 2022) --------
#
# Shapes, for N steps and B paths (time-major, as ``logz.sde.path_log_densities`` returns them):
#     log_pf: Tensor[N, B]      log P_F(x_{k+1} | x_k) under the current policy
#     log_pb: Tensor[N, B]      log P_B(x_k | x_{k+1}) (the reference bridge; 0 on the first step
#                               from the point mass x_0 = 0)
#     log_flow: Tensor[N+1, B]  log F_k(x_k); row N must be log R(x_N) (the flow is pinned to
#                               the reward at t = T) and row 0 plays the role of log Z
#     log_reward: Tensor[B]     log R(x_N) = log p~(x_N)
#     log_Z: Tensor[] (scalar)  a learned estimate of log Z (TB)
# Every residual vanishes for every path iff the policy and flow are the optimal ones
# (detailed balance F_k P_F = F_{k+1} P_B); none needs a gradient through the trajectory, so
# paths may come from any behaviour process (exploration noise, replay buffer, local search).


def _check_steps(log_pf: Tensor, log_pb: Tensor, log_flow: Optional[Tensor] = None) -> None:
    if log_pf.ndim != 2 or log_pf.shape != log_pb.shape:
        raise ValueError(f"log_pf and log_pb must be Tensor[N, B] of one shape, got "
                         f"{tuple(log_pf.shape)} and {tuple(log_pb.shape)}")
    if log_flow is not None and log_flow.shape != (log_pf.shape[0] + 1, log_pf.shape[1]):
        raise ValueError(f"log_flow must be Tensor[N+1, B] = {(log_pf.shape[0] + 1, log_pf.shape[1])}, "
                         f"got {tuple(log_flow.shape)}")


def trajectory_balance_loss(log_pf: Tensor, log_pb: Tensor, log_reward: Tensor, log_Z: Tensor) -> Tensor:
    """TB: mean_b (log Z + sum_k log P_F - sum_k log P_B - log R)^2, a scalar."""
    _check_steps(log_pf, log_pb)
    _check_batch(log_reward, log_pf[0])
    return (log_Z + log_pf.sum(0) - log_pb.sum(0) - log_reward).pow(2).mean()


def vargrad_path_loss(log_pf: Tensor, log_pb: Tensor, log_reward: Tensor) -> Tensor:
    """VarGrad ("TB with the batch-optimal log Z"): ``log_variance_loss`` of
    log w = log R + sum log P_B - sum log P_F, a scalar."""
    _check_steps(log_pf, log_pb)
    return log_variance_loss(log_reward + log_pb.sum(0) - log_pf.sum(0))


def detailed_balance_loss(log_pf: Tensor, log_pb: Tensor, log_flow: Tensor) -> Tensor:
    """DB: mean over steps k and paths of (log F_k + log P_F,k - log F_{k+1} - log P_B,k)^2."""
    _check_steps(log_pf, log_pb, log_flow)
    return (log_flow[:-1] + log_pf - log_flow[1:] - log_pb).pow(2).mean()


def subtb_weights(num_steps: int, lam: float = 2.0, dtype: torch.dtype = torch.float64,
                  device=None) -> Tensor:
    """W[i, j] = lam^(j - i) / sum_{i' < j'} lam^(j' - i') for 0 <= i < j <= N, else 0.

    Tensor[N+1, N+1], summing to 1 (computed in log space: lam^N overflows for large N).
    """
    if not (isinstance(lam, (int, float)) and lam > 0):
        raise ValueError(f"subtb lambda must be > 0, got {lam!r}")
    idx = torch.arange(num_steps + 1, device=device)
    diff = (idx[None, :] - idx[:, None]).to(torch.float64)
    logw = (diff * math.log(lam)).masked_fill(diff <= 0, -math.inf)
    return torch.exp(logw - torch.logsumexp(logw.flatten(), 0)).to(dtype)


def subtb_loss(log_pf: Tensor, log_pb: Tensor, log_flow: Tensor, *, lam: float = 2.0,
               weights: Optional[Tensor] = None, num_pairs: Optional[int] = None,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """Sub-trajectory balance over all pairs i < j, lam-weighted; a scalar (mean over paths).

        r_ij = log F_i - log F_j + sum_{k=i}^{j-1} (log P_F,k - log P_B,k),
        loss = mean_b sum_{i<j} W_ij r_ij^2,     W = ``subtb_weights(N, lam)``.

    All N(N+1)/2 pairs at once from prefix sums, as a quadratic form (O(N^2 B) flops in one
    matmul, memory O(N B), no loop over pairs).
    ``num_pairs``: instead, an unbiased estimate from that many pairs drawn with
    probabilities W (one draw shared by the batch), memory O(num_pairs B), for long N.
    ``weights``: a precomputed ``subtb_weights`` (saves recomputing it every call).
    """
    _check_steps(log_pf, log_pb, log_flow)
    N = log_pf.shape[0]
    W = subtb_weights(N, lam, log_pf.dtype, log_pf.device) if weights is None else weights
    if W.shape != (N + 1, N + 1):
        raise ValueError(f"weights must be Tensor[N+1, N+1] = {(N + 1, N + 1)}, got {tuple(W.shape)}")
    # one prefix sum: r_ij = c_j - c_i with c_k = sum_{k'<k} (log P_F - log P_B)_k' - log F_k;
    # shifting c by c_0 per path changes no residual and makes c_k = r_0k, small once trained
    c = torch.cat([log_pf.new_zeros(1, log_pf.shape[1]), (log_pf - log_pb).cumsum(0)]) - log_flow
    c = c - c[:1]
    if num_pairs is None:
        # sum_ij W_ij (c_j - c_i)^2 = sum_k c_k^2 (row_k + col_k) - 2 c^T W c: one [N+1, N+1] x
        # [N+1, B] matmul instead of an [N+1, N+1, B] tensor of residuals (same O(N^2 B) flops)
        marg = (W.sum(0) + W.sum(1)).unsqueeze(-1)
        return ((marg * c.pow(2)).sum(0) - 2 * (c * (W @ c)).sum(0)).mean()
    if not (isinstance(num_pairs, int) and num_pairs >= 1):
        raise ValueError(f"num_pairs must be a positive integer or None, got {num_pairs!r}")
    flat = torch.multinomial(W.flatten().to(torch.float64), num_pairs, replacement=True, generator=generator)
    i, j = flat // (N + 1), flat % (N + 1)
    return (c[j] - c[i]).pow(2).mean()


GFN_LOSSES: dict[str, Callable[..., Tensor]] = {
    "tb": trajectory_balance_loss, "vargrad": vargrad_path_loss,
    "db": detailed_balance_loss, "subtb": subtb_loss}
"""Path losses on per-step log-densities by name (the ``loss=`` option of DGFS-type samplers).

Kept apart from ``LOSSES`` (the PIS/DDS options): their inputs differ."""

GFN_LOSS_NEEDS = {"tb": "log_Z", "vargrad": None, "db": "log_flow", "subtb": "log_flow"}
"""What each GFN loss learns besides the policy: a scalar log Z, a log-flow network, or nothing."""
