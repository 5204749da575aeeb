"""The behaviour process of the off-policy path samplers (DGFS, TB, DB, VarGrad): where each
training batch's paths come from.

Forward paths are simulated with extra noise (``exploration``: an additive std per step,
decaying linearly to 0 over ``exploration_decay_iterations``); with a replay buffer, part of
the batch is instead drawn backwards through the reference bridge from the buffer's terminal
states (``ReplayBuffer``), whose states local search may refine by MALA (``replay.py``). The
forward paths' control values are kept, with their graph, from their own simulation; the
replayed paths' are computed in one batched call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import Tensor

from logz.samplers._common import _check, _is_int
from logz.samplers.nets import GridControl
from logz.samplers.paths import block_draw, bridge_paths
from logz.samplers.replay import ReplayBuffer, mala
from logz.sde import split_control
from logz.targets.base import log_prob_and_grad


@dataclass(frozen=True)
class Behaviour:
    """Exploration noise and the replay buffer (``replay``: False, True = 100 batches, or a capacity)."""

    exploration: float = 0.0
    exploration_decay_iterations: Optional[int] = None
    replay: Union[bool, int] = False
    replay_fraction: float = 0.5
    replay_prioritized: str = "rank"
    rank_weight: float = 1e-2
    local_search: bool = False
    local_search_every: int = 100
    local_search_steps: int = 200
    local_search_step_size: float = 1e-3
    target_acceptance: float = 0.574

    def validate(self) -> "Behaviour":
        e, d = self.exploration, self.exploration_decay_iterations
        _check("exploration", isinstance(e, (int, float)) and e >= 0, e, ">= 0")
        _check("exploration_decay_iterations", d is None or (_is_int(d) and d >= 1), d, "None or an integer >= 1")
        _check("replay", isinstance(self.replay, bool) or (_is_int(self.replay) and self.replay >= 1), self.replay,
               "a bool or a capacity >= 1")
        f = self.replay_fraction
        _check("replay_fraction", isinstance(f, (int, float)) and 0 < f < 1, f, "in (0, 1)")
        _check("local_search", not self.local_search or bool(self.replay), self.local_search, "False without replay")
        for key in ("local_search_every", "local_search_steps"):
            v = getattr(self, key)
            _check(key, _is_int(v) and v >= 1, v, "an integer >= 1")
        _check("local_search_step_size", self.local_search_step_size > 0, self.local_search_step_size, "> 0")
        _check("target_acceptance", 0 < self.target_acceptance < 1, self.target_acceptance, "in (0, 1)")
        return self


class OffPolicyPaths:
    """Training paths of a sampler ``s`` (a ``PathSampler`` on a Brownian reference from 0)."""

    def __init__(self, s, config: Behaviour, sigma: float, dt: float):
        self.config, self.sigma, self.dt = config.validate(), float(sigma), float(dt)
        self.step_size = float(config.local_search_step_size)
        self.acceptance: Optional[float] = None
        # replay buffers and local search are per rank (each rank keeps its own paths' states),
        # drawn from a per-rank stream; one process: the training stream itself
        self.generator = (torch.Generator(device=s.device).manual_seed(s.shard.derive_seed(s.seed))
                          if s.shard.active else s.generator)
        self.buffer = None
        if config.replay:
            capacity = 100 * s.local_batch_size if config.replay is True else int(config.replay)
            self.buffer = ReplayBuffer(capacity, s.dim, prioritized=config.replay_prioritized,
                                       rank_weight=config.rank_weight, dtype=s.dtype, device=s.device)

    def noise_scale(self, iteration: int) -> float:
        """Behaviour-noise multiplier at ``iteration``: sqrt(1 + e^2 / (sigma^2 dt)), e the
        (decayed) exploration std — the additive-variance exploration of gfn-diffusion."""
        e, decay = self.config.exploration, self.config.exploration_decay_iterations
        if decay:
            e *= max(0.0, 1.0 - iteration / decay)
        return math.sqrt(1.0 + e * e / (self.sigma ** 2 * self.dt))

    def paths(self, s, iteration: int) -> tuple[Tensor, int, Optional[Tensor]]:
        """States Tensor[N+1, B, dim] (forward paths first, no graph), the number of forward
        paths, and the control's values at states[:-1] with their graph (Tensor[N, B, dim]; None
        for a control that is not ``TimeConditioned``, then evaluated by the loss)."""
        gen, B = s.generator, s.local_batch_size
        record = s.on_grid
        n_buf = 0
        with torch.no_grad():
            if self.buffer is not None and len(self.buffer) > 0:
                n_buf = min(B - 1, max(1, round(self.config.replay_fraction * B)))
                if self.config.local_search and iteration % self.config.local_search_every == 0:
                    self.refine(s)
            x0, _ = s.initial(B - n_buf, gen)
        with torch.set_grad_enabled(record and torch.is_grad_enabled()):
            tr, control = s.simulate(x0, s.times, gen, record_controls=record, log_densities=False,
                                     keep_steps=False, noise_scale=self.noise_scale(iteration))
        controls = control.controls if record else None
        if n_buf == 0:
            return tr.states, B, controls
        with torch.no_grad():
            x_buf, _ = self.buffer.sample(n_buf, self.generator)
            x_buf = x_buf.to(s.dtype)
            back = bridge_paths(s.reference, s.times, x_buf, block_draw(self.generator, s.num_steps, x_buf))
        if controls is not None:
            N, d = s.num_steps, s.dim
            t_flat = s.times[:-1].repeat_interleave(n_buf)
            u_fwd, ls_fwd = split_control(controls, torch.Size((N, B - n_buf, d)), "recorded controls")
            u_back, ls_back = split_control(
                GridControl(s.control, s.times[:-1])(back[:-1].reshape(N * n_buf, d), t_flat),
                torch.Size((N * n_buf, d)))
            u = torch.cat([u_fwd, u_back.view(N, n_buf, d)], dim=1)
            # a learned noise also carries its per-dimension log_scale along
            controls = u if ls_fwd is None else (u, torch.cat([ls_fwd, ls_back.view(N, n_buf, d)], dim=1))
        return torch.cat([tr.states, back], dim=1), B - n_buf, controls

    def refine(self, s) -> None:
        """Local search: MALA on a prioritised batch from the buffer; the results join it."""
        x, _ = self.buffer.sample(s.local_batch_size, self.generator)
        res = mala(lambda y: log_prob_and_grad(s.target, y), x, steps=self.config.local_search_steps,
                   step_size=self.step_size, generator=self.generator,
                   target_acceptance=self.config.target_acceptance)
        self.step_size = res.step_size
        self.acceptance = float(res.acceptance[-10:].mean())
        self.buffer.add(res.x, res.log_prob)

    def state_dict(self) -> dict:
        state: dict[str, Any] = {"local_search_step_size": self.step_size}
        if self.buffer is not None:
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.step_size = float(state.get("local_search_step_size", self.step_size))
        if self.buffer is not None:
            if "buffer" not in state:
                raise ValueError("checkpoint has no replay buffer, but this DGFS uses one")
            self.buffer.load_state_dict(state["buffer"])


__all__ = ["Behaviour", "OffPolicyPaths"]
