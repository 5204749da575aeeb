"""Reparameterised KL (PIS, DDS): control cost + terminal log-ratio, backpropagated through
the simulated paths (``losses.kl_loss``).

The batch is simulated WITH its graph. ``grad_checkpoint_steps`` bounds the memory: the time
loop runs in chunks under ``torch.utils.checkpoint``, each chunk drawing its noise from a copy
of the RNG state so that the recomputation in backward draws exactly the same increments.
``differentiate_score`` differentiates through grad log p~ along the path (the exact
reparameterisation gradient, second derivatives); the reference code detaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from logz.samplers import losses
from logz.samplers._common import _check, _is_int, _log_mean_exp
from logz.samplers.objectives import Objective


@dataclass(frozen=True)
class KLConfig:
    grad_checkpoint_steps: Optional[int] = None
    differentiate_score: bool = False

    def validate(self) -> "KLConfig":
        c = self.grad_checkpoint_steps
        _check("grad_checkpoint_steps", c is None or (_is_int(c) and c >= 1), c, "None or an integer >= 1")
        return self


class KLBatch(NamedTuple):
    x_final: Tensor   # [B, dim], with its graph
    cost: Tensor      # [B], sum_k 1/2 |u_k|^2 dt_k
    ratio: Tensor     # [B], sum log P_B - sum log P_F
    log_p0: Tensor    # [B], log p_0(x_0)


class KLInfo(NamedTuple):
    log_z: Tensor     # importance-weighted log Z of the batch (progress bar, history)
    elbo: Tensor      # mean log w of the batch
    zero_density: Optional[Tensor] = None  # share of paths ending where log p~ = -inf (left out of the loss)


class KL(Objective):
    name = "kl"

    def __init__(self, config: KLConfig = KLConfig()):
        self.config = config.validate()
        self.differentiate_score = bool(config.differentiate_score)
        self.checkpoint_steps = config.grad_checkpoint_steps

    def simulate(self, s, iteration: int) -> KLBatch:
        x0, log_p0 = s.initial(s.local_batch_size, s.generator)
        chunk = self.checkpoint_steps
        if chunk is None or chunk >= s.num_steps:
            tr = s.simulate(x0, s.times, s.generator, keep_path=False, keep_steps=False)[0]
            return KLBatch(tr.final, tr.control_cost, tr.log_backward_sum - tr.log_forward_sum, log_p0)
        x, cost, ratio = x0, x0.new_zeros(len(x0)), x0.new_zeros(len(x0))
        for k0 in range(0, s.num_steps, chunk):
            times = s.times[k0:min(k0 + chunk, s.num_steps) + 1]
            rng_state, rng_after = s.generator.get_state(), []

            def run(x_in: Tensor, times=times, rng_state=rng_state, rng_after=rng_after):
                gen = torch.Generator(device=s.device)
                gen.set_state(rng_state)
                tr = s.simulate(x_in, times, gen, keep_path=False, keep_steps=False)[0]
                rng_after.append(gen.get_state())
                return tr.final, tr.control_cost, tr.log_backward_sum - tr.log_forward_sum

            x, c, r = checkpoint(run, x, use_reentrant=False)
            s.generator.set_state(rng_after[0])
            cost, ratio = cost + c, ratio + r
        return KLBatch(x, cost, ratio, log_p0)

    def loss(self, s, batch: KLBatch) -> tuple[Tensor, KLInfo]:
        log_r = s.log_reward(batch.x_final)
        # one gather of the per-path terms: every rank computes the global loss (logz.distributed)
        cost, log_r, log_ref, log_w = s.shard.gather(torch.stack(
            [batch.cost, log_r, s.reference.terminal_log_prob(batch.x_final, s.T),
             (batch.ratio - batch.log_p0).detach()]), dim=1)
        loss = losses.kl_loss(cost, log_r, log_ref)
        log_w = (log_r + log_w).detach()
        return loss / s.dim, KLInfo(_log_mean_exp(log_w), log_w.mean(), losses.zero_density_fraction(log_r))


__all__ = ["KL", "KLBatch", "KLConfig", "KLInfo"]
