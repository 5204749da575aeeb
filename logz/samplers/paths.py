"""Path pieces shared by the path-space samplers: the log-weights of fresh paths and of paths
drawn backwards from exact samples through the reference bridge (the EUBO's integrand), the
bridge paths themselves (also for replayed states), and the re-ordering of rows gathered over
ranks. ``s`` is a ``logz.samplers.base.PathSampler``."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from logz.samplers._common import _cpu_generator, progress_disabled
from logz.sde import LinearReference

Draw = Callable[[int], Tensor]
"""``draw(k)``: the standard normals Tensor[n, dim] of backward step k (k = N-1 first)."""


@torch.no_grad()
def bridge_paths(reference: LinearReference, times: Tensor, x_final: Tensor, draw: Draw) -> Tensor:
    """Paths ending at ``x_final`` Tensor[n, dim], drawn backwards through the reference's
    bridge (x_k = b_k x_{k+1} + r_k eps_k): Tensor[N+1, n, dim], time-major, x_N = x_final."""
    b, r = reference.backward_coefficients(times)
    x = x_final
    out = [x]
    for k in range(times.numel() - 2, -1, -1):
        x = b[k] * x + r[k] * draw(k)
        out.append(x)
    return torch.stack(out[::-1])


def block_draw(generator: torch.Generator, num_steps: int, like: Tensor) -> Draw:
    """All N steps' normals drawn at once (Tensor[N, n, dim]) and handed out per step."""
    eps = torch.randn((num_steps,) + tuple(like.shape), generator=generator, dtype=like.dtype, device=like.device)
    return lambda k: eps[k]


def batch_major(gathered: Tensor, sizes: list, world: int) -> Tensor:
    """Rows gathered rank by rank ([rank 0: its batches..., rank 1: ...]) regrouped batch by
    batch ([batch 0: rank 0, rank 1, ...; batch 1: ...]): the order of the one-process run,
    whose k-th evaluation batch is the k-th draw of the generator."""
    local = sum(sizes)
    per_rank = gathered.split(local)
    parts = []
    offset = 0
    for n in sizes:
        parts.extend(p[offset:offset + n] for p in per_rank)
        offset += n
    return torch.cat(parts)


@torch.no_grad()
def fresh_log_weights(s, num_samples: int, generator: torch.Generator, progress: Optional[bool]) -> tuple[Tensor, Tensor]:
    """(x_N Tensor[n, dim], log w Tensor[n]) of fresh on-policy paths of ``s``, in batches."""
    from tqdm.auto import tqdm

    local = s.shard.local_size(num_samples, "num_samples")
    batch = s.eval_batch_size // s.shard.world_size
    xs, log_ws = [], []
    sizes = [min(batch, local - i) for i in range(0, local, batch)]
    with s.shard.guard():
        for n in tqdm(sizes, desc=f"{s.name} estimate", disable=progress_disabled(progress, s.shard.is_main), leave=False):
            x0, log_p0 = s.initial(n, generator)
            tr = s.simulate(x0, s.times, generator, keep_path=False, keep_steps=False)[0]
            xs.append(tr.final)
            log_ws.append(s.log_reward(tr.final) + tr.log_path_ratio - log_p0)
    x, log_w = torch.cat(xs), torch.cat(log_ws)
    if not s.shard.active:
        return x, log_w
    # rank-major order: ranks' batches interleave, so regroup each eval batch's rows
    x, log_w = s.shard.gather(x), s.shard.gather(log_w)
    return batch_major(x, sizes, s.shard.world_size), batch_major(log_w, sizes, s.shard.world_size)


@torch.no_grad()
def exact_sample_log_weights(s, num_samples: int) -> Tensor:
    """log w Tensor[n] of paths of ``s`` drawn backwards from exact target samples."""
    gen, shard = s.eval_generator, s.shard
    local = shard.local_size(num_samples, "num_samples")
    # every rank draws all n exact samples (one CPU stream) and keeps its rows
    x = s.target.sample(num_samples, generator=_cpu_generator(gen))[shard.rows(local)]
    x = x.to(s.device, s.dtype)
    states = bridge_paths(s.reference, s.times, x, lambda k: shard.randn(
        x.shape, generator=gen, dtype=s.dtype, device=s.device))
    log_p0 = s.reference.log_marginal(states[0], 0.0) if s.reference.init_std > 0 else states.new_zeros(local)
    with shard.guard():
        log_w = s.log_reward(states[-1]) - log_p0
        for k0 in range(0, s.num_steps, 10):  # bounded memory
            log_w = log_w + s.rescore(states, k0, min(k0 + 10, s.num_steps))
    return shard.gather(log_w)


__all__ = ["Draw", "batch_major", "block_draw", "bridge_paths", "exact_sample_log_weights", "fresh_log_weights"]
